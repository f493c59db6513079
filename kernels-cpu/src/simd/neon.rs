//! NEON (aarch64 Advanced SIMD): 4 f32 lanes. bf16 widens with `vshll`; 4-bit codes decode
//! with one 16-entry `tbl` lookup per 16 weights, then widen int8 → int16 → int32 → f32.
//! Products are exact f32 FMAs. NEON is part of the aarch64 baseline.
//!
//! q8 (int8 activations): one block per step, its codes looked up as signed int8 (no offset:
//! NEON multiplies signed by signed). The products take `sdot` where the CPU has dotprod
//! (`NeonDot`), else widening multiplies (`NeonWide`).

use core::arch::aarch64::*;
use std::marker::PhantomData;

use super::{MAX_GROUP, Q8, Simd};

#[derive(Clone, Copy)]
pub struct Neon;

/// Doubled E2M1 values by code: 2 · {0, .5, 1, 1.5, 2, 3, 4, 6, −0, −.5, …, −6}.
const MF4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
/// Int4 codes minus the zero point.
const I4: [i8; 16] = [-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7];

/// 16 int8 values as four vectors of f32, in order.
#[inline(always)]
unsafe fn widen(v: int8x16_t) -> [float32x4_t; 4] {
    unsafe {
        let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
        [
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
            vcvtq_f32_s32(vmovl_high_s16(lo)),
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
            vcvtq_f32_s32(vmovl_high_s16(hi)),
        ]
    }
}

/// 16 bytes of 4-bit codes looked up in `table`: the 16 even elements, then the 16 odd ones.
#[inline(always)]
unsafe fn nibbles(p: *const u8, table: &[i8; 16]) -> [float32x4_t; 8] {
    unsafe {
        let b = vld1q_u8(p);
        let lut = vld1q_s8(table.as_ptr());
        let lo = widen(vqtbl1q_s8(lut, vandq_u8(b, vdupq_n_u8(0x0f))));
        let hi = widen(vqtbl1q_s8(lut, vshrq_n_u8::<4>(b)));
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
    }
}

