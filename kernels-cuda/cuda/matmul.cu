// Dense matmul for decode and small batches: out[t] = (accumulate ? out[t] : 0) + W x[t] + b.
//
// Parallel strategy: one warp per output row, GPTOSS_MATMUL_WARPS rows per block, grid = rows /
// GPTOSS_MATMUL_WARPS.
// Each lane streams 16-byte chunks of the row (several in flight, L1 bypassed), decodes them
// through the format's trait and accumulates in f32 against up to 4 tokens at once (2 for the
// 32-element formats), so the weights are read once per pass; a warp shuffle reduces the row.
// Trade-offs: warp-per-row needs no shared memory and no atomics and keeps the epilogue (bias,
// residual accumulate) in the lane that owns the row; it wastes lanes when a row has fewer than
// 32 chunks (K < 256 bf16), which gpt-oss never has. Large batches re-read the weights once per
// pass: above the crossover the launcher picks the tensor-core kernels at the bottom instead.
#include "gemm.cuh"

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

MATMUL_KERNEL(f32_f32w_matmul_gemv, FmtF32)
MATMUL_KERNEL(f32_bf16w_matmul_gemv, FmtBf16)
MATMUL_KERNEL(f32_i8w_matmul_gemv, FmtI8)
MATMUL_KERNEL(f32_i4w_matmul_gemv, FmtI4)
MATMUL_KERNEL(f32_mf4w_matmul_gemv, FmtMf4)

// ---- prefill: the tensor-core GEMM (gemm.cuh) with a bias / residual epilogue ----------------

struct MatmulEpilogue {
    using Args = GptossMatmulArgs;
    __device__ static RowOf row_of(const Args &a, unsigned int r) { return RowOf{a.w, r, r < a.w.rows}; }
    __device__ static const void *any_address(const Args &a) { return a.w.data; }
    __device__ static const GptossSplit &split(const Args &a) { return a.xs; }
    __device__ static unsigned int x_row(const Args &a, unsigned int t) { return t < a.n ? t : GEMM_NO_ROW; }
    __device__ static unsigned int k(const Args &a) { return a.w.cols; }
    // out[t, r] = (accumulate ? out[t, r] : 0) + c[t][r] · row scale + bias, threads along r.
    template <class F>
    __device__ static void finish(const Args &a, const float *c, unsigned int m0, unsigned int n0) {
        const unsigned char *scales = expert_scales(a.w, 0);
        for (unsigned int i = threadIdx.x; i < GEMM_BN * GEMM_BM; i += GEMM_THREADS) {
            const unsigned int t = n0 + i / GEMM_BM, r = m0 + i % GEMM_BM;
            if (t >= a.n || r >= a.w.rows) continue;
            const float v = c[(i / GEMM_BM) * GEMM_C_STRIDE + i % GEMM_BM] * F::row_scale(a.w, scales, r);
            float *o = a.out + (unsigned long long)t * a.w.rows + r;
            *o = (a.accumulate ? *o : 0.0f) + v + bias_at(a.w, 0, r);
        }
    }
};

template <class F, int TERMS>
__device__ void matmul_mma(const GptossMatmulArgs &a) {
    gemm<F, TERMS, MatmulEpilogue>(a);
}

// `_mma_x2`: both planes of the activations (f32-accurate); `_mma_x1`: hi alone.
#define MATMUL_MMA_KERNEL(name, F, TERMS) \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2) name(const GptossMatmulArgs a) { matmul_mma<F, TERMS>(a); }

MATMUL_MMA_KERNEL(f32_bf16w_matmul_mma_x2, FmtBf16, 2)
MATMUL_MMA_KERNEL(f32_i8w_matmul_mma_x2, FmtI8, 2)
MATMUL_MMA_KERNEL(f32_i4w_matmul_mma_x2, FmtI4, 2)
MATMUL_MMA_KERNEL(f32_mf4w_matmul_mma_x2, FmtMf4, 2)
MATMUL_MMA_KERNEL(f32_bf16w_matmul_mma_x1, FmtBf16, 1)
MATMUL_MMA_KERNEL(f32_i8w_matmul_mma_x1, FmtI8, 1)
MATMUL_MMA_KERNEL(f32_i4w_matmul_mma_x1, FmtI4, 1)
MATMUL_MMA_KERNEL(f32_mf4w_matmul_mma_x1, FmtMf4, 1)
