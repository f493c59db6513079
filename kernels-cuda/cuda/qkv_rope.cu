// Attention input projections with everything after them fused: q, k, v = W x + b; RoPE (YaRN
// frequencies, split halves (u[i], u[i + d/2])) on q and k; q to q_out, k and v straight into
// the KV cache at slot pos % capacity (bf16 round-to-nearest-even or f32).
//
// Parallel strategy: one warp per rotation pair, i.e. rows i and i + d/2 of one head of q, k
// or v (v pairs are not rotated but are computed the same way), GPTOSS_QKV_WARPS pairs per
// block; grid = (q_heads + 2 kv_heads) · d/2 / GPTOSS_QKV_WARPS (320 blocks for gpt-oss). The two rows' 16-byte
// chunks form one task list over the warp, so both are in flight together and the rotation
// needs no shared memory: after the shuffle reduction every lane holds both dot products.
// Positions are read from device memory, so a captured decode step replays for any position.
// Trade-offs: q, k and v are separate weights (no offline repacking), which costs nothing here
// because every warp reads exactly its own two rows. Above the crossover (prefill) the launcher
// picks the tensor-core kernels at the bottom, which end in the same `rope_store`.
// Rows of several sequences (a decode step of several contexts) run the same GEMV kernel with
// each token's k and v stored into its own cache (`RowCaches`, addresses in the arguments), so
// a row computes exactly what it computes alone; that form stays on the GEMV at every size.
#include "gemm.cuh"

// Where token t's k and v go: the one cache of a sequence's tokens, or each row's own.
struct OneCache {
    const GptossQkvRopeArgs &a;
    __device__ void *k(unsigned int) const { return a.k_cache; }
    __device__ void *v(unsigned int) const { return a.v_cache; }
};
struct RowCaches {
    const GptossKvRows &kv;
    __device__ void *k(unsigned int t) const { return kv.k[t]; }
    __device__ void *v(unsigned int t) const { return kv.v[t]; }
};

// The rows i and i + d/2 of virtual head `head` (q heads, then k, then v) for token t, bias
// added: rotated (q, k) and stored (q to q_out, k and v to token t's cache in `c`).
template <class KV, class C>
__device__ __forceinline__ void rope_store(const GptossQkvRopeArgs &a, const C &c, unsigned int head, unsigned int i, unsigned int t,
                                           float x0, float x1) {
    const unsigned int half = a.head_dim / 2;
    const bool is_q = head < a.q_heads, is_k = !is_q && head < a.q_heads + a.kv_heads;
    const unsigned int h = is_q ? head : is_k ? head - a.q_heads : head - a.q_heads - a.kv_heads;
    const unsigned int pos = a.positions[t];
    if (is_q || is_k) {
        // The angle is rounded to f32 as the references compute it, then its sine and cosine
        // taken in f64 (as the CPU reference does): angles reach 1.3e5 radians, where f32
        // sincosf needs its slow, stack-using reduction path.
        double sd, cd;
        sincos((double)((float)pos * a.inv_freq[i]), &sd, &cd);
        const float c = (float)(cd * a.concentration), s = (float)(sd * a.concentration);
        const float r0 = x0 * c - x1 * s, r1 = x1 * c + x0 * s;
        x0 = r0, x1 = r1;
    }
    if (is_q) {
        float *q = a.q_out + (unsigned long long)t * a.q.rows + h * a.head_dim;
        q[i] = x0;
        q[i + half] = x1;
    } else {
        const unsigned long long slot = ((unsigned long long)(pos % a.capacity) * a.kv_heads + h) * a.head_dim;
        KV *cache = static_cast<KV *>(is_k ? c.k(t) : c.v(t)) + slot;
        KvStore<KV>::put(cache + i, x0);
        KvStore<KV>::put(cache + i + half, x1);
    }
}

