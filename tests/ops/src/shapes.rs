//! The awkward sizes every family draws from: 0 and 1, primes, and one either side of the
//! kernels' groupings (4-row and 3/4/8-token tiles, 8- and 16-lane vectors, q8 groups of 2 and
//! 4 MXFP4 blocks, 128-row GPU tiles).

use gptoss_engine::WeightFormat;

/// Output rows of a matrix.
pub const ROWS: [usize; 10] = [1, 2, 3, 4, 5, 7, 13, 16, 17, 67];
/// Tokens of one call.
pub const TOKENS: [usize; 8] = [0, 1, 2, 3, 4, 5, 7, 12];

/// Output rows either side of the tensor-core GEMM's 128-row tiles.
pub const MMA_ROWS: [usize; 6] = [1, 16, 127, 128, 129, 300];
/// Tokens either side of its 64-token tiles.
pub const MMA_TOKENS: [usize; 7] = [1, 2, 17, 63, 64, 128, 129];

/// Every weight format, int4 at each group size.
pub const FORMATS: [WeightFormat; 7] = [
    WeightFormat::F32,
    WeightFormat::Bf16,
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
    WeightFormat::Mxfp4,
];

/// The formats with int8-activation (q8) kernels.
pub const Q8_FORMATS: [WeightFormat; 5] = [
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
    WeightFormat::Mxfp4,
];

/// The `k`-th awkward input width for `format`: any width for f32/bf16/int8 (not multiples of
/// the vector width among them), whole groups for int4, up to 20 blocks for MXFP4 (whole and
/// partial runs of the q8 tiles' groups of scales: 8 blocks on AVX2, 16 on AVX-512, 4 on NEON).
pub fn cols_for(format: WeightFormat, k: usize) -> usize {
    match format {
        WeightFormat::Int4 { group } => group * (1 + k % 3),
        WeightFormat::Mxfp4 => 32 * [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 19, 20][k % 12],
        _ => [1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 129][k % 12],
    }
}

/// The formats with tensor-core kernels (f32 weights have none).
pub const MMA_FORMATS: [WeightFormat; 6] = [
    WeightFormat::Bf16,
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
    WeightFormat::Mxfp4,
];

/// The `k`-th input width for the tensor-core GEMM: rows of whole 16-byte chunks (bf16 widths
/// of 8s, int8 of 16s) filling whole and partial 32-value k steps, and one bf16 width that is
/// not whole chunks (the GEMV kernels take it).
pub fn mma_cols_for(format: WeightFormat, k: usize) -> usize {
    match format {
        WeightFormat::Bf16 => [8, 24, 32, 40, 96, 136, 100][k % 7],
        WeightFormat::Int8 => [16, 48, 64, 80, 144][k % 5],
        _ => cols_for(format, k % 6),
    }
}

/// The smallest width `format` accepts that is at least `n`.
pub fn round_up_cols(format: WeightFormat, n: usize) -> usize {
    match format {
        WeightFormat::Int4 { group } => n.next_multiple_of(group),
        WeightFormat::Mxfp4 => n.next_multiple_of(32),
        _ => n.max(1),
    }
}
