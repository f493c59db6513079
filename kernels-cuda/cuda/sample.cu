// Sampling one token from a row of logits on the device (the rule is engine/src/sampling.rs):
// arg-max (lowest id on ties, NaN never wins) for greedy decoding, and for a temperature
// without top-k / top-p cuts the inverse CDF in id order: the first id whose cumulative
// weight exp((l − max) / T) exceeds u · the total (the last id if rounding leaves none).
//
// Parallel strategy: two launches of a fixed grid of 256-thread blocks over contiguous slices of
// the vocabulary. Pass 1 (arg-max): per-block (max, id) by shuffles and shared memory, then the
// last block to arrive (atomic ticket) reduces the block results and writes the id. Pass 2
// (temperature): per-block masses in f64, then the last block scans them in order, finds the
// slice where the cumulative mass crosses u · total and walks that slice element by element.
// Only the id (4 bytes) goes back to the host.
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
