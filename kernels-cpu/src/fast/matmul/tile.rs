//! Matmul tiles: a block of output rows of one weight matrix for a list of tokens,
//! `out[orow(t), r] = (accumulate ? out[orow(t), r] : 0) + W[r] · x[xrow(t)] + b[r]`.
//!
//! Parallel strategy: none here; callers split the rows into tasks (`drivers::matmul`,
//! `drivers::moe_experts`). A tile walks its tokens T at a time and its rows R at a time, so one weight
//! load feeds T tokens and one activation load feeds R rows. With one token (decode) the
//! weights stream once, at memory speed; with many (prefill) each weight read from L1/L2
//! serves T tokens. Trade-off: T is small (3 or 4) to keep R × T accumulators in registers;
//! longer reuse comes from the task's row block staying in L2 across token groups.
//! The f32 and bf16 tiles prefetch, once per cache line, the weights the next row group will
//! read: the hardware prefetchers alone do not keep several row streams per core ahead of DRAM.
//!
//! Two families, both with exact f32 products and f32 sums: f32 and bf16 weights widen
//! lane by lane; int8, int4 and MXFP4 weights decode a block of 32 at a time
//! (`Simd::wf_*`), take the block's dot product, and scale it by the block's (or row's) scale.

use std::marker::PhantomData;
use std::ops::Range;

use super::block_row::BlockRow;
use crate::simd::Simd;
use crate::view::WeightView;

/// f32 activations as the exact tiles read them: `stride` floats per token row, reordered for
/// the 4-bit formats (`fast::matmul::prepare`).
#[derive(Clone, Copy)]
pub struct F32Rows<'a> {
    pub x: &'a [f32],
    pub stride: usize,
}

/// int8 activations as the q8 tiles read them: `stride` bytes per token row of int8 blocks in
/// the ISA's layout for the weight format (`fast::matmul::q8`).
#[derive(Clone, Copy)]
pub struct Q8Rows<'a> {
    pub q: &'a [u8],
    pub stride: usize,
}

/// One tile of work on activations `A` (`F32Rows` or `Q8Rows`). `out` must be valid for every
/// `(orow, r)` the tile writes, and no other thread may touch those elements meanwhile.
pub struct Tile<'a, A> {
    /// A single matrix (the expert already selected).
    pub w: &'a WeightView<'a>,
    pub rows: Range<usize>,
    pub act: A,
    /// The activation row of each token of the tile.
    pub xrows: &'a [u32],
    /// The output row of each token.
    pub orows: &'a [u32],
    pub out: *mut f32,
    /// Floats per output row.
    pub ostride: usize,
    pub accumulate: bool,
}

/// Writes one result through the epilogue: bias, then accumulate or overwrite.
#[inline(always)]
unsafe fn put<A>(t: &Tile<A>, r: usize, tok: usize, v: f32) {
    let v = v + t.w.bias.map_or(0.0, |b| b[r]);
    unsafe {
        let p = t.out.add(t.orows[tok] as usize * t.ostride + r);
        *p = if t.accumulate { *p + v } else { v };
    }
}

/// A micro-kernel: R consecutive rows from `row0` against T tokens (`X`: a token's activations).
///
/// # Safety
/// `run` may only run on a CPU with the micro-kernel's ISA, for rows of its weight and tokens
/// whose activations were prepared for it.
#[allow(clippy::missing_safety_doc)]
pub trait Micro {
    type X: Copy;
    unsafe fn run<const R: usize, const T: usize>(&self, row0: usize, x: [Self::X; T]) -> [[f32; T]; R];
}

/// The tile's rows R at a time (the remainder one at a time) for tokens `tok .. tok + T`,
/// through the epilogue.
///
/// # Safety
/// As `Micro::run`, and `t.out` is valid for the rows and tokens written (see `Tile`).
#[inline(always)]
pub unsafe fn walk_rows<M: Micro, A, const R: usize, const T: usize>(t: &Tile<A>, m: &M, tok: usize, x: [M::X; T]) {
    let mut r = t.rows.start;
    unsafe {
        while r + R <= t.rows.end {
            let v = m.run::<R, T>(r, x);
            for (i, vi) in v.iter().enumerate() {
                for (j, &vij) in vi.iter().enumerate() {
                    put(t, r + i, tok + j, vij);
                }
            }
            r += R;
        }
        while r < t.rows.end {
            let v = m.run::<1, T>(r, x);
            for (j, &vj) in v[0].iter().enumerate() {
                put(t, r, tok + j, vj);
            }
            r += 1;
        }
    }
}

// ---- f32 and bf16 weights × f32 activations ------------------------------------------------

