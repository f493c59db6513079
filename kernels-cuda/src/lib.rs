//! gptoss-kernels-cuda: the CUDA implementation of the engine's `Backend`.
//!
//! Hand-written kernels in `cuda/*.cu`, compiled by nvcc in `build.rs` to fatbins (SASS for
//! sm_80/86/89/90a plus compute_90 PTX) that are embedded in the crate and launched through
//! cudarc's driver API, loaded at run time. Everything lives behind the `cuda` feature: without
//! it the crate is empty and the workspace builds on machines with no CUDA at all. With it,
//! building needs nvcc but no GPU and no driver; a machine without a driver or a device gets an
//! error from [`CudaBackend::new`], never a panic.

#[cfg(feature = "cuda")]
mod args;
#[cfg(feature = "cuda")]
mod backend;
#[cfg(feature = "cuda")]
mod buffer;
#[cfg(feature = "cuda")]
mod device;
#[cfg(feature = "cuda")]
mod graph;
#[cfg(feature = "cuda")]
mod ops;
#[cfg(feature = "cuda")]
mod peak;
#[cfg(feature = "cuda")]
mod registry;

#[cfg(feature = "cuda")]
pub use backend::CudaBackend;
#[cfg(feature = "cuda")]
pub use buffer::CudaBuffer;
#[cfg(feature = "cuda")]
pub use device::{ARTIFACTS, PTXAS_SUMMARY};

/// True when this build carries the CUDA kernels (the `cuda` cargo feature).
pub const ENABLED: bool = cfg!(feature = "cuda");
