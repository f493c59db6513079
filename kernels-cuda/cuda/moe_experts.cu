// The routed experts of a MoE block:
// 1. gate_up: act[t, k, j] = swiglu(W1[e] x[t] + b1[e] at rows 2j, 2j + 1), e = ids[t, k], with
//    gpt-oss's clamped SwiGLU (gate ≤ limit, |up| ≤ limit, the +1 on the linear branch);
// 2. down: residual[t, r] += Σ_k weights[t, k] · (W2[ids[t, k]] act[t, k] + b2[ids[t, k]])[r].
// Expert ids and weights are read from device memory (no host round trip, so a decode step
// stays one CUDA graph), in two forms: GEMV kernels for decode and small batches, and below
// them a grouped GEMM on the tensor cores for prefill.
//
// ---- Decode: GEMV ------------------------------------------------------------------------------
// gate_up: grid (intermediate / GPTOSS_MOE_WARPS, tokens · top_k), one warp per (gate, up) row
// pair of the slot's expert, both rows' chunks dealt to the lanes as one task list (an MXFP4
// row of 2880 is only 90 chunks). down: grid (hidden / GPTOSS_MOE_WARPS, tokens), one warp per
// output row that loops over the token's k experts, so the weighted sum, the bias and the
// residual add happen in the lane that owns the row: no atomics and no separate combine
// kernel; the grid does not depend on the routing. Trade-offs: the k experts of a row are
// visited one after another, so fewer loads are in flight per lane than a flat (expert, chunk)
// task list would give; tokens sharing an expert re-read its rows, which the grouped GEMM
// below avoids from the crossover on.
//
// ---- Prefill: the grouped GEMM (kernels `*_mma_x2` / `*_mma_x1`, four launches) ---------------
// A batch of n tokens routes P = n · top_k (token, k) pairs, pair p = t · top_k + k. Grouped by
// expert, each expert's pairs are a small dense GEMM against that expert's matrices, run on
// gemm.cuh's tile code (read its header for the mma.sync m16n8k16 fragments, the ldmatrix
// addressing, the cp.async double buffering and the in-shared-memory decode of int8 / int4 /
// MXFP4 to bf16, all unchanged here).
//
// 1. `moe_sort_pairs`, one block: a histogram of the pairs over the experts (shared-memory
//    integer atomics: the counts do not depend on the order), exclusive scans of the counts
//    (offsets: where each expert's pairs start in `order`) and of their 64-pair tiles (where
//    each expert's tiles start), the tile table (tile i → its expert and first place in
//    `order`), then the placement. Placement walks the pairs 256 at a time in pair order;
//    each thread sets its bit in a per-expert mask of the chunk, and a pair's place is its
//    expert's next free place plus the number of bits below its own: within an expert, pairs
//    are in ascending index whatever the scheduling. An id ≥ experts sets
//    GPTOSS_STATUS_EXPERT_RANGE and its pair is left out of every group (and of the combine).
//    One block suffices: P is a few thousand (8192 for 2048 tokens, top-4), a few µs of work.
// 2. gate_up, grid (max_tiles, ⌈2 · intermediate / 128⌉): block (i, m) reads tile i's expert e
//    and pairs from the table (a column past the last tile leaves at once: the grid is sized
//    on the host for the worst case, ceil(P / 64) + min(experts, P) tiles, since only the
//    device knows the routing), lists the 64 token rows of x its B operand gathers (the
//    `x_row` hook of gemm.cuh: a row index per token column instead of consecutive tokens;
//    each cp.async still moves 16 contiguous bytes of one row), and multiplies rows m·128.. of
//    W1[e] by them. The gathered rows land in the shared B tile exactly as consecutive tokens
//    would (token column t's k values contiguous), so the ldmatrix addresses and the b0/b1
//    fragments are the dense kernels'. The epilogue applies the row scale and bias, pairs
//    rows 2j and 2j + 1 (the interleaved gate and up, always in one 128-row tile) through the
//    SwiGLU and writes each activation straight into bf16 planes (hi, and lo for `_mma_x2`),
//    row = the pair's place in `order`, width intermediate rounded up to 32 with zeros: the
//    down GEMM's B.
// 3. down, grid (max_tiles, ⌈hidden / 128⌉): the same tiles, B = 64 consecutive rows of the
//    activation planes (a tile's pairs are consecutive in `order`), A = W2[e]; the epilogue
//    adds the bias, multiplies by the pair's routing weight and stores the row to y[p], f32.
// 4. `f32_moe_combine`: residual[t] += Σ_k y[t · top_k + k], k = 0..top_k in order, one thread
//    per output value. No float atomics anywhere, so results are bit-identical run to run.
//
// Data movement per batch: x's planes are read once per (tile, row tile), W1[e] and W2[e] once
// per tile of expert e (its tiles are adjacent columns of the grid and run together, so the
// re-reads mostly hit L2); the activations are written once as bf16 planes (2 × 2 bytes per
// value) and read by every down row tile of their tile (from L2 after the first), y written and
// read once (4 + 4 bytes per pair and hidden value).
//
// Trade-offs: the last tile of each expert is partial (on average half a tile of wasted
// tensor-core columns per expert: ~12% for gpt-oss-20b's 256 pairs per expert at 2048
// tokens); y and the combine cost a round trip through memory that float atomics into the
// residual would avoid, at the price of results that depend on scheduling; the sort is one
// block, so it is a serial step of a few µs between the router and the GEMMs.
#include "gemm.cuh"

