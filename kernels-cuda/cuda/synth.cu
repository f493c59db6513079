// Synthetic tensors materialised in device memory, bit-identical to engine/src/synth.rs:
// word(j) = mix(stream + (j + 1) * GOLDEN); bf16/f32 element i takes word(i), byte i takes
// byte i % 8 (little-endian) of word(i / 8).
//
// Parallel strategy: one thread per word, grid-stride; no communication. The float rule is
// computed with explicitly rounded operations (__fmul_rn, __fadd_rn) so that no fused
// multiply-add changes a value, and rounded to bf16 to nearest-even, as the CPU does.
#include "common.cuh"

#define GOLDEN 0x9E3779B97F4A7C15ull

__device__ __forceinline__ unsigned long long mix(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ unsigned long long word(unsigned long long stream, unsigned long long j) {
    return mix(stream + (j + 1) * GOLDEN);
}

// bf16(center + half_width * (2u - 1)), u = (w >> 40) * 2^-24.
__device__ __forceinline__ unsigned short uniform_bf16(const GptossSynthArgs &a, unsigned long long w) {
    const float u = __fmul_rn((float)(w >> 40), 1.0f / 16777216.0f);
    const float t = __fadd_rn(__fmul_rn(u, 2.0f), -1.0f);  // exact: u has 24 significant bits
    return f32_to_bf16_bits(__fadd_rn(a.center, __fmul_rn(a.half_width, t)));
}

#define GRID_STRIDE(i, n) \
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < (n); i += (unsigned long long)gridDim.x * blockDim.x)

extern "C" __global__ void __launch_bounds__(GPTOSS_COPY_THREADS) synth_bf16(const GptossSynthArgs a) {
    GRID_STRIDE(i, a.len) { static_cast<unsigned short *>(a.out)[i] = uniform_bf16(a, word(a.stream, i)); }
}

extern "C" __global__ void __launch_bounds__(GPTOSS_COPY_THREADS) synth_f32(const GptossSynthArgs a) {
    GRID_STRIDE(i, a.len) { static_cast<float *>(a.out)[i] = bf16_bits(uniform_bf16(a, word(a.stream, i))); }
}

// Raw bytes (span == 0) or lo + byte % span; one word (8 bytes) per thread.
extern "C" __global__ void __launch_bounds__(GPTOSS_COPY_THREADS) synth_bytes(const GptossSynthArgs a) {
    unsigned char *out = static_cast<unsigned char *>(a.out);
    GRID_STRIDE(j, (a.len + 7) / 8) {
        const unsigned long long w = word(a.stream, j);
#pragma unroll
        for (int b = 0; b < 8; b++) {
            const unsigned long long i = 8 * j + b;
            if (i >= a.len) break;
            unsigned int byte = (unsigned int)(w >> (8 * b)) & 0xffu;
            out[i] = (unsigned char)(a.span ? a.lo + byte % a.span : byte);
        }
    }
}
