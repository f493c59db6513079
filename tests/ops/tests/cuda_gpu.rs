//! Every op family on a real GPU against the scalar reference: the bodies CI runs on the
//! emulated device (`cuda_sim.rs`). Each test skips, saying why, on a machine without a GPU;
//! `GPTOSS_REQUIRE_GPU=1` makes a skip a failure (`kernels-cuda/scripts/gpu-check.sh` sets it).

#![cfg(feature = "cuda")]

#[path = "../../support/gpu.rs"]
mod support;

use gptoss_kernels_cuda::{CudaBackend, Gpu};

fn gpu(_head_dim: usize) -> Option<CudaBackend<Gpu>> {
    support::gpu()
}

gptoss_op_tests::cuda_tests!(gpu, 48);
