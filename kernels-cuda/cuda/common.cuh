// Device helpers shared by the kernels: warp reductions, streaming loads, weight-format decode.
//
// Weight formats are traits (`FmtF32`, `FmtBf16`, `FmtI8`, `FmtI4`, `FmtMf4`) with one question
// each: how 16 bytes of a row decode to E consecutive f32 values and what scale multiplies them.
// Every GEMV-shaped kernel (matmul, qkv_rope, router, experts) walks rows in 16-byte chunks
// through these traits, so each format's decode exists exactly once.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "args.h"
#include "ptx.cuh"

#define GPTOSS_WARP GPTOSS_WARP_THREADS
#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

__device__ __forceinline__ float bf16_lo(unsigned int w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ float bf16_bits(unsigned short b) { return __uint_as_float(((unsigned int)b) << 16); }

// Round-to-nearest-even, as the CPU backend stores bf16.
__device__ __forceinline__ unsigned short f32_to_bf16_bits(float f) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

// v ≈ hi + lo, two bf16 (round-to-nearest-even): how the tensor-core kernels read f32
// activations (split.cu). An infinity is carried by hi alone (inf − inf would put a NaN in lo).
__device__ __forceinline__ void bf16_split(float v, unsigned short &hi, unsigned short &lo) {
    hi = f32_to_bf16_bits(v);
    lo = isinf(v) ? 0 : f32_to_bf16_bits(v - bf16_bits(hi));
}

// 2^(e - 127) for an E8M0 byte, times 2^extra; exact (e = 0 gives 2^-127, a subnormal).
__device__ __forceinline__ float e8m0(unsigned int e, int extra) {
    return ldexpf(1.0f, (int)e - 127 + extra);
}

// Two FP4 (E2M1) codes, at bits 0..3 and 16..19 of `t`, to two f32 values times 2^-14: the
// code's sign goes to half bit 15 and its exponent-mantissa bits to half bits 9..11, which is
// exactly the code's value scaled by 2^-14 as an IEEE half (subnormals included); the half to
// float conversion is exact. Callers fold 2^14 into the block scale.
__device__ __forceinline__ float2 fp4x2_scaled(unsigned int t) {
    unsigned int u = (t & 0x000f000fu) << 9;
    unsigned int h = (u | (u << 3)) & 0x8e008e00u;
    return __half22float2(*reinterpret_cast<__half2 *>(&h));
}

// ---- formats: E elements per 16-byte chunk --------------------------------------------------

// Formats without a per-row or per-chunk scale.
struct Unscaled {
    __device__ static float row_scale(const GptossWeight &, const unsigned char *, unsigned int) { return 1.0f; }
    __device__ static float chunk_scale(const GptossWeight &, const unsigned char *, unsigned int, unsigned int) { return 1.0f; }
};

struct FmtF32 : Unscaled {
    static constexpr int E = 4;
    __device__ static void decode(uint4 v, float (&w)[E]) {
        w[0] = __uint_as_float(v.x), w[1] = __uint_as_float(v.y), w[2] = __uint_as_float(v.z), w[3] = __uint_as_float(v.w);
    }
    __device__ static float element(const unsigned char *row, unsigned int c) { return reinterpret_cast<const float *>(row)[c]; }
    __host__ __device__ static constexpr unsigned int row_bytes(unsigned int cols) { return cols * 4; }
};

struct FmtBf16 : Unscaled {
    static constexpr int E = 8;
    __device__ static void decode(uint4 v, float (&w)[E]) {
        w[0] = bf16_lo(v.x), w[1] = bf16_hi(v.x), w[2] = bf16_lo(v.y), w[3] = bf16_hi(v.y);
        w[4] = bf16_lo(v.z), w[5] = bf16_hi(v.z), w[6] = bf16_lo(v.w), w[7] = bf16_hi(v.w);
    }
    __device__ static float element(const unsigned char *row, unsigned int c) {
        return bf16_bits(reinterpret_cast<const unsigned short *>(row)[c]);
    }
    __host__ __device__ static constexpr unsigned int row_bytes(unsigned int cols) { return cols * 2; }
};

// Int8 with one f32 scale per row, applied once after the row's dot product.
struct FmtI8 {
    static constexpr int E = 16;
    __device__ static float row_scale(const GptossWeight &, const unsigned char *scales, unsigned int r) {
        return reinterpret_cast<const float *>(scales)[r];
    }
    __device__ static float chunk_scale(const GptossWeight &, const unsigned char *, unsigned int, unsigned int) { return 1.0f; }
    __device__ static void decode(uint4 v, float (&w)[E]) {
        const unsigned int words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int b = 0; b < 4; b++) w[4 * i + b] = (float)(signed char)(words[i] >> (8 * b));
        }
    }
    __device__ static float element(const unsigned char *row, unsigned int c) { return (float)(signed char)row[c]; }
    __host__ __device__ static constexpr unsigned int row_bytes(unsigned int cols) { return cols; }
};

