//! Matmul tiles: a block of output rows of one weight matrix for a list of tokens,
//! `out[orow(t), r] = (accumulate ? out[orow(t), r] : 0) + W[r] · x[xrow(t)] + b[r]`.
//!
//! Parallel strategy: none here; callers split the rows into tasks (`fast::matmul`,
//! `fast::moe`). A tile walks its tokens T at a time and its rows R at a time, so one weight
//! load feeds T tokens and one activation load feeds R rows. With one token (decode) the
//! weights stream once, at memory speed; with many (prefill) each weight read from L1/L2
//! serves T tokens. Trade-off: T is small (3 or 4) to keep R × T accumulators in registers;
//! longer reuse comes from the task's row block staying in L2 across token groups.
//!
//! Two families, both with exact f32 products and f32 sums: f32 and bf16 weights widen
//! lane by lane; int8, int4 and MXFP4 weights decode a block of 32 at a time
//! (`Simd::wf_*`), take the block's dot product, and scale it by the block's (or row's) scale.

use std::ops::Range;

use gptoss_engine::WeightFormat;

use crate::simd::Simd;
use crate::view::WeightView;

/// Activations as a tile reads them: one row of `stride` floats per token, reordered for the
/// 4-bit formats (`fast::prepare`).
#[derive(Clone, Copy)]
pub struct Act<'a> {
    pub x: &'a [f32],
    pub stride: usize,
}

/// One tile of work. `out` must be valid for every `(orow, r)` the tile writes, and no other
/// thread may touch those elements meanwhile.
pub struct Tile<'a> {
    /// A single matrix (the expert already selected).
    pub w: &'a WeightView<'a>,
    pub rows: Range<usize>,
    pub act: &'a Act<'a>,
    /// The activation row of each token of the tile.
    pub xrows: &'a [u32],
    /// The output row of each token.
    pub orows: &'a [u32],
    pub out: *mut f32,
    /// Floats per output row.
    pub ostride: usize,
    pub accumulate: bool,
}

/// The tile's format-specific loop, compiled for `S`.
///
/// # Safety
/// The CPU supports `S`; the activations were prepared for the weight format
/// (`fast::matmul::activations`) and hold every row named in `xrows`.
#[inline(always)]
pub unsafe fn tile<S: Simd>(t: &Tile) {
    let Act { x, stride } = *t.act;
    unsafe {
        match t.w.format {
            WeightFormat::F32 => float::<S, F32Row>(t, x, stride),
            WeightFormat::Bf16 => float::<S, Bf16Row>(t, x, stride),
            WeightFormat::Int8 => block::<S, I8Row>(t, x, stride),
            WeightFormat::Int4 { .. } => block::<S, I4Row>(t, x, stride),
            WeightFormat::Mxfp4 => block::<S, Mf4Row>(t, x, stride),
        }
    }
}

/// Writes one result through the epilogue: bias, then accumulate or overwrite.
#[inline(always)]
unsafe fn put(t: &Tile, r: usize, tok: usize, v: f32) {
    let v = v + t.w.bias.map_or(0.0, |b| b[r]);
    unsafe {
        let p = t.out.add(t.orows[tok] as usize * t.ostride + r);
        *p = if t.accumulate { *p + v } else { v };
    }
}

// ---- f32 and bf16 weights × f32 activations ------------------------------------------------

trait FloatRow {
    /// Bytes per element.
    const SIZE: usize;
    unsafe fn load<S: Simd>(p: *const u8) -> S::F;
    unsafe fn get(p: *const u8) -> f32;
}

struct F32Row;
impl FloatRow for F32Row {
    const SIZE: usize = 4;
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const u8) -> S::F {
        unsafe { S::load(p as *const f32) }
    }
    #[inline(always)]
    unsafe fn get(p: *const u8) -> f32 {
        unsafe { (p as *const f32).read_unaligned() }
    }
}

struct Bf16Row;
impl FloatRow for Bf16Row {
    const SIZE: usize = 2;
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const u8) -> S::F {
        unsafe { S::load_bf16(p as *const u16) }
    }
    #[inline(always)]
    unsafe fn get(p: *const u8) -> f32 {
        unsafe { f32::from_bits(((p as *const u16).read_unaligned() as u32) << 16) }
    }
}

