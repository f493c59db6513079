// Prefill attention on tensor cores, FlashAttention-2 style: causal grouped-query attention
// with learned sinks, an optional sliding window and a ring-buffer KV cache, S = Q·Kᵀ and
// O += P·V on `mma.sync.m16n8k16` (bf16 in, f32 accumulate), the softmax online in f32.
//
// Rows and tiling. A query row is one (token, query head) pair; the G = q_heads / kv_heads
// heads of a kv head read the same keys, so a block takes GPTOSS_ATTENTION_MMA_ROWS (64)
// consecutive rows of one kv head — row r is token r / G, head r % G of the group (8 tokens ×
// 8 heads for gpt-oss) — and every key tile it loads serves all of them (GQA: a kv head's
// keys are read once per 64 rows, whatever G is). Grid: x over row tiles (the last rows, which
// see the most keys, launched first), y over kv heads. The block's 4 warps own 16 rows each
// and walk all of the block's key tiles; each warp's softmax state is its own, so warps never
// exchange partial results (FlashAttention-2's split of the rows, not of the keys).
// A key tile is BN keys (64; 32 for head dim 128, to stay within 99 KB of shared memory on
// sm_86/89 with an f32 cache) × the head dim.
//
// Which keys. Positions live in device memory (graph replay: the host does not know them), so
// the block computes its key range itself: row r at position p sees keys first..=p, first =
// p + 1 − window on sliding layers (0 otherwise); if that is more than the ring's capacity
// holds, the status word reports a ring overrun (as the split kernel does) and the row keeps
// the newest `capacity` keys. The block's tiles start at the smallest `first` of its rows; a
// tile is visited only if some row's band reaches into it: tiles before every band or after
// every row's position are neither loaded nor multiplied (with consecutive positions that is
// ~(128 + 7) keys per block on a sliding layer, ~p keys on a full one), and within the block a
// warp skips the multiplications of a tile none of its 16 rows needs. Each warp finds the next
// tile from the 64 rows' bands (lane l holds rows l and l + 32) with one warp-wide min, so all
// warps agree without a barrier. Scores of keys outside a row's band are −∞ (only in tiles
// that cross some band's edge: tiles inside every band of the warp skip the comparisons).
//
// Data movement. Key k of kv head h is ring slot k % capacity, a row of head_dim elements.
// bf16 cache: `cp.async` copies the K and V rows in 16-byte chunks straight into padded bf16
// tiles, two stages: tile j + 1 is in flight while the warps multiply tile j. f32 cache: the
// rows land in an f32 staging buffer (one stage, in flight during the previous tile's
// multiplications), and each tile is split once, by the whole block, into bf16 hi and lo tiles
// (below). Tile rows are padded by 16 bytes, so the 8 rows one `ldmatrix` phase reads fall in
// different banks. Rows past the block's last key are zero-filled, never read.
//
// Precision. bf16 operands round each value to 8 significant bits; the f32 ones are split as
// x ≈ hi + lo (hi = bf16(x), lo = bf16(x − hi), 2⁻¹⁸ of x left over; split.cu), and each
// product takes the terms that matter: S = Qhi·K + Qlo·K for a bf16 cache (its values are
// exact in bf16), S = Qhi·Khi + Qlo·Khi + Qhi·Klo for an f32 one (the lo·lo term is below the
// residuals), likewise O += Phi·V + Plo·V (+ Phi·Vlo). Q is scaled by the softmax scale before
// it is split; P is split in registers after the exponential.
//
// Fragment layouts (PTX ISA, m16n8k16, lane l, g = l / 4, t = l % 4; `sim/include/gptoss_sim.h`
// spells them out): A = 16 rows × 16 k, a0..a3 at (g, 2t..), (g+8, 2t..), (g, 2t+8..),
// (g+8, 2t+8..); B = 16 k × 8 columns, b0, b1 at (k 2t.., column g), (k 2t+8.., column g);
// C = 16 × 8 f32, c0, c1 at (g, 2t..) and c2, c3 at (g+8, 2t..).
// - Q (A of S = Q·Kᵀ, k = head dims) is loaded once from global memory straight into that
//   layout (pairs of f32, scaled and split), head_dim / 16 × 4 registers per plane.
// - K (B of S: column = key, k = dims) is stored key-major, dims contiguous: `ldmatrix.x4` of
//   rows (key (l % 8) + 8·(l / 16), dims 8·((l / 8) % 2)) gives b0, b1 of two 8-key tiles.
// - P (A of O += P·V, k = keys) is S's accumulator after the exponential: C tiles 2c and 2c + 1
//   (keys 16c..16c+15) are exactly the A fragment of k chunk c — c0,c1 of tile 2c are a0,
//   c2,c3 a1, of tile 2c + 1 a2 and a3 — so P never leaves registers.
// - V (B of P·V: column = dim, k = keys) is stored key-major too, so it is read transposed:
//   `ldmatrix.x4.trans` of rows (key (l % 8) + 8·((l / 8) % 2), dims 8·(l / 16)) gives b0, b1
//   of two 8-dim tiles.
//
// Softmax, per row, in f32: the running max m starts at the row's sink logit (so m ≥ sink and
// no state is ever empty); per tile m' = max(m, the tile's scores) (a max over the 4 lanes of
// a quad), O and the lane's partial sum l scale by e^{m − m'}, p = e^{s − m'} joins l and P.
// After the last tile the quad's partial sums are added and the sink joins the denominator
// once: out = O / (l + e^{sink − m}), the same expression as the reference's.
//
// Trade-offs: `mma.sync` rather than Hopper's `wgmma` (one code path for sm_80..sm_90; the
// emulator's layouts are the documented ones); 16 rows per warp keeps Q, O and S in registers
// for head dim 128; the f32-cache path spends an extra pass through shared memory (it serves
// bit-tight comparisons, not speed). No split of the keys across blocks: prefill has rows
// enough to fill the GPU; decode stays on the split kernel below the crossover.
#pragma once

