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

// ---- tensor cores -----------------------------------------------------------------------------
// On the host each wrapper takes its call site (a default argument), so the emulator can tell
// lanes at different instructions apart.
#ifdef __CUDA_ARCH__
#define GPTOSS_CALL_SITE
#define GPTOSS_SITE_ARG
#else
#define GPTOSS_CALL_SITE , gptoss_sim::Site site = GPTOSS_SIM_CALLER
#define GPTOSS_SITE_ARG , site
#endif

// D = A·B + C on a 16×8×16 tile: bf16 A (row-major) and B (column-major) fragments, f32
// accumulators (fragment layouts: the PTX ISA's, spelled out in `sim/include/gptoss_sim.h`).
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const unsigned int (&a)[4], const unsigned int (&b)[2],
                                               const float (&c)[4] GPTOSS_CALL_SITE) {
#ifdef __CUDA_ARCH__
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %11, %12, %13};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    gptoss_sim::mma_bf16_16816(d, a, b, c GPTOSS_SITE_ARG);
#endif
}

// ldmatrix: X 8×8 matrices of b16 from shared memory, each lane giving the address of one row
// (lanes 8i..8i+7: matrix i); lane l receives the pair (row l/4, cols 2(l%4)..+1) of each.
#ifdef __CUDA_ARCH__
#define GPTOSS_LDMATRIX(X, SUFFIX, OUTS, ...)                                                                     \
    const unsigned int s = (unsigned int)__cvta_generic_to_shared(row);                                           \
    asm volatile("ldmatrix.sync.aligned.m8n8.x" #X SUFFIX ".shared.b16 " OUTS ", [%" #X "];" : __VA_ARGS__ : "r"(s))
#endif

__device__ __forceinline__ void ldmatrix_x4(unsigned int (&r)[4], const void *row GPTOSS_CALL_SITE) {
#ifdef __CUDA_ARCH__
    GPTOSS_LDMATRIX(4, "", "{%0, %1, %2, %3}", "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]));
#else
    gptoss_sim::ldmatrix<4, false>(r, row GPTOSS_SITE_ARG);
#endif
}

__device__ __forceinline__ void ldmatrix_x2(unsigned int (&r)[2], const void *row GPTOSS_CALL_SITE) {
#ifdef __CUDA_ARCH__
    GPTOSS_LDMATRIX(2, "", "{%0, %1}", "=r"(r[0]), "=r"(r[1]));
#else
    gptoss_sim::ldmatrix<2, false>(r, row GPTOSS_SITE_ARG);
#endif
}

__device__ __forceinline__ void ldmatrix_x1(unsigned int (&r)[1], const void *row GPTOSS_CALL_SITE) {
#ifdef __CUDA_ARCH__
    GPTOSS_LDMATRIX(1, "", "{%0}", "=r"(r[0]));
#else
    gptoss_sim::ldmatrix<1, false>(r, row GPTOSS_SITE_ARG);
#endif
}

// The same, transposed: lane l receives the pair (rows 2(l%4)..+1, col l/4) of each matrix.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned int (&r)[4], const void *row GPTOSS_CALL_SITE) {
#ifdef __CUDA_ARCH__
    GPTOSS_LDMATRIX(4, ".trans", "{%0, %1, %2, %3}", "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]));
#else
    gptoss_sim::ldmatrix<4, true>(r, row GPTOSS_SITE_ARG);
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(unsigned int (&r)[2], const void *row GPTOSS_CALL_SITE) {
#ifdef __CUDA_ARCH__
    GPTOSS_LDMATRIX(2, ".trans", "{%0, %1}", "=r"(r[0]), "=r"(r[1]));
#else
    gptoss_sim::ldmatrix<2, true>(r, row GPTOSS_SITE_ARG);
#endif
}

__device__ __forceinline__ void ldmatrix_x1_trans(unsigned int (&r)[1], const void *row GPTOSS_CALL_SITE) {
#ifdef __CUDA_ARCH__
    GPTOSS_LDMATRIX(1, ".trans", "{%0}", "=r"(r[0]));
#else
    gptoss_sim::ldmatrix<1, true>(r, row GPTOSS_SITE_ARG);
#endif
}

// cp.async: 16 bytes from global to shared memory without going through registers, the first
// `src_bytes` (0..16) read, the rest zero-filled (ragged edges). Visible once a wait covers the
// commit group it belongs to, not before.
__device__ __forceinline__ void cp_async_16(void *smem, const void *gmem, unsigned int src_bytes) {
#ifdef __CUDA_ARCH__
    const unsigned int s = (unsigned int)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(src_bytes));
#else
    gptoss_sim::cp_async(smem, gmem, src_bytes, 16);
#endif
}

// Closes the group of the cp.asyncs issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.commit_group;");
#else
    gptoss_sim::cp_async_commit();
#endif
}

// Waits until at most `PENDING` of this thread's most recent groups are outstanding.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.wait_group %0;" ::"n"(PENDING));
#else
    gptoss_sim::cp_async_wait(PENDING);
#endif
}
