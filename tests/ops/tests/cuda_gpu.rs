//! Every op family on a real GPU against the scalar reference: the bodies CI runs on the
//! emulated device (`cuda_sim.rs`). Each test skips, saying why, on a machine without a GPU;
//! `GPTOSS_REQUIRE_GPU=1` makes a skip a failure (`kernels-cuda/scripts/gpu-check.sh` sets it).

#![cfg(feature = "cuda")]

use gptoss_kernels_cuda::{CudaBackend, Gpu};

fn gpu(_head_dim: usize) -> Option<CudaBackend<Gpu>> {
    match CudaBackend::gpu(0) {
        Ok(g) => Some(g),
        Err(e) if std::env::var("GPTOSS_REQUIRE_GPU").is_ok_and(|v| v == "1") => panic!("GPTOSS_REQUIRE_GPU=1 but no GPU: {e}"),
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            None
        }
    }
}

gptoss_op_tests::cuda_tests!(gpu, 48);
