//! gptoss-kernels-cpu: the CPU backend. Scalar reference kernels for every Backend op (the
//! definition the SIMD and CUDA kernels are tested against), buffers that compute straight
//! from memory-mapped weights, and rayon threading.

pub mod backend;
pub mod buffer;
pub mod reference;
pub mod registry;
pub mod view;

pub use backend::CpuBackend;
pub use buffer::CpuBuffer;
