//! bf16 weights × f32 activations by bf16 dot products (`vdpbf16ps`, AVX512-BF16): the tiles of
//! `tile` for bf16 weights, without widening the weights.
//!
//! Each f32 activation x is split once per op (`split_row`) into two bf16 planes, hi = bf16(x)
//! and lo = bf16(x − hi); a row's 32 weights, loaded as they are stored, take one `vdpbf16ps`
//! with hi and one with lo, accumulating 16 f32 lanes (pairs of columns). Per 32 weights and
//! token that is 2 instructions against the f32 tile's 2 FMAs plus 4 widening µops shared by its
//! tokens; but on the Xeon measured `vdpbf16ps` issues once per two cycles where an FMA issues
//! twice per cycle, so these tiles run at half the f32 tile's speed with several tokens and tie
//! with one (`bench/NOTES.md`, "bf16 weights with `vdpbf16ps`"): the registry lists them after
//! the exact bf16 kernels, to be named (`GPTOSS_KERNELS`, `registry::bf16_dot_overrides`) on a
//! CPU where the instruction is cheaper.
//!
//! Error against the exact products (the f32 tile's): every product of two bf16 is exact in
//! f32, and `vdpbf16ps` adds each with its own rounding to nearest even, so the sums are f32
//! sums of twice as many terms (4 per 32 weights per lane instead of 2). What the split leaves
//! out is |x − hi − lo| ≤ 2⁻⁸ · |x − hi| ≤ 2⁻¹⁶ · |x| per activation (hi and lo each keep 8
//! significant bits), so for an output y = Σₖ wₖ·xₖ over K columns:
//!   |ŷ − y| ≤ (2⁻¹⁶ + (K/8 + 5) · 2⁻²⁴) · Σ|wₖ·xₖ| + K · 2⁻¹²⁵,
//! the second term the f32 summation (the f32 tile's is (K/16 + 5) · 2⁻²⁴), the third what the
//! instructions flush to zero: denormal inputs (an x or x − hi below 2⁻¹²⁶, a denormal bf16
//! weight) and denormal partial sums. Rounding errors are random in sign, so the typical error is
//! ~2⁻¹⁸ · |w|·|x| per term rather than the bound: an NMSE of ~1e-11 for outputs that do not
//! cancel, inside the matmul `exact` budget (`tests/ops/src/budgets.rs`). An infinite
//! activation (or one ≥ 2¹²⁸ · (1 − 2⁻⁹), which rounds to an infinite hi) gives NaN rather than
//! ±∞. Columns past the last full block of 32 are multiplied exactly, from x.
//!
//! Parallel strategy and trade-offs as `tile`: callers split rows into tasks; a tile walks its
//! tokens 4 at a time (4 rows × 4 tokens: 16 accumulators, 8 activation and 4 weight
//! registers), then 2, then 1 on 8 rows (8 independent accumulators to cover the latency of the
//! two dependent `vdpbf16ps` per step). Every (row, token) sees the same operations whatever the
//! group it is computed in, so a token's result does not depend on its batch.

use std::marker::PhantomData;

use super::tile::{Bf16Row, FloatRow, Micro, PREFETCH_ROWS, Tile, walk_rows};
use crate::simd::{Bf16Dot, Simd};
use crate::view::WeightView;

/// bf16 values per block: one vector of weights, and of each plane.
const BLOCK: usize = 32;

/// Activations as the bf16-dot tiles read them: each token row's full blocks of 32 as bf16
/// planes (`planes`, `2 · cols` values per row: a block's 32 hi then its 32 lo), and the f32
/// rows themselves (`x`, `cols` per row) for the columns past the last full block.
#[derive(Clone, Copy)]
pub struct SplitRows<'a> {
    pub planes: &'a [u16],
    pub x: &'a [f32],
    pub cols: usize,
}

/// One row of activations split into bf16 planes: `out` holds `2 · x.len()` values; the
/// elements past the last full block are not split (the tiles read them from `x`).
///
/// # Safety
/// The CPU supports `D`.
#[inline(always)]
pub unsafe fn split_row<D: Bf16Dot>(x: &[f32], out: &mut [u16]) {
    assert!(out.len() >= 2 * x.len(), "{} values cannot hold the planes of {}", out.len(), x.len());
    for b in 0..x.len() / BLOCK {
        // SAFETY: block b's 32 values of x and its 64 of out are in bounds (asserted).
        unsafe { D::split(x.as_ptr().add(b * BLOCK), out.as_mut_ptr().add(2 * b * BLOCK)) }
    }
}

/// Rows of bf16 weights against tokens: (planes, f32 row) per token.
struct DotMicro<'a, D> {
    w: &'a WeightView<'a>,
    kind: PhantomData<D>,
}

impl<D: Bf16Dot> Micro for DotMicro<'_, D> {
    type X = (*const u16, *const f32);

    #[inline(always)]
    unsafe fn run<const R: usize, const T: usize>(&self, row0: usize, x: [(*const u16, *const f32); T]) -> [[f32; T]; R] {
        let (cols, full) = (self.w.cols, self.w.cols / BLOCK);
        unsafe {
            let w: [*const u16; R] = std::array::from_fn(|i| (self.w.data.as_ptr() as *const u16).add((row0 + i) * cols));
            let mut acc = [[<D::S as Simd>::zero(); T]; R];
            for b in 0..full {
                let planes: [[D::B; 2]; T] = std::array::from_fn(|j| {
                    let p = x[j].0.add(2 * b * BLOCK);
                    [D::load(p), D::load(p.add(BLOCK))]
                });
                for i in 0..R {
                    // A block is one cache line (when rows are aligned): the same columns
                    // PREFETCH_ROWS rows below.
                    <D::S as Simd>::prefetch(w[i].wrapping_add(b * BLOCK + PREFETCH_ROWS * cols) as *const u8);
                    let wv = D::load(w[i].add(b * BLOCK));
                    for j in 0..T {
                        acc[i][j] = D::dot(D::dot(acc[i][j], wv, planes[j][0]), wv, planes[j][1]);
                    }
                }
            }
            let mut out = [[0f32; T]; R];
            for i in 0..R {
                for j in 0..T {
                    let mut s = <D::S as Simd>::sum(acc[i][j]);
                    for k in full * BLOCK..cols {
                        s += Bf16Row::get(w[i].add(k) as *const u8) * *x[j].1.add(k);
                    }
                    out[i][j] = s;
                }
            }
            out
        }
    }
}