impl Simd for Neon {
    const LANES: usize = 4;
    type F = float32x4_t;
    type WF = [float32x4_t; 8];
    const NIB_UNIT: f32 = 1.0;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> float32x4_t {
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p))) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn sum(v: float32x4_t) -> f32 {
        unsafe { vaddvq_f32(v) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        unsafe { core::arch::asm!("prfm pldl1keep, [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags)) }
    }
    #[inline(always)]
    unsafe fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // fmin returns NaN when either operand is NaN.
        unsafe { vminq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmaxq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn round(v: float32x4_t) -> float32x4_t {
        unsafe { vrndnq_f32(v) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: float32x4_t) -> float32x4_t {
        unsafe { vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)))) }
    }
    #[inline(always)]
    unsafe fn wf_i8(p: *const i8) -> [float32x4_t; 8] {
        unsafe {
            let (a, b) = (widen(vld1q_s8(p)), widen(vld1q_s8(p.add(16))));
            [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
        }
    }
    #[inline(always)]
    unsafe fn wf_mf4(p: *const u8) -> [float32x4_t; 8] {
        unsafe { nibbles(p, &MF4) }
    }
    #[inline(always)]
    unsafe fn wf_i4(p: *const u8) -> [float32x4_t; 8] {
        unsafe { nibbles(p, &I4) }
    }
    #[inline(always)]
    unsafe fn dot_wf(w: [float32x4_t; 8], x: *const f32) -> float32x4_t {
        unsafe {
            // Two chains of four halve the FMA latency.
            let mut a = vmulq_f32(w[0], vld1q_f32(x));
            let mut b = vmulq_f32(w[1], vld1q_f32(x.add(4)));
            for k in 1..4 {
                a = vfmaq_f32(a, w[2 * k], vld1q_f32(x.add(8 * k)));
                b = vfmaq_f32(b, w[2 * k + 1], vld1q_f32(x.add(8 * k + 4)));
            }
            vaddq_f32(a, b)
        }
    }
}

/// 16 bytes of 4-bit codes looked up in `table` as int8: the evens, then the odds.
#[inline(always)]
unsafe fn codes(p: *const u8, table: &[i8; 16]) -> [int8x16_t; 2] {
    unsafe {
        let (b, lut) = (vld1q_u8(p), vld1q_s8(table.as_ptr()));
        [vqtbl1q_s8(lut, vandq_u8(b, vdupq_n_u8(0x0f))), vqtbl1q_s8(lut, vshrq_n_u8::<4>(b))]
    }
}

/// How the products of a block (two vectors each of weights and activations) are summed
/// into four i32 lanes (all of them the block's: how they split the sum does not matter).
///
/// # Safety
/// Only on a CPU with the instructions it takes.
#[allow(clippy::missing_safety_doc)]
pub trait Dot: Copy {
    unsafe fn block(w: [int8x16_t; 2], q: [int8x16_t; 2]) -> int32x4_t;
}

/// `smull` + `smlal2` (pairs summed in i16: at most 2 · 128 · 127), then `saddlp`/`sadalp`.
#[derive(Clone, Copy)]
pub struct Widening;

/// `sdot` (the dotprod extension), through `asm!`: its intrinsic is not stable.
#[derive(Clone, Copy)]
pub struct Sdot;

impl Dot for Widening {
    #[inline(always)]
    unsafe fn block(w: [int8x16_t; 2], q: [int8x16_t; 2]) -> int32x4_t {
        unsafe {
            let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w[0]), vget_low_s8(q[0])), w[0], q[0]);
            let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w[1]), vget_low_s8(q[1])), w[1], q[1]);
            vpadalq_s16(vpaddlq_s16(p0), p1)
        }
    }
}

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn block(w: [int8x16_t; 2], q: [int8x16_t; 2]) -> int32x4_t {
        let mut acc = unsafe { vdupq_n_s32(0) };
        for (wk, qk) in w.into_iter().zip(q) {
            // SAFETY: the caller runs with dotprod enabled (`Q8`'s contract); registers only.
            unsafe {
                core::arch::asm!(
                    "sdot {acc:v}.4s, {w:v}.16b, {q:v}.16b",
                    acc = inout(vreg) acc, w = in(vreg) wk, q = in(vreg) qk,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
        }
        acc
    }
}

/// The q8 products on `Neon`'s f32 side, summed by `D`.
#[derive(Clone, Copy)]
pub struct NeonQ8<D>(PhantomData<D>);

/// Without dotprod.
pub type NeonWide = NeonQ8<Widening>;
/// With dotprod.
pub type NeonDot = NeonQ8<Sdot>;

impl<D: Dot> Q8 for NeonQ8<D> {
    type S = Neon;
    const UNSIGNED_NIBBLES: bool = false;
    type W = [int8x16_t; 2];

    #[inline(always)]
    unsafe fn w_mf4(p: *const u8) -> [int8x16_t; 2] {
        unsafe { codes(p, &MF4) }
    }
    #[inline(always)]
    unsafe fn w_i4(p: *const u8) -> [int8x16_t; 2] {
        unsafe { codes(p, &I4) }
    }
    #[inline(always)]
    unsafe fn w_i8(p: *const i8) -> [int8x16_t; 2] {
        unsafe { [vld1q_s8(p), vld1q_s8(p.add(16))] }
    }
    #[inline(always)]
    unsafe fn dot_nib(w: [int8x16_t; 2], a: *const i8) -> float32x4_t {
        unsafe { vcvtq_f32_s32(D::block(w, [vld1q_s8(a), vld1q_s8(a.add(16))])) }
    }
    #[inline(always)]
    unsafe fn dot_i8(w: [int8x16_t; 2], a: *const i8) -> float32x4_t {
        unsafe { Self::dot_nib(w, a) }
    }
    #[inline(always)]
    unsafe fn quantize_block(x: *const f32) -> ([i8; 32], f32) {
        unsafe {
            let mut m = vdupq_n_f32(0.0);
            for k in 0..8 {
                m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x.add(4 * k))));
            }
            let amax = vmaxvq_f32(m);
            let inv = vdupq_n_f32(if amax > 0.0 { 127.0 / amax } else { 0.0 });
            // Rounded to nearest even, narrowed with saturation.
            let i = |k: usize| vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x.add(4 * k)), inv)));
            let mut out = [0i8; 32];
            for k in 0..4 {
                vst1_s8(out.as_mut_ptr().add(8 * k), vqmovn_s16(vcombine_s16(i(2 * k), i(2 * k + 1))));
            }
            (out, amax / 127.0)
        }
    }
    const E8M0_GROUPS: usize = 4;
    #[inline(always)]
    unsafe fn e8m0_scales(p: *const u8) -> float32x4_t {
        unsafe {
            // e − 1 (saturating) widened to 32 bits and shifted into the exponent: 2^(e − 128).
            let b = vqsub_u8(vcreate_u8((p as *const u32).read_unaligned() as u64), vdup_n_u8(1));
            vreinterpretq_f32_u32(vshlq_n_u32::<23>(vmovl_u16(vget_low_u16(vmovl_u8(b)))))
        }
    }
    #[inline(always)]
    unsafe fn e8m0_group(s: float32x4_t, k: usize) -> float32x4_t {
        unsafe {
            match k {
                0 => vdupq_laneq_f32::<0>(s),
                1 => vdupq_laneq_f32::<1>(s),
                2 => vdupq_laneq_f32::<2>(s),
                _ => vdupq_laneq_f32::<3>(s),
            }
        }
    }
    #[inline(always)]
    unsafe fn nib_scales(s: [f32; MAX_GROUP]) -> float32x4_t {
        unsafe { vdupq_n_f32(s[0]) }
    }
    #[inline(always)]
    unsafe fn fmsub(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        unsafe { vnegq_f32(vfmsq_f32(c, a, b)) }
    }
}
