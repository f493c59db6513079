// What the kernels in `cuda/*.cu` use of CUDA, for the C++ host build that runs them on the
// CPU (the emulator): qualifiers, built-in variables and vector types, barriers, warp
// collectives, atomics, loads, fences and the math intrinsics. Force-included before every
// `.cu` file (`-include gptoss_sim.h`); `cuda_bf16.h` and `cuda_fp16.h` beside it stand in for
// the toolkit's. The runtime behind the calls (fibers, blocks, misuse checks) is
// `sim/runtime.cpp`; its rules are in `kernels-cuda/README.md`.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// ---- qualifiers -----------------------------------------------------------------------------

// (The build defines `__global__` as a marker when it scans a file for its kernels.)
#ifndef __global__
#define __global__
#endif
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Block-scope `thread_local` variables have static storage, one per OS thread: the threads of a
// block run as fibers on one OS thread, so they share it, and blocks on other OS threads have
// their own. (Dynamic shared memory is reached through `dynamic_shared<T>()`, `cuda/ptx.cuh`.)
#define __shared__ thread_local

// ---- vector types ---------------------------------------------------------------------------

struct alignas(8) uint2 {
    unsigned int x, y;
};
struct alignas(16) uint4 {
    unsigned int x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct uint3 {
    unsigned int x, y, z;
};
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return uint4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
struct dim3 {
    unsigned int x, y, z;
};

namespace gptoss_sim {

// ---- the runtime (sim/runtime.cpp) -----------------------------------------------------------

// A call site of a collective: where a barrier or warp operation is, for the misuse checks.
struct Site {
    const char *file;
    int line;
    // As a default argument, the line of the call (GCC takes a braced `Site{__builtin_LINE()}`
    // from the default argument's own line; nested defaults are taken where the call is).
    static Site caller(const char *file = __builtin_FILE(), int line = __builtin_LINE()) { return Site{file, line}; }
};

const uint3 &thread_idx();
// The calling thread's lane in its warp.
unsigned int thread_lane();
const uint3 &block_idx();
const dim3 &block_dim();
const dim3 &grid_dim();
unsigned char *dynamic_shared_memory();

enum class Reduce { None, Or, And, Count };
int barrier(Site site, Reduce reduce, int predicate);

enum class Shuffle { Index, Xor, Up, Down, Ballot, Sync, Exchange };
unsigned long long warp_collective(Site site, Shuffle kind, unsigned int mask, unsigned long long value, int lane_arg, int width);
unsigned int active_mask();
// Every lane of the warp gives `bytes` at `mine`; when all 32 have, each gets all of them, lane
// by lane, in `all` (32 × bytes): how a warp-wide instruction (mma, ldmatrix) sees its operands.
void warp_exchange(Site site, const void *mine, unsigned bytes, void *all);
// cp.async: `src_bytes` (≤ `bytes`) from `src` into `dst`, the rest zero-filled, when a later
// wait covers the group it was committed in (not before: reading `dst` early reads old data).
void cp_async(void *dst, const void *src, unsigned src_bytes, unsigned bytes);
void cp_async_commit();
// Completes every committed group but the `pending` most recent.
void cp_async_wait(int pending);

// A compiler barrier: memory written before a collective is not kept in registers past it (the
// other fibers of the block may read or write it meanwhile).
inline void clobber() { __asm__ __volatile__("" ::: "memory"); }

template <class T>
inline unsigned long long bits_of(T v) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "warp shuffles move 4- or 8-byte values");
    unsigned long long b = 0;
    memcpy(&b, &v, sizeof(T));
    return b;
}

template <class T>
inline T from_bits(unsigned long long b) {
    T v;
    memcpy(&v, &b, sizeof(T));
    return v;
}

template <class T>
inline T shuffle(Site site, Shuffle kind, unsigned int mask, T v, int lane_arg, int width) {
    clobber();
    T r = from_bits<T>(warp_collective(site, kind, mask, bits_of(v), lane_arg, width));
    clobber();
    return r;
}

inline int sync_block(Site site, Reduce reduce, int predicate) {
    clobber();
    int r = barrier(site, reduce, predicate);
    clobber();
    return r;
}

}  // namespace gptoss_sim