__device__ __forceinline__ float swiglu(float gate, float up, float alpha, float limit) {
    const float g = fminf(gate, limit), u = fminf(fmaxf(up, -limit), limit);
    return g / (1.0f + expf(-alpha * g)) * (u + 1.0f);
}

template <class F>
__device__ void moe_gate_up(const GptossMoeGateUpArgs &a) {
    const unsigned int inter = a.w.rows / 2;
    const unsigned int j = blockIdx.x * GPTOSS_MOE_WARPS + threadIdx.x / GPTOSS_WARP;
    if (j >= inter) return;  // whole warps exit together
    const unsigned int slot = blockIdx.y, t = slot / a.top_k;
    const unsigned int e = a.ids[slot];
    float *out = a.act + (unsigned long long)slot * inter + j;
    if (e >= a.w.experts) {
        if (threadIdx.x % GPTOSS_WARP == 0) {
            report(a.status, GPTOSS_STATUS_EXPERT_RANGE);
            *out = 0.0f;
        }
        return;
    }
    const unsigned int rows[2] = {2 * j, 2 * j + 1};
    float acc[2][1];
    warp_rows_dot<F, 2, 1>(a.w, e, rows, a.x + (unsigned long long)t * a.w.cols, a.w.cols, 1, acc);
    if (threadIdx.x % GPTOSS_WARP == 0) *out = swiglu(acc[0][0] + bias_at(a.w, e, 2 * j), acc[1][0] + bias_at(a.w, e, 2 * j + 1), a.alpha, a.limit);
}

template <class F>
__device__ void moe_down(const GptossMoeDownArgs &a) {
    const unsigned int r = blockIdx.x * GPTOSS_MOE_WARPS + threadIdx.x / GPTOSS_WARP;
    if (r >= a.w.rows) return;  // whole warps exit together
    const unsigned int t = blockIdx.y, lane = threadIdx.x % GPTOSS_WARP, cols = a.w.cols;
    const unsigned int *ids = a.ids + (unsigned long long)t * a.top_k;
    const float *weights = a.weights + (unsigned long long)t * a.top_k;
    float sum = 0.0f;
    for (unsigned int k = 0; k < a.top_k; k++) {
        const unsigned int e = ids[k];
        if (e >= a.w.experts) {
            if (lane == 0 && r == 0) report(a.status, GPTOSS_STATUS_EXPERT_RANGE);
            continue;
        }
        const unsigned int rows[1] = {r};
        float acc[1][1];
        warp_rows_dot<F, 1, 1>(a.w, e, rows, a.act + ((unsigned long long)t * a.top_k + k) * cols, cols, 1, acc);
        sum = fmaf(weights[k], acc[0][0] + bias_at(a.w, e, r), sum);
    }
    if (lane == 0) a.residual[(unsigned long long)t * a.w.rows + r] += sum;
}

