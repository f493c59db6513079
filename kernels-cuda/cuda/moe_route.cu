// MoE router in one launch: logits = Wr x + br, then per token the top-k logits (descending,
// lowest expert id first on ties) and the softmax over those k; ids and weights stay in device
// memory for the expert kernels.
//
// Parallel strategy: grid (experts / GPTOSS_ROUTE_WARPS, tokens), one warp per expert logit (the router is only
// experts × hidden, e.g. 128 × 2880 bf16 = 737 KB, so it is spread over many blocks rather than
// streamed by one SM). Logits go to a scratch row; the last block of a token to finish (an atomic
// ticket after a fence) runs the selection with one warp: each lane holds experts lane, lane +
// 32, … in registers, k rounds of a shuffle arg-max (ties to the lower id) pick the winners, and
// lanes 0..k−1 compute the softmax. The ticket is reset by that block, so the launch replays.
// Trade-offs: the ticket costs a fence per block instead of a second launch.
#include "common.cuh"

#define ROUTE_SLOTS (GPTOSS_MAX_EXPERTS / GPTOSS_WARP)

// The better of two (logit, id) candidates: larger logit, lower id on ties; NaN never wins.
__device__ __forceinline__ bool better(float v, unsigned int id, float bv, unsigned int bid) {
    return v > bv || (v == bv && id < bid) || (bv != bv && v == v);
}

__device__ void route_select(const GptossMoeRouteArgs &a, unsigned int t) {
    const unsigned int lane = threadIdx.x % GPTOSS_WARP, experts = a.router.rows;
    // Written by other blocks: read through L2, not a possibly stale L1.
    const float *logits = a.logits + (unsigned long long)t * experts;
    float v[ROUTE_SLOTS];
#pragma unroll
    for (int s = 0; s < ROUTE_SLOTS; s++) {
        const unsigned int e = lane + s * GPTOSS_WARP;
        v[s] = e < experts ? __ldcg(logits + e) : -INFINITY;
    }
    unsigned int taken = 0;  // bit s: slot s of this lane already chosen
    float mine = -INFINITY;  // lane k keeps the k-th winner's logit
    unsigned int mine_id = 0;
    for (unsigned int k = 0; k < a.top_k; k++) {
        float bv = NAN;
        unsigned int bid = 0xffffffffu;
#pragma unroll
        for (int s = 0; s < ROUTE_SLOTS; s++) {
            const unsigned int e = lane + s * GPTOSS_WARP;
            if (e < experts && !(taken >> s & 1u) && better(v[s], e, bv, bid)) bv = v[s], bid = e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(FULL_MASK, bv, o);
            const unsigned int oid = __shfl_xor_sync(FULL_MASK, bid, o);
            if (better(ov, oid, bv, bid)) bv = ov, bid = oid;
        }
        if (bid % GPTOSS_WARP == lane) taken |= 1u << (bid / GPTOSS_WARP);
        if (lane == k) mine = bv, mine_id = bid;
    }
    // Softmax over the k winners; lane 0 holds the largest.
    const float top = __shfl_sync(FULL_MASK, mine, 0);
    const float p = lane < a.top_k ? expf(mine - top) : 0.0f;
    const float sum = warp_sum(p);
    if (lane < a.top_k) {
        a.ids[t * a.top_k + lane] = mine_id;
        a.weights[t * a.top_k + lane] = p / sum;
    }
}

template <class F>
__device__ void moe_route(const GptossMoeRouteArgs &a) {
    __shared__ bool last;
    const unsigned int t = blockIdx.y, warp = threadIdx.x / GPTOSS_WARP, lane = threadIdx.x % GPTOSS_WARP;
    const unsigned int e = blockIdx.x * GPTOSS_ROUTE_WARPS + warp;
    if (e < a.router.rows) {
        const unsigned int rows[1] = {e};
        float acc[1][1];
        warp_rows_dot<F, 1, 1>(a.router, 0, rows, a.x + (unsigned long long)t * a.router.cols, a.router.cols, 1, acc);
        if (lane == 0) a.logits[(unsigned long long)t * a.router.rows + e] = acc[0][0] + bias_at(a.router, 0, e);
    }
    // The last block of token t to arrive selects; the fence publishes this block's logits first.
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned int ticket = atomicAdd(a.counters + t, 1u);
        last = ticket == gridDim.x - 1;
        if (last) a.counters[t] = 0;
    }
    __syncthreads();
    if (last && warp == 0) route_select(a, t);
}

#define ROUTE_KERNEL(name, F) \
    extern "C" __global__ void __launch_bounds__(GPTOSS_ROUTE_WARPS * GPTOSS_WARP, 2) name(const GptossMoeRouteArgs a) { moe_route<F>(a); }

ROUTE_KERNEL(f32_f32w_moe_route, FmtF32)
ROUTE_KERNEL(f32_bf16w_moe_route, FmtBf16)
ROUTE_KERNEL(f32_i8w_moe_route, FmtI8)
ROUTE_KERNEL(f32_i4w_moe_route, FmtI4)
