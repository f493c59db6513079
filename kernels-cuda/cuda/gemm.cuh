// The tensor-core GEMM behind prefill's projections, dense (matmul.cu, qkv_rope.cu) and grouped
// by expert (moe_experts.cu):
// C[n, rows] = X[n, K] · W[rows, K]ᵀ on `mma.sync.m16n8k16` (bf16 in, f32 accumulate), the
// epilogue supplied by the caller (bias, residual, RoPE and the KV-cache write).
//
// Operands. A = the weights (16 rows × 16 k, "row": a weight row's k values are contiguous, as
// stored); B = the activations (16 k × 8 tokens, "col": a token's k values are contiguous, as
// stored); the accumulator tile is 16 weight rows × 8 tokens. Activations come as bf16 planes
// (split.cu): x ≈ hi + lo, so with TERMS = 2 every A fragment meets both planes and the result
// carries ~16 bits of each activation (f32-accurate for the weights, which are exact in bf16:
// bf16 as stored, int8 and int4 codes, MXFP4 values times their power-of-two scale);
// TERMS = 1 reads hi alone (half the tensor-core work, activations rounded to bf16).
//
// Tiling. A block owns GPTOSS_GEMM_BM (128) weight rows × GPTOSS_GEMM_BN (64) tokens and walks
// K in GPTOSS_GEMM_BK (32) steps; its 8 warps form a 4 × 2 grid, each warp 32 rows × 32 tokens
// = 2 × 4 mma tiles, 32 f32 accumulators per lane. Per k step a warp loads its A fragments
// with 2 `ldmatrix.x4` per 16 k (one 16×16 tile each) and its B fragments with 2 `ldmatrix.x4`
// per plane (two 8-token tiles each), then issues 8 · TERMS mmas per 16 k.
//
// Data movement. Two stages: while the warps multiply stage s, `cp.async` fills stage s ^ 1 with
// the next k step's raw weight bytes (16-byte chunks, zero-filled past the last row or k) and
// activation planes (zero-filled past the last token). bf16 weights are multiplied straight
// from their stage; int8, int4 and MXFP4 chunks are decoded once per k step into one bf16 tile
// (every value exact in bf16: MXFP4's e8m0 scale is a power of two and folded in; int8's row
// scale multiplies the finished row in the epilogue; int4's group scale multiplies each k
// step's partial products, kept in a second set of accumulators). Shared-memory rows are
// padded by 16 bytes so the 8 rows an `ldmatrix` reads fall in different banks.
//
// Fragment layouts (PTX ISA, m16n8k16, lane l, g = l / 4, t = l % 4): a0..a3 hold A at
// (g, 2t..), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..); b0, b1 hold B at (k 2t.., token g),
// (k 2t+8.., token g); c0..c3 are C at (row g, tokens 2t, 2t+1), (row g+8, tokens 2t, 2t+1).
// `ldmatrix.x4` gives lane l row l % 8 of matrix l / 8, so the addresses below pick, for A,
// row l % 16 and k 8·(l / 16), and for B, token (l % 8) + 8·(l / 16) and k 8·((l / 8) % 2).
//
// Activation rows. The epilogue names the plane row behind each token column (`x_row`): the
// dense kernels' tokens are consecutive rows; the grouped MoE GEMM gathers the rows of one
// expert's tokens (its `Epi::Args` is a per-block struct: that expert's matrix and the tile's
// row list), so the same tile code serves both.
//
// Epilogue. The accumulators go through shared memory (reusing the stages) as a tokens × rows
// f32 tile, so the caller's epilogue reads whole rows of a token (coalesced stores; a RoPE pair
// (i, i + d/2) of one head is in the same tile, as BM is a multiple of the head dim).
//
// Trade-offs: `mma.sync` rather than Hopper's `wgmma` (one code path for sm_80..sm_90, and the
// emulator's layouts are the PTX ISA's documented ones); two stages rather than three, to stay
// in 48 KB of static shared memory; f32 weights stay on the GEMV kernels.
#pragma once

#include "common.cuh"

