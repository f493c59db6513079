/* Kernel argument structs: the one declaration shared by the kernels (included by every .cu)
 * and the Rust launchers (bindgen generates their mirror in build.rs). Each kernel takes exactly
 * one of these by value. Plain C with fixed-width fundamental types only (LP64: int 4 bytes,
 * long long and pointers 8), so clang (bindgen) and nvcc lay every struct out identically; the
 * static asserts at the bottom pin sizes and offsets on the C side, bindgen's layout asserts and
 * the const asserts in `src/args.rs` on the Rust side.
 *
 * Pointers are device addresses. Weight pointers are untyped: the format is part of the kernel's
 * name (`f32_bf16w_matmul`, `f32_mf4w_matmul`, …) and the byte layout is the engine's
 * (engine/src/weight.rs). */
#ifndef GPTOSS_ARGS_H
#define GPTOSS_ARGS_H

/* Bits of the device status word: inputs that live in device memory (token ids, expert ids,
 * positions) cannot be checked by the host before a launch, so kernels check them and report
 * here; the backend reads and clears the word whenever it synchronizes. */
#define GPTOSS_STATUS_TOKEN_RANGE 1u
#define GPTOSS_STATUS_EXPERT_RANGE 2u
#define GPTOSS_STATUS_RING_OVERRUN 4u

/* Largest head_dim, experts, top_k and q heads per kv head the kernels support. */
#define GPTOSS_MAX_EXPERTS 256
#define GPTOSS_MAX_TOP_K 32
#define GPTOSS_MAX_GROUP 8
/* Launch constants, read by the kernels and by their launchers (bindgen), so the two cannot
 * disagree. Warps per block of the GEMV-shaped kernels: one output row (or rotation pair, or
 * expert logit) per warp. */
#define GPTOSS_WARP_THREADS 32
#define GPTOSS_MATMUL_WARPS 8
#define GPTOSS_QKV_WARPS 8
#define GPTOSS_ROUTE_WARPS 8
#define GPTOSS_MOE_WARPS 8
/* Threads of the one block that sorts a MoE batch's routed pairs by expert (moe_grouped.cu). */
#define GPTOSS_MOE_SORT_THREADS 256
/* Warps of a split-KV attention block. */
#define GPTOSS_ATTENTION_WARPS 4
/* Tensor-core attention (attention_mma.cuh): a block takes GPTOSS_ATTENTION_MMA_ROWS query
 * rows (token, head of a kv head's group) with GPTOSS_ATTENTION_MMA_WARPS warps (16 rows each),
 * and this much dynamic shared memory per head dim and KV-cache element (its tile layout; the
 * kernel asserts it): two stages of bf16 K and V tiles, or one f32 staging tile of each plus
 * their bf16 hi and lo tiles. */
#define GPTOSS_ATTENTION_MMA_ROWS 64
#define GPTOSS_ATTENTION_MMA_WARPS 4
#define GPTOSS_ATTENTION_MMA_SMEM_D16_KVBF16 12288
#define GPTOSS_ATTENTION_MMA_SMEM_D16_KVF32 20480
#define GPTOSS_ATTENTION_MMA_SMEM_D64_KVBF16 36864
#define GPTOSS_ATTENTION_MMA_SMEM_D64_KVF32 69632
#define GPTOSS_ATTENTION_MMA_SMEM_D128_KVBF16 34816
#define GPTOSS_ATTENTION_MMA_SMEM_D128_KVF32 67584
/* Tensor-core GEMM (gemm.cuh): a block computes GPTOSS_GEMM_BM weight rows × GPTOSS_GEMM_BN
 * tokens, walking k in steps of GPTOSS_GEMM_BK, with GPTOSS_GEMM_WARPS warps (4 along rows × 2
 * along tokens, 32 × 32 each). */
#define GPTOSS_GEMM_BM 128
#define GPTOSS_GEMM_BN 64
#define GPTOSS_GEMM_BK 32
#define GPTOSS_GEMM_WARPS 8
/* Threads per block of the copy-shaped kernels (embed, synth, split). */
#define GPTOSS_COPY_THREADS 256
/* Threads per block of the reduction kernels (rms_norm, argmax, sampling). */
#define GPTOSS_REDUCE_THREADS 256
/* Threads of the one block that samples with top-k / top-p cuts. */
#define GPTOSS_SAMPLE_CUT_THREADS 1024

