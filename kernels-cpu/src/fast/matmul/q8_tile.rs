//! q8 matmul tiles: rows of int8, int4 or MXFP4 weights against activations quantized to int8
//! blocks of 32 (`fast::q8`), with integer dot products (`simd::Q8`).
//!
//! Parallel strategy: none here, as `fast::tile` (callers split the rows into tasks). Decode
//! runs 4 rows × 1 token, so one load of a group of activations feeds four rows; prefill runs
//! 1 row × 4 tokens (3 or 2 for a remainder), so one decoded group of weights feeds four
//! tokens (AVX2's 16 registers hold the 4 accumulators, the decoded group, its scales and the
//! decoders' constants).
//! Each group's weights are prefetched for the rows of the next micro-kernel call.
//!
//! Per group of blocks, row and token: the integer dot per i32 lane, converted to f32, times
//! the activation block's scale (less the correction for unsigned 4-bit codes), times the
//! weight block's scale, accumulated in f32 lanes. int8 weights scale whole rows, applied once
//! at the end. Every token runs the same operations whatever the tile's shape, so a token's
//! result does not depend on its batch (a rollback replays exactly). A row's last group may
//! hold fewer blocks than the ISA's group (or, for int8, a partial block): its bytes are copied
//! into a zeroed group, which the zero padding of the activations cancels.

use std::marker::PhantomData;

use super::block_row::{BlockRow, I8Row};
use super::q8::Layout;
use super::tile::{Micro, Q8Rows, Tile, walk_rows};
use crate::simd::{MAX_GROUP, Q8, Simd};

/// How many rows ahead the tiles ask for the weights of the group they decode: the rows the
/// next micro-kernel call takes. Weights stream from DRAM, and the hardware prefetchers alone
/// left a 2-core AVX2 machine's MXFP4 experts at 13 GB/s of 29 (22 GB/s with this).
const PREFETCH_ROWS: usize = 4;

/// Tokens that share one decoded group of weights in prefill.
const PREFILL_TOKENS: usize = 4;

/// The q8 tile of a 4-bit format `W` (MXFP4, int4) in layout `lay`.
///
/// # Safety
/// The CPU supports `Q`; the activations hold the rows named in `t.xrows`, quantized by `Q` in
/// layout `lay` (the format's).
#[inline(always)]
pub unsafe fn nibbles<Q: Q8, W: BlockRow>(t: &Tile<Q8Rows>, lay: Layout) {
    unsafe { walk(t, &NibMicro::<Q, W> { t, lay, kind: PhantomData }) }
}

/// The q8 tile of int8 weights in layout `lay`.
///
/// # Safety
/// As [`nibbles`].
#[inline(always)]
pub unsafe fn bytes<Q: Q8>(t: &Tile<Q8Rows>, lay: Layout) {
    unsafe { walk(t, &ByteMicro::<Q> { t, lay, kind: PhantomData }) }
}

/// The tile's tokens PREFILL_TOKENS at a time; a remainder of 3 or 2 tokens shares each decoded
/// group too (an expert chosen by 2 or 3 rows of a batched decode step decodes its weights
/// once, not once per row); a single token runs against 4 rows.
#[inline(always)]
unsafe fn walk<M: Micro<X = *const u8>>(t: &Tile<Q8Rows>, m: &M) {
    let Q8Rows { q, stride } = t.act;
    let n = t.xrows.len();
    let mut j = 0;
    unsafe {
        while j < n {
            let ap = |k: usize| q.as_ptr().add(t.xrows[j + k] as usize * stride);
            match n - j {
                left if left >= PREFILL_TOKENS => {
                    walk_rows::<_, _, 1, PREFILL_TOKENS>(t, m, j, std::array::from_fn(ap));
                    j += PREFILL_TOKENS;
                }
                3 => {
                    walk_rows::<_, _, 1, 3>(t, m, j, [ap(0), ap(1), ap(2)]);
                    j += 3;
                }
                2 => {
                    walk_rows::<_, _, 2, 2>(t, m, j, [ap(0), ap(1)]);
                    j += 2;
                }
                _ => {
                    walk_rows::<_, _, 4, 1>(t, m, j, [ap(0)]);
                    j += 1;
                }
            }
        }
    }
}

