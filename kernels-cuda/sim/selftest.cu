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

// ---- tensor-core primitives -------------------------------------------------------------------

struct TileArgs {
    const unsigned short *a;  // bf16 A 16×16, row-major
    const unsigned short *b;  // bf16 B 16×8: [n][k] (8 rows of 16) for `mma_tile`, [k][n] for `mma_tile_trans`
    const float *c;           // f32 C 16×8, row-major
    float *d;                 // f32 D 16×8, row-major
};

// D = A·B + C with A and B loaded by ldmatrix from shared memory, as a GEMM's inner loop does.
extern "C" __global__ void mma_tile(const TileArgs p) {
    __shared__ __align__(16) unsigned short as[16][16];
    __shared__ __align__(16) unsigned short bs[8][16];
    const unsigned int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    for (unsigned int i = lane; i < 256; i += 32) as[i / 16][i % 16] = p.a[i];
    for (unsigned int i = lane; i < 128; i += 32) bs[i / 16][i % 16] = p.b[i];
    __syncwarp();
    unsigned int a[4], b[2];
    // Lanes 0-7: rows 0-7 at k 0; 8-15: rows 8-15 at k 0; 16-23: rows 0-7 at k 8; 24-31: rows 8-15 at k 8.
    ldmatrix_x4(a, &as[lane % 16][(lane / 16) * 8]);
    // Lanes 0-7: n rows 0-7 at k 0; 8-15: at k 8.
    ldmatrix_x2(b, &bs[lane % 8][(lane / 8 % 2) * 8]);
    const float c[4] = {p.c[g * 8 + 2 * t], p.c[g * 8 + 2 * t + 1], p.c[(g + 8) * 8 + 2 * t], p.c[(g + 8) * 8 + 2 * t + 1]};
    float d[4];
    mma_bf16_16816(d, a, b, c);
    p.d[g * 8 + 2 * t] = d[0], p.d[g * 8 + 2 * t + 1] = d[1];
    p.d[(g + 8) * 8 + 2 * t] = d[2], p.d[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// The same with B stored [k][n] and loaded transposed (as attention's P·V loads V).
extern "C" __global__ void mma_tile_trans(const TileArgs p) {
    __shared__ __align__(16) unsigned short as[16][16];
    __shared__ __align__(16) unsigned short bs[16][8];
    const unsigned int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    for (unsigned int i = lane; i < 256; i += 32) as[i / 16][i % 16] = p.a[i];
    for (unsigned int i = lane; i < 128; i += 32) bs[i / 8][i % 8] = p.b[i];
    __syncwarp();
    unsigned int a[4], b[2];
    ldmatrix_x4(a, &as[lane % 16][(lane / 16) * 8]);
    // Lanes 0-7: k rows 0-7; 8-15: k rows 8-15 (each row 8 n values).
    ldmatrix_x2_trans(b, &bs[lane % 16][0]);
    const float c[4] = {p.c[g * 8 + 2 * t], p.c[g * 8 + 2 * t + 1], p.c[(g + 8) * 8 + 2 * t], p.c[(g + 8) * 8 + 2 * t + 1]};
    float d[4];
    mma_bf16_16816(d, a, b, c);
    p.d[g * 8 + 2 * t] = d[0], p.d[g * 8 + 2 * t + 1] = d[1];
    p.d[(g + 8) * 8 + 2 * t] = d[2], p.d[(g + 8) * 8 + 2 * t + 1] = d[3];
}

struct CopyArgs {
    const unsigned char *src;  // 512 bytes
    float *out;                // 3 × 128 floats
    unsigned int tail;         // bytes each lane's copy reads (the rest zero-filled)
    unsigned int pad_;
};

// cp.async of 512 bytes (16 per lane) into shared memory: what shared memory held before the wait
// (out[0..128], as f32 words), after it (out[128..256]), and a second group's copy read after
// waiting for the first only (out[256..384]: still the old contents).
extern "C" __global__ void cp_async_tile(const CopyArgs p) {
    __shared__ __align__(16) unsigned char s[2][512];
    const unsigned int lane = threadIdx.x;
    for (unsigned int i = lane; i < 1024; i += 32) s[i / 512][i % 512] = 0x11;
    __syncwarp();
    cp_async_16(&s[0][16 * lane], p.src + 16 * lane, p.tail);
    cp_async_commit();
    cp_async_16(&s[1][16 * lane], p.src + 16 * lane, 16);
    cp_async_commit();
    const float *w0 = reinterpret_cast<const float *>(s[0]), *w1 = reinterpret_cast<const float *>(s[1]);
    for (unsigned int i = lane; i < 128; i += 32) p.out[i] = w0[i];
    __syncwarp();
    cp_async_wait<1>();
    __syncwarp();
    for (unsigned int i = lane; i < 128; i += 32) p.out[128 + i] = w0[i], p.out[256 + i] = w1[i];
    // Every lane has read the second buffer before any completes the copies into it.
    __syncwarp();
    cp_async_wait<0>();
}