#include "common.cuh"

#define AMMA_ROWS GPTOSS_ATTENTION_MMA_ROWS
#define AMMA_WARPS GPTOSS_ATTENTION_MMA_WARPS
#define AMMA_THREADS (AMMA_WARPS * GPTOSS_WARP)
#define AMMA_NONE 0xffffffffu
static_assert(AMMA_ROWS == 16 * AMMA_WARPS && AMMA_ROWS == 2 * GPTOSS_WARP, "16 rows per warp; a lane tracks two rows' bands");

// The tile shapes and the shared-memory layout for head dim D and cache elements KV.
template <class KV, int D>
struct Amma {
    static constexpr int BN = D == 128 ? 32 : 64;  // keys per tile
    static constexpr int STRIDE = D + 8;           // bf16 per tile row (16 bytes of padding)
    static constexpr bool SPLIT = sizeof(KV) == 4;  // an f32 cache: hi and lo tiles
    static constexpr unsigned TILE = BN * STRIDE * 2;      // bytes of one bf16 tile
    static constexpr unsigned RAW = SPLIT ? BN * D * 4 : 0;  // bytes of one f32 staging tile
    // bf16: two stages of (K, V); f32: staging (K, V), then K hi, K lo, V hi, V lo.
    static constexpr unsigned BYTES = SPLIT ? 2 * RAW + 4 * TILE : 4 * TILE;
};