#define GEMM_BM GPTOSS_GEMM_BM
#define GEMM_BN GPTOSS_GEMM_BN
#define GEMM_BK GPTOSS_GEMM_BK
#define GEMM_THREADS (GPTOSS_GEMM_WARPS * GPTOSS_WARP)
// bf16 tile rows: BK values + 16 bytes of padding.
#define GEMM_TILE_STRIDE (GEMM_BK + 8)
// The epilogue's f32 tile: a token's BM values + 4 floats of padding.
#define GEMM_C_STRIDE (GEMM_BM + 4)
// `x_row`'s answer for a token column past the last token: zeros, nothing read.
#define GEMM_NO_ROW 0xffffffffu

// How a format's weights enter the GEMM (F is the GEMV's format trait, common.cuh).
template <class F>
struct GemmFormat;
template <>
struct GemmFormat<FmtBf16> {
    static constexpr bool DIRECT = true;      // multiplied straight from the stage
    static constexpr bool STEP_SCALE = false; // a scale per k step on the partial products
    static constexpr bool FOLD_SCALE = false; // a power-of-two chunk scale folded into the decode
};
template <>
struct GemmFormat<FmtI8> {
    static constexpr bool DIRECT = false, STEP_SCALE = false, FOLD_SCALE = false;
};
template <>
struct GemmFormat<FmtI4> {
    static constexpr bool DIRECT = false, STEP_SCALE = true, FOLD_SCALE = false;
};
template <>
struct GemmFormat<FmtMf4> {
    static constexpr bool DIRECT = false, STEP_SCALE = false, FOLD_SCALE = true;
};

// Two values as bf16 (round-to-nearest-even) in one word, the first in the low half: how
// consecutive k values sit in a fragment register.
__device__ __forceinline__ unsigned int bf16x2(float lo, float hi) {
    return (unsigned int)f32_to_bf16_bits(lo) | ((unsigned int)f32_to_bf16_bits(hi) << 16);
}

// Raw bytes of one weight row per k step.
template <class F>
__host__ __device__ constexpr unsigned int gemm_raw_bytes() {
    return F::row_bytes(GEMM_BK);
}

// The block's shared memory: two stages of raw weights and activation planes, the decoded bf16
// weight tile; the epilogue's f32 tile overlays all of it.
template <class F, int TERMS>
struct GemmSmem {
    static constexpr unsigned int RAW_STRIDE = GemmFormat<F>::DIRECT ? GEMM_TILE_STRIDE * 2 : gemm_raw_bytes<F>();
    static constexpr unsigned int RAW = GEMM_BM * RAW_STRIDE;                         // one stage of weights
    static constexpr unsigned int TILE = GemmFormat<F>::DIRECT ? 0 : GEMM_BM * GEMM_TILE_STRIDE * 2;
    static constexpr unsigned int PLANE = GEMM_BN * GEMM_TILE_STRIDE * 2;             // one stage of one plane
    static constexpr unsigned int PIPE = 2 * RAW + TILE + 2 * TERMS * PLANE;
    static constexpr unsigned int C = GEMM_BN * GEMM_C_STRIDE * 4;
    static constexpr unsigned int BYTES = PIPE > C ? PIPE : C;
};

// Where a block's rows come from: the epilogue's answer to "which weight holds virtual row r".
// The weight by value: a pointer into the kernel's parameters would make the compiler copy them
// all to local memory.
struct RowOf {
    GptossWeight w;
    unsigned int row;  // within w
    bool valid;        // false past the last row
};