/* One weight matrix, or `experts` stacked matrices, in the format named by the kernel. */
typedef struct GptossWeight {
    const void *data;
    const void *scales;              /* null for f32 and bf16 */
    const float *bias;               /* f32 [experts, rows] or null */
    unsigned long long data_stride;  /* bytes from one expert's data to the next */
    unsigned long long scale_stride; /* bytes from one expert's scales to the next */
    unsigned int rows;
    unsigned int cols;
    unsigned int experts;
    unsigned int group; /* int4 group size; 0 for other formats */
    /* Null, or a stack whose matrices are wherever the table says: u64 [experts, 2], expert e's
     * data and scales addresses (device memory or host memory mapped for the device); `data`,
     * `scales` and the strides are then unused. Biases stay in `bias`. */
    const unsigned long long *table;
} GptossWeight;

/* Activations as bf16 planes for the tensor cores: x ≈ hi + lo with hi = bf16(x) and
 * lo = bf16(x − hi) (round-to-nearest-even), each [n, stride], stride = cols rounded up to
 * GPTOSS_GEMM_BK, zero past cols. `lo` is null for the kernels that read hi alone. The GEMV
 * kernels ignore it (null). */
typedef struct GptossSplit {
    const unsigned short *hi;
    const unsigned short *lo;
    unsigned int stride;
    unsigned int pad_;
} GptossSplit;

/* Writes the planes of x [n, cols] (`lo` may be null). */
typedef struct GptossSplitArgs {
    const float *x;
    unsigned short *hi;
    unsigned short *lo;
    unsigned int n;
    unsigned int cols;
    unsigned int stride;
    unsigned int pad_;
} GptossSplitArgs;

/* out[t, :] = table[tokens[t], :] as f32. */
typedef struct GptossEmbedArgs {
    GptossWeight table;
    const unsigned int *tokens;
    float *out;
    unsigned int *status;
    unsigned int n;
    unsigned int pad_;
} GptossEmbedArgs;

/* out = x / sqrt(mean(x^2) + eps) * gain, row by row. */
typedef struct GptossRmsNormArgs {
    const float *x;
    const float *gain;
    float *out;
    unsigned int n;
    unsigned int d;
    float eps;
    unsigned int pad_;
} GptossRmsNormArgs;

/* out[t] = (accumulate ? out[t] : 0) + W x[t] + b. */
typedef struct GptossMatmulArgs {
    GptossWeight w;
    const float *x;
    float *out;
    unsigned int n;
    unsigned int accumulate;
    GptossSplit xs; /* the tensor-core kernels' x */
} GptossMatmulArgs;

/* q/k/v projections + bias + RoPE on q and k + the KV-cache write at slot pos % capacity. */
typedef struct GptossQkvRopeArgs {
    GptossWeight q;
    GptossWeight k;
    GptossWeight v;
    const float *x;
    const unsigned int *positions;
    const float *inv_freq; /* f32 [head_dim / 2] */
    void *k_cache;         /* [capacity, kv_heads, head_dim] bf16 or f32 (the kernel's name says) */
    void *v_cache;
    float *q_out;
    unsigned int n;
    unsigned int head_dim;
    unsigned int q_heads;
    unsigned int kv_heads;
    unsigned int capacity;
    float concentration;
    GptossSplit xs; /* the tensor-core kernels' x */
} GptossQkvRopeArgs;

/* Attention with sinks. Split-KV (decode): pass 1 writes per-split partials, pass 2 combines
 * them. Tensor cores (prefill): one pass, without the partials (null) and splits (0). */
typedef struct GptossAttentionArgs {
    const float *q;
    const void *k_cache;
    const void *v_cache;
    const unsigned int *positions;
    const float *sinks;
    float *out;
    float *part_acc; /* f32 [n, q_heads, splits, head_dim] */
    float *part_ml;  /* f32 [n, q_heads, splits, 2]: running max and sum */
    unsigned int *status;
    unsigned int n;
    unsigned int q_heads;
    unsigned int kv_heads;
    unsigned int head_dim;
    unsigned int capacity;
    unsigned int window; /* 0: no window */
    unsigned int splits;
    float scale;
} GptossAttentionArgs;

/* ---- rows of several sequences (a decode step of several contexts) ---------------------------
 * Most rows one launch takes: each row's cache addresses travel in the launch's arguments
 * (2 KiB of them at most), so a recorded step carries its rows' caches with it and nothing in
 * device memory has to be rewritten between steps. */
#define GPTOSS_MAX_ROWS 128

/* The KV-cache layers of a launch's rows: row t's keys at k[t], its values at v[t], each
 * [capacity, kv_heads, head_dim] of the geometry in the launch's other arguments (one for all
 * rows); entries past the launch's n are unused. */
typedef struct GptossKvRows {
    void *k[GPTOSS_MAX_ROWS];
    void *v[GPTOSS_MAX_ROWS];
} GptossKvRows;

/* qkv_rope with row t's k and v written to its own cache (a.k_cache and a.v_cache unused). */
typedef struct GptossQkvRopeRowsArgs {
    GptossQkvRopeArgs a;
    GptossKvRows kv;
} GptossQkvRopeRowsArgs;

