//! Scalar reference kernels: the definition of every Backend op, written for clarity, with
//! f64 accumulation; each takes its op's argument struct on host operands (`host::Host`) and
//! the backend's workspace. The SIMD kernels and the CUDA kernels are tested against these.
//! Rows are spread over the backend's worker pool (`pool`); results do not depend on it.

pub mod attention;
pub mod convert_weight;
pub mod embed;
pub mod matmul;
pub mod moe_experts;
pub mod moe_route;
pub mod q8;
pub mod qkv_rope;
pub mod rms_norm;
pub mod sample;

/// Output rows per parallel task: large enough to amortise scheduling, small enough to
/// balance two to a few dozen threads on the smallest matrices.
pub const ROWS_PER_TASK: usize = 64;