template <class F, class KV, class C>
__device__ void qkv_rope(const GptossQkvRopeArgs &a, const C &c) {
    const unsigned int half = a.head_dim / 2;
    const unsigned int pair = blockIdx.x * GPTOSS_QKV_WARPS + threadIdx.x / GPTOSS_WARP;
    const unsigned int heads = a.q_heads + 2 * a.kv_heads;
    if (pair >= heads * half) return;  // whole warps exit together
    const unsigned int lane = threadIdx.x % GPTOSS_WARP;
    const unsigned int head = pair / half, i = pair % half;

    // Which projection this head belongs to, and its head index within it.
    const bool is_q = head < a.q_heads, is_k = !is_q && head < a.q_heads + a.kv_heads;
    const GptossWeight &w = is_q ? a.q : is_k ? a.k : a.v;
    const unsigned int h = is_q ? head : is_k ? head - a.q_heads : head - a.q_heads - a.kv_heads;
    const unsigned int rows[2] = {h * a.head_dim + i, h * a.head_dim + i + half};
    const float b0 = bias_at(w, 0, rows[0]), b1 = bias_at(w, 0, rows[1]);

    constexpr int NT = tokens_per_pass<F>();
    for (unsigned int t0 = 0; t0 < a.n; t0 += NT) {
        const unsigned int nt = min(a.n - t0, (unsigned int)NT);
        float acc[2][NT];
        warp_rows_dot<F, 2, NT>(w, 0, rows, a.x + (unsigned long long)t0 * w.cols, w.cols, nt, acc);
        // Lane t finishes token t0 + t (static indices into acc).
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (lane == (unsigned int)t && t < (int)nt) rope_store<KV>(a, c, head, i, t0 + t, acc[0][t] + b0, acc[1][t] + b1);
        }
    }
}

#define QKV_KERNEL(name, F, KV) \
    extern "C" __global__ void __launch_bounds__(GPTOSS_QKV_WARPS * GPTOSS_WARP, 2) name(const GptossQkvRopeArgs a) { qkv_rope<F, KV>(a, OneCache{a}); }

QKV_KERNEL(f32_f32w_qkv_rope_gemv_kvbf16, FmtF32, unsigned short)
QKV_KERNEL(f32_bf16w_qkv_rope_gemv_kvbf16, FmtBf16, unsigned short)
QKV_KERNEL(f32_i8w_qkv_rope_gemv_kvbf16, FmtI8, unsigned short)
QKV_KERNEL(f32_i4w_qkv_rope_gemv_kvbf16, FmtI4, unsigned short)
QKV_KERNEL(f32_f32w_qkv_rope_gemv_kvf32, FmtF32, float)
QKV_KERNEL(f32_bf16w_qkv_rope_gemv_kvf32, FmtBf16, float)
QKV_KERNEL(f32_i8w_qkv_rope_gemv_kvf32, FmtI8, float)
QKV_KERNEL(f32_i4w_qkv_rope_gemv_kvf32, FmtI4, float)

#define QKV_ROWS_KERNEL(name, F, KV)                                                                                   \
    extern "C" __global__ void __launch_bounds__(GPTOSS_QKV_WARPS * GPTOSS_WARP, 2) name(const GptossQkvRopeRowsArgs r) { \
        qkv_rope<F, KV>(r.a, RowCaches{r.kv});                                                                         \
    }

QKV_ROWS_KERNEL(f32_f32w_qkv_rope_rows_gemv_kvbf16, FmtF32, unsigned short)
QKV_ROWS_KERNEL(f32_bf16w_qkv_rope_rows_gemv_kvbf16, FmtBf16, unsigned short)
QKV_ROWS_KERNEL(f32_i8w_qkv_rope_rows_gemv_kvbf16, FmtI8, unsigned short)
QKV_ROWS_KERNEL(f32_i4w_qkv_rope_rows_gemv_kvbf16, FmtI4, unsigned short)
QKV_ROWS_KERNEL(f32_f32w_qkv_rope_rows_gemv_kvf32, FmtF32, float)
QKV_ROWS_KERNEL(f32_bf16w_qkv_rope_rows_gemv_kvf32, FmtBf16, float)
QKV_ROWS_KERNEL(f32_i8w_qkv_rope_rows_gemv_kvf32, FmtI8, float)
QKV_ROWS_KERNEL(f32_i4w_qkv_rope_rows_gemv_kvf32, FmtI4, float)

