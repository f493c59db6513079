// Causal grouped-query attention with learned sinks and an optional sliding window, as split-KV
// flash decoding: pass 1 computes, per (kv head, split, token), the online-softmax partials
// (max m, sum l, unnormalised output) of the split's keys for all G query heads that share the
// kv head; pass 2 merges the splits of each (query head, token) and adds the sink exactly once.
//
// Parallel strategy (pass 1): a block of GPTOSS_ATTENTION_WARPS warps per (kv head, split, token); the G ≤ 8 query
// vectors (pre-scaled) sit in shared memory. Each warp takes tiles of 32 keys: lane j owns key
// j of the tile and computes its G logits against the broadcast queries (each K row is read
// once for all G heads), then the warp updates (m, l) per head with two shuffle reductions and
// accumulates P·V with lanes over head dimensions (V rows read coalesced). The 4 warps' states
// merge in shared memory. The key range comes from the token's position in device memory and
// is divided among the grid's splits at run time, so one launch shape serves every position
// (graph replay) and empty splits just write an empty state.
// Trade-offs: logits are computed per lane in registers (no tensor cores): fine for decode and
// short batches; from the crossover on the launcher picks the FlashAttention-2-style kernels at
// the bottom (attention_mma.cuh). Head dims 16, 64 and 128 (16 is the reference fixture's;
// lanes past its dims idle in P·V).
// Rows of several sequences (a decode step of several contexts) run the same pass 1 with each
// token's keys and values read from its own cache (addresses in the arguments), split as a
// single decode token is, and the same pass 2: a row computes exactly what it computes alone.
#include "attention_mma.cuh"

#define ATT_TILE 32

