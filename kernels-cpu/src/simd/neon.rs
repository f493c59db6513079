//! NEON (aarch64 Advanced SIMD): 4 f32 lanes. bf16 widens with `vshll`; 4-bit codes decode
//! with one 16-entry `tbl` lookup per 16 weights, then widen int8 → int16 → int32 → f32.
//! Products are exact f32 FMAs. NEON is part of the aarch64 baseline; `dotprod` is reported
//! by `Isa::describe` but not used (it would need int8 activations).

use core::arch::aarch64::*;

use super::{Kernels, Simd, Table};
use crate::fast::attention::AttnTask;
use crate::fast::tile::Tile;
use crate::isa::Isa;

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
    unsafe fn sum(v: float32x4_t) -> f32 {
        unsafe { vaddvq_f32(v) }
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

#[target_feature(enable = "neon")]
unsafe fn tile(t: &Tile) {
    unsafe { crate::fast::tile::tile::<Neon>(t) }
}

#[target_feature(enable = "neon")]
unsafe fn prepare(x: &[f32], out: &mut [f32]) {
    crate::fast::prepare::deinterleave_row(x, Neon::NIB_UNIT, out)
}

#[target_feature(enable = "neon")]
unsafe fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    unsafe { crate::fast::norm::rms_norm_row::<Neon>(x, gain, eps, out) }
}

#[target_feature(enable = "neon")]
unsafe fn attention(t: &AttnTask) {
    unsafe { crate::fast::attention::group::<Neon>(t) }
}

pub static KERNELS: Kernels = Kernels { isa: Isa::Neon, tile, prepare, rms_norm, attention };

impl Table for Neon {
    fn table() -> &'static Kernels {
        &KERNELS
    }
}
