//! One module per op family: the case (a few small parameters and a seed, which proptest
//! draws and prints on failure), its inputs, how it runs on any backend, and the test body that
//! compares a backend with the scalar reference under the family's budget.

pub mod attention;
pub mod attention_rows;
pub mod embed;
pub mod matmul;
pub mod moe_experts;
pub mod moe_route;
pub mod qkv_rope;
pub mod qkv_rope_rows;
pub mod rms_norm;
pub mod sample;
pub mod synth;