template <class KV, int D>
__device__ void attention_split(const GptossAttentionArgs &a, const void *k_cache, const void *v_cache) {
    const unsigned int warp = threadIdx.x / GPTOSS_WARP, lane = threadIdx.x % GPTOSS_WARP;
    constexpr int DPL = D >= GPTOSS_WARP ? D / GPTOSS_WARP : 1;  // head dims per lane in P·V
    const bool dims = lane * DPL < D;  // lanes past a small head's dims idle in P·V
    __shared__ float q_s[GPTOSS_MAX_GROUP][D];
    __shared__ float m_s[GPTOSS_ATTENTION_WARPS][GPTOSS_MAX_GROUP], l_s[GPTOSS_ATTENTION_WARPS][GPTOSS_MAX_GROUP];
    __shared__ float acc_s[GPTOSS_ATTENTION_WARPS][GPTOSS_MAX_GROUP][D];

    const unsigned int g = blockIdx.x, split = blockIdx.y, t = blockIdx.z;
    const unsigned int G = a.q_heads / a.kv_heads;

    // Queries of heads g·G .. g·G + G, scaled once here instead of once per logit.
    const float *q = a.q + ((unsigned long long)t * a.q_heads + g * G) * D;
    for (unsigned int i = threadIdx.x; i < G * D; i += blockDim.x) q_s[i / D][i % D] = q[i] * a.scale;

    // Keys first ..= pos, minus those outside the window; this split's share of them.
    const unsigned int pos = a.positions[t];
    unsigned int first = a.window && pos + 1 > a.window ? pos + 1 - a.window : 0;
    if (pos + 1 - first > a.capacity) {
        // The ring no longer holds the oldest keys this query needs.
        if (threadIdx.x == 0 && split == 0) report(a.status, GPTOSS_STATUS_RING_OVERRUN);
        first = pos + 1 - a.capacity;
    }
    const unsigned int len = pos + 1 - first, per = (len + a.splits - 1) / a.splits;
    const unsigned int lo = first + min(split * per, len), hi = first + min(split * per + per, len);
    __syncthreads();

    float m[GPTOSS_MAX_GROUP], l[GPTOSS_MAX_GROUP], acc[GPTOSS_MAX_GROUP][DPL];
#pragma unroll
    for (int j = 0; j < GPTOSS_MAX_GROUP; j++) {
        m[j] = -INFINITY, l[j] = 0.0f;
#pragma unroll
        for (int d = 0; d < DPL; d++) acc[j][d] = 0.0f;
    }

    const KV *kc = static_cast<const KV *>(k_cache), *vc = static_cast<const KV *>(v_cache);
    for (unsigned int base = lo + warp * ATT_TILE; base < hi; base += GPTOSS_ATTENTION_WARPS * ATT_TILE) {
        const unsigned int key = base + lane, count = min(hi - base, (unsigned int)ATT_TILE);
        // Logits of this lane's key for every head (−inf past the range).
        float z[GPTOSS_MAX_GROUP];
#pragma unroll
        for (int j = 0; j < GPTOSS_MAX_GROUP; j++) z[j] = 0.0f;
        if (lane < count) {
            const KV *k = kc + ((unsigned long long)(key % a.capacity) * a.kv_heads + g) * D;
            // The key row in 16-byte pieces (rows are 16-byte aligned: D is a multiple of 32).
#pragma unroll
            for (int d0 = 0; d0 < D; d0 += 8) {
                float kd[8];
                KvStore<KV>::get8(k + d0, kd);
#pragma unroll
                for (int j = 0; j < GPTOSS_MAX_GROUP; j++)
#pragma unroll
                    for (int d = 0; d < 8; d++)
                        if (j < (int)G) z[j] = fmaf(q_s[j][d0 + d], kd[d], z[j]);
            }
        }
        float p[GPTOSS_MAX_GROUP];
#pragma unroll
        for (int j = 0; j < GPTOSS_MAX_GROUP; j++) {
            if (j >= (int)G) continue;
            const float zj = lane < count ? z[j] : -INFINITY;
            const float m_new = fmaxf(m[j], warp_max(zj));
            // m[j] is −inf before the first tile: its (empty) state scales by 0, not NaN.
            const float alpha = m[j] == -INFINITY ? 0.0f : expf(m[j] - m_new);
            p[j] = lane < count ? expf(zj - m_new) : 0.0f;
            l[j] = l[j] * alpha + warp_sum(p[j]);
            m[j] = m_new;
#pragma unroll
            for (int d = 0; d < DPL; d++) acc[j][d] *= alpha;
        }
        // P·V: lanes over dimensions, keys of the tile in turn (V rows read coalesced).
        for (unsigned int kk = 0; kk < count; kk++) {
            const KV *v = vc + ((unsigned long long)((base + kk) % a.capacity) * a.kv_heads + g) * D;
            float vd[DPL];
#pragma unroll
            for (int d = 0; d < DPL; d++) vd[d] = dims ? KvStore<KV>::get(v + lane * DPL + d) : 0.0f;
#pragma unroll
            for (int j = 0; j < GPTOSS_MAX_GROUP; j++) {
                if (j >= (int)G) continue;
                const float pj = __shfl_sync(FULL_MASK, p[j], kk);
#pragma unroll
                for (int d = 0; d < DPL; d++) acc[j][d] = fmaf(pj, vd[d], acc[j][d]);
            }
        }
    }

    // Merge the warps' states, then write this split's partials for each head.
#pragma unroll
    for (int j = 0; j < GPTOSS_MAX_GROUP; j++) {
        if (j >= (int)G) continue;
        if (lane == 0) m_s[warp][j] = m[j], l_s[warp][j] = l[j];
        if (dims)
#pragma unroll
            for (int d = 0; d < DPL; d++) acc_s[warp][j][lane * DPL + d] = acc[j][d];
    }
    __syncthreads();
    for (unsigned int i = threadIdx.x; i < G * D; i += blockDim.x) {
        const unsigned int j = i / D, d = i % D;
        float mx = -INFINITY;
        for (int w = 0; w < GPTOSS_ATTENTION_WARPS; w++) mx = fmaxf(mx, m_s[w][j]);
        float lsum = 0.0f, o = 0.0f;
        for (int w = 0; w < GPTOSS_ATTENTION_WARPS; w++) {
            if (m_s[w][j] == -INFINITY) continue;
            const float f = expf(m_s[w][j] - mx);
            lsum = fmaf(l_s[w][j], f, lsum);
            o = fmaf(acc_s[w][j][d], f, o);
        }
        const unsigned long long row = ((unsigned long long)t * a.q_heads + g * G + j) * a.splits + split;
        a.part_acc[row * D + d] = o;
        if (d == 0) a.part_ml[2 * row] = mx, a.part_ml[2 * row + 1] = lsum;
    }
}