/// The lanes of each accumulator summed.
#[inline(always)]
unsafe fn sums<Q: Q8, const R: usize, const T: usize>(acc: &[[<Q::S as Simd>::F; T]; R]) -> [[f32; T]; R] {
    let mut out = [[0f32; T]; R];
    for (o, a) in out.iter_mut().zip(acc) {
        for (o, &a) in o.iter_mut().zip(a) {
            // SAFETY: the caller runs on `Q`'s ISA.
            *o = unsafe { Q::S::sum(a) };
        }
    }
    out
}

/// `bytes` bytes at `p` in a zeroed buffer of a whole group.
#[inline(always)]
unsafe fn padded(p: *const u8, bytes: usize) -> [u8; 32 * MAX_GROUP] {
    let mut g = [0u8; 32 * MAX_GROUP];
    // SAFETY: the caller's `p` is valid for `bytes` ≤ 32 · MAX_GROUP bytes.
    unsafe { std::ptr::copy_nonoverlapping(p, g.as_mut_ptr(), bytes) };
    g
}

/// Rows of a 4-bit format `W` (MXFP4, int4) against q8 tokens.
struct NibMicro<'a, Q, W> {
    t: &'a Tile<'a, Q8Rows<'a>>,
    lay: Layout,
    kind: PhantomData<(Q, W)>,
}

impl<Q: Q8, W: BlockRow> NibMicro<'_, Q, W> {
    /// Accumulates group `g` (at `w[i]` for row i, its block scales in `dw[i]`) into `acc`.
    #[inline(always)]
    unsafe fn group<const R: usize, const T: usize>(
        &self,
        acc: &mut [[<Q::S as Simd>::F; T]; R],
        g: usize,
        w: [*const u8; R],
        dw: [<Q::S as Simd>::F; R],
        x: [*const u8; T],
    ) {
        let (lay, ahead) = (self.lay, PREFETCH_ROWS * W::row_bytes(self.t.w.cols));
        unsafe {
            for ((acc_i, &wi), &dwi) in acc.iter_mut().zip(&w).zip(&dw) {
                Q::S::prefetch(wi.wrapping_add(ahead));
                let wq = W::q8::<Q>(wi);
                for (a, xj) in acc_i.iter_mut().zip(x) {
                    let xg = xj.add(g * lay.group_bytes());
                    let dot = Q::dot_nib(wq, xg as *const i8);
                    let da = Q::S::load(xg.add(32 * lay.group) as *const f32);
                    // d·(Σ(w + offset)·q) − offset·Σq·d = d·Σ w·q, in one rounding.
                    let v = if Q::UNSIGNED_NIBBLES {
                        Q::fmsub(dot, da, Q::S::load(xg.add(32 * lay.group + 4 * lay.lanes) as *const f32))
                    } else {
                        Q::S::mul(dot, da)
                    };
                    *a = Q::S::fma(v, dwi, *a);
                }
            }
        }
    }

    /// The block scales of group `g` (`blocks` of its blocks present; the rest 0) of the row
    /// whose scales are at `sp`, one at a time.
    #[inline(always)]
    unsafe fn scales(&self, sp: *const u8, g: usize, blocks: usize) -> <Q::S as Simd>::F {
        let mut s = [0f32; MAX_GROUP];
        for (b, s) in s.iter_mut().enumerate().take(blocks) {
            // SAFETY: block g · group + b exists (the caller's `blocks`).
            *s = unsafe { W::scale_at(self.t.w, sp, g * self.lay.group + b) };
        }
        unsafe { Q::nib_scales(s) }
    }
}