/* Split-KV attention with query t reading its own cache (a.k_cache and a.v_cache unused); the
 * combine pass takes `a` as it is. */
typedef struct GptossAttentionRowsArgs {
    GptossAttentionArgs a;
    GptossKvRows kv;
} GptossAttentionRowsArgs;

/* Router logits, top-k (descending, lowest id first on ties) and softmax over the k. */
typedef struct GptossMoeRouteArgs {
    GptossWeight router;
    const float *x;
    float *logits;          /* scratch f32 [n, experts] */
    unsigned int *counters; /* scratch u32 [n], zero between launches */
    unsigned int *ids;
    float *weights;
    unsigned int n;
    unsigned int top_k;
} GptossMoeRouteArgs;

/* act[t, k, j] = swiglu(W1[e] x[t] + b1[e]) rows 2j, 2j+1, for e = ids[t, k]. */
typedef struct GptossMoeGateUpArgs {
    GptossWeight w;
    const float *x;
    const unsigned int *ids;
    float *act; /* f32 [n, top_k, rows / 2] */
    unsigned int *status;
    unsigned int n;
    unsigned int top_k;
    float alpha;
    float limit;
} GptossMoeGateUpArgs;

/* residual[t] += sum_k weights[t, k] * (W2[ids[t, k]] act[t, k] + b2[ids[t, k]]). */
typedef struct GptossMoeDownArgs {
    GptossWeight w;
    const float *act;
    const unsigned int *ids;
    const float *weights;
    float *residual;
    unsigned int *status;
    unsigned int n;
    unsigned int top_k;
} GptossMoeDownArgs;

/* The routed (token, k) pairs grouped by expert (moe_grouped.cu's sort), for the grouped GEMMs.
 * A pair's index is t · top_k + k. Tiles are GPTOSS_GEMM_BN pairs of one expert; the grid
 * of a grouped GEMM has max_tiles columns, ceil(pairs / BN) + min(experts, pairs) (each
 * expert's last tile may be partial), and a column past the last tile finds no expert. */
typedef struct GptossMoeGroups {
    unsigned int *order;   /* u32 [pairs]: pair indices by expert, ascending within one */
    unsigned int *offsets; /* u32 [experts + 1]: expert e's pairs are order[offsets[e] .. offsets[e + 1]) */
    unsigned int *tiles;   /* u32 [max_tiles, 2]: tile i's expert (GPTOSS_MOE_NO_TILE past the last) and first index into order */
    unsigned int max_tiles;
    unsigned int pad_;
} GptossMoeGroups;
#define GPTOSS_MOE_NO_TILE 0xffffffffu

/* Sorts the pairs of ids [pairs] by expert into `groups`; ids ≥ experts are reported and left out. */
typedef struct GptossMoeSortArgs {
    const unsigned int *ids;
    GptossMoeGroups groups;
    unsigned int *status;
    unsigned int pairs;
    unsigned int experts;
} GptossMoeSortArgs;

/* Grouped gate_up: act[i, j] = swiglu(W1[e] x[t] + b1[e] at rows 2j, 2j + 1) for the pair at
 * order[i] = t · top_k + k of expert e, as bf16 planes (hi, and lo unless null) of [pairs,
 * act_stride], zero from intermediate to act_stride. */
typedef struct GptossMoeGateUpMmaArgs {
    GptossWeight w;
    GptossSplit xs; /* x [n, hidden] */
    GptossMoeGroups groups;
    unsigned short *act_hi;
    unsigned short *act_lo;
    unsigned int act_stride;
    unsigned int top_k;
    float alpha;
    float limit;
} GptossMoeGateUpMmaArgs;

/* Grouped down: y[p] = weights[p] · (W2[e] act[i] + b2[e]) for the pair p = order[i] of expert e. */
typedef struct GptossMoeDownMmaArgs {
    GptossWeight w;
    GptossSplit acts; /* gate_up's planes, rows in order */
    GptossMoeGroups groups;
    const float *weights; /* f32 [pairs] */
    float *y;             /* f32 [pairs, rows] */
} GptossMoeDownMmaArgs;

/* residual[t] += Σ_k y[t · top_k + k] over k = 0..top_k in order, pairs with ids ≥ experts left out. */
typedef struct GptossMoeCombineArgs {
    const float *y;
    const unsigned int *ids;
    float *residual;
    unsigned int n;
    unsigned int top_k;
    unsigned int hidden;
    unsigned int experts;
} GptossMoeCombineArgs;