// Pass 2: one block of head_dim threads per (query head, token). The sink joins the
// denominator here, once: out = Σ_s acc_s e^{m_s − M} / (e^{sink − M} + Σ_s l_s e^{m_s − M}).
extern "C" __global__ void __launch_bounds__(128) f32_sdpa_sinks_combine(const GptossAttentionArgs a) {
    const unsigned int h = blockIdx.x, t = blockIdx.y, d = threadIdx.x;
    const unsigned long long row0 = ((unsigned long long)t * a.q_heads + h) * a.splits;
    const float sink = a.sinks[h];
    float mx = sink;
    for (unsigned int s = 0; s < a.splits; s++) mx = fmaxf(mx, a.part_ml[2 * (row0 + s)]);
    float den = expf(sink - mx), o = 0.0f;
    for (unsigned int s = 0; s < a.splits; s++) {
        const float ms = a.part_ml[2 * (row0 + s)];
        if (ms == -INFINITY) continue;
        const float f = expf(ms - mx);
        den = fmaf(a.part_ml[2 * (row0 + s) + 1], f, den);
        o = fmaf(a.part_acc[(row0 + s) * a.head_dim + d], f, o);
    }
    a.out[((unsigned long long)t * a.q_heads + h) * a.head_dim + d] = o / den;
}

#define ATT_KERNEL(name, KV, D)                                                                                               \
    extern "C" __global__ void __launch_bounds__(GPTOSS_ATTENTION_WARPS * GPTOSS_WARP, 1) name(const GptossAttentionArgs a) { \
        attention_split<KV, D>(a, a.k_cache, a.v_cache);                                                                      \
    }

ATT_KERNEL(f32_sdpa_sinks_split_d64_kvbf16, unsigned short, 64)
ATT_KERNEL(f32_sdpa_sinks_split_d64_kvf32, float, 64)
ATT_KERNEL(f32_sdpa_sinks_split_d128_kvbf16, unsigned short, 128)
ATT_KERNEL(f32_sdpa_sinks_split_d128_kvf32, float, 128)
ATT_KERNEL(f32_sdpa_sinks_split_d16_kvbf16, unsigned short, 16)
ATT_KERNEL(f32_sdpa_sinks_split_d16_kvf32, float, 16)

// Pass 1 over rows of several sequences: row t = blockIdx.z reads its own cache.
#define ATT_ROWS_KERNEL(name, KV, D)                                                                                              \
    extern "C" __global__ void __launch_bounds__(GPTOSS_ATTENTION_WARPS * GPTOSS_WARP, 1) name(const GptossAttentionRowsArgs r) { \
        attention_split<KV, D>(r.a, r.kv.k[blockIdx.z], r.kv.v[blockIdx.z]);                                                     \
    }

ATT_ROWS_KERNEL(f32_sdpa_sinks_rows_split_d64_kvbf16, unsigned short, 64)
ATT_ROWS_KERNEL(f32_sdpa_sinks_rows_split_d64_kvf32, float, 64)
ATT_ROWS_KERNEL(f32_sdpa_sinks_rows_split_d128_kvbf16, unsigned short, 128)
ATT_ROWS_KERNEL(f32_sdpa_sinks_rows_split_d128_kvf32, float, 128)
ATT_ROWS_KERNEL(f32_sdpa_sinks_rows_split_d16_kvbf16, unsigned short, 16)
ATT_ROWS_KERNEL(f32_sdpa_sinks_rows_split_d16_kvf32, float, 16)

// ---- prefill: the tensor-core kernel (attention_mma.cuh) ----------------------------------------

#define ATT_MMA_KERNEL(name, KV, D, SMEM)                                                                    \
    static_assert(Amma<KV, D>::BYTES == (SMEM), #name ": the tile layout's size differs from args.h's"); \
    extern "C" __global__ void __launch_bounds__(AMMA_THREADS, 2) name(const GptossAttentionArgs a) { attention_mma<KV, D>(a); }

ATT_MMA_KERNEL(f32_sdpa_sinks_mma_d64_kvbf16, unsigned short, 64, GPTOSS_ATTENTION_MMA_SMEM_D64_KVBF16)
ATT_MMA_KERNEL(f32_sdpa_sinks_mma_d64_kvf32, float, 64, GPTOSS_ATTENTION_MMA_SMEM_D64_KVF32)
ATT_MMA_KERNEL(f32_sdpa_sinks_mma_d128_kvbf16, unsigned short, 128, GPTOSS_ATTENTION_MMA_SMEM_D128_KVBF16)
ATT_MMA_KERNEL(f32_sdpa_sinks_mma_d128_kvf32, float, 128, GPTOSS_ATTENTION_MMA_SMEM_D128_KVF32)
ATT_MMA_KERNEL(f32_sdpa_sinks_mma_d16_kvbf16, unsigned short, 16, GPTOSS_ATTENTION_MMA_SMEM_D16_KVBF16)
ATT_MMA_KERNEL(f32_sdpa_sinks_mma_d16_kvf32, float, 16, GPTOSS_ATTENTION_MMA_SMEM_D16_KVF32)