// Each format's two kernels, their names spelled out as in the PTX.
#define MOE_BOUNDS __launch_bounds__(GPTOSS_MOE_WARPS * GPTOSS_WARP, 2)
extern "C" __global__ void MOE_BOUNDS f32_mf4w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtMf4>(a); }
extern "C" __global__ void MOE_BOUNDS f32_mf4w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtMf4>(a); }
extern "C" __global__ void MOE_BOUNDS f32_bf16w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtBf16>(a); }
extern "C" __global__ void MOE_BOUNDS f32_bf16w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtBf16>(a); }
extern "C" __global__ void MOE_BOUNDS f32_f32w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtF32>(a); }
extern "C" __global__ void MOE_BOUNDS f32_f32w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtF32>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i8w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtI8>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i8w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtI8>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i4w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtI4>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i4w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtI4>(a); }

// ---- prefill: the grouped GEMM -----------------------------------------------------------------

#define SORT_THREADS GPTOSS_MOE_SORT_THREADS
#define SORT_WORDS (SORT_THREADS / GPTOSS_WARP)
// Experts a lane of the scanning warp covers.
#define SCAN_PER_LANE (GPTOSS_MAX_EXPERTS / GPTOSS_WARP)

extern "C" __global__ void __launch_bounds__(SORT_THREADS) moe_sort_pairs(const GptossMoeSortArgs a) {
    __shared__ unsigned int next[GPTOSS_MAX_EXPERTS];       // pairs per expert, then its next free place
    __shared__ unsigned int start[GPTOSS_MAX_EXPERTS];      // its first place in order
    __shared__ unsigned int tile0[GPTOSS_MAX_EXPERTS + 1];  // its first tile (the total at a.experts)
    __shared__ unsigned int peers[GPTOSS_MAX_EXPERTS][SORT_WORDS];  // a chunk's pairs of the expert, a bit per thread
    const unsigned int tid = threadIdx.x, lane = tid % GPTOSS_WARP, warp = tid / GPTOSS_WARP;
    for (unsigned int e = tid; e < GPTOSS_MAX_EXPERTS; e += SORT_THREADS) {
        next[e] = 0;
        for (int w = 0; w < SORT_WORDS; w++) peers[e][w] = 0;
    }
    __syncthreads();

    // Histogram.
    for (unsigned int p = tid; p < a.pairs; p += SORT_THREADS) {
        const unsigned int e = a.ids[p];
        if (e < a.experts)
            atomicAdd(&next[e], 1u);
        else
            report(a.status, GPTOSS_STATUS_EXPERT_RANGE);
    }
    __syncthreads();

    // Exclusive scans of the pairs and the tiles over the experts, by warp 0: each lane sums
    // its run of experts, a shuffle scan gives the run's start, the lane then walks its run.
    if (warp == 0) {
        const unsigned int e0 = lane * SCAN_PER_LANE;
        unsigned int pairs = 0, tiles = 0;
        for (unsigned int e = e0; e < e0 + SCAN_PER_LANE; e++) {
            pairs += next[e];
            tiles += (next[e] + GEMM_BN - 1) / GEMM_BN;
        }
        unsigned int pairs_in = pairs, tiles_in = tiles;  // inclusive scans
        for (int o = 1; o < GPTOSS_WARP; o <<= 1) {
            const unsigned int p = __shfl_up_sync(FULL_MASK, pairs_in, o), t = __shfl_up_sync(FULL_MASK, tiles_in, o);
            if (lane >= (unsigned int)o) pairs_in += p, tiles_in += t;
        }
        unsigned int at = pairs_in - pairs, tile = tiles_in - tiles;
        for (unsigned int e = e0; e < e0 + SCAN_PER_LANE; e++) {
            const unsigned int count = next[e];
            start[e] = at, tile0[e] = tile, next[e] = at;
            if (e < a.experts) a.groups.offsets[e] = at;
            at += count, tile += (count + GEMM_BN - 1) / GEMM_BN;
        }
        if (lane == GPTOSS_WARP - 1) {
            // Experts past a.experts have no pairs: these totals are the ones at a.experts.
            tile0[GPTOSS_MAX_EXPERTS] = tile;
            a.groups.offsets[a.experts] = at;
        }
    }
    __syncthreads();

    // The tile table: tile i is expert e's (i − tile0[e])-th, for the last e with tile0[e] ≤ i.
    const unsigned int tiles = tile0[a.experts];
    for (unsigned int i = tid; i < a.groups.max_tiles; i += SORT_THREADS) {
        unsigned int e = GPTOSS_MOE_NO_TILE, first = 0;
        if (i < tiles) {
            unsigned int lo = 0, hi = a.experts;
            while (hi - lo > 1) {
                const unsigned int mid = (lo + hi) / 2;
                if (tile0[mid] <= i)
                    lo = mid;
                else
                    hi = mid;
            }
            e = lo, first = start[lo] + (i - tile0[lo]) * GEMM_BN;
        }
        a.groups.tiles[2 * i] = e;
        a.groups.tiles[2 * i + 1] = first;
    }

    // Placement, a chunk of SORT_THREADS pairs at a time in pair order.
    for (unsigned int base = 0; base < a.pairs; base += SORT_THREADS) {
        const unsigned int p = base + tid;
        const unsigned int e = p < a.pairs ? a.ids[p] : a.experts;  // past the last pair: no expert
        const bool valid = e < a.experts;
        if (valid) atomicOr(&peers[e][warp], 1u << lane);
        __syncthreads();
        unsigned int rank = 0, total = 0;  // the chunk's pairs of e before this one, and in all
        if (valid) {
            for (unsigned int w = 0; w < SORT_WORDS; w++) {
                const unsigned int bits = peers[e][w];
                total += __popc(bits);
                if (w < warp) rank += __popc(bits);
                if (w == warp) rank += __popc(bits & ((1u << lane) - 1));
            }
            a.groups.order[next[e] + rank] = p;
        }
        __syncthreads();
        // The expert's last pair of the chunk moves its next free place and clears its mask.
        if (valid && rank + 1 == total) {
            next[e] += total;
            for (int w = 0; w < SORT_WORDS; w++) peers[e][w] = 0;
        }
        __syncthreads();
    }
}

