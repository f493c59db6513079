//! gptoss-kernels-cuda: the CUDA implementation of the engine's `Backend`, on a real GPU or on
//! the CPU under an exact emulation of the CUDA execution model.
//!
//! Hand-written kernels in `cuda/*.cu`. With the `cuda` feature, `build.rs` compiles them with
//! nvcc to fatbins (SASS for sm_80/86/89/90a plus compute_90 PTX) embedded in the crate and
//! launched through cudarc's driver API, loaded at run time ([`Gpu`]): building needs nvcc but
//! no GPU and no driver; a machine without them gets an error, never a panic. With the
//! `cuda-sim` feature, `build.rs` compiles the same sources as C++ for the host with the
//! emulator in `sim/` ([`Sim`]), so every kernel runs anywhere, slowly: a checker. Without
//! either the crate is empty and the workspace builds on machines with no CUDA at all.

#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod args;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod backend;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod buffer;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
pub mod device;
#[cfg(feature = "cuda")]
mod gpu;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod graph;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod ops;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod registry;
#[cfg(feature = "cuda-sim")]
pub mod sim;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod tables;

#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
pub use args::KernelArgs;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
pub use backend::CudaBackend;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
pub use buffer::CudaBuffer;
#[cfg(feature = "cuda")]
pub use gpu::{ARTIFACTS, Gpu, PTXAS_SUMMARY};
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
pub use registry::variants;
#[cfg(feature = "cuda-sim")]
pub use sim::Sim;

/// True when this build carries the CUDA kernels for a GPU (the `cuda` cargo feature).
pub const ENABLED: bool = cfg!(feature = "cuda");
/// True when this build carries the emulated device (the `cuda-sim` cargo feature).
pub const SIM_ENABLED: bool = cfg!(feature = "cuda-sim");