// Int4: 32 codes per chunk (low nibble = even element), one bf16 scale per group of 32..128
// inputs, so a chunk never straddles two groups.
struct FmtI4 {
    static constexpr int E = 32;
    __device__ static float row_scale(const GptossWeight &, const unsigned char *, unsigned int) { return 1.0f; }
    __device__ static float chunk_scale(const GptossWeight &w, const unsigned char *scales, unsigned int r, unsigned int chunk) {
        // Groups are powers of two (32, 64, 128): shifts, not divisions.
        const unsigned int shift = __ffs(w.group) - 1;
        return bf16_bits(reinterpret_cast<const unsigned short *>(scales)[((r * w.cols) >> shift) + ((chunk * 32) >> shift)]);
    }
    __device__ static void decode(uint4 v, float (&w)[E]) {
        const unsigned int words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                // Codes k and k + 4 of the word into the mantissas of two halves of 1024 + code
                // (0x6400 is 1024.0); minus 1032 is exactly code − 8.
                unsigned int h = ((words[i] >> (4 * k)) & 0x000f000fu) | 0x64006400u;
                float2 p = __half22float2(*reinterpret_cast<__half2 *>(&h));
                w[8 * i + k] = p.x - 1032.0f;
                w[8 * i + k + 4] = p.y - 1032.0f;
            }
        }
    }
    __host__ __device__ static constexpr unsigned int row_bytes(unsigned int cols) { return cols / 2; }
};

// MXFP4: one 16-byte block of 32 codes and one E8M0 scale per chunk. The decode yields the
// values times 2^-14 (see fp4x2_scaled), so the chunk scale carries 2^14.
struct FmtMf4 {
    static constexpr int E = 32;
    __device__ static float row_scale(const GptossWeight &, const unsigned char *, unsigned int) { return 1.0f; }
    __device__ static float chunk_scale(const GptossWeight &w, const unsigned char *scales, unsigned int r, unsigned int chunk) {
        return e8m0(scales[r * (w.cols / 32) + chunk], 14);
    }
    __device__ static void decode(uint4 v, float (&w)[E]) {
        const unsigned int words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            // Nibble k of a word is element 8i + k; shifting by 4k brings elements k and k + 4
            // to bits 0..3 and 16..19.
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 p = fp4x2_scaled(words[i] >> (4 * k));
                w[8 * i + k] = p.x;
                w[8 * i + k + 4] = p.y;
            }
        }
    }
    __host__ __device__ static constexpr unsigned int row_bytes(unsigned int cols) { return cols / 2; }
};

// ---- KV cache elements: bf16 bits (round-to-nearest-even) or f32 ----------------------------

