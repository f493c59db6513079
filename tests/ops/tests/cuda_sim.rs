//! Every op family on the emulated CUDA device (the `.cu` kernels run on the CPU by the
//! emulator) against the scalar reference: the same bodies as on a GPU (`cuda_gpu.rs`).

#![cfg(feature = "cuda-sim")]

use gptoss_kernels_cuda::CudaBackend;

fn sim(_head_dim: usize) -> Option<CudaBackend<gptoss_kernels_cuda::Sim>> {
    Some(CudaBackend::sim().expect("the emulated device"))
}

gptoss_op_tests::cuda_tests!(sim, 48);