// The call site of the function whose default argument this is (the kernel line that called a
// wrapper of `cuda/ptx.cuh`).
#define GPTOSS_SIM_CALLER (::gptoss_sim::Site::caller())

// ---- built-in variables ---------------------------------------------------------------------

#define threadIdx (::gptoss_sim::thread_idx())
#define blockIdx (::gptoss_sim::block_idx())
#define blockDim (::gptoss_sim::block_dim())
#define gridDim (::gptoss_sim::grid_dim())
#define warpSize 32

// ---- barriers and warp collectives ----------------------------------------------------------
// Functions whose last parameter defaults to the caller's line, so the emulator knows where each
// thread waits.

inline void __syncthreads(gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    gptoss_sim::sync_block(site, gptoss_sim::Reduce::None, 0);
}
inline int __syncthreads_or(int p, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::sync_block(site, gptoss_sim::Reduce::Or, p != 0);
}
inline int __syncthreads_and(int p, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::sync_block(site, gptoss_sim::Reduce::And, p != 0);
}
inline int __syncthreads_count(int p, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::sync_block(site, gptoss_sim::Reduce::Count, p != 0);
}
inline void __syncwarp(unsigned int mask = 0xffffffffu, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    gptoss_sim::shuffle(site, gptoss_sim::Shuffle::Sync, mask, 0u, 0, 32);
}
template <class T>
inline T __shfl_sync(unsigned int mask, T v, int src, int width = 32, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::shuffle(site, gptoss_sim::Shuffle::Index, mask, v, src, width);
}
template <class T>
inline T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = 32, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::shuffle(site, gptoss_sim::Shuffle::Xor, mask, v, lane_mask, width);
}
template <class T>
inline T __shfl_up_sync(unsigned int mask, T v, unsigned int delta, int width = 32, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::shuffle(site, gptoss_sim::Shuffle::Up, mask, v, (int)delta, width);
}
template <class T>
inline T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int width = 32, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::shuffle(site, gptoss_sim::Shuffle::Down, mask, v, (int)delta, width);
}
inline unsigned int __ballot_sync(unsigned int mask, int p, gptoss_sim::Site site = GPTOSS_SIM_CALLER) {
    return gptoss_sim::shuffle(site, gptoss_sim::Shuffle::Ballot, mask, (unsigned int)(p != 0), 0, 32);
}
inline unsigned int __activemask() { return gptoss_sim::active_mask(); }

// ---- bit casts ------------------------------------------------------------------------------

inline float __uint_as_float(unsigned int u) { return gptoss_sim::from_bits<float>(u); }
inline unsigned int __float_as_uint(float f) { return (unsigned int)gptoss_sim::bits_of(f); }