template <class KV>
struct KvStore;
template <>
struct KvStore<unsigned short> {
    __device__ static void put(unsigned short *p, float v) { *p = f32_to_bf16_bits(v); }
    __device__ static float get(const unsigned short *p) { return bf16_bits(*p); }
    // Eight consecutive elements from a 16-byte aligned address.
    __device__ static void get8(const unsigned short *p, float (&o)[8]) {
        float w[8];
        FmtBf16::decode(*reinterpret_cast<const uint4 *>(p), w);
#pragma unroll
        for (int i = 0; i < 8; i++) o[i] = w[i];
    }
};
template <>
struct KvStore<float> {
    __device__ static void put(float *p, float v) { *p = v; }
    __device__ static float get(const float *p) { return *p; }
    __device__ static void get8(const float *p, float (&o)[8]) {
        const float4 a = reinterpret_cast<const float4 *>(p)[0], b = reinterpret_cast<const float4 *>(p)[1];
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w, o[4] = b.x, o[5] = b.y, o[6] = b.z, o[7] = b.w;
    }
};

// ---- row dot products -----------------------------------------------------------------------

// Expert e's data and scales: at a fixed stride, or where the stack's table says.
__device__ __forceinline__ const unsigned char *expert_data(const GptossWeight &w, unsigned int e) {
    if (w.table) return reinterpret_cast<const unsigned char *>(w.table[2 * e]);
    return static_cast<const unsigned char *>(w.data) + (unsigned long long)e * w.data_stride;
}
__device__ __forceinline__ const unsigned char *expert_scales(const GptossWeight &w, unsigned int e) {
    if (w.table) return reinterpret_cast<const unsigned char *>(w.table[2 * e + 1]);
    return w.scales ? static_cast<const unsigned char *>(w.scales) + (unsigned long long)e * w.scale_stride : nullptr;
}

// Chunks each lane issues before consuming any: several 16-byte loads in flight per lane
// (Little's law: ~15 KB per SM in flight to saturate HBM).
#define GPTOSS_UNROLL 4

// R rows of one matrix (row indices r[q]) against NT tokens: this lane's share of
// `acc[q][t] += Σ_c W[r[q], c] x[t, c]`. The R·chunks 16-byte chunks are dealt round-robin to
// the lanes as one flat task list, so a short row (MXFP4 K = 2880 is 90 chunks) still keeps
// every lane busy and loads for both rows of a pair are in flight together. Rows and
// activations must be 16-byte aligned (`vector_ok`).
template <class F, int R, int NT>
__device__ __forceinline__ void lane_dot_rows(const GptossWeight &w, const unsigned char *data, const unsigned char *scales,
                                              const unsigned int (&r)[R], const float *xs, unsigned int x_stride, unsigned int nt,
                                              float (&acc)[R][NT]) {
    const unsigned int chunks = w.cols / F::E;
    const unsigned int tasks = R * chunks;
    const unsigned long long row_bytes = F::row_bytes(w.cols);
    for (unsigned int t0 = threadIdx.x % GPTOSS_WARP; t0 < tasks; t0 += GPTOSS_WARP * GPTOSS_UNROLL) {
        uint4 v[GPTOSS_UNROLL];
#pragma unroll
        for (int u = 0; u < GPTOSS_UNROLL; u++) {
            unsigned int task = t0 + u * GPTOSS_WARP;
            if (task < tasks) {
                unsigned int q = R == 1 ? 0 : task / chunks, c = task - q * chunks;
                unsigned int row = r[0];
#pragma unroll
                for (int i = 1; i < R; i++) row = q == (unsigned int)i ? r[i] : row;
                v[u] = ld_stream(data + row * row_bytes + 16ull * c);
            }
        }
#pragma unroll
        for (int u = 0; u < GPTOSS_UNROLL; u++) {
            unsigned int task = t0 + u * GPTOSS_WARP;
            if (task >= tasks) continue;
            unsigned int q = R == 1 ? 0 : task / chunks, c = task - q * chunks;
            unsigned int row = r[0];
#pragma unroll
            for (int i = 1; i < R; i++) row = q == (unsigned int)i ? r[i] : row;
            float wv[F::E];
            F::decode(v[u], wv);
            float s = F::chunk_scale(w, scales, row, c);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= (int)nt) continue;
                const float4 *x4 = reinterpret_cast<const float4 *>(xs + (unsigned long long)t * x_stride + c * F::E);
                float part = 0.0f;
#pragma unroll
                for (int e = 0; e < F::E / 4; e++) {
                    float4 xv = __ldg(x4 + e);
                    part = fmaf(wv[4 * e], xv.x, part);
                    part = fmaf(wv[4 * e + 1], xv.y, part);
                    part = fmaf(wv[4 * e + 2], xv.z, part);
                    part = fmaf(wv[4 * e + 3], xv.w, part);
                }
                // Static indices only (a run-time index would put acc in local memory).
#pragma unroll
                for (int i = 0; i < R; i++)
                    if (q == (unsigned int)i) acc[i][t] = fmaf(part, s, acc[i][t]);
            }
        }
    }
}

