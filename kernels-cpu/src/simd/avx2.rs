//! AVX2 + FMA: 8 f32 lanes. bf16 widens with `vpmovzxwd` + shift; int8 with `vpmovsxbd` +
//! convert; 4-bit codes decode with a 16-entry `pshufb` table and a second `pshufb` that
//! spreads the bytes into 32-bit lanes (then one conversion). Products are exact f32 FMAs.

use core::arch::x86_64::*;

use super::{Kernels, Simd, Table};
use crate::fast::attention::AttnTask;
use crate::fast::tile::Tile;
use crate::isa::Isa;

#[derive(Clone, Copy)]
pub struct Avx2;

/// Doubled E2M1 values by code, `2 · {0, .5, 1, 1.5, 2, 3, 4, 6, −0, −.5, …, −6}`, in both lanes.
#[inline(always)]
unsafe fn mf4_table() -> __m256i {
    unsafe { _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12)) }
}

/// Int4 codes minus the zero point, in both lanes.
#[inline(always)]
unsafe fn i4_table() -> __m256i {
    unsafe { _mm256_broadcastsi128_si256(_mm_setr_epi8(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7)) }
}

/// `pshufb` controls that move bytes `8h .. 8h + 8` of each 16-byte half to the top byte of
/// eight 32-bit lanes (the rest zeroed: −128 selects zero), which makes the int8 value × 2^24.
const SPREAD: [[i8; 32]; 2] = {
    let mut m = [[-128i8; 32]; 2];
    let mut h = 0;
    while h < 2 {
        let mut i = 0;
        while i < 8 {
            // Lanes 0..4 live in the low 128 bits, lanes 4..8 in the high 128 bits.
            m[h][4 * i + 3] = (8 * h + i) as i8;
            i += 1;
        }
        h += 1;
    }
    m
};

/// 16 bytes of 4-bit codes looked up in `lut`: evens 0..8, evens 8..16, odds 0..8, odds 8..16,
/// each value × 2^24. Six shuffles and four conversions per 32 weights.
#[inline(always)]
unsafe fn nibbles(p: *const u8, lut: __m256i) -> [__m256; 4] {
    unsafe {
        let b = _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i));
        let m = _mm256_set1_epi8(0x0f);
        let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(b, m));
        let hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16::<4>(b), m));
        let s0 = _mm256_loadu_si256(SPREAD[0].as_ptr() as *const __m256i);
        let s1 = _mm256_loadu_si256(SPREAD[1].as_ptr() as *const __m256i);
        [
            _mm256_cvtepi32_ps(_mm256_shuffle_epi8(lo, s0)),
            _mm256_cvtepi32_ps(_mm256_shuffle_epi8(lo, s1)),
            _mm256_cvtepi32_ps(_mm256_shuffle_epi8(hi, s0)),
            _mm256_cvtepi32_ps(_mm256_shuffle_epi8(hi, s1)),
        ]
    }
}

/// 8 int8 values as f32.
#[inline(always)]
unsafe fn i8x8(p: *const i8) -> __m256 {
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i))) }
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    type F = __m256;
    type WF = [__m256; 4];
    const NIB_UNIT: f32 = 16_777_216.0;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m256 {
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)))) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
        }
    }
    #[inline(always)]
    unsafe fn wf_i8(p: *const i8) -> [__m256; 4] {
        unsafe { [i8x8(p), i8x8(p.add(8)), i8x8(p.add(16)), i8x8(p.add(24))] }
    }
    #[inline(always)]
    unsafe fn wf_mf4(p: *const u8) -> [__m256; 4] {
        unsafe { nibbles(p, mf4_table()) }
    }
    #[inline(always)]
    unsafe fn wf_i4(p: *const u8) -> [__m256; 4] {
        unsafe { nibbles(p, i4_table()) }
    }
    #[inline(always)]
    unsafe fn dot_wf(w: [__m256; 4], x: *const f32) -> __m256 {
        unsafe {
            let a = _mm256_mul_ps(w[0], _mm256_loadu_ps(x));
            let a = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x.add(8)), a);
            let a = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x.add(16)), a);
            _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x.add(24)), a)
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile(t: &Tile) {
    unsafe { crate::fast::tile::tile::<Avx2>(t) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn prepare(x: &[f32], out: &mut [f32]) {
    crate::fast::prepare::deinterleave_row(x, Avx2::NIB_UNIT, out)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    unsafe { crate::fast::norm::rms_norm_row::<Avx2>(x, gain, eps, out) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn attention(t: &AttnTask) {
    unsafe { crate::fast::attention::group::<Avx2>(t) }
}

pub static KERNELS: Kernels = Kernels { isa: Isa::Avx2, tile, prepare, rms_norm, attention };

impl Table for Avx2 {
    fn table() -> &'static Kernels {
        &KERNELS
    }
}