/// Rows `w` (R of them) against tokens `x` (T of them) over `cols` elements.
#[inline(always)]
unsafe fn float_micro<S: Simd, W: FloatRow, const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [*const f32; T],
    cols: usize,
) -> [[f32; T]; R] {
    unsafe {
        let mut acc = [[S::zero(); T]; R];
        let mut c = 0;
        while c + S::LANES <= cols {
            let mut xv = [S::zero(); T];
            for j in 0..T {
                xv[j] = S::load(x[j].add(c));
            }
            // Each weight vector is decoded once and used T times.
            for i in 0..R {
                let wv = W::load::<S>(w[i].add(c * W::SIZE));
                for j in 0..T {
                    acc[i][j] = S::fma(wv, xv[j], acc[i][j]);
                }
            }
            c += S::LANES;
        }
        let mut out = [[0f32; T]; R];
        for i in 0..R {
            for j in 0..T {
                let mut s = S::sum(acc[i][j]);
                for k in c..cols {
                    s += W::get(w[i].add(k * W::SIZE)) * *x[j].add(k);
                }
                out[i][j] = s;
            }
        }
        out
    }
}

#[inline(always)]
unsafe fn float<S: Simd, W: FloatRow>(t: &Tile, x: &[f32], stride: usize) {
    let n = t.xrows.len();
    let mut j = 0;
    unsafe {
        while j < n {
            let xp = |k: usize| x.as_ptr().add(t.xrows[j + k] as usize * stride);
            if n - j >= 3 {
                float_rows::<S, W, 3>(t, j, [xp(0), xp(1), xp(2)]);
                j += 3;
            } else {
                float_rows::<S, W, 1>(t, j, [xp(0)]);
                j += 1;
            }
        }
    }
}

#[inline(always)]
unsafe fn float_rows<S: Simd, W: FloatRow, const T: usize>(t: &Tile, tok: usize, x: [*const f32; T]) {
    let (cols, base) = (t.w.cols, t.w.data.as_ptr());
    let row = |r: usize| unsafe { base.add(r * cols * W::SIZE) };
    let mut r = t.rows.start;
    unsafe {
        while r + 4 <= t.rows.end {
            let v = float_micro::<S, W, 4, T>([row(r), row(r + 1), row(r + 2), row(r + 3)], x, cols);
            for (i, vi) in v.iter().enumerate() {
                for (j, &vij) in vi.iter().enumerate() {
                    put(t, r + i, tok + j, vij);
                }
            }
            r += 4;
        }
        while r < t.rows.end {
            let v = float_micro::<S, W, 1, T>([row(r)], x, cols);
            for (j, &vj) in v[0].iter().enumerate() {
                put(t, r, tok + j, vj);
            }
            r += 1;
        }
    }
}

// ---- int8, int4 and MXFP4 weights, a block of 32 at a time ---------------------------------

trait BlockRow {
    /// Bytes of one block of 32 weights.
    const BLOCK: usize;
    /// Bytes per row of `cols` weights.
    fn row_bytes(cols: usize) -> usize;
    unsafe fn block<S: Simd>(p: *const u8) -> S::WF;
    /// The scale of block `b` of row `r` (1 where the format scales whole rows).
    fn scale(w: &WeightView, r: usize, b: usize) -> f32;
    /// The scale of row `r` (1 where the format scales blocks).
    fn row_scale(_w: &WeightView, _r: usize) -> f32 {
        1.0
    }
    /// `Σ w·x` over the elements past the last full block (none but for int8).
    fn tail(_row: *const u8, _x: *const f32, _from: usize, _cols: usize) -> f32 {
        0.0
    }
}

/// `2^(e − 128)`: the E8M0 scale halved, because the decoders give doubled E2M1 values.
/// Finite for every byte (2^127 at 255; 2^−128 at 0, a subnormal).
static E8M0_HALF: [f32; 256] = {
    let mut t = [0f32; 256];
    let mut e = 0;
    while e < 256 {
        t[e] = if e >= 2 { f32::from_bits(((e as u32) - 1) << 23) } else { f32::from_bits(1 << (21 + e)) };
        e += 1;
    }
    t
};

struct Mf4Row;
impl BlockRow for Mf4Row {
    const BLOCK: usize = 16;
    fn row_bytes(cols: usize) -> usize {
        cols / 2
    }
    #[inline(always)]
    unsafe fn block<S: Simd>(p: *const u8) -> S::WF {
        unsafe { S::wf_mf4(p) }
    }
    #[inline(always)]
    fn scale(w: &WeightView, r: usize, b: usize) -> f32 {
        E8M0_HALF[w.scales[r * (w.cols / 32) + b] as usize]
    }
}