/// How a float format (f32, bf16) lays out a row.
///
/// # Safety
/// `load` reads `Simd::LANES` elements and `get` one element at `p`, which must be valid for
/// them; `load` may only run on a CPU with `S`'s ISA.
#[allow(clippy::missing_safety_doc)]
pub trait FloatRow {
    /// Bytes per element.
    const SIZE: usize;
    unsafe fn load<S: Simd>(p: *const u8) -> S::F;
    unsafe fn get(p: *const u8) -> f32;
}

#[derive(Clone, Copy)]
pub struct F32Row;
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

#[derive(Clone, Copy)]
pub struct Bf16Row;
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

/// How many rows ahead the f32 and bf16 tiles ask for the weights they are about to read:
/// the rows the next micro-kernel call takes.
pub const PREFETCH_ROWS: usize = 4;

/// Rows of f32 or bf16 weights (`W`) against f32 tokens.
struct FloatMicro<'a, S, W> {
    w: &'a WeightView<'a>,
    kind: PhantomData<(S, W)>,
}

impl<S: Simd, W: FloatRow> Micro for FloatMicro<'_, S, W> {
    type X = *const f32;

    #[inline(always)]
    unsafe fn run<const R: usize, const T: usize>(&self, row0: usize, x: [*const f32; T]) -> [[f32; T]; R] {
        let cols = self.w.cols;
        unsafe {
            let w: [*const u8; R] = std::array::from_fn(|i| self.w.data.as_ptr().add((row0 + i) * cols * W::SIZE));
            let mut acc = [[S::zero(); T]; R];
            let mut c = 0;
            while c + S::LANES <= cols {
                let mut xv = [S::zero(); T];
                for j in 0..T {
                    xv[j] = S::load(x[j].add(c));
                }
                // Each weight vector is decoded once and used T times.
                for i in 0..R {
                    // Once per cache line: the same columns PREFETCH_ROWS rows below.
                    if (c * W::SIZE).is_multiple_of(64) {
                        S::prefetch(w[i].wrapping_add(c * W::SIZE + PREFETCH_ROWS * cols * W::SIZE));
                    }
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
}

/// The exact tile of a float format.
///
/// # Safety
/// The CPU supports `S`; the activations hold every row named in `t.xrows`.
#[inline(always)]
pub unsafe fn float<S: Simd, W: FloatRow>(t: &Tile<F32Rows>) {
    let F32Rows { x, stride } = t.act;
    let m = FloatMicro::<S, W> { w: t.w, kind: PhantomData };
    let n = t.xrows.len();
    let mut j = 0;
    unsafe {
        while j < n {
            let xp = |k: usize| x.as_ptr().add(t.xrows[j + k] as usize * stride);
            if n - j >= 3 {
                walk_rows::<_, _, 4, 3>(t, &m, j, [xp(0), xp(1), xp(2)]);
                j += 3;
            } else {
                walk_rows::<_, _, 4, 1>(t, &m, j, [xp(0)]);
                j += 1;
            }
        }
    }
}

// ---- int8, int4 and MXFP4 weights, a block of 32 at a time ---------------------------------

/// Rows of a block format (`W`) against f32 tokens. Each row's block is decoded and used at
/// once (only one decoded block lives in registers).
struct BlockMicro<'a, S, W> {
    w: &'a WeightView<'a>,
    kind: PhantomData<(S, W)>,
}

impl<S: Simd, W: BlockRow> Micro for BlockMicro<'_, S, W> {
    type X = *const f32;

    #[inline(always)]
    unsafe fn run<const R: usize, const T: usize>(&self, row0: usize, x: [*const f32; T]) -> [[f32; T]; R] {
        let (w, full) = (self.w, self.w.cols / 32);
        let row_bytes = W::row_bytes(w.cols);
        unsafe {
            let w0 = w.data.as_ptr().add(row0 * row_bytes);
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
}

/// The exact tile of a block format.
///
/// # Safety
/// The CPU supports `S`; the activations (reordered for the 4-bit formats) hold every row named
/// in `t.xrows`.
#[inline(always)]
pub unsafe fn block<S: Simd, W: BlockRow>(t: &Tile<F32Rows>) {
    let F32Rows { x, stride } = t.act;
    let m = BlockMicro::<S, W> { w: t.w, kind: PhantomData };
    let n = t.xrows.len();
    let mut j = 0;
    unsafe {
        while j < n {
            let xp = |k: usize| x.as_ptr().add(t.xrows[j + k] as usize * stride);
            // A decoded block costs ~4× its FMAs for one token: prefill shares it among 8.
            if n - j >= 8 {
                walk_rows::<_, _, 1, 8>(t, &m, j, [xp(0), xp(1), xp(2), xp(3), xp(4), xp(5), xp(6), xp(7)]);
                j += 8;
            } else if n - j >= 3 {
                walk_rows::<_, _, 1, 3>(t, &m, j, [xp(0), xp(1), xp(2)]);
                j += 3;
            } else {
                walk_rows::<_, _, 4, 1>(t, &m, j, [xp(0)]);
                j += 1;
            }
        }
    }
}
