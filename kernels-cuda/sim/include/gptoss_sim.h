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
#define __align__(n) alignas(n)
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
struct dim3 {
    unsigned int x, y, z;
};

namespace gptoss_sim {

// ---- the runtime (sim/runtime.cpp) -----------------------------------------------------------

// A call site of a collective: where a barrier or warp operation is, for the misuse checks.
struct Site {
    const char *file;
    int line;
};

const uint3 &thread_idx();
const uint3 &block_idx();
const dim3 &block_dim();
const dim3 &grid_dim();
unsigned char *dynamic_shared_memory();

enum class Reduce { None, Or, And, Count };
int barrier(Site site, Reduce reduce, int predicate);

enum class Shuffle { Index, Xor, Up, Down, Ballot, Sync };
unsigned long long warp_collective(Site site, Shuffle kind, unsigned int mask, unsigned long long value, int lane_arg, int width);
unsigned int active_mask();

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

#define GPTOSS_SIM_SITE (::gptoss_sim::Site{__FILE__, __LINE__})

// ---- built-in variables ---------------------------------------------------------------------

#define threadIdx (::gptoss_sim::thread_idx())
#define blockIdx (::gptoss_sim::block_idx())
#define blockDim (::gptoss_sim::block_dim())
#define gridDim (::gptoss_sim::grid_dim())
#define warpSize 32

// ---- barriers and warp collectives ----------------------------------------------------------

#define __syncthreads() ((void)::gptoss_sim::sync_block(GPTOSS_SIM_SITE, ::gptoss_sim::Reduce::None, 0))
#define __syncthreads_or(p) (::gptoss_sim::sync_block(GPTOSS_SIM_SITE, ::gptoss_sim::Reduce::Or, (p) != 0))
#define __syncthreads_and(p) (::gptoss_sim::sync_block(GPTOSS_SIM_SITE, ::gptoss_sim::Reduce::And, (p) != 0))
#define __syncthreads_count(p) (::gptoss_sim::sync_block(GPTOSS_SIM_SITE, ::gptoss_sim::Reduce::Count, (p) != 0))
#define __syncwarp(...) ((void)::gptoss_sim::shuffle(GPTOSS_SIM_SITE, ::gptoss_sim::Shuffle::Sync, (0xffffffffu, ##__VA_ARGS__), 0u, 0, 32))
#define __shfl_sync(mask, v, src, ...) ::gptoss_sim::shuffle(GPTOSS_SIM_SITE, ::gptoss_sim::Shuffle::Index, (mask), (v), (src), (32, ##__VA_ARGS__))
#define __shfl_xor_sync(mask, v, m, ...) ::gptoss_sim::shuffle(GPTOSS_SIM_SITE, ::gptoss_sim::Shuffle::Xor, (mask), (v), (m), (32, ##__VA_ARGS__))
#define __shfl_up_sync(mask, v, d, ...) ::gptoss_sim::shuffle(GPTOSS_SIM_SITE, ::gptoss_sim::Shuffle::Up, (mask), (v), (int)(d), (32, ##__VA_ARGS__))
#define __shfl_down_sync(mask, v, d, ...) ::gptoss_sim::shuffle(GPTOSS_SIM_SITE, ::gptoss_sim::Shuffle::Down, (mask), (v), (int)(d), (32, ##__VA_ARGS__))
#define __ballot_sync(mask, p) ((unsigned int)::gptoss_sim::shuffle(GPTOSS_SIM_SITE, ::gptoss_sim::Shuffle::Ballot, (mask), (unsigned int)((p) != 0), 0, 32))
#define __activemask() (::gptoss_sim::active_mask())

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
