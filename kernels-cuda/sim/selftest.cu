// The emulator's own test kernels: each breaks one rule of the CUDA execution model (or keeps
// it), so `tests/sim.rs` can show the emulator reports the misuse, names the kernel, block and
// thread, and runs correct code. Built into the emulated device only (never by nvcc).
#include "common.cuh"

struct SelftestArgs {
    float *out;
    unsigned int n;
    unsigned int pad_;
};

// A barrier reached at two call sites: threads below 16 at one, the rest at the other.
extern "C" __global__ void divergent_barrier(const SelftestArgs a) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncthreads();
    }
}

// Thread 3 exits, the others then wait at a barrier for it.
extern "C" __global__ void exit_before_barrier(const SelftestArgs a) {
    if (threadIdx.x == 3) return;
    __syncthreads();
}

// A full-warp shuffle in a block of fewer than 32 threads: the mask names lanes that are not there.
extern "C" __global__ void shuffle_missing_lane(const SelftestArgs a) {
    const float v = __shfl_sync(FULL_MASK, (float)threadIdx.x, 0);
    a.out[threadIdx.x] = v;
}

// Lanes of a warp meet at two different shuffles.
extern "C" __global__ void divergent_shuffle(const SelftestArgs a) {
    float v = (float)threadIdx.x;
    if (threadIdx.x % 2) v = __shfl_xor_sync(FULL_MASK, v, 1);
    else v = __shfl_down_sync(FULL_MASK, v, 1);
    a.out[threadIdx.x] = v;
}

// Writes one float past the launch's dynamic shared memory (n floats).
extern "C" __global__ void shared_overflow(const SelftestArgs a) {
    float *s = dynamic_shared<float>();
    if (threadIdx.x == 0) s[a.n] = 1.0f;
}

// Reads one float past the end of `out` (n floats).
extern "C" __global__ void global_overflow(const SelftestArgs a) {
    if (threadIdx.x == 0) a.out[0] = a.out[a.n];
}

// Correct code: each thread writes its value to shared memory, a barrier, then each reads its
// neighbour's; lane sums by shuffles; a ballot of odd lanes. out[t] = neighbour + warp sum + ballot bits.
extern "C" __global__ void barrier_and_shuffles(const SelftestArgs a) {
    __shared__ float s[1024];
    const unsigned int t = threadIdx.x, n = blockDim.x;
    s[t] = (float)t;
    __syncthreads();
    const float neighbour = s[(t + 1) % n];
    float sum = (float)t;
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(FULL_MASK, sum, o);
    const unsigned int odd = __ballot_sync(FULL_MASK, t % 2);
    const int any = __syncthreads_or(t == n - 1);
    const int count = __syncthreads_count(t < 5);
    a.out[blockIdx.x * n + t] = neighbour + sum + (float)__popc(odd) + (float)any + (float)count;
}

// out[blockIdx.x] = the rank at which the block ran (a counter in out[n − 1]).
extern "C" __global__ void block_order(const SelftestArgs a) {
    if (threadIdx.x == 0) {
        unsigned int *counter = reinterpret_cast<unsigned int *>(a.out + a.n - 1);
        a.out[blockIdx.x] = (float)atomicAdd(counter, 1u);
    }
}