// Tile blockIdx.x of a grouped GEMM: its expert (GPTOSS_MOE_NO_TILE past the last tile), its
// first place in `order` and its pairs (≤ GEMM_BN).
struct MoeTile {
    unsigned int expert, first, count;
};
__device__ __forceinline__ MoeTile moe_tile(const GptossMoeGroups &g) {
    const unsigned int e = g.tiles[2 * blockIdx.x];
    if (e == GPTOSS_MOE_NO_TILE) return MoeTile{e, 0, 0};
    const unsigned int first = g.tiles[2 * blockIdx.x + 1];
    return MoeTile{e, first, min((unsigned int)GEMM_BN, g.offsets[e + 1] - first)};
}

// Expert e of a stacked weight as a matrix of its own (data, scales and bias advanced to it).
__device__ __forceinline__ GptossWeight expert_matrix(const GptossWeight &w, unsigned int e) {
    GptossWeight m = w;
    m.data = expert_data(w, e);
    m.scales = expert_scales(w, e);
    m.bias = w.bias ? w.bias + (unsigned long long)e * w.rows : nullptr;
    m.experts = 1;
    m.table = nullptr;
    return m;
}

// What a grouped GEMM block hands gemm_tile: one expert's matrix, the activation planes and
// the plane row of each of the tile's token columns (shared memory).
struct MoeOperands {
    GptossWeight w;
    GptossSplit xs;
    const unsigned int *rows;
};
struct MoeRows {
    using Args = MoeOperands;
    __device__ static RowOf row_of(const Args &a, unsigned int r) { return RowOf{a.w, r, r < a.w.rows}; }
    __device__ static const void *any_address(const Args &a) { return a.w.data; }
    __device__ static const GptossSplit &split(const Args &a) { return a.xs; }
    __device__ static unsigned int x_row(const Args &a, unsigned int t) { return a.rows[t]; }
};

