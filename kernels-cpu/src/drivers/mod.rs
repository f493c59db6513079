//! The drivers: each op split into tasks on the worker pool, each task calling a compiled body
//! (`compiled::Compiled`) directly. Generic over the ISA (`H`), the weight format (`F`) and the
//! products (`P`): the registry instantiates one per case, so the kernel it chooses at load is
//! the function that runs.

pub mod attention;
pub mod matmul;
pub mod moe_experts;
pub mod moe_route;
pub mod qkv_rope;
pub mod rms_norm;