// ---- prefill: the tensor-core GEMM (gemm.cuh) over q, k and v as one matrix ------------------
// Rows are virtual: q's, then k's, then v's (every head whole in one 128-row tile, since the
// launcher requires head_dim to divide GPTOSS_GEMM_BM); the epilogue pairs rows i and i + d/2
// of each head in the tile and finishes them as the GEMV kernel does.

template <class KV>
struct QkvEpilogue {
    using Args = GptossQkvRopeArgs;
    __device__ static RowOf row_of(const Args &a, unsigned int r) {
        if (r < a.q.rows) return RowOf{a.q, r, true};
        r -= a.q.rows;
        if (r < a.k.rows) return RowOf{a.k, r, true};
        r -= a.k.rows;
        return RowOf{a.v, r, r < a.v.rows};
    }
    __device__ static const void *any_address(const Args &a) { return a.q.data; }
    __device__ static const GptossSplit &split(const Args &a) { return a.xs; }
    __device__ static unsigned int x_row(const Args &a, unsigned int t) { return t < a.n ? t : GEMM_NO_ROW; }
    __device__ static unsigned int k(const Args &a) { return a.q.cols; }
    template <class F>
    __device__ static void finish(const Args &a, const float *c, unsigned int m0, unsigned int n0) {
        const unsigned int half = a.head_dim / 2;
        for (unsigned int p = threadIdx.x; p < GEMM_BN * GEMM_BM / 2; p += GEMM_THREADS) {
            const unsigned int t = p / (GEMM_BM / 2), pair = p % (GEMM_BM / 2);
            const unsigned int r0 = pair / half * a.head_dim + pair % half;  // row within the tile
            const RowOf s0 = row_of(a, m0 + r0), s1 = row_of(a, m0 + r0 + half);
            if (n0 + t >= a.n || !s0.valid) continue;
            const float *ct = c + t * GEMM_C_STRIDE;
            // Both rows are of one head, so of one weight.
            const unsigned char *scales = expert_scales(s0.w, 0);
            const float x0 = ct[r0] * F::row_scale(s0.w, scales, s0.row) + bias_at(s0.w, 0, s0.row);
            const float x1 = ct[r0 + half] * F::row_scale(s1.w, scales, s1.row) + bias_at(s1.w, 0, s1.row);
            rope_store<KV>(a, OneCache{a}, (m0 + r0) / a.head_dim, pair % half, n0 + t, x0, x1);
        }
    }
};

#define QKV_MMA_KERNEL(name, F, KV, TERMS)                                                     \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2) name(const GptossQkvRopeArgs a) { \
        gemm<F, TERMS, QkvEpilogue<KV>>(a);                                                     \
    }

QKV_MMA_KERNEL(f32_bf16w_qkv_rope_mma_x2_kvbf16, FmtBf16, unsigned short, 2)
QKV_MMA_KERNEL(f32_i8w_qkv_rope_mma_x2_kvbf16, FmtI8, unsigned short, 2)
QKV_MMA_KERNEL(f32_i4w_qkv_rope_mma_x2_kvbf16, FmtI4, unsigned short, 2)
QKV_MMA_KERNEL(f32_bf16w_qkv_rope_mma_x2_kvf32, FmtBf16, float, 2)
QKV_MMA_KERNEL(f32_i8w_qkv_rope_mma_x2_kvf32, FmtI8, float, 2)
QKV_MMA_KERNEL(f32_i4w_qkv_rope_mma_x2_kvf32, FmtI4, float, 2)
QKV_MMA_KERNEL(f32_bf16w_qkv_rope_mma_x1_kvbf16, FmtBf16, unsigned short, 1)
QKV_MMA_KERNEL(f32_i8w_qkv_rope_mma_x1_kvbf16, FmtI8, unsigned short, 1)
QKV_MMA_KERNEL(f32_i4w_qkv_rope_mma_x1_kvbf16, FmtI4, unsigned short, 1)
QKV_MMA_KERNEL(f32_bf16w_qkv_rope_mma_x1_kvf32, FmtBf16, float, 1)
QKV_MMA_KERNEL(f32_i8w_qkv_rope_mma_x1_kvf32, FmtI8, float, 1)
QKV_MMA_KERNEL(f32_i4w_qkv_rope_mma_x1_kvf32, FmtI4, float, 1)
