//! The one budget table: the NMSE (`metric`) an op may show against the scalar reference, per
//! variant, with the reason for its size and the largest value measured on the CPU's SIMD
//! kernels (AVX2, AVX-512; `PROPTEST_CASES=1000 cargo test --release -p gptoss-op-tests`).
//! The reference accumulates in f64, the kernels in f32 and in their own order: a dot product
//! of K terms is off by ~√K · 2⁻²⁴ of Σ|w·x|, which is a larger share of an output that
//! cancels (a single output of a few random terms can be ~0.01 of Σ|w·x|). Variants: `exact`
//! (f32 activations), `q8` (int8 activations against the q8 definition's reference: the same
//! roundings, then f64), `q8_vs_exact` (int8 activations against the exact reference: what the
//! rounding costs, on cases of ≥ 64 values), `bf16_cache` (the KV cache rounded to bf16),
//! `mma_x1` (the CUDA tensor-core kernels on activations rounded to bf16), `mma` (attention on
//! the CUDA tensor cores), `mma_x2` (the grouped MoE GEMM on two planes). The tensor-core GEMMs
//! on two bf16 planes of the activations (hi + lo, 2⁻¹⁸ of each value) meet `exact`, except the
//! grouped MoE GEMM, which splits twice (x, then the SwiGLU outputs); tensor-core attention
//! splits both operands of its products, and its softmax weights feed the second product, so
//! it has its own budget.

/// (op, variant, NMSE budget, why and the measured maximum).
pub const BUDGETS: &[(&str, &str, f64, &str)] = &[
    ("embed", "exact", 0.0, "a copy: f32 and bf16 rows widen exactly"),
    ("rms_norm", "exact", 1e-13, "an f32 sum of squares over ≤ 2880 values; measured ≤ 1.2e-14"),
    (
        "matmul",
        "exact",
        1e-9,
        "f32 dot products of ≤ 640 terms, single cancelling outputs included; measured ≤ 4.9e-13 (CPU), ≤ 2.1e-11 (CPU bf16 dot products on two bf16 planes, `vdpbf16ps`), ≤ 2.2e-10 (CUDA tensor cores on two bf16 planes: 2⁻¹⁸ of each activation)",
    ),
    ("matmul", "q8", 1e-9, "the same products on the same int8 values, f32 against f64; measured ≤ 2.7e-10"),
    (
        "matmul",
        "q8_vs_exact",
        2e-4,
        "int8 blocks of 32 move each activation by ≤ half a step of max/127: (d²/12)/E[x²] ≈ 1.5e-5 for uniform blocks; measured ≤ 2.7e-5",
    ),
    (
        "matmul",
        "mma_x1",
        1e-3,
        "activations rounded to bf16 (the tensor-core variant on one plane): each moves by ≤ 2⁻⁹ of itself, (2⁻⁹)²/3 ≈ 1.3e-6 for a product that does not cancel, more for a single cancelling output; measured ≤ 6.6e-5 (1 row, 2 tokens)",
    ),
    (
        "qkv_rope",
        "exact",
        1e-10,
        "f32 projections, an f32 rotation by f64 cos/sin; measured ≤ 2.7e-12 (CPU), ≤ 1.1e-11 (CUDA tensor cores)",
    ),
    (
        "qkv_rope",
        "mma_x1",
        1e-4,
        "activations rounded to bf16 (the tensor-core variant on one plane), as matmul's mma_x1, over widths of 8 or more; measured ≤ 7.1e-6 (bf16, int8, int4 weights × both caches × 1, 17, 70 tokens)",
    ),
    ("qkv_rope", "q8", 1e-10, "as exact, on the same int8 values; measured ≤ 3.2e-13"),
    (
        "qkv_rope",
        "bf16_cache",
        2e-5,
        "a stored value within f32 rounding of a bf16 boundary may round either way: one step (2⁻⁸ relative) of one of the smallest case's 2 values is 2⁻¹⁶/2 = 7.6e-6; measured ≤ 4.7e-7",
    ),
    ("attention", "exact", 1e-11, "f32 dot products and an online softmax with a ≤ 2-ulp exponential; measured ≤ 1.5e-13"),
    (
        "attention",
        "mma",
        1e-9,
        "the CUDA tensor-core kernel: Q and P (and an f32 cache's K and V) as two bf16 terms, 2⁻¹⁸ of each value left over, so each logit and weight moves by ~2⁻¹⁸ of its terms; measured ≤ 2.4e-10 (f32 cache), ≤ 1.1e-10 (bf16 cache) over 1500 cases of 1 to 129 tokens",
    ),
    ("moe_route", "exact", 1e-12, "an f32 softmax over ≤ 4 logits; measured ≤ 1.8e-16"),
    ("moe_experts", "exact", 1e-10, "two f32 projections through the SwiGLU (gain ≤ 9) and an f32 weighted sum; measured ≤ 4.4e-13"),
    (
        "moe_experts",
        "mma_x2",
        3e-9,
        "x and the SwiGLU outputs each carried by two bf16 planes (2⁻¹⁸ of each value): gate_up's error is a share of Σ|w·x| (hundreds for MXFP4 blocks scaled by up to 2⁴) and passes the SwiGLU where it is not clamped into the down projection; measured ≤ 5.7e-10 (700 cases)",
    ),
    (
        "moe_experts",
        "mma_x1",
        3e-3,
        "x and the SwiGLU outputs each rounded to bf16 (2⁻⁹ of each value), the first error amplified as for mma_x2; one token through 32-wide experts averages over few values; measured ≤ 6.6e-4 (1200 cases, one token or two the worst)",
    ),
    (
        "moe_experts",
        "q8",
        1e-5,
        "the SwiGLU outputs are quantized again: one that f32 leaves within rounding of an int8 boundary may round either way, moving a down projection input by a whole step (max/127); measured ≤ 8.7e-7",
    ),
    (
        "moe_experts",
        "q8_vs_exact",
        5e-3,
        "two roundings (x, then the SwiGLU outputs, whose blocks are heavy-tailed: one large value sets the step for 31 small ones); measured ≤ 1.2e-3",
    ),
];

/// The budget of `op` in `variant`.
pub fn budget(op: &str, variant: &str) -> f64 {
    BUDGETS.iter().find(|b| b.0 == op && b.1 == variant).unwrap_or_else(|| panic!("no budget for {op} ({variant})")).2
}