/* Sampling from one row of logits: arg-max, or the inverse CDF over exp((l - max) / T). */
typedef struct GptossSampleArgs {
    const float *logits;
    float *part_val;        /* scratch [blocks]: block maxima, then block masses */
    unsigned int *part_idx; /* scratch [blocks] */
    double *part_mass;      /* scratch [blocks] */
    unsigned int *counter;  /* scratch, zero between launches */
    unsigned int *out_id;
    unsigned int vocab;
    float temperature;
    float u;
    unsigned int top_k; /* 0: no cut */
    float top_p;        /* 1: no cut */
    unsigned int pad_;
} GptossSampleArgs;

/* Synthetic tensors: element i is a pure function of (stream, i); see engine/src/synth.rs. */
typedef struct GptossSynthArgs {
    void *out;
    unsigned long long len; /* elements */
    unsigned long long stream;
    float center;
    float half_width;
    unsigned int lo;   /* byte range: lo + byte % span; span 0 = raw bytes */
    unsigned int span;
} GptossSynthArgs;

/* ---- layout pins (C side) ------------------------------------------------------------------ */
#ifdef __cplusplus
#define GPTOSS_STATIC_ASSERT static_assert
#else
#define GPTOSS_STATIC_ASSERT _Static_assert
#endif
#define GPTOSS_PIN(T, size) GPTOSS_STATIC_ASSERT(sizeof(T) == (size), #T " size changed: update src/args.rs")
#define GPTOSS_AT(T, f, off) GPTOSS_STATIC_ASSERT(__builtin_offsetof(T, f) == (off), #T "." #f " moved: update src/args.rs")

GPTOSS_PIN(GptossWeight, 64);
GPTOSS_AT(GptossWeight, data_stride, 24);
GPTOSS_AT(GptossWeight, rows, 40);
GPTOSS_AT(GptossWeight, group, 52);
GPTOSS_AT(GptossWeight, table, 56);
GPTOSS_PIN(GptossEmbedArgs, 96);
GPTOSS_PIN(GptossRmsNormArgs, 40);
GPTOSS_PIN(GptossSplit, 24);
GPTOSS_PIN(GptossSplitArgs, 40);
GPTOSS_AT(GptossSplitArgs, n, 24);
GPTOSS_PIN(GptossMatmulArgs, 112);
GPTOSS_AT(GptossMatmulArgs, n, 80);
GPTOSS_AT(GptossMatmulArgs, xs, 88);
GPTOSS_PIN(GptossQkvRopeArgs, 288);
GPTOSS_AT(GptossQkvRopeArgs, xs, 264);
GPTOSS_AT(GptossQkvRopeArgs, x, 192);
GPTOSS_AT(GptossQkvRopeArgs, concentration, 260);
GPTOSS_PIN(GptossAttentionArgs, 104);
GPTOSS_AT(GptossAttentionArgs, n, 72);
GPTOSS_AT(GptossAttentionArgs, scale, 100);
GPTOSS_PIN(GptossKvRows, 2048);
GPTOSS_PIN(GptossQkvRopeRowsArgs, 2336);
GPTOSS_AT(GptossQkvRopeRowsArgs, kv, 288);
GPTOSS_PIN(GptossAttentionRowsArgs, 2152);
GPTOSS_AT(GptossAttentionRowsArgs, kv, 104);
GPTOSS_PIN(GptossMoeRouteArgs, 112);
GPTOSS_AT(GptossMoeRouteArgs, n, 104);
GPTOSS_PIN(GptossMoeGateUpArgs, 112);
GPTOSS_AT(GptossMoeGateUpArgs, alpha, 104);
GPTOSS_PIN(GptossMoeDownArgs, 112);
GPTOSS_AT(GptossMoeDownArgs, n, 104);
GPTOSS_PIN(GptossMoeGroups, 32);
GPTOSS_AT(GptossMoeGroups, max_tiles, 24);
GPTOSS_PIN(GptossMoeSortArgs, 56);
GPTOSS_AT(GptossMoeSortArgs, pairs, 48);
GPTOSS_PIN(GptossMoeGateUpMmaArgs, 152);
GPTOSS_AT(GptossMoeGateUpMmaArgs, groups, 88);
GPTOSS_AT(GptossMoeGateUpMmaArgs, act_stride, 136);
GPTOSS_AT(GptossMoeGateUpMmaArgs, limit, 148);
GPTOSS_PIN(GptossMoeDownMmaArgs, 136);
GPTOSS_AT(GptossMoeDownMmaArgs, groups, 88);
GPTOSS_AT(GptossMoeDownMmaArgs, y, 128);
GPTOSS_PIN(GptossMoeCombineArgs, 40);
GPTOSS_AT(GptossMoeCombineArgs, experts, 36);
GPTOSS_PIN(GptossSampleArgs, 72);
GPTOSS_AT(GptossSampleArgs, top_p, 64);
GPTOSS_PIN(GptossSynthArgs, 40);
GPTOSS_AT(GptossSynthArgs, span, 36);

#endif