template <class F, int TERMS>
__device__ void moe_gate_up_mma(const GptossMoeGateUpMmaArgs &a) {
    __shared__ __align__(16) unsigned char smem[GemmSmem<F, TERMS>::BYTES];
    __shared__ unsigned int rows[GEMM_BN];
    const MoeTile tile = moe_tile(a.groups);
    if (tile.expert == GPTOSS_MOE_NO_TILE) return;  // past the last tile: the whole block leaves
    // B gathers the tile's tokens' rows of x.
    for (unsigned int t = threadIdx.x; t < GEMM_BN; t += GEMM_THREADS)
        rows[t] = t < tile.count ? a.groups.order[tile.first + t] / a.top_k : GEMM_NO_ROW;
    __syncthreads();
    const unsigned int m0 = blockIdx.y * GEMM_BM;
    const MoeOperands ops{expert_matrix(a.w, tile.expert), a.xs, rows};
    const float *c = gemm_tile<F, TERMS, MoeRows>(ops, smem, m0, 0, a.w.cols);

    // Row pairs (2j, 2j + 1) → act[first + t, j], threads along j; zeros from intermediate on.
    const unsigned char *scales = static_cast<const unsigned char *>(ops.w.scales);
    const unsigned int inter = a.w.rows / 2;
    for (unsigned int i = threadIdx.x; i < GEMM_BN * GEMM_BM / 2; i += GEMM_THREADS) {
        const unsigned int t = i / (GEMM_BM / 2), jj = i % (GEMM_BM / 2), j = m0 / 2 + jj;
        if (t >= tile.count || j >= a.act_stride) continue;
        float v = 0.0f;
        if (j < inter) {
            const float *ct = c + t * GEMM_C_STRIDE + 2 * jj;
            const float gate = ct[0] * F::row_scale(ops.w, scales, 2 * j) + bias_at(ops.w, 0, 2 * j);
            const float up = ct[1] * F::row_scale(ops.w, scales, 2 * j + 1) + bias_at(ops.w, 0, 2 * j + 1);
            v = swiglu(gate, up, a.alpha, a.limit);
        }
        unsigned short hi, lo;
        bf16_split(v, hi, lo);
        const unsigned long long at = (unsigned long long)(tile.first + t) * a.act_stride + j;
        a.act_hi[at] = hi;
        if constexpr (TERMS == 2) a.act_lo[at] = lo;
    }
}