impl<Q: Q8, W: BlockRow> Micro for NibMicro<'_, Q, W> {
    type X = *const u8;

    #[inline(always)]
    unsafe fn run<const R: usize, const T: usize>(&self, row0: usize, x: [*const u8; T]) -> [[f32; T]; R] {
        let (lay, view) = (self.lay, self.t.w);
        let (blocks, row_bytes, scale_bytes) = (view.cols / 32, W::row_bytes(view.cols), W::scale_bytes(view));
        let (full, rest) = (blocks / lay.group, blocks % lay.group);
        // The scales of the R rows, checked once for the unchecked reads below.
        let sp: [*const u8; R] = std::array::from_fn(|i| view.scales[(row0 + i) * scale_bytes..(row0 + i + 1) * scale_bytes].as_ptr());
        unsafe {
            let w0 = view.data.as_ptr().add(row0 * row_bytes);
            let at = |g: usize| -> [*const u8; R] { std::array::from_fn(|i| w0.add(i * row_bytes + g * 16 * lay.group)) };
            let mut acc = [[Q::S::zero(); T]; R];
            let mut g = 0;
            // MXFP4: the E8M0 scales of E8M0_GROUPS groups converted at once, then picked per group.
            // (Loops, not array maps: a closure over SIMD values would run outside this
            // function's target features, through calls, if the map is not inlined.)
            let mut dw = [Q::S::zero(); R];
            if W::E8M0 {
                let mut sc = [Q::S::zero(); R];
                while g + Q::E8M0_GROUPS <= full {
                    for i in 0..R {
                        sc[i] = Q::e8m0_scales(sp[i].add(g * lay.group));
                    }
                    for k in 0..Q::E8M0_GROUPS {
                        for i in 0..R {
                            dw[i] = Q::e8m0_group(sc[i], k);
                        }
                        self.group(&mut acc, g + k, at(g + k), dw, x);
                    }
                    g += Q::E8M0_GROUPS;
                }
            }
            for g in g..full {
                for i in 0..R {
                    dw[i] = self.scales(sp[i], g, lay.group);
                }
                self.group(&mut acc, g, at(g), dw, x);
            }
            if rest > 0 {
                let tails: [_; R] = std::array::from_fn(|i| padded(w0.add(i * row_bytes + full * 16 * lay.group), 16 * rest));
                for i in 0..R {
                    dw[i] = self.scales(sp[i], full, rest);
                }
                self.group(&mut acc, full, std::array::from_fn(|i| tails[i].as_ptr()), dw, x);
            }
            sums::<Q, R, T>(&acc)
        }
    }
}

/// Rows of int8 weights against q8 tokens: the row's scale applies once, after the sum.
struct ByteMicro<'a, Q> {
    t: &'a Tile<'a, Q8Rows<'a>>,
    lay: Layout,
    kind: PhantomData<Q>,
}

impl<Q: Q8> ByteMicro<'_, Q> {
    /// Accumulates one group (at `w[i]` for row i) into `acc`.
    #[inline(always)]
    unsafe fn group<const R: usize, const T: usize>(
        &self,
        acc: &mut [[<Q::S as Simd>::F; T]; R],
        g: usize,
        w: [*const u8; R],
        x: [*const u8; T],
    ) {
        let (lay, ahead) = (self.lay, PREFETCH_ROWS * self.t.w.cols);
        unsafe {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                Q::S::prefetch(w[i].wrapping_add(ahead));
                let wq = I8Row::q8::<Q>(w[i]);
                for (a, xj) in acc_i.iter_mut().zip(x) {
                    let xg = xj.add(g * lay.group_bytes());
                    let dot = Q::dot_i8(wq, xg as *const i8);
                    *a = Q::S::fma(dot, Q::S::load(xg.add(32 * lay.group) as *const f32), *a);
                }
            }
        }
    }
}

impl<Q: Q8> Micro for ByteMicro<'_, Q> {
    type X = *const u8;

    #[inline(always)]
    unsafe fn run<const R: usize, const T: usize>(&self, row0: usize, x: [*const u8; T]) -> [[f32; T]; R] {
        let (lay, view) = (self.lay, self.t.w);
        let (cols, per_group) = (view.cols, 32 * lay.group);
        let full = cols / per_group;
        unsafe {
            let w0 = view.data.as_ptr().add(row0 * cols);
            let mut acc = [[Q::S::zero(); T]; R];
            for g in 0..full {
                self.group(&mut acc, g, std::array::from_fn(|i| w0.add(i * cols + g * per_group)), x);
            }
            if cols > full * per_group {
                let tails: [_; R] = std::array::from_fn(|i| padded(w0.add(i * cols + full * per_group), cols - full * per_group));
                self.group(&mut acc, full, std::array::from_fn(|i| tails[i].as_ptr()), x);
            }
            let mut out = sums::<Q, R, T>(&acc);
            for (i, o) in out.iter_mut().enumerate() {
                let scale = I8Row::row_scale(view, row0 + i);
                for o in o.iter_mut() {
                    *o *= scale;
                }
            }
            out
        }
    }
}
