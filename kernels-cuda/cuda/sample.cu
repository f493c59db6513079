// Sampling one token from a row of logits on the device (the rule is engine/src/sampling.rs):
// arg-max (lowest id on ties, NaN never wins) for greedy decoding, and for a temperature
// without top-k / top-p cuts the inverse CDF in id order: the first id whose cumulative
// weight exp((l − max) / T) exceeds u · the total (the last id if rounding leaves none).
//
// Parallel strategy: two launches of a fixed grid of GPTOSS_REDUCE_THREADS-thread blocks over contiguous slices of
// the vocabulary. Pass 1 (arg-max): per-block (max, id) by shuffles and shared memory, then the
// last block to arrive (atomic ticket) reduces the block results and writes the id. Pass 2
// (temperature): per-block masses in f64, then the last block scans them in order, finds the
// slice where the cumulative mass crosses u · total and walks that slice element by element.
// Only the id (4 bytes) goes back to the host.
//
// With top-k / top-p cuts, f32_sample_cut (one block, after the arg-max) finds the cut points
// and the token without sorting: see the comment above it.
#include "common.cuh"

__device__ __forceinline__ bool beats(float v, unsigned int id, float bv, unsigned int bid) {
    return v > bv || (v == bv && id < bid) || (bv != bv && v == v);
}

// Block-wide arg-max; thread 0 ends with the result.
__device__ void block_argmax(float &v, unsigned int &id) {
    __shared__ float sv[GPTOSS_REDUCE_THREADS / GPTOSS_WARP];
    __shared__ unsigned int si[GPTOSS_REDUCE_THREADS / GPTOSS_WARP];
    const unsigned int warp = threadIdx.x / GPTOSS_WARP, lane = threadIdx.x % GPTOSS_WARP;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(FULL_MASK, v, o);
        const unsigned int oi = __shfl_xor_sync(FULL_MASK, id, o);
        if (beats(ov, oi, v, id)) v = ov, id = oi;
    }
    if (lane == 0) sv[warp] = v, si[warp] = id;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (unsigned int w = 1; w < blockDim.x / GPTOSS_WARP; w++)
            if (beats(sv[w], si[w], v, id)) v = sv[w], id = si[w];
    }
}

// This block's slice of the vocabulary.
__device__ __forceinline__ void slice(unsigned int vocab, unsigned int &lo, unsigned int &hi) {
    const unsigned int per = (vocab + gridDim.x - 1) / gridDim.x;
    lo = min(blockIdx.x * per, vocab);
    hi = min(lo + per, vocab);
}

// True in the one block that arrives last; resets the ticket for the next launch.
__device__ bool last_block(unsigned int *counter) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(counter, 1u) == gridDim.x - 1;
        if (last) *counter = 0;
    }
    __syncthreads();
    return last;
}

extern "C" __global__ void __launch_bounds__(GPTOSS_REDUCE_THREADS) f32_sample_argmax(const GptossSampleArgs a) {
    unsigned int lo, hi;
    slice(a.vocab, lo, hi);
    float v = NAN;
    unsigned int id = 0xffffffffu;
    for (unsigned int i = lo + threadIdx.x; i < hi; i += blockDim.x)
        if (beats(a.logits[i], i, v, id)) v = a.logits[i], id = i;
    block_argmax(v, id);
    if (threadIdx.x == 0) a.part_val[blockIdx.x] = v, a.part_idx[blockIdx.x] = id;
    if (!last_block(a.counter) || threadIdx.x != 0) return;
    for (unsigned int b = 0; b < gridDim.x; b++) {
        const float bv = __ldcg(a.part_val + b);
        const unsigned int bi = __ldcg(a.part_idx + b);
        if (beats(bv, bi, v, id)) v = bv, id = bi;
    }
    // An all-NaN row has no winner: id 0, as the CPU's arg-max answers.
    *a.out_id = id == 0xffffffffu ? 0 : id;
}

// Runs after f32_sample_argmax (same args): out_id holds the arg-max on entry.
extern "C" __global__ void __launch_bounds__(GPTOSS_REDUCE_THREADS) f32_sample_temperature(const GptossSampleArgs a) {
    __shared__ double partial[GPTOSS_REDUCE_THREADS / GPTOSS_WARP];
    const double mx = a.logits[*a.out_id], temp = a.temperature;
    unsigned int lo, hi;
    slice(a.vocab, lo, hi);
    double mass = 0.0;
    for (unsigned int i = lo + threadIdx.x; i < hi; i += blockDim.x) mass += exp(((double)a.logits[i] - mx) / temp);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mass += __shfl_xor_sync(FULL_MASK, mass, o);
    if (threadIdx.x % GPTOSS_WARP == 0) partial[threadIdx.x / GPTOSS_WARP] = mass;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (unsigned int w = 1; w < blockDim.x / GPTOSS_WARP; w++) mass += partial[w];
        a.part_mass[blockIdx.x] = mass;
    }
    if (!last_block(a.counter) || threadIdx.x != 0) return;
    double total = 0.0;
    for (unsigned int b = 0; b < gridDim.x; b++) total += __ldcg(a.part_mass + b);
    const double target = (double)a.u * total;
    // Walk the blocks' masses, then the crossing block's elements, in id order.
    double cum = 0.0;
    unsigned int pick = a.vocab - 1;
    for (unsigned int b = 0; b < gridDim.x; b++) {
        const double m = __ldcg(a.part_mass + b);
        if (cum + m <= target) {
            cum += m;
            continue;
        }
        const unsigned int per = (a.vocab + gridDim.x - 1) / gridDim.x;
        const unsigned int end = min(b * per + per, a.vocab);
        for (unsigned int i = b * per; i < end; i++) {
            cum += exp(((double)a.logits[i] - mx) / temp);
            if (cum > target) {
                pick = i;
                break;
            }
        }
        break;
    }
    *a.out_id = pick;
}