__device__ __forceinline__ unsigned int warp_min_u32(unsigned int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

__device__ __forceinline__ unsigned int warp_max_u32(unsigned int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// x as bf16 hi + lo (round-to-nearest-even both; an infinity is carried by hi alone).
__device__ __forceinline__ void split_bf16(float x, unsigned short &hi, unsigned short &lo) {
    hi = f32_to_bf16_bits(x);
    lo = isinf(x) ? 0 : f32_to_bf16_bits(x - bf16_bits(hi));
}

// Two values as the hi and lo words of a fragment register (the first in the low halves).
__device__ __forceinline__ void split_pair(float x, float y, unsigned int &hi, unsigned int &lo) {
    unsigned short xh, xl, yh, yl;
    split_bf16(x, xh, xl);
    split_bf16(y, yh, yl);
    hi = (unsigned int)xh | ((unsigned int)yh << 16);
    lo = (unsigned int)xl | ((unsigned int)yl << 16);
}

// Key k's offset from k0, clamped to −1 .. bn.
__device__ __forceinline__ int tile_offset(unsigned int k, unsigned int k0, int bn) {
    const long long off = (long long)k - (long long)k0;
    return off < -1 ? -1 : off > bn ? bn : (int)off;
}

// `cp.async` of keys k0 .. k0 + BN of kv head `kvh` (ring slots k % capacity) into the K and V
// destinations (rows `row_bytes` apart); rows past `kmax` are zero-filled without a read.
template <class KV, int D>
__device__ __forceinline__ void amma_load(const GptossAttentionArgs &a, unsigned int kvh, unsigned int k0, unsigned int kmax,
                                          unsigned char *k_dst, unsigned char *v_dst, unsigned int row_bytes) {
    using T = Amma<KV, D>;
    constexpr unsigned int CPR = D * sizeof(KV) / 16;  // 16-byte chunks per key row
    for (unsigned int c = threadIdx.x; c < 2 * T::BN * CPR; c += AMMA_THREADS) {
        const unsigned int is_v = c / (T::BN * CPR), row = c / CPR % T::BN, j = c % CPR;
        const bool in = row <= kmax - k0;  // k0 ≤ kmax: the tile holds a needed key
        const KV *cache = static_cast<const KV *>(is_v ? a.v_cache : a.k_cache);
        const unsigned long long slot = in ? (k0 + row) % a.capacity : 0;
        const KV *src = cache + (slot * a.kv_heads + kvh) * D + j * (16 / sizeof(KV));
        cp_async_16((is_v ? v_dst : k_dst) + row * row_bytes + 16 * j, src, in ? 16 : 0);
    }
}

// f32 cache: the staged K and V tiles split into their bf16 hi and lo tiles, 8 values a thread.
template <int D>
__device__ __forceinline__ void amma_split_tiles(unsigned char *smem) {
    using T = Amma<float, D>;
    constexpr unsigned int PER = T::BN * D / 8;  // 8-value pieces per operand
    for (unsigned int c = threadIdx.x; c < 2 * PER; c += AMMA_THREADS) {
        const unsigned int is_v = c / PER, e = c % PER * 8, row = e / D, col = e % D;
        const float4 *src = reinterpret_cast<const float4 *>(smem + is_v * T::RAW) + (row * D + col) / 4;
        const float4 x0 = src[0], x1 = src[1];
        const float x[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
        __align__(16) unsigned short hi[8];
        __align__(16) unsigned short lo[8];
#pragma unroll
        for (int i = 0; i < 8; i++) split_bf16(x[i], hi[i], lo[i]);
        unsigned char *tiles = smem + 2 * T::RAW + 2 * is_v * T::TILE;  // this operand's hi, then lo
        const unsigned int at = (row * T::STRIDE + col) * 2;
        *reinterpret_cast<uint4 *>(tiles + at) = *reinterpret_cast<const uint4 *>(hi);
        *reinterpret_cast<uint4 *>(tiles + T::TILE + at) = *reinterpret_cast<const uint4 *>(lo);
    }
}

// S = Q·Kᵀ for the warp's 16 rows and the tile's BN keys (`k_lo`: the f32 cache's lo tile).
template <class KV, int D>
__device__ __forceinline__ void amma_scores(const unsigned short *k_hi, const unsigned short *k_lo, const unsigned int (&qh)[D / 16][4],
                                            const unsigned int (&ql)[D / 16][4], float (&s)[Amma<KV, D>::BN / 8][4]) {
    using T = Amma<KV, D>;
    const unsigned int lane = threadIdx.x % GPTOSS_WARP;
#pragma unroll
    for (int n = 0; n < T::BN / 8; n++)
#pragma unroll
        for (int q = 0; q < 4; q++) s[n][q] = 0.0f;
    // This lane's ldmatrix row: key (l % 8) + 8·(l / 16), dims 8·((l / 8) % 2) of a 16 × 16 block.
    const unsigned int at = (lane % 8 + 8 * (lane / 16)) * T::STRIDE + 8 * (lane / 8 % 2);
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
#pragma unroll
        for (int np = 0; np < T::BN / 16; np++) {
            unsigned int r[4];
            ldmatrix_x4(r, k_hi + at + np * 16 * T::STRIDE + kc * 16);
            const unsigned int b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
            mma_bf16_16816(s[2 * np], qh[kc], b0, s[2 * np]);
            mma_bf16_16816(s[2 * np], ql[kc], b0, s[2 * np]);
            mma_bf16_16816(s[2 * np + 1], qh[kc], b1, s[2 * np + 1]);
            mma_bf16_16816(s[2 * np + 1], ql[kc], b1, s[2 * np + 1]);
            if constexpr (T::SPLIT) {
                ldmatrix_x4(r, k_lo + at + np * 16 * T::STRIDE + kc * 16);
                const unsigned int c0[2] = {r[0], r[1]}, c1[2] = {r[2], r[3]};
                mma_bf16_16816(s[2 * np], qh[kc], c0, s[2 * np]);
                mma_bf16_16816(s[2 * np + 1], qh[kc], c1, s[2 * np + 1]);
            }
        }
    }
}

// O += P·V for the warp's 16 rows, P being `s` after the softmax (`v_lo`: the f32 cache's lo tile).
template <class KV, int D>
__device__ __forceinline__ void amma_values(const unsigned short *v_hi, const unsigned short *v_lo,
                                            const float (&s)[Amma<KV, D>::BN / 8][4], float (&o)[D / 8][4]) {
    using T = Amma<KV, D>;
    const unsigned int lane = threadIdx.x % GPTOSS_WARP;
    // This lane's ldmatrix row: key (l % 8) + 8·((l / 8) % 2), dims 8·(l / 16) of a 16 × 16 block.
    const unsigned int at = (lane % 8 + 8 * (lane / 8 % 2)) * T::STRIDE + 8 * (lane / 16);
#pragma unroll
    for (int c = 0; c < T::BN / 16; c++) {
        // C tiles 2c, 2c + 1 as the A fragment of keys 16c .. 16c + 15.
        unsigned int ph[4], pl[4];
        split_pair(s[2 * c][0], s[2 * c][1], ph[0], pl[0]);
        split_pair(s[2 * c][2], s[2 * c][3], ph[1], pl[1]);
        split_pair(s[2 * c + 1][0], s[2 * c + 1][1], ph[2], pl[2]);
        split_pair(s[2 * c + 1][2], s[2 * c + 1][3], ph[3], pl[3]);
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            unsigned int r[4];
            ldmatrix_x4_trans(r, v_hi + at + c * 16 * T::STRIDE + dp * 16);
            const unsigned int b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
            mma_bf16_16816(o[2 * dp], ph, b0, o[2 * dp]);
            mma_bf16_16816(o[2 * dp], pl, b0, o[2 * dp]);
            mma_bf16_16816(o[2 * dp + 1], ph, b1, o[2 * dp + 1]);
            mma_bf16_16816(o[2 * dp + 1], pl, b1, o[2 * dp + 1]);
            if constexpr (T::SPLIT) {
                ldmatrix_x4_trans(r, v_lo + at + c * 16 * T::STRIDE + dp * 16);
                const unsigned int c0[2] = {r[0], r[1]}, c1[2] = {r[2], r[3]};
                mma_bf16_16816(o[2 * dp], ph, c0, o[2 * dp]);
                mma_bf16_16816(o[2 * dp + 1], ph, c1, o[2 * dp + 1]);
            }
        }
    }
}

// The online softmax over one tile of scores (keys k0 ..): masks the scores outside each
// row's band (unless the tile lies inside every band of the warp), moves the running max,
// rescales O and the partial sums, and leaves P in `s`. Lane rows i = 0, 1 are g and g + 8.
template <class KV, int D>
__device__ __forceinline__ void amma_softmax(float (&s)[Amma<KV, D>::BN / 8][4], float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                             const unsigned int (&lo)[2], const unsigned int (&hi)[2], unsigned int k0, bool masked) {
    using T = Amma<KV, D>;
    const unsigned int t = threadIdx.x % 4;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (masked) {
            // The band as offsets into the tile, clamped to −1 .. BN (no wrap-around near 2³²).
            const int from = tile_offset(lo[i], k0, T::BN), to = tile_offset(hi[i], k0, T::BN);
#pragma unroll
            for (int n = 0; n < T::BN / 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int off = n * 8 + 2 * t + e;
                    if (off < from || off > to) s[n][2 * i + e] = -INFINITY;
                }
        }
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < T::BN / 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * i], s[n][2 * i + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 2));
        const float m_new = fmaxf(m[i], mx);
        // Only a sink of −∞ with no key yet leaves the max at −∞: subtract 0 then, not −∞ (NaN).
        const float ms = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = expf(m[i] - ms);
        m[i] = m_new;
        l[i] *= alpha;
