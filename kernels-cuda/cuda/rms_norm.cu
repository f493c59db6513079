// RMSNorm: out = x / sqrt(mean(x^2) + eps) * gain, one row per token.
//
// Parallel strategy: one block of GPTOSS_REDUCE_THREADS threads per row; each thread sums squares over a strided
// slice in f32, a warp shuffle then a shared-memory pass reduce the block, and the same threads
// scale their slice. Rows are 2880 floats in gpt-oss, so one block per token is plenty at any
// batch; fusing the norm into the next GEMV's prologue (every block re-reading 11 KB from L2)
// is the next step once the per-kernel timings say launches matter.
#include "common.cuh"

// Block-wide sum; every thread gets the total. `shared` holds one float per warp.
__device__ __forceinline__ float block_sum(float v, float *shared) {
    const unsigned int warp = threadIdx.x / GPTOSS_WARP, lane = threadIdx.x % GPTOSS_WARP;
    v = warp_sum(v);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    const unsigned int warps = blockDim.x / GPTOSS_WARP;
    v = lane < warps ? shared[lane] : 0.0f;
    return warp_sum(v);
}

extern "C" __global__ void __launch_bounds__(GPTOSS_REDUCE_THREADS) f32_rms_norm(const GptossRmsNormArgs a) {
    __shared__ float partial[GPTOSS_REDUCE_THREADS / GPTOSS_WARP];
    const float *x = a.x + (unsigned long long)blockIdx.x * a.d;
    float *out = a.out + (unsigned long long)blockIdx.x * a.d;
    float ss = 0.0f;
    for (unsigned int c = threadIdx.x; c < a.d; c += blockDim.x) ss = fmaf(x[c], x[c], ss);
    const float r = 1.0f / sqrtf(block_sum(ss, partial) / (float)a.d + a.eps);
    for (unsigned int c = threadIdx.x; c < a.d; c += blockDim.x) out[c] = x[c] * r * a.gain[c];
}