// ---- top-k / top-p -------------------------------------------------------------------------
//
// The rule ranks ids by logit, descending, lowest id first on ties; the candidates are the first
// top_k of that order, then the shortest prefix holding top_p of their mass; the token is the
// first candidate whose running mass exceeds u · the candidates' mass. Each of the three is "the
// first element, in rank order, at which a running sum crosses a target", so one routine answers
// all three without sorting: a radix descent over a 32-bit key that orders like the logits
// (digits of 11, 11 and 10 bits, most significant first; per digit a histogram of the quantity
// over the elements still in play, then a block scan over the bins finds the crossing bin),
// then, when several ids share the crossing key, a walk over them in id order.
//
// Masses are fixed point (weight · 2^40 in 64 bits, weights ≤ 1 since the arg-max's logit is
// the largest): integer sums do not depend on the order of the atomic adds, so a seed gives the
// same token on every run. Against the f64 reference the weights differ by ~1e-7 relative (expf),
// so a token can differ only when u · mass lies that close to a boundary.
//
// One block of GPTOSS_SAMPLE_CUT_THREADS threads; at most 3 descents × (3 + 1) passes over the
// logits (4 bytes each), a few µs of a block's bandwidth per pass at gpt-oss's 201,088 ids.

typedef unsigned long long u64;

#define CUT_THREADS GPTOSS_SAMPLE_CUT_THREADS
#define CUT_BINS 2048
#define WEIGHT_ONE 1099511627776.0 /* 2^40 */

// Orders like f32::total_cmp: a larger logit has a larger key.
__device__ __forceinline__ unsigned int rank_key(float l) {
    const unsigned int b = __float_as_uint(l);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The elements at or before (key, id) in rank order.
struct Bound {
    unsigned int key, id;
};

__device__ __forceinline__ bool within(unsigned int k, unsigned int i, Bound b) { return k > b.key || (k == b.key && i <= b.id); }

// What one descent looks for: the first element at which the running quantity (1 per element,
// or its fixed-point weight) reaches `value` (× the total of the elements in play when
// `relative`), strictly exceeding it when `strict`.
struct Goal {
    bool by_weight, relative, strict;
    double value;
};

__device__ __forceinline__ u64 quantity(const Goal &g, float l, float mx, float temperature) {
    if (!g.by_weight) return 1;
    const float w = expf((l - mx) / temperature);
    // NaN (a NaN logit, or an infinite maximum) carries no mass.
    return w == w ? (u64)((double)fminf(w, 1.0f) * WEIGHT_ONE + 0.5) : 0;
}

__device__ __forceinline__ bool crosses(const Goal &g, double target, u64 cum) {
    return g.strict ? (double)cum > target : (double)cum >= target;
}

// Inclusive prefix sum over the block; `total` gets the block's sum. Every thread must call it.
__device__ __forceinline__ u64 block_scan(u64 v, u64 &total) {
    __shared__ u64 warp_sums[CUT_THREADS / GPTOSS_WARP];
    const unsigned int lane = threadIdx.x % GPTOSS_WARP, warp = threadIdx.x / GPTOSS_WARP;
#pragma unroll
    for (int o = 1; o < GPTOSS_WARP; o <<= 1) {
        const u64 n = __shfl_up_sync(FULL_MASK, v, o);
        if (lane >= (unsigned int)o) v += n;
    }
    if (lane == GPTOSS_WARP - 1) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        u64 w = lane < CUT_THREADS / GPTOSS_WARP ? warp_sums[lane] : 0;
#pragma unroll
        for (int o = 1; o < GPTOSS_WARP; o <<= 1) {
            const u64 n = __shfl_up_sync(FULL_MASK, w, o);
            if (lane >= (unsigned int)o) w += n;
        }
        if (lane < CUT_THREADS / GPTOSS_WARP) warp_sums[lane] = w;
    }
    __syncthreads();
    if (warp > 0) v += warp_sums[warp - 1];
    total = warp_sums[CUT_THREADS / GPTOSS_WARP - 1];
    __syncthreads();
    return v;
}