#pragma unroll
        for (int d = 0; d < D / 8; d++) o[d][2 * i] *= alpha, o[d][2 * i + 1] *= alpha;
#pragma unroll
        for (int n = 0; n < T::BN / 8; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float p = expf(s[n][2 * i + e] - ms);
                s[n][2 * i + e] = p;
                l[i] += p;
            }
    }
}

template <class KV, int D>
__device__ void attention_mma(const GptossAttentionArgs &a) {
    using T = Amma<KV, D>;
    unsigned char *smem = dynamic_shared<unsigned char>();
    __shared__ unsigned int band_lo[AMMA_ROWS], band_hi[AMMA_ROWS];
    const unsigned int warp = threadIdx.x / GPTOSS_WARP, lane = threadIdx.x % GPTOSS_WARP, g = lane / 4, t = lane % 4;
    const unsigned int G = a.q_heads / a.kv_heads, kvh = blockIdx.y, rows = a.n * G;
    const unsigned int row0 = (gridDim.x - 1 - blockIdx.x) * AMMA_ROWS;  // the last rows first: they see the most keys

    // Each row's band of keys lo ..= hi (an empty band, lo > hi, for rows past the batch).
    if (threadIdx.x < AMMA_ROWS) {
        const unsigned int r = row0 + threadIdx.x;
        unsigned int lo = AMMA_NONE, hi = 0;
        if (r < rows) {
            const unsigned int pos = a.positions[r / G];
            const unsigned long long end = (unsigned long long)pos + 1;
            unsigned long long first = a.window && end > a.window ? end - a.window : 0;
            if (end - first > a.capacity) {
                // The ring no longer holds the oldest keys this query needs.
                if (r % G == 0) report(a.status, GPTOSS_STATUS_RING_OVERRUN);
                first = end - a.capacity;
            }
            lo = (unsigned int)first, hi = pos;
        }
        band_lo[threadIdx.x] = lo, band_hi[threadIdx.x] = hi;
    }
    __syncthreads();

    // The block's tiles: BN keys each from kmin on. Lane l tracks rows l and l + 32 of the block
    // (the first and last tile each needs) to find the next needed tile, every warp alike.
    const unsigned int lo_a = band_lo[lane], hi_a = band_hi[lane], lo_b = band_lo[lane + 32], hi_b = band_hi[lane + 32];
    const unsigned int kmin = warp_min_u32(min(lo_a, lo_b)), kmax = warp_max_u32(max(hi_a, hi_b));
    const unsigned int first_a = lo_a <= hi_a ? (lo_a - kmin) / T::BN : AMMA_NONE, last_a = (hi_a - kmin) / T::BN;
    const unsigned int first_b = lo_b <= hi_b ? (lo_b - kmin) / T::BN : AMMA_NONE, last_b = (hi_b - kmin) / T::BN;
    // The first tile from j on that some row needs, or AMMA_NONE.
    auto next_tile = [&](unsigned int j) {
        const unsigned int ca = first_a != AMMA_NONE && last_a >= j ? max(j, first_a) : AMMA_NONE;
        const unsigned int cb = first_b != AMMA_NONE && last_b >= j ? max(j, first_b) : AMMA_NONE;
        return warp_min_u32(min(ca, cb));
    };

    // This lane's rows of the warp (g and g + 8): bands, sinks, queries.
    unsigned int lo[2], hi[2];
    float sink[2], m[2], l[2];
    unsigned int qh[D / 16][4], ql[D / 16][4];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const unsigned int row = warp * 16 + g + 8 * i, r = row0 + row;
        lo[i] = band_lo[row], hi[i] = band_hi[row];
        const unsigned int h = kvh * G + r % G;
        sink[i] = a.sinks[h];
        m[i] = sink[i], l[i] = 0.0f;
        const float *q = a.q + ((unsigned long long)(r / G) * a.q_heads + h) * D;
#pragma unroll
        for (int kc = 0; kc < D / 16; kc++)
#pragma unroll
            for (int half = 0; half < 2; half++) {
                // Fragment register i + 2·half of chunk kc: dims 16kc + 2t + 8·half, + 1.
                float2 v = make_float2(0.0f, 0.0f);
                if (r < rows) v = *reinterpret_cast<const float2 *>(q + kc * 16 + 2 * t + 8 * half);
                split_pair(v.x * a.scale, v.y * a.scale, qh[kc][i + 2 * half], ql[kc][i + 2 * half]);
            }
    }
    // The warp's rows together: the keys any of them needs (need_*), and those all of them do
    // (all_*: a tile inside it needs no mask).
    const unsigned int need_lo = warp_min_u32(min(lo[0], lo[1])), need_hi = warp_max_u32(max(hi[0], hi[1]));
    const unsigned int all_lo = warp_max_u32(max(lo[0] <= hi[0] ? lo[0] : 0, lo[1] <= hi[1] ? lo[1] : 0));
    const unsigned int all_hi = warp_min_u32(min(lo[0] <= hi[0] ? hi[0] : AMMA_NONE, lo[1] <= hi[1] ? hi[1] : AMMA_NONE));

    float o[D / 8][4];
