//! AVX-512 F + BW + VL: 16 f32 lanes, the AVX2 scheme at twice the width: a 4-bit block
//! decodes with two `pshufb` table lookups and two `pshufb` spreads into two registers of 16
//! f32. The products stay exact f32 FMAs, so VNNI and AVX512-BF16 (which would round the
//! activations to int8 or bf16) are reported by `Isa::describe` but not used.

use core::arch::x86_64::*;

use super::{Kernels, Simd, Table};
use crate::fast::attention::AttnTask;
use crate::fast::tile::Tile;
use crate::isa::Isa;

#[derive(Clone, Copy)]
pub struct Avx512;

/// `pshufb` control that moves bytes `4l .. 4l + 4` of each 128-bit lane l to the top byte of
/// that lane's four 32-bit lanes (the rest zeroed), which makes the int8 value × 2^24.
const SPREAD: [i8; 64] = {
    let mut m = [-128i8; 64];
    let mut l = 0;
    while l < 4 {
        let mut i = 0;
        while i < 4 {
            m[16 * l + 4 * i + 3] = (4 * l + i) as i8;
            i += 1;
        }
        l += 1;
    }
    m
};

/// 16 bytes of 4-bit codes looked up in `table` (in every 128-bit lane): the 16 even elements,
/// then the 16 odd ones, each × 2^24.
#[inline(always)]
unsafe fn nibbles(p: *const u8, table: __m128i) -> [__m512; 2] {
    unsafe {
        let lut = _mm512_broadcast_i32x4(table);
        let b = _mm512_broadcast_i32x4(_mm_loadu_si128(p as *const __m128i));
        let m = _mm512_set1_epi8(0x0f);
        let lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(b, m));
        let hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16::<4>(b), m));
        let s = _mm512_loadu_si512(SPREAD.as_ptr() as *const __m512i);
        [_mm512_cvtepi32_ps(_mm512_shuffle_epi8(lo, s)), _mm512_cvtepi32_ps(_mm512_shuffle_epi8(hi, s))]
    }
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    type F = __m512;
    type WF = [__m512; 2];
    const NIB_UNIT: f32 = 16_777_216.0;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m512 {
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i)))) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    unsafe fn wf_i8(p: *const i8) -> [__m512; 2] {
        unsafe {
            [
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i))),
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(16) as *const __m128i))),
            ]
        }
    }
    #[inline(always)]
    unsafe fn wf_mf4(p: *const u8) -> [__m512; 2] {
        unsafe { nibbles(p, _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12)) }
    }
    #[inline(always)]
    unsafe fn wf_i4(p: *const u8) -> [__m512; 2] {
        unsafe { nibbles(p, _mm_setr_epi8(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7)) }
    }
    #[inline(always)]
    unsafe fn dot_wf(w: [__m512; 2], x: *const f32) -> __m512 {
        unsafe { _mm512_fmadd_ps(w[1], _mm512_loadu_ps(x.add(16)), _mm512_mul_ps(w[0], _mm512_loadu_ps(x))) }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tile(t: &Tile) {
    unsafe { crate::fast::tile::tile::<Avx512>(t) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn prepare(x: &[f32], out: &mut [f32]) {
    crate::fast::prepare::deinterleave_row(x, Avx512::NIB_UNIT, out)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    unsafe { crate::fast::norm::rms_norm_row::<Avx512>(x, gain, eps, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn attention(t: &AttnTask) {
    unsafe { crate::fast::attention::group::<Avx512>(t) }
}

pub static KERNELS: Kernels = Kernels { isa: Isa::Avx512, tile, prepare, rms_norm, attention };

impl Table for Avx512 {
    fn table() -> &'static Kernels {
        &KERNELS
    }
}