template <class F, int TERMS>
__device__ void moe_down_mma(const GptossMoeDownMmaArgs &a) {
    __shared__ __align__(16) unsigned char smem[GemmSmem<F, TERMS>::BYTES];
    __shared__ unsigned int rows[GEMM_BN];
    __shared__ unsigned int pairs[GEMM_BN];
    const MoeTile tile = moe_tile(a.groups);
    if (tile.expert == GPTOSS_MOE_NO_TILE) return;
    // B is the tile's consecutive rows of the activation planes.
    for (unsigned int t = threadIdx.x; t < GEMM_BN; t += GEMM_THREADS) {
        rows[t] = t < tile.count ? tile.first + t : GEMM_NO_ROW;
        pairs[t] = t < tile.count ? a.groups.order[tile.first + t] : 0;
    }
    __syncthreads();
    const unsigned int m0 = blockIdx.y * GEMM_BM;
    const MoeOperands ops{expert_matrix(a.w, tile.expert), a.acts, rows};
    const float *c = gemm_tile<F, TERMS, MoeRows>(ops, smem, m0, 0, a.w.cols);

    // y[p, r] = weight · (row · scale + bias), threads along r.
    const unsigned char *scales = static_cast<const unsigned char *>(ops.w.scales);
    for (unsigned int i = threadIdx.x; i < GEMM_BN * GEMM_BM; i += GEMM_THREADS) {
        const unsigned int t = i / GEMM_BM, r = m0 + i % GEMM_BM;
        if (t >= tile.count || r >= a.w.rows) continue;
        const unsigned int p = pairs[t];
        const float v = c[t * GEMM_C_STRIDE + i % GEMM_BM] * F::row_scale(ops.w, scales, r) + bias_at(ops.w, 0, r);
        a.y[(unsigned long long)p * a.w.rows + r] = a.weights[p] * v;
    }
}

extern "C" __global__ void __launch_bounds__(GPTOSS_COPY_THREADS) f32_moe_combine(const GptossMoeCombineArgs a) {
    const unsigned long long i = (unsigned long long)blockIdx.x * GPTOSS_COPY_THREADS + threadIdx.x;
    if (i >= (unsigned long long)a.n * a.hidden) return;
    const unsigned long long t = i / a.hidden, r = i % a.hidden;
    float sum = 0.0f;
    for (unsigned int k = 0; k < a.top_k; k++) {
        const unsigned long long p = t * a.top_k + k;
        if (a.ids[p] < a.experts) sum += a.y[p * a.hidden + r];
    }
    a.residual[i] += sum;
}

// `_mma_x2`: both planes of x and of the activations (f32-accurate); `_mma_x1`: hi alone.
#define MOE_MMA_KERNELS(gate_up, down, F, TERMS)                                                            \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2) gate_up(const GptossMoeGateUpMmaArgs a) { \
        moe_gate_up_mma<F, TERMS>(a);                                                                       \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2) down(const GptossMoeDownMmaArgs a) {      \
        moe_down_mma<F, TERMS>(a);                                                                          \
    }

MOE_MMA_KERNELS(f32_bf16w_moe_gate_up_swiglu_mma_x2, f32_bf16w_moe_down_mma_x2, FmtBf16, 2)
MOE_MMA_KERNELS(f32_i8w_moe_gate_up_swiglu_mma_x2, f32_i8w_moe_down_mma_x2, FmtI8, 2)
MOE_MMA_KERNELS(f32_i4w_moe_gate_up_swiglu_mma_x2, f32_i4w_moe_down_mma_x2, FmtI4, 2)
MOE_MMA_KERNELS(f32_mf4w_moe_gate_up_swiglu_mma_x2, f32_mf4w_moe_down_mma_x2, FmtMf4, 2)
MOE_MMA_KERNELS(f32_bf16w_moe_gate_up_swiglu_mma_x1, f32_bf16w_moe_down_mma_x1, FmtBf16, 1)
MOE_MMA_KERNELS(f32_i8w_moe_gate_up_swiglu_mma_x1, f32_i8w_moe_down_mma_x1, FmtI8, 1)
MOE_MMA_KERNELS(f32_i4w_moe_gate_up_swiglu_mma_x1, f32_i4w_moe_down_mma_x1, FmtI4, 1)
MOE_MMA_KERNELS(f32_mf4w_moe_gate_up_swiglu_mma_x1, f32_mf4w_moe_down_mma_x1, FmtMf4, 1)