// Stage `s` of k step `kt`: weight chunks of rows m0.., activation chunks of tokens n0...
template <class F, int TERMS, class Epi>
__device__ __forceinline__ void gemm_load_stage(const typename Epi::Args &a, unsigned char *smem, int s, unsigned int kt,
                                                unsigned int m0, unsigned int n0) {
    using S = GemmSmem<F, TERMS>;
    constexpr unsigned int CPR = gemm_raw_bytes<F>() / 16;  // weight chunks per row per step
    for (unsigned int c = threadIdx.x; c < GEMM_BM * CPR; c += GEMM_THREADS) {
        const unsigned int r = c / CPR, j = c % CPR;
        unsigned char *dst = smem + s * S::RAW + r * S::RAW_STRIDE + 16 * j;
        const RowOf src = Epi::row_of(a, m0 + r);
        const unsigned long long row_bytes = F::row_bytes(src.w.cols);
        const unsigned long long at = (unsigned long long)kt * gemm_raw_bytes<F>() + 16 * j;
        const bool in = src.valid && at < row_bytes;
        // Out of range: no bytes read (from a valid address), 16 zeros written.
        const unsigned char *base = static_cast<const unsigned char *>(src.w.data);
        cp_async_16(dst, in ? base + src.row * row_bytes + at : Epi::any_address(a), in ? 16 : 0);
    }
    const GptossSplit &xs = Epi::split(a);
    unsigned char *planes = smem + 2 * S::RAW + S::TILE + s * TERMS * S::PLANE;
    constexpr unsigned int CPT = GEMM_BK * 2 / 16;  // activation chunks per token per step
    for (unsigned int c = threadIdx.x; c < TERMS * GEMM_BN * CPT; c += GEMM_THREADS) {
        const unsigned int p = c / (GEMM_BN * CPT), t = c / CPT % GEMM_BN, j = c % CPT;
        const unsigned short *plane = p == 0 ? xs.hi : xs.lo;
        const unsigned int row = Epi::x_row(a, n0 + t);
        const bool in = row != GEMM_NO_ROW;
        const unsigned short *at = plane + (unsigned long long)(in ? row : 0) * xs.stride + kt * GEMM_BK + 8 * j;
        cp_async_16(planes + p * S::PLANE + t * GEMM_TILE_STRIDE * 2 + 16 * j, at, in ? 16 : 0);
    }
}

// Decodes stage `s`'s raw weights into the bf16 tile (formats that are not bf16 already).
template <class F, int TERMS, class Epi>
__device__ __forceinline__ void gemm_decode_stage(const typename Epi::Args &a, unsigned char *smem, int s, unsigned int kt,
                                                  unsigned int m0) {
    using S = GemmSmem<F, TERMS>;
    constexpr unsigned int CPR = gemm_raw_bytes<F>() / 16;
    unsigned short *tile = reinterpret_cast<unsigned short *>(smem + 2 * S::RAW);
    for (unsigned int c = threadIdx.x; c < GEMM_BM * CPR; c += GEMM_THREADS) {
        const unsigned int r = c / CPR, j = c % CPR;
        const uint4 raw = *reinterpret_cast<const uint4 *>(smem + s * S::RAW + r * S::RAW_STRIDE + 16 * j);
        float v[F::E];
        F::decode(raw, v);
        float scale = 1.0f;
        if constexpr (GemmFormat<F>::FOLD_SCALE) {
            const RowOf src = Epi::row_of(a, m0 + r);
            // Past the last row or k the chunk is zeros: any finite scale keeps it so.
            if (src.valid && kt * GEMM_BK < src.w.cols) scale = F::chunk_scale(src.w, expert_scales(src.w, 0), src.row, kt);
        }
        uint4 *dst = reinterpret_cast<uint4 *>(tile + r * GEMM_TILE_STRIDE + j * F::E);
#pragma unroll
        for (int q = 0; q < F::E / 8; q++) {
            const float *e = v + 8 * q;
            dst[q] = make_uint4(bf16x2(e[0] * scale, e[1] * scale), bf16x2(e[2] * scale, e[3] * scale), bf16x2(e[4] * scale, e[5] * scale),
                                bf16x2(e[6] * scale, e[7] * scale));
        }
    }
}