// Finds `goal`'s element among the elements within `bound` and sets `at` to it: its id exact
// when asked for or when its key is shared, else the bound's id, which admits the same
// elements. False when the total falls short of the target (rounding). Every thread must call
// it; all get the result.
__device__ __forceinline__ bool descend(const GptossSampleArgs &a, float mx, Bound bound, Goal goal, bool need_id, Bound &at) {
    __shared__ u64 hist[CUT_BINS];
    __shared__ unsigned int count[CUT_BINS];
    __shared__ unsigned int chosen_digit, chosen_id;
    __shared__ u64 chosen_above;
    __shared__ bool hit;
    unsigned int prefix = 0, prefix_mask = 0;
    u64 above = 0;
    double target = goal.value;
    for (int level = 0; level < 3; level++) {
        const unsigned int shift = level == 0 ? 21 : level == 1 ? 10 : 0, bins = level == 2 ? 1024 : 2048;
        for (unsigned int b = threadIdx.x; b < bins; b += blockDim.x) hist[b] = 0, count[b] = 0;
        __syncthreads();
        for (unsigned int i = threadIdx.x; i < a.vocab; i += blockDim.x) {
            const float l = a.logits[i];
            const unsigned int k = rank_key(l);
            if ((k & prefix_mask) != prefix || !within(k, i, bound)) continue;
            const unsigned int d = (k >> shift) & (bins - 1);
            atomicAdd(&hist[d], quantity(goal, l, mx, a.temperature));
            atomicAdd(&count[d], 1u);
        }
        __syncthreads();
        // Bins in descending digit order, two per thread: bins - 1 - 2t, then bins - 2 - 2t.
        const unsigned int d0 = bins - 1 - 2 * threadIdx.x, d1 = d0 - 1;
        const bool owns = 2 * threadIdx.x < bins;
        const u64 h0 = owns ? hist[d0] : 0, h1 = owns ? hist[d1] : 0;
        u64 sum_all;
        const u64 incl = block_scan(h0 + h1, sum_all);
        if (level == 0) {
            if (goal.relative) target = goal.value * (double)sum_all;
            if (!crosses(goal, target, sum_all)) return false;  // uniform: every thread saw sum_all
        }
        const u64 base = above + incl - h0 - h1;
        if (owns && !crosses(goal, target, base)) {
            if (crosses(goal, target, base + h0)) chosen_digit = d0, chosen_above = base;
            else if (crosses(goal, target, base + h0 + h1)) chosen_digit = d1, chosen_above = base + h0;
        }
        __syncthreads();
        const unsigned int digit = chosen_digit;
        above = chosen_above;
        prefix |= digit << shift;
        prefix_mask |= (bins - 1) << shift;
        if (level == 2) {
            at = Bound{prefix, bound.key == prefix ? bound.id : 0xffffffffu};
            const bool tied = count[digit] > 1;
            __syncthreads();
            if (!tied && !need_id) return true;
        } else {
            __syncthreads();
        }
    }
    // The ids with the crossing key, in id order, until the running quantity crosses.
    const unsigned int key = prefix;
    u64 run = above;
    if (threadIdx.x == 0) hit = false;
    __syncthreads();
    for (unsigned int start = 0; start < a.vocab; start += blockDim.x) {
        const unsigned int i = start + threadIdx.x;
        bool mine = false;
        u64 q = 0;
        if (i < a.vocab) {
            const float l = a.logits[i];
            const unsigned int k = rank_key(l);
            mine = k == key && within(k, i, bound);
            if (mine) q = quantity(goal, l, mx, a.temperature);
        }
        if (!__syncthreads_or(mine)) continue;
        u64 chunk;
        const u64 incl = block_scan(q, chunk);
        if (mine && crosses(goal, target, run + incl) && !crosses(goal, target, run + incl - q)) {
            hit = true;
            chosen_id = i;
        }
        __syncthreads();
        if (hit) {
            at = Bound{key, chosen_id};
            return true;
        }
        run += chunk;
    }
    return false;  // unreachable: the histogram said this key's ids cross
}

// Runs after f32_sample_argmax (same args), one block of GPTOSS_SAMPLE_CUT_THREADS threads:
// out_id holds the arg-max on entry and the sampled id on exit.
extern "C" __global__ void __launch_bounds__(CUT_THREADS, 1) f32_sample_cut(const GptossSampleArgs a) {
    const float mx = a.logits[*a.out_id];
    __syncthreads();  // every thread has read the arg-max before thread 0 overwrites it
    Bound bound = {0u, 0xffffffffu};
    Bound at;
    if (a.top_k != 0 && a.top_k < a.vocab) {
        // The top_k-th element ends the candidates (a count always reaches k ≤ vocab).
        if (descend(a, mx, bound, Goal{false, false, false, (double)a.top_k}, false, at)) bound = at;
    }
    if (a.top_p < 1.0f) {
        // The shortest prefix reaching top_p of the candidates' mass; all of them if rounding
        // leaves the target out of reach.
        if (descend(a, mx, bound, Goal{true, true, false, (double)a.top_p}, false, at)) bound = at;
    }
    if (!descend(a, mx, bound, Goal{true, true, true, (double)a.u}, true, at)) {
        // No candidate exceeds u · mass (rounding, or no mass at all): the last candidate.
        descend(a, mx, bound, Goal{false, true, false, 1.0}, true, at);
    }
    if (threadIdx.x == 0) *a.out_id = at.id;
}