struct I4Row;
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
    fn scale(w: &WeightView, r: usize, b: usize) -> f32 {
        let WeightFormat::Int4 { group } = w.format else { return 0.0 };
        let i = r * (w.cols / group) + b * 32 / group;
        f32::from_bits((u16::from_le_bytes([w.scales[2 * i], w.scales[2 * i + 1]]) as u32) << 16)
    }
}

struct I8Row;
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
    fn scale(_: &WeightView, _: usize, _: usize) -> f32 {
        1.0
    }
    #[inline(always)]
    fn row_scale(w: &WeightView, r: usize) -> f32 {
        f32::from_le_bytes([w.scales[4 * r], w.scales[4 * r + 1], w.scales[4 * r + 2], w.scales[4 * r + 3]])
    }
    #[inline(always)]
    fn tail(row: *const u8, x: *const f32, from: usize, cols: usize) -> f32 {
        // SAFETY: the row holds `cols` bytes and the activation row `cols` floats.
        (from..cols).map(|c| unsafe { *row.add(c) as i8 as f32 * *x.add(c) }).sum()
    }
}

#[inline(always)]
unsafe fn block<S: Simd, W: BlockRow>(t: &Tile, x: &[f32], stride: usize) {
    let n = t.xrows.len();
    let mut j = 0;
    unsafe {
        while j < n {
            let xp = |k: usize| x.as_ptr().add(t.xrows[j + k] as usize * stride);
            // A decoded block costs ~4× its FMAs for one token: prefill shares it among 8.
            if n - j >= 8 {
                block_rows::<S, W, 1, 8>(t, j, [xp(0), xp(1), xp(2), xp(3), xp(4), xp(5), xp(6), xp(7)]);
                j += 8;
            } else if n - j >= 3 {
                block_rows::<S, W, 1, 3>(t, j, [xp(0), xp(1), xp(2)]);
                j += 3;
            } else {
                block_rows::<S, W, 4, 1>(t, j, [xp(0)]);
                j += 1;
            }
        }
    }
}

#[inline(always)]
unsafe fn block_rows<S: Simd, W: BlockRow, const R: usize, const T: usize>(t: &Tile, tok: usize, x: [*const f32; T]) {
    let (cols, base) = (t.w.cols, t.w.data.as_ptr());
    let row_bytes = W::row_bytes(cols);
    let mut r = t.rows.start;
    unsafe {
        while r + R <= t.rows.end {
            let v = block_micro::<S, W, R, T>(t.w, r, base.add(r * row_bytes), row_bytes, x);
            for (i, vi) in v.iter().enumerate() {
                for (j, &vij) in vi.iter().enumerate() {
                    put(t, r + i, tok + j, vij);
                }
            }
            r += R;
        }
        while r < t.rows.end {
            let v = block_micro::<S, W, 1, T>(t.w, r, base.add(r * row_bytes), row_bytes, x);
            for (j, &vj) in v[0].iter().enumerate() {
                put(t, r, tok + j, vj);
            }
            r += 1;
        }
    }
}

/// R consecutive rows from `row0` (at `w0`, `row_bytes` apart) against T tokens. Each row's
/// block is decoded and used at once (only one decoded block lives in registers).
#[inline(always)]
unsafe fn block_micro<S: Simd, W: BlockRow, const R: usize, const T: usize>(
    w: &WeightView,
    row0: usize,
    w0: *const u8,
    row_bytes: usize,
    x: [*const f32; T],
) -> [[f32; T]; R] {
    let full = w.cols / 32;
    unsafe {
        let mut acc = [[S::zero(); T]; R];
        for b in 0..full {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let wb = W::block::<S>(w0.add(i * row_bytes + b * W::BLOCK));
                let sc = S::splat(W::scale(w, row0 + i, b));
                // The same operations for every token whatever R and T: a token's result does
                // not depend on the batch it came in (a rollback replays exactly).
                for (a, xj) in acc_i.iter_mut().zip(x) {
                    *a = S::fma(S::dot_wf(wb, xj.add(32 * b)), sc, *a);
                }
            }
        }
        let mut out = [[0f32; T]; R];
        for i in 0..R {
            for j in 0..T {
                let tail = W::tail(w0.add(i * row_bytes), x[j], full * 32, w.cols);
                out[i][j] = (S::sum(acc[i][j]) + tail) * W::row_scale(w, row0 + i);
            }
        }
        out
    }
}