// The block's C tile for rows m0.. and tokens n0.., left in shared memory as
// `c[token][row]` (f32, row stride GEMM_C_STRIDE) for the epilogue; returns it.
template <class F, int TERMS, class Epi>
__device__ __forceinline__ const float *gemm_tile(const typename Epi::Args &a, unsigned char *smem, unsigned int m0, unsigned int n0,
                                                  unsigned int k) {
    using S = GemmSmem<F, TERMS>;
    const unsigned int warp = threadIdx.x / GPTOSS_WARP, lane = threadIdx.x % GPTOSS_WARP;
    const unsigned int wm = warp % 4, wn = warp / 4;  // this warp's 32 rows and 32 tokens
    const unsigned int steps = (k + GEMM_BK - 1) / GEMM_BK;

    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;

    gemm_load_stage<F, TERMS, Epi>(a, smem, 0, 0, m0, n0);
    cp_async_commit();
    for (unsigned int kt = 0; kt < steps; kt++) {
        const int s = kt % 2;
        if (kt + 1 < steps) {
            gemm_load_stage<F, TERMS, Epi>(a, smem, s ^ 1, kt + 1, m0, n0);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if constexpr (!GemmFormat<F>::DIRECT) {
            gemm_decode_stage<F, TERMS, Epi>(a, smem, s, kt, m0);
            __syncthreads();
        }
        const unsigned short *w_tile = reinterpret_cast<const unsigned short *>(GemmFormat<F>::DIRECT ? smem + s * S::RAW : smem + 2 * S::RAW);
        const unsigned short *x_tile = reinterpret_cast<const unsigned short *>(smem + 2 * S::RAW + S::TILE + s * TERMS * S::PLANE);

        // int4: this step's products, before its group scale.
        float part[2][4][4];
        float(&sum)[2][4][4] = GemmFormat<F>::STEP_SCALE ? part : acc;
        if constexpr (GemmFormat<F>::STEP_SCALE) {
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
#pragma unroll
                    for (int q = 0; q < 4; q++) part[i][j][q] = 0.0f;
        }
#pragma unroll
        for (int k16 = 0; k16 < GEMM_BK; k16 += 16) {
            unsigned int af[2][4];
#pragma unroll
            for (int i = 0; i < 2; i++)
                ldmatrix_x4(af[i], w_tile + (wm * 32 + i * 16 + lane % 16) * GEMM_TILE_STRIDE + k16 + 8 * (lane / 16));
#pragma unroll
            for (int p = 0; p < TERMS; p++) {
                const unsigned short *plane = x_tile + p * (S::PLANE / 2);
                unsigned int bf[4][2];
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    unsigned int r[4];
                    ldmatrix_x4(r, plane + (wn * 32 + j * 16 + lane % 8 + 8 * (lane / 16)) * GEMM_TILE_STRIDE + k16 + 8 * (lane / 8 % 2));
                    bf[2 * j][0] = r[0], bf[2 * j][1] = r[1], bf[2 * j + 1][0] = r[2], bf[2 * j + 1][1] = r[3];
                }
#pragma unroll
                for (int i = 0; i < 2; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) mma_bf16_16816(sum[i][j], af[i], bf[j], sum[i][j]);
            }
        }
        if constexpr (GemmFormat<F>::STEP_SCALE) {
            // Rows g and g + 8 of each 16-row tile: this lane's scales for this k step's group.
#pragma unroll
            for (int i = 0; i < 2; i++) {
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const RowOf src = Epi::row_of(a, m0 + wm * 32 + i * 16 + lane / 4 + 8 * h);
                    const float sc = src.valid ? F::chunk_scale(src.w, expert_scales(src.w, 0), src.row, kt) : 0.0f;
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        acc[i][j][2 * h] = fmaf(part[i][j][2 * h], sc, acc[i][j][2 * h]);
                        acc[i][j][2 * h + 1] = fmaf(part[i][j][2 * h + 1], sc, acc[i][j][2 * h + 1]);
                    }
                }
            }
        }
        __syncthreads();  // every warp is done with stage s before it is refilled
    }

    // Accumulators to c[token][row].
    float *c = reinterpret_cast<float *>(smem);
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const unsigned int row = wm * 32 + i * 16 + lane / 4, tok = wn * 32 + j * 8 + 2 * (lane % 4);
            c[tok * GEMM_C_STRIDE + row] = acc[i][j][0];
            c[(tok + 1) * GEMM_C_STRIDE + row] = acc[i][j][1];
            c[tok * GEMM_C_STRIDE + row + 8] = acc[i][j][2];
            c[(tok + 1) * GEMM_C_STRIDE + row + 8] = acc[i][j][3];
        }
    }
    __syncthreads();
    return c;
}

// The whole kernel: the block's tile, then the epilogue. Grid: x over token tiles (blocks that
// share a weight tile run together and find it in L2), y over row tiles.
template <class F, int TERMS, class Epi>
__device__ __forceinline__ void gemm(const typename Epi::Args &a) {
    __shared__ __align__(16) unsigned char smem[GemmSmem<F, TERMS>::BYTES];
    const unsigned int n0 = blockIdx.x * GEMM_BN, m0 = blockIdx.y * GEMM_BM;
    const float *c = gemm_tile<F, TERMS, Epi>(a, smem, m0, n0, Epi::k(a));
    Epi::template finish<F>(a, c, m0, n0);
}
