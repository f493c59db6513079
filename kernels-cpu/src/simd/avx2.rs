//! AVX2 + FMA: 8 f32 lanes. bf16 widens with `vpmovzxwd` + shift; int8 with `vpmovsxbd` +
//! convert; 4-bit codes decode with a 16-entry `pshufb` table and a second `pshufb` that
//! spreads the bytes into 32-bit lanes (then one conversion). Products are exact f32 FMAs.
//!
//! q8 (int8 activations): two 4-bit blocks per 256-bit load, their codes looked up as unsigned
//! `value + offset` bytes (one `pshufb` per nibble half; int4 codes are already `value + 8`),
//! multiplied with `vpmaddubsw` (u8 × i8, pairs summed in i16: at most 2 · 24 · 127 per pair,
//! twice that after adding the halves, no saturation) and widened with `vpmaddwd`. int8
//! weights take the sign trick: `maddubs(|w|, sign(q, w))`, at most 2 · 128 · 127 per pair.

use core::arch::x86_64::*;

use super::{MAX_GROUP, Q8, Simd};

#[derive(Clone, Copy)]
pub struct Avx2;

/// Doubled E2M1 values by code, `2 · {0, .5, 1, 1.5, 2, 3, 4, 6, −0, −.5, …, −6}`, in both lanes.
#[inline(always)]
unsafe fn mf4_table() -> __m256i {
    unsafe { _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12)) }
}

/// Doubled E2M1 values plus 12 (so that they are unsigned), in both lanes.
#[inline(always)]
unsafe fn mf4_unsigned_table() -> __m256i {
    unsafe { _mm256_broadcastsi128_si256(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0)) }
}

/// The low and high nibbles of 32 bytes (two blocks): evens of both blocks, odds of both.
#[inline(always)]
unsafe fn nibble_halves(p: *const u8) -> (__m256i, __m256i) {
    unsafe {
        let (b, m) = (_mm256_loadu_si256(p as *const __m256i), _mm256_set1_epi8(0x0f));
        (_mm256_and_si256(b, m), _mm256_and_si256(_mm256_srli_epi16::<4>(b), m))
    }
}

/// i16 pairs summed into i32 lanes, as f32.
#[inline(always)]
unsafe fn widen_i16(v: __m256i) -> __m256 {
    unsafe { _mm256_cvtepi32_ps(_mm256_madd_epi16(v, _mm256_set1_epi16(1))) }
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
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_div_ps(a, b) }
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
    unsafe fn prefetch(p: *const u8) {
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        // minps returns its second operand when either is NaN.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn round(v: __m256) -> __m256 {
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m256) -> __m256 {
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)))) }
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

impl Avx2 {
    /// The largest lane.
    #[inline(always)]
    unsafe fn max(v: __m256) -> f32 {
        unsafe {
            let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)))
        }
    }
}

impl Q8 for Avx2 {
    type S = Avx2;
    const UNSIGNED_NIBBLES: bool = true;
    type W = [__m256i; 2];

    #[inline(always)]
    unsafe fn w_mf4(p: *const u8) -> [__m256i; 2] {
        unsafe {
            let ((lo, hi), t) = (nibble_halves(p), mf4_unsigned_table());
            [_mm256_shuffle_epi8(t, lo), _mm256_shuffle_epi8(t, hi)]
        }
    }
    #[inline(always)]
    unsafe fn w_i4(p: *const u8) -> [__m256i; 2] {
        unsafe {
            let (lo, hi) = nibble_halves(p);
            [lo, hi]
        }
    }
    #[inline(always)]
    unsafe fn w_i8(p: *const i8) -> [__m256i; 2] {
        unsafe {
            let w = _mm256_loadu_si256(p as *const __m256i);
            [_mm256_abs_epi8(w), w]
        }
    }
    #[inline(always)]
    unsafe fn dot_nib(w: [__m256i; 2], a: *const i8) -> __m256 {
        unsafe {
            let lo = _mm256_maddubs_epi16(w[0], _mm256_loadu_si256(a as *const __m256i));
            let hi = _mm256_maddubs_epi16(w[1], _mm256_loadu_si256(a.add(32) as *const __m256i));
            widen_i16(_mm256_add_epi16(lo, hi))
        }
    }
    #[inline(always)]
    unsafe fn dot_i8(w: [__m256i; 2], a: *const i8) -> __m256 {
        unsafe { widen_i16(_mm256_maddubs_epi16(w[0], _mm256_sign_epi8(_mm256_loadu_si256(a as *const __m256i), w[1]))) }
    }
    #[inline(always)]
    unsafe fn quantize_block(x: *const f32) -> ([i8; 32], f32) {
        unsafe {
            let v = [_mm256_loadu_ps(x), _mm256_loadu_ps(x.add(8)), _mm256_loadu_ps(x.add(16)), _mm256_loadu_ps(x.add(24))];
            let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let (m01, m23) = (
                _mm256_max_ps(_mm256_and_ps(v[0], abs), _mm256_and_ps(v[1], abs)),
                _mm256_max_ps(_mm256_and_ps(v[2], abs), _mm256_and_ps(v[3], abs)),
            );
            let amax = Avx2::max(_mm256_max_ps(m01, m23));
            let inv = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
            // Rounded to nearest even (the default rounding mode), packed with saturation: the
            // packs interleave 128-bit lanes, the permutation puts the dwords back in order.
            let i = |k: usize| _mm256_cvtps_epi32(_mm256_mul_ps(v[k], inv));
            let p = _mm256_packs_epi16(_mm256_packs_epi32(i(0), i(1)), _mm256_packs_epi32(i(2), i(3)));
            let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            let mut out = [0i8; 32];
            _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, p);
            (out, amax / 127.0)
        }
    }
    const E8M0_GROUPS: usize = 4;
    #[inline(always)]
    unsafe fn e8m0_scales(p: *const u8) -> __m256 {
        unsafe {
            // e − 1 (saturating) shifted into the exponent: 2^(e − 128), the halved scale. The
            // shuffle puts blocks 0, 2, 4, 6 in the low lane and 1, 3, 5, 7 in the high one, so
            // that one in-lane broadcast gives a pair's lanes.
            let b = _mm256_subs_epu8(_mm256_set1_epi64x((p as *const i64).read_unaligned()), _mm256_set1_epi8(1));
            let z = -128;
            let ctl = _mm256_setr_epi8(0, z, z, z, 2, z, z, z, 4, z, z, z, 6, z, z, z, 1, z, z, z, 3, z, z, z, 5, z, z, z, 7, z, z, z);
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_shuffle_epi8(b, ctl)))
        }
    }
    #[inline(always)]
    unsafe fn e8m0_group(s: __m256, k: usize) -> __m256 {
        unsafe {
            match k {
                0 => _mm256_permute_ps::<0x00>(s),
                1 => _mm256_permute_ps::<0x55>(s),
                2 => _mm256_permute_ps::<0xaa>(s),
                _ => _mm256_permute_ps::<0xff>(s),
            }
        }
    }
    #[inline(always)]
    unsafe fn nib_scales(s: [f32; MAX_GROUP]) -> __m256 {
        unsafe { _mm256_setr_m128(_mm_set1_ps(s[0]), _mm_set1_ps(s[1])) }
    }
    #[inline(always)]
    unsafe fn fmsub(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmsub_ps(a, b, c) }
    }
}
