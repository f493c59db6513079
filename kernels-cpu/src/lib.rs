//! gptoss-kernels-cpu: the CPU backend. Scalar reference kernels for every Backend op (the
//! definition the SIMD and CUDA kernels are tested against), SIMD kernels (AVX2, AVX-512,
//! NEON) chosen at run time, buffers that compute straight from memory-mapped weights, and a
//! persistent worker pool for the per-op parallel loops.
//!
//! Layers, each importing only those below it: `simd` (ISA primitives) → `fast` (kernel bodies
//! per op family) → `compiled` (the bodies compiled per ISA) → `drivers` (ops split into tasks
//! on the pool) → `registry` (names, choice at load) → `backend`. `reference` (scalar kernels)
//! sits beside `fast`; `host` and `view` are the operands every kernel takes.

pub mod backend;
pub mod buffer;
pub mod compiled;
pub mod drivers;
pub mod fast;
pub mod host;
pub mod isa;
pub mod options;
pub mod pool;
pub mod reference;
pub mod registry;
pub mod simd;
pub mod view;
pub mod workspace;

pub use backend::CpuBackend;
pub use buffer::CpuBuffer;
pub use isa::Isa;
pub use options::{Activations, CpuOptions};