// ---- fences, loads and atomics --------------------------------------------------------------
// Blocks run on several OS threads at once, so global memory is shared between them as on a
// GPU: atomics are the compiler's atomic builtins (sequentially consistent), fences full fences.

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <class T>
inline T __ldg(const T *p) {
    return *p;
}
// A load through L2 of data another block wrote (before a fence and an atomic): an atomic load
// of scalars, so that it is ordered after the fence.
inline float __ldcg(const float *p) { return __uint_as_float(__atomic_load_n(reinterpret_cast<const unsigned int *>(p), __ATOMIC_RELAXED)); }
inline unsigned int __ldcg(const unsigned int *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline double __ldcg(const double *p) {
    unsigned long long b = __atomic_load_n(reinterpret_cast<const unsigned long long *>(p), __ATOMIC_RELAXED);
    return gptoss_sim::from_bits<double>(b);
}

inline unsigned int atomicAdd(unsigned int *p, unsigned int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline float atomicAdd(float *p, float v) {
    unsigned int *u = reinterpret_cast<unsigned int *>(p);
    unsigned int old = __atomic_load_n(u, __ATOMIC_SEQ_CST);
    for (;;) {
        const unsigned int next = __float_as_uint(__uint_as_float(old) + v);
        if (__atomic_compare_exchange_n(u, &old, next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) break;
    }
    return gptoss_sim::from_bits<float>(old);
}
inline unsigned int atomicOr(unsigned int *p, unsigned int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline unsigned int atomicMax(unsigned int *p, unsigned int v) {
    unsigned int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
inline int atomicMax(int *p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
inline unsigned int atomicCAS(unsigned int *p, unsigned int expected, unsigned int desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long expected, unsigned long long desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}

// ---- integer and float intrinsics -----------------------------------------------------------
// The build uses -ffp-contract=off: every operation rounds as written, as the device's `_rn`
// intrinsics do. `expf`, `sqrtf`, `sincos`, `exp` are the host's (glibc: within 1 ulp), where
// the device's full-precision functions are within 2 ulp (`expf`) or correctly rounded
// (`sqrtf`): results agree within the budgets of `tests/ops`, not bit for bit. The fast
// approximations (`__expf`, `__sinf`, …) are not provided: no kernel uses them.

inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffs(unsigned int x) { return __builtin_ffs((int)x); }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }

inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }

// ---- tensor-core instructions (`cuda/ptx.cuh` calls these on the host) ------------------------
// Warp-collective as on the device: the 32 lanes exchange their fragments, then each computes
// its part of the result from the whole tile, by the PTX ISA's per-lane fragment layouts.

namespace gptoss_sim {

inline float bf16_lo_of(unsigned int w) { return __uint_as_float(w << 16); }
inline float bf16_hi_of(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D = A·B + C, A 16×16 (row), B 16×8
// (col), C and D 16×8 f32. Lane l, group g = l / 4, t = l % 4, holds
//   A: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..);
//   B: b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g);  C, D: c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, ..),
// each 32-bit register two bf16, the lower index in the low half. Products of bf16 are exact in
// f32; the sum runs over k in order with f32 fused multiply-adds.
inline void mma_bf16_16816(float (&d)[4], const unsigned int (&a)[4], const unsigned int (&b)[2], const float (&c)[4], Site site) {
    struct Fragments {
        unsigned int a[4], b[2];
    } mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}}, all[32];
    clobber();
    warp_exchange(site, &mine, sizeof mine, all);
    clobber();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        const unsigned int *fa = all[l].a, *fb = all[l].b;
        A[g][2 * t] = bf16_lo_of(fa[0]), A[g][2 * t + 1] = bf16_hi_of(fa[0]);
        A[g + 8][2 * t] = bf16_lo_of(fa[1]), A[g + 8][2 * t + 1] = bf16_hi_of(fa[1]);
        A[g][2 * t + 8] = bf16_lo_of(fa[2]), A[g][2 * t + 9] = bf16_hi_of(fa[2]);
        A[g + 8][2 * t + 8] = bf16_lo_of(fa[3]), A[g + 8][2 * t + 9] = bf16_hi_of(fa[3]);
        B[2 * t][g] = bf16_lo_of(fb[0]), B[2 * t + 1][g] = bf16_hi_of(fb[0]);
        B[2 * t + 8][g] = bf16_lo_of(fb[1]), B[2 * t + 9][g] = bf16_hi_of(fb[1]);
    }
    const unsigned int lane = thread_lane();
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
        const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        float acc = c[i];
        for (int k = 0; k < 16; k++) acc = fmaf(A[row][k], B[k][col], acc);
        d[i] = acc;
    }
}

// ldmatrix.sync.aligned.m8n8.x{X}[.trans].shared.b16: lanes 8i..8i+7 give the rows of matrix i
// (8 b16 each); lane l gets, of each matrix, the pair (row l/4, cols 2(l%4)..+1), or with .trans
// the pair (rows 2(l%4)..+1, col l/4).
template <int X, bool TRANS>
inline void ldmatrix(unsigned int (&r)[X], const void *row, Site site) {
    const unsigned short *mine = static_cast<const unsigned short *>(row);
    const unsigned short *rows[32];
    clobber();
    warp_exchange(site, &mine, sizeof mine, rows);
    clobber();
    const unsigned int lane = thread_lane();
    for (int i = 0; i < X; i++) {
        const unsigned short *const *m = rows + 8 * i;
        unsigned int lo, hi;
        if (TRANS) {
            lo = m[2 * (lane % 4)][lane / 4], hi = m[2 * (lane % 4) + 1][lane / 4];
        } else {
            lo = m[lane / 4][2 * (lane % 4)], hi = m[lane / 4][2 * (lane % 4) + 1];
        }
        r[i] = lo | (hi << 16);
    }
}

}  // namespace gptoss_sim
