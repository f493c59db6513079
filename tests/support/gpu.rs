//! The GPU that the device tests run on, or why they skip.

use gptoss_kernels_cuda::{CudaBackend, Gpu};

/// GPU 0; without one, `None` after printing why (the test skips), or a failure when
/// `GPTOSS_REQUIRE_GPU=1` (`kernels-cuda/scripts/gpu-check.sh` sets it).
pub fn gpu() -> Option<CudaBackend<Gpu>> {
    match CudaBackend::gpu(0) {
        Ok(g) => Some(g),
        Err(e) if std::env::var("GPTOSS_REQUIRE_GPU").is_ok_and(|v| v == "1") => panic!("GPTOSS_REQUIRE_GPU=1 but no GPU: {e}"),
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            None
        }
    }
}
