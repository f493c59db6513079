// Dense matmul for decode and small batches: out[t] = (accumulate ? out[t] : 0) + W x[t] + b.
//
// Parallel strategy: one warp per output row, GPTOSS_MATMUL_WARPS rows per block, grid = rows /
// GPTOSS_MATMUL_WARPS.
// Each lane streams 16-byte chunks of the row (several in flight, L1 bypassed), decodes them
// through the format's trait and accumulates in f32 against up to 4 tokens at once (2 for the
// 32-element formats), so the weights are read once per pass; a warp shuffle reduces the row.
// Trade-offs: warp-per-row needs no shared memory and no atomics and keeps the epilogue (bias,
// residual accumulate) in the lane that owns the row; it wastes lanes when a row has fewer than
// 32 chunks (K < 256 bf16), which gpt-oss never has. Large batches (prefill) re-read the
// weights once per pass (a tiled tensor-core GEMM for prefill is future work).
#include "common.cuh"

template <class F>
__device__ void matmul(const GptossMatmulArgs &a) {
    const unsigned int r = blockIdx.x * GPTOSS_MATMUL_WARPS + threadIdx.x / GPTOSS_WARP;
    if (r >= a.w.rows) return;  // whole warps exit together: the shuffles below stay uniform
    const unsigned int lane = threadIdx.x % GPTOSS_WARP;
    const float b = bias_at(a.w, 0, r);
    const unsigned int rows[1] = {r};
    constexpr int NT = tokens_per_pass<F>();
    for (unsigned int t0 = 0; t0 < a.n; t0 += NT) {
        const unsigned int nt = min(a.n - t0, (unsigned int)NT);
        float acc[1][NT];
        warp_rows_dot<F, 1, NT>(a.w, 0, rows, a.x + (unsigned long long)t0 * a.w.cols, a.w.cols, nt, acc);
        // Lane t writes token t0 + t: static indices into acc, one store per lane.
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (lane == (unsigned int)t && t < (int)nt) {
                float *o = a.out + (unsigned long long)(t0 + t) * a.w.rows + r;
                *o = (a.accumulate ? *o : 0.0f) + acc[0][t] + b;
            }
        }
    }
}

#define MATMUL_KERNEL(name, F) \
    extern "C" __global__ void __launch_bounds__(GPTOSS_MATMUL_WARPS * GPTOSS_WARP, 2) name(const GptossMatmulArgs a) { matmul<F>(a); }

MATMUL_KERNEL(f32_f32w_matmul, FmtF32)
MATMUL_KERNEL(f32_bf16w_matmul, FmtBf16)
MATMUL_KERNEL(f32_i8w_matmul, FmtI8)
MATMUL_KERNEL(f32_i4w_matmul, FmtI4)
MATMUL_KERNEL(f32_mf4w_matmul, FmtMf4)
