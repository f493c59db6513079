//! Row access for the block formats (int8, int4, MXFP4): bytes per row and per block, each
//! block's or row's scale, and the decoders of the exact (`tile`) and q8 (`q8_tile`) tiles.

use gptoss_engine::WeightFormat;

use crate::simd::{Q8, Simd};
use crate::view::WeightView;

/// How a block format lays out a row and scales its blocks.
///
/// # Safety
/// The decoders read one block (`block`) or one group of the ISA's q8 layout (`q8`) at `p`, and
/// may only run on a CPU with the ISA.
#[allow(clippy::missing_safety_doc)]
pub trait BlockRow {
    /// Bytes of one block of 32 weights.
    const BLOCK: usize;
    /// Whether the block scales are E8M0 bytes (`E8M0_HALF` values), which the q8 tiles
    /// convert several at a time (`Q8::e8m0_scales`).
    const E8M0: bool = false;
    /// Bytes per row of `cols` weights.
    fn row_bytes(cols: usize) -> usize;
    /// One block as f32 lanes (the exact tiles).
    unsafe fn block<S: Simd>(p: *const u8) -> S::WF;
    /// One group of blocks for `Q`'s integer dot (the q8 tiles).
    unsafe fn q8<Q: Q8>(p: *const u8) -> Q::W;
    /// The scale of block `b` of row `r` (1 where the format scales whole rows).
    fn scale(w: &WeightView, r: usize, b: usize) -> f32;
    /// Bytes of block scales per row (0 where the format scales whole rows).
    fn scale_bytes(_w: &WeightView) -> usize {
        0
    }
    /// The scale of block `b` of the row whose block scales start at `p`, unchecked: `p` holds
    /// `scale_bytes` bytes and `b < cols / 32`.
    unsafe fn scale_at(_w: &WeightView, _p: *const u8, _b: usize) -> f32 {
        1.0
    }
    /// The scale of row `r` (1 where the format scales blocks).
    fn row_scale(_w: &WeightView, _r: usize) -> f32 {
        1.0
    }
    /// `Σ w·x` over the elements past the last full block (none but for int8): `row` holds
    /// `cols` weights and `x` as many activations.
    unsafe fn tail(_row: *const u8, _x: *const f32, _from: usize, _cols: usize) -> f32 {
        0.0
    }
}

/// `2^(e − 128)`: the E8M0 scale halved, because the decoders give doubled E2M1 values.
/// Finite for every byte (2^127 at 255; 2^−128 at 0, a subnormal).
pub static E8M0_HALF: [f32; 256] = {
    let mut t = [0f32; 256];
    let mut e = 0;
    while e < 256 {
        t[e] = if e >= 2 { f32::from_bits(((e as u32) - 1) << 23) } else { f32::from_bits(1 << (21 + e)) };
        e += 1;
    }
    t
};

#[derive(Clone, Copy)]
pub struct Mf4Row;
impl BlockRow for Mf4Row {
    const BLOCK: usize = 16;
    const E8M0: bool = true;
    fn row_bytes(cols: usize) -> usize {
        cols / 2
    }
    #[inline(always)]
    unsafe fn block<S: Simd>(p: *const u8) -> S::WF {
        unsafe { S::wf_mf4(p) }
    }
    #[inline(always)]
    unsafe fn q8<Q: Q8>(p: *const u8) -> Q::W {
        unsafe { Q::w_mf4(p) }
    }
    #[inline(always)]
    fn scale(w: &WeightView, r: usize, b: usize) -> f32 {
        E8M0_HALF[w.scales[r * (w.cols / 32) + b] as usize]
    }
    fn scale_bytes(w: &WeightView) -> usize {
        w.cols / 32
    }
    #[inline(always)]
    unsafe fn scale_at(_w: &WeightView, p: *const u8, b: usize) -> f32 {
        E8M0_HALF[unsafe { *p.add(b) } as usize]
    }
}

#[derive(Clone, Copy)]
pub struct I4Row;
impl BlockRow for I4Row {
    const BLOCK: usize = 16;
    fn row_bytes(cols: usize) -> usize {
        cols / 2
    }
    #[inline(always)]
    unsafe fn block<S: Simd>(p: *const u8) -> S::WF {
        unsafe { S::wf_i4(p) }
    }
    #[inline(always)]
    unsafe fn q8<Q: Q8>(p: *const u8) -> Q::W {
        unsafe { Q::w_i4(p) }
    }
    #[inline(always)]
    fn scale(w: &WeightView, r: usize, b: usize) -> f32 {
        let WeightFormat::Int4 { group } = w.format else { return 0.0 };
        let i = r * (w.cols / group) + b * 32 / group;
        f32::from_bits((u16::from_le_bytes([w.scales[2 * i], w.scales[2 * i + 1]]) as u32) << 16)
    }
    fn scale_bytes(w: &WeightView) -> usize {
        let WeightFormat::Int4 { group } = w.format else { return 0 };
        2 * w.cols / group
    }
    #[inline(always)]
    unsafe fn scale_at(w: &WeightView, p: *const u8, b: usize) -> f32 {
        let WeightFormat::Int4 { group } = w.format else { return 0.0 };
        f32::from_bits((unsafe { (p as *const u16).add(b * 32 / group).read_unaligned() } as u32) << 16)
    }
}

#[derive(Clone, Copy)]
pub struct I8Row;
impl BlockRow for I8Row {
    const BLOCK: usize = 32;
    fn row_bytes(cols: usize) -> usize {
        cols
    }
    #[inline(always)]
    unsafe fn block<S: Simd>(p: *const u8) -> S::WF {
        unsafe { S::wf_i8(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn q8<Q: Q8>(p: *const u8) -> Q::W {
        unsafe { Q::w_i8(p as *const i8) }
    }
    #[inline(always)]
    fn scale(_: &WeightView, _: usize, _: usize) -> f32 {
        1.0
    }
    #[inline(always)]
    fn row_scale(w: &WeightView, r: usize) -> f32 {
        f32::from_le_bytes([w.scales[4 * r], w.scales[4 * r + 1], w.scales[4 * r + 2], w.scales[4 * r + 3]])
    }
    #[inline(always)]
    unsafe fn tail(row: *const u8, x: *const f32, from: usize, cols: usize) -> f32 {
        // SAFETY: the row holds `cols` bytes and the activation row `cols` floats.
        (from..cols).map(|c| unsafe { *row.add(c) as i8 as f32 * *x.add(c) }).sum()
    }
}
