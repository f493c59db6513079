// Every use of inline PTX, and every built-in the C++ host build (the emulator, `sim/`) cannot
// express as written, goes through one small wrapper here with two bodies: the device's, and a
// host body with the same semantics. Kernels call the wrappers, never `asm` directly.
#pragma once

// A 16-byte load of data no kernel writes while the launch runs, not kept in L1 (weights are
// read once per token: they should not evict the activations). On the host: a plain load.
__device__ __forceinline__ uint4 ld_stream(const void *p) {
#ifdef __CUDA_ARCH__
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
#else
    return *static_cast<const uint4 *>(p);
#endif
}

// The block's dynamic shared memory (the launch's `shared_mem_bytes`), 16-byte aligned. On the
// host: the block's allocation, which ends at a guard page, so an access past the launch's size
// is caught.
template <class T>
__device__ __forceinline__ T *dynamic_shared() {
#ifdef __CUDA_ARCH__
    extern __shared__ __align__(16) unsigned char gptoss_dynamic_smem[];
    return reinterpret_cast<T *>(gptoss_dynamic_smem);
#else
    return reinterpret_cast<T *>(gptoss_sim::dynamic_shared_memory());
#endif
}