#pragma unroll
    for (int d = 0; d < D / 8; d++)
#pragma unroll
        for (int q = 0; q < 4; q++) o[d][q] = 0.0f;

    const unsigned int row_bytes = T::SPLIT ? D * 4 : T::STRIDE * 2;  // of the tiles cp.async fills
    unsigned int cur = next_tile(0), stage = 0;
    if (cur != AMMA_NONE) {
        amma_load<KV, D>(a, kvh, kmin + cur * T::BN, kmax, smem, smem + (T::SPLIT ? T::RAW : T::TILE), row_bytes);
        cp_async_commit();
    }
    while (cur != AMMA_NONE) {
        const unsigned int next = next_tile(cur + 1);
        const unsigned int k0 = kmin + cur * T::BN;
        const unsigned short *k_hi, *k_lo, *v_hi, *v_lo;
        if constexpr (T::SPLIT) {
            cp_async_wait<0>();
            __syncthreads();  // the staged tile is complete; every warp is done with the last split tiles
            amma_split_tiles<D>(smem);
            __syncthreads();  // the split tiles are complete; the staging buffer is free
            if (next != AMMA_NONE) {
                amma_load<KV, D>(a, kvh, kmin + next * T::BN, kmax, smem, smem + T::RAW, row_bytes);
                cp_async_commit();
            }
            const unsigned short *tiles = reinterpret_cast<const unsigned short *>(smem + 2 * T::RAW);
            k_hi = tiles, k_lo = tiles + T::TILE / 2, v_hi = tiles + T::TILE, v_lo = tiles + 3 * T::TILE / 2;
        } else {
            if (next != AMMA_NONE) {
                unsigned char *s = smem + (stage ^ 1) * 2 * T::TILE;
                amma_load<KV, D>(a, kvh, kmin + next * T::BN, kmax, s, s + T::TILE, row_bytes);
                cp_async_commit();
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();  // this stage is complete
            k_hi = reinterpret_cast<const unsigned short *>(smem + stage * 2 * T::TILE);
            v_hi = k_hi + T::TILE / 2;
            k_lo = v_lo = nullptr;
        }
        // The warp multiplies only tiles its rows need; inside all of its bands, without masks.
        const unsigned long long k1 = (unsigned long long)k0 + T::BN - 1;
        if (k0 <= need_hi && k1 >= need_lo) {
            float s[T::BN / 8][4];
            amma_scores<KV, D>(k_hi, k_lo, qh, ql, s);
            amma_softmax<KV, D>(s, o, m, l, lo, hi, k0, !(all_lo <= k0 && k1 <= all_hi));
            amma_values<KV, D>(v_hi, v_lo, s, o);
        }
        if constexpr (!T::SPLIT) __syncthreads();  // every warp is done with this stage before it is refilled
        cur = next, stage ^= 1;
    }

    // The quad's partial sums, the sink once, and the rows out.
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(FULL_MASK, l[i], 1);
        l[i] += __shfl_xor_sync(FULL_MASK, l[i], 2);
        const unsigned int r = row0 + warp * 16 + g + 8 * i;
        if (r >= rows) continue;
        const float den = l[i] + expf(sink[i] - m[i]);
        float *out = a.out + ((unsigned long long)(r / G) * a.q_heads + kvh * G + r % G) * D + 2 * t;
#pragma unroll
        for (int d = 0; d < D / 8; d++) *reinterpret_cast<float2 *>(out + 8 * d) = make_float2(o[d][2 * i] / den, o[d][2 * i + 1] / den);
    }
}