// The same for rows that are not 16-byte aligned (f32, bf16, int8 of awkward widths):
// element by element, lanes striding over columns.
template <class F, int R, int NT>
__device__ __forceinline__ void lane_dot_rows_scalar(const GptossWeight &w, const unsigned char *data, const unsigned int (&r)[R],
                                                     const float *xs, unsigned int x_stride, unsigned int nt, float (&acc)[R][NT]) {
#pragma unroll
    for (int i = 0; i < R; i++) {
        const unsigned char *row = data + (unsigned long long)r[i] * F::row_bytes(w.cols);
        for (unsigned int c = threadIdx.x % GPTOSS_WARP; c < w.cols; c += GPTOSS_WARP) {
            float wv = F::element(row, c);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= (int)nt) continue;
                acc[i][t] = fmaf(wv, __ldg(xs + (unsigned long long)t * x_stride + c), acc[i][t]);
            }
        }
    }
}

// True when every row of `w` and every activation row start on 16-byte boundaries.
template <class F>
__device__ __forceinline__ bool vector_ok(const GptossWeight &w) {
    return w.cols % F::E == 0 && F::row_bytes(w.cols) % 16 == 0 && w.cols % 4 == 0;
}

// Warp-wide dot products of rows r[0..R) of expert e with NT tokens (`xs`, rows `x_stride`
// floats apart, nt ≤ NT of them valid), row scales applied; every lane ends with all sums.
template <class F, int R, int NT>
__device__ __forceinline__ void warp_rows_dot(const GptossWeight &w, unsigned int e, const unsigned int (&r)[R], const float *xs,
                                              unsigned int x_stride, unsigned int nt, float (&acc)[R][NT]) {
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[i][t] = 0.0f;
    const unsigned char *data = expert_data(w, e);
    const unsigned char *scales = expert_scales(w, e);
    if constexpr (F::E >= 32) {
        // int4 and MXFP4 rows are whole 16-byte blocks by construction (cols % 32 == 0).
        lane_dot_rows<F, R, NT>(w, data, scales, r, xs, x_stride, nt, acc);
    } else {
        if (vector_ok<F>(w))
            lane_dot_rows<F, R, NT>(w, data, scales, r, xs, x_stride, nt, acc);
        else
            lane_dot_rows_scalar<F, R, NT>(w, data, r, xs, x_stride, nt, acc);
    }
#pragma unroll
    for (int i = 0; i < R; i++) {
        float rs = F::row_scale(w, scales, r[i]);
#pragma unroll
        for (int t = 0; t < NT; t++) acc[i][t] = warp_sum(acc[i][t]) * rs;
    }
}

// Bias of row r of expert e (0 without a bias).
__device__ __forceinline__ float bias_at(const GptossWeight &w, unsigned int e, unsigned int r) {
    return w.bias ? w.bias[(unsigned long long)e * w.rows + r] : 0.0f;
}

// Records a bad device-side input (see args.h); the host reports it at the next synchronize.
__device__ __forceinline__ void report(unsigned int *status, unsigned int bit) {
    if (status) atomicOr(status, bit);
}

// Tokens per pass of the GEMV kernels: the weights are streamed once per NT tokens. 32-element
// chunks (int4, MXFP4) hold half as many tokens' activations in registers to stay unspilled.
template <class F>
__host__ __device__ constexpr int tokens_per_pass() {
    return F::E >= 32 ? 2 : 4;
}