/// The bf16-dot tile.
///
/// # Safety
/// The CPU supports `D`; the planes were split by `split_row` from the rows of `x`, and hold
/// every row named in `t.xrows`.
#[inline(always)]
pub unsafe fn tile<D: Bf16Dot>(t: &Tile<SplitRows>) {
    let SplitRows { planes, x, cols } = t.act;
    let m = DotMicro::<D> { w: t.w, kind: PhantomData };
    let n = t.xrows.len();
    let mut j = 0;
    unsafe {
        while j < n {
            let xp = |k: usize| {
                let r = t.xrows[j + k] as usize;
                (planes.as_ptr().add(2 * r * cols), x.as_ptr().add(r * cols))
            };
            if n - j >= 4 {
                walk_rows::<_, _, 4, 4>(t, &m, j, [xp(0), xp(1), xp(2), xp(3)]);
                j += 4;
            } else if n - j >= 2 {
                walk_rows::<_, _, 4, 2>(t, &m, j, [xp(0), xp(1)]);
                j += 2;
            } else {
                walk_rows::<_, _, 8, 1>(t, &m, j, [xp(0)]);
                j += 1;
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::simd::avx512::Avx512Bf16;

    fn has_bf16() -> bool {
        crate::isa::Isa::Avx512.has_extension("vnni_vbmi_bf16")
    }

    /// bf16 of `x` as the instructions round it: to nearest even, a denormal input read as 0.
    fn bf16_rne(x: f32) -> u16 {
        let b = if x.abs() < f32::MIN_POSITIVE { x.to_bits() & 0x8000_0000 } else { x.to_bits() };
        ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }

    fn widen(h: u16) -> f32 {
        f32::from_bits((h as u32) << 16)
    }

    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                // Magnitudes from 2⁻¹³⁰ (denormal) to 2⁶.
                u * 2f32.powi((i % 17) as i32 * 8 - 130).max(f32::MIN_POSITIVE / 64.0) * if i % 17 == 16 { 1.0 } else { 64.0 }
            })
            .collect()
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn split_and_dot(x: &[f32], w: &[u16], planes: &mut [u16]) -> [f32; 16] {
        unsafe {
            split_row::<Avx512Bf16>(x, planes);
            let wv = Avx512Bf16::load(w.as_ptr());
            let acc = Avx512Bf16::dot(
                Avx512Bf16::dot(<Avx512Bf16 as Bf16Dot>::S::zero(), wv, Avx512Bf16::load(planes.as_ptr())),
                wv,
                Avx512Bf16::load(planes.as_ptr().add(32)),
            );
            let mut out = [0f32; 16];
            <Avx512Bf16 as Bf16Dot>::S::store(out.as_mut_ptr(), acc);
            out
        }
    }

    /// The split and one block's two `vdpbf16ps` against their scalar definitions, bit for bit,
    /// and the split within its bound of x.
    #[test]
    fn split_and_dot_match_their_definitions() {
        if !has_bf16() {
            eprintln!("note: this CPU has no AVX512-BF16; its kernels are compiled but not run here");
            return;
        }
        for seed in 0..200 {
            let (x, w) = (values(seed, 32), values(seed + 1000, 32));
            let w: Vec<u16> = w.iter().map(|&v| bf16_rne(v)).collect();
            let mut planes = vec![0u16; 64];
            // SAFETY: the CPU has AVX512-BF16 (checked above); 32 values in each slice.
            let got = unsafe { split_and_dot(&x, &w, &mut planes) };
            for (i, &xi) in x.iter().enumerate() {
                let hi = bf16_rne(xi);
                let lo = bf16_rne(xi - widen(hi));
                assert_eq!((planes[i], planes[32 + i]), (hi, lo), "x = {xi:e}");
                let left = (xi - widen(hi) - widen(lo)).abs();
                assert!(left <= xi.abs() * 2f32.powi(-16) || left < f32::MIN_POSITIVE, "x = {xi:e}: {left:e} left out");
            }
            for (l, &g) in got.iter().enumerate() {
                // Odd product first, each exact (in f64 here, so that one below f32's range keeps
                // its sign) and added with one rounding to f32; denormal sums flushed to a zero
                // of their sign.
                let ftz =
                    |v: f64| if v.abs() < f32::MIN_POSITIVE as f64 { if v.is_sign_negative() { -0.0 } else { 0.0 } } else { v as f32 };
                let mut acc = 0f32;
                for plane in [0, 32] {
                    for k in [2 * l + 1, 2 * l] {
                        acc = ftz(acc as f64 + widen(w[k]) as f64 * widen(planes[plane + k]) as f64);
                    }
                }
                let terms: Vec<_> = [0, 32].iter().flat_map(|&p| [2 * l + 1, 2 * l].map(|k| (widen(w[k]), widen(planes[p + k])))).collect();
                assert_eq!(g.to_bits(), acc.to_bits(), "lane {l}: {g:e} against {acc:e} from {terms:?}");
            }
        }
    }
}
