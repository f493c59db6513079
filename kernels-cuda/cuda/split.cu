// f32 activations to the bf16 planes the tensor-core kernels read (GptossSplit, args.h):
// hi = bf16(x), lo = bf16(x − hi), both rounded to nearest even. hi + lo carries 16 of the 24
// significant bits of x: |x − hi − lo| ≤ 2⁻¹⁸ |x|, where bf16 alone is off by up to 2⁻⁹ |x|,
// so a GEMM on both planes (two products per weight tile) matches an f32 GEMV to ~1e-5
// relative, and one on hi alone to ~3e-3.
//
// Parallel strategy: one thread per 8 consecutive elements of a row (one 16-byte store per
// plane); rows are padded with zeros up to `stride` so the GEMM's k tiles never read past a row.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(GPTOSS_COPY_THREADS) f32_split_bf16(const GptossSplitArgs a) {
    const unsigned long long i = (unsigned long long)blockIdx.x * GPTOSS_COPY_THREADS + threadIdx.x;
    const unsigned int per_row = a.stride / 8;
    if (i >= (unsigned long long)a.n * per_row) return;
    const unsigned int t = (unsigned int)(i / per_row), c0 = (unsigned int)(i % per_row) * 8;
    const float *x = a.x + (unsigned long long)t * a.cols;
    __align__(16) unsigned short hi[8];
    __align__(16) unsigned short lo[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        bf16_split(c0 + j < a.cols ? x[c0 + j] : 0.0f, hi[j], lo[j]);
    }
    const unsigned long long at = (unsigned long long)t * a.stride + c0;
    *reinterpret_cast<uint4 *>(a.hi + at) = *reinterpret_cast<const uint4 *>(hi);
    if (a.lo) *reinterpret_cast<uint4 *>(a.lo + at) = *reinterpret_cast<const uint4 *>(lo);
}
