//! AVX-512 F + BW + VL: 16 f32 lanes, the AVX2 scheme at twice the width: a 4-bit block
//! decodes with two `pshufb` table lookups and two `pshufb` spreads into two registers of 16
//! f32. The exact kernels keep f32 FMAs. Where the CPU has AVX512-BF16, `Avx512Bf16` gives bf16
//! weights a second form: the activations split into two bf16 planes and each pair of weights
//! taking two `vdpbf16ps` (one per plane) instead of being widened; on the Xeon measured
//! `vdpbf16ps` issues once per two cycles (an FMA twice per cycle), so that form is slower and
//! runs by name only (`registry`).
//!
//! q8 (int8 activations): four 4-bit blocks per 512-bit load, decoded to unsigned bytes as on
//! AVX2; the products take `vpmaddubsw` + `vpmaddwd` (`Avx512Maddubs`) or, where the CPU has
//! VNNI, one `vpdpbusd` per half (`Avx512Vnni`). With VBMI as well (`Avx512VnniVbmi`: Ice Lake
//! and later, Zen 4) the MXFP4 table lookup is `vpermb`, which reads only the low 6 bits of each
//! index byte: with the 16-entry table repeated four times, neither nibble needs masking (two
//! fewer µops per 64 bytes, ~1/6 of the decode loop's). int8 weights: `|w|` times `q` negated
//! where `w` is negative (AVX-512 has no `vpsignb`: a masked subtract).

use core::arch::x86_64::*;
use std::marker::PhantomData;

use super::{Bf16Dot, MAX_GROUP, Q8, Simd};

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
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        // vminps returns its second operand when either is NaN.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn round(v: __m512) -> __m512 {
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m512) -> __m512 {
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)))) }
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

/// `pshufb` control that puts byte 4j + L of each 128-bit lane L into the low byte of its
/// dword j (the rest zeroed): E8M0 scale 4j + L, i.e. block L of group j.
const E8M0_SPREAD: [i8; 64] = {
    let mut m = [-128i8; 64];
    let mut l = 0;
    while l < 4 {
        let mut j = 0;
        while j < 4 {
            m[16 * l + 4 * j] = (4 * j + l) as i8;
            j += 1;
        }
        l += 1;
    }
    m
};

/// The low and high nibbles of 64 bytes (four blocks): evens of each block, then odds.
#[inline(always)]
unsafe fn nibble_halves(p: *const u8) -> [__m512i; 2] {
    unsafe {
        let (b, m) = (_mm512_loadu_si512(p as *const __m512i), _mm512_set1_epi8(0x0f));
        [_mm512_and_si512(b, m), _mm512_and_si512(_mm512_srli_epi16::<4>(b), m)]
    }
}

/// The doubled E2M1 values plus 12 (unsigned), by code.
#[inline(always)]
unsafe fn mf4_table() -> __m512i {
    unsafe { _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0)) }
}

/// How a group of 64 bytes of MXFP4 codes becomes unsigned table values: evens then odds.
///
/// # Safety
/// Only on a CPU with the instructions it takes; `p` is valid for 64 bytes.
#[allow(clippy::missing_safety_doc)]
pub trait Mf4Lookup: Copy {
    unsafe fn mf4(p: *const u8) -> [__m512i; 2];
}

/// Masked nibbles through `vpshufb` (AVX512-BW).
#[derive(Clone, Copy)]
pub struct Pshufb;

/// Unmasked nibbles through `vpermb` (AVX512-VBMI): the table repeats every 16 bytes, so the
/// bits above a nibble (and those the 16-bit shift brings in from the next byte) select the
/// same entry.
#[derive(Clone, Copy)]
pub struct Vpermb;

impl Mf4Lookup for Pshufb {
    #[inline(always)]
    unsafe fn mf4(p: *const u8) -> [__m512i; 2] {
        unsafe {
            let t = mf4_table();
            let [lo, hi] = nibble_halves(p);
            [_mm512_shuffle_epi8(t, lo), _mm512_shuffle_epi8(t, hi)]
        }
    }
}

impl Mf4Lookup for Vpermb {
    #[inline(always)]
    unsafe fn mf4(p: *const u8) -> [__m512i; 2] {
        unsafe {
            let (t, b) = (mf4_table(), _mm512_loadu_si512(p as *const __m512i));
            [_mm512_permutexvar_epi8(b, t), _mm512_permutexvar_epi8(_mm512_srli_epi16::<4>(b), t)]
        }
    }
}

/// 64 int8 weights as `[|w|, w]`.
#[inline(always)]
unsafe fn i8_abs(p: *const i8) -> [__m512i; 2] {
    unsafe {
        let w = _mm512_loadu_si512(p as *const __m512i);
        [_mm512_abs_epi8(w), w]
    }
}

/// 64 activations at `a`, negated where `w` is negative.
#[inline(always)]
unsafe fn signed_by(a: *const i8, w: __m512i) -> __m512i {
    unsafe {
        let q = _mm512_loadu_si512(a as *const __m512i);
        _mm512_mask_sub_epi8(q, _mm512_movepi8_mask(w), _mm512_setzero_si512(), q)
    }
}

/// Each block's scale in its four lanes.
#[inline(always)]
unsafe fn block_lanes(s: [f32; MAX_GROUP]) -> __m512 {
    unsafe {
        let idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(s.as_ptr())))
    }
}

/// i16 pairs summed into i32 lanes.
#[inline(always)]
unsafe fn widen_i16(v: __m512i) -> __m512i {
    unsafe { _mm512_madd_epi16(v, _mm512_set1_epi16(1)) }
}

/// How the q8 products of a group are summed into i32 lanes (lane l: bytes 4l..4l+4), from
/// unsigned weights and signed activations.
///
/// # Safety
/// Only on a CPU with the instructions it takes.
#[allow(clippy::missing_safety_doc)]
pub trait Dot: Copy {
    /// Two vectors each (the evens and odds halves of 4-bit blocks).
    unsafe fn pair(w: [__m512i; 2], q: [__m512i; 2]) -> __m512i;
    unsafe fn one(w: __m512i, q: __m512i) -> __m512i;
}

/// `vpmaddubsw` (pairs summed in i16) then `vpmaddwd`.
#[derive(Clone, Copy)]
pub struct Maddubs;

/// `vpdpbusd` (AVX512-VNNI): four products summed into each i32 lane at once.
#[derive(Clone, Copy)]
pub struct Vnni;

impl Dot for Maddubs {
    #[inline(always)]
    unsafe fn pair(w: [__m512i; 2], q: [__m512i; 2]) -> __m512i {
        unsafe { widen_i16(_mm512_add_epi16(_mm512_maddubs_epi16(w[0], q[0]), _mm512_maddubs_epi16(w[1], q[1]))) }
    }
    #[inline(always)]
    unsafe fn one(w: __m512i, q: __m512i) -> __m512i {
        unsafe { widen_i16(_mm512_maddubs_epi16(w, q)) }
    }
}

impl Dot for Vnni {
    #[inline(always)]
    unsafe fn pair(w: [__m512i; 2], q: [__m512i; 2]) -> __m512i {
        unsafe { _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], q[0]), w[1], q[1]) }
    }
    #[inline(always)]
    unsafe fn one(w: __m512i, q: __m512i) -> __m512i {
        unsafe { _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, q) }
    }
}

/// The q8 products on `Avx512`'s f32 side, summed by `D`, MXFP4 looked up by `L`.
#[derive(Clone, Copy)]
pub struct Avx512Q8<D, L = Pshufb>(PhantomData<(D, L)>);

/// Without VNNI.
pub type Avx512Maddubs = Avx512Q8<Maddubs>;
/// With VNNI.
pub type Avx512Vnni = Avx512Q8<Vnni>;
/// With VNNI and VBMI.
pub type Avx512VnniVbmi = Avx512Q8<Vnni, Vpermb>;

impl<D: Dot, L: Mf4Lookup> Q8 for Avx512Q8<D, L> {
    type S = Avx512;
    const UNSIGNED_NIBBLES: bool = true;
    type W = [__m512i; 2];

    #[inline(always)]
    unsafe fn w_mf4(p: *const u8) -> [__m512i; 2] {
        unsafe { L::mf4(p) }
    }
    #[inline(always)]
    unsafe fn w_i4(p: *const u8) -> [__m512i; 2] {
        unsafe { nibble_halves(p) }
    }
    #[inline(always)]
    unsafe fn w_i8(p: *const i8) -> [__m512i; 2] {
        unsafe { i8_abs(p) }
    }
    #[inline(always)]
    unsafe fn dot_nib(w: [__m512i; 2], a: *const i8) -> __m512 {
        unsafe {
            let q = [_mm512_loadu_si512(a as *const __m512i), _mm512_loadu_si512(a.add(64) as *const __m512i)];
            _mm512_cvtepi32_ps(D::pair(w, q))
        }
    }
    #[inline(always)]
    unsafe fn dot_i8(w: [__m512i; 2], a: *const i8) -> __m512 {
        unsafe { _mm512_cvtepi32_ps(D::one(w[0], signed_by(a, w[1]))) }
    }
    #[inline(always)]
    unsafe fn quantize_block(x: *const f32) -> ([i8; 32], f32) {
        unsafe {
            let v = [_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(16))];
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
            let inv = _mm512_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
            // Rounded to nearest even (the default rounding mode), narrowed with saturation.
            let mut out = [0i8; 32];
            for (k, v) in v.into_iter().enumerate() {
                let q = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)));
                _mm_storeu_si128(out.as_mut_ptr().add(16 * k) as *mut __m128i, q);
            }
            (out, amax / 127.0)
        }
    }
    const E8M0_GROUPS: usize = 4;
    #[inline(always)]
    unsafe fn e8m0_scales(p: *const u8) -> __m512 {
        unsafe {
            // As on AVX2: 2^(e − 128); 128-bit lane L holds blocks L, 4 + L, 8 + L, 12 + L, so
            // that one in-lane broadcast gives a group of four blocks its lanes.
            let b = _mm512_broadcast_i32x4(_mm_subs_epu8(_mm_loadu_si128(p as *const __m128i), _mm_set1_epi8(1)));
            let ctl = _mm512_loadu_si512(E8M0_SPREAD.as_ptr() as *const __m512i);
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_shuffle_epi8(b, ctl)))
        }
    }
    #[inline(always)]
    unsafe fn e8m0_group(s: __m512, k: usize) -> __m512 {
        unsafe {
            match k {
                0 => _mm512_permute_ps::<0x00>(s),
                1 => _mm512_permute_ps::<0x55>(s),
                2 => _mm512_permute_ps::<0xaa>(s),
                _ => _mm512_permute_ps::<0xff>(s),
            }
        }
    }
    #[inline(always)]
    unsafe fn nib_scales(s: [f32; MAX_GROUP]) -> __m512 {
        unsafe { block_lanes(s) }
    }
    #[inline(always)]
    unsafe fn fmsub(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmsub_ps(a, b, c) }
    }
}

/// AVX512-BF16 on `Avx512`'s f32 side: `vcvtne2ps2bf16` splits the activations, `vdpbf16ps`
/// multiplies. Both ignore MXCSR: they round to nearest even, read denormal inputs as zero
/// and flush denormal results (Intel SDM; on this Xeon `vdpbf16ps` gave bit for bit
/// `(acc + a₁·b₁) + a₀·b₀`, each addition rounded once, on 20000 random lanes).
#[derive(Clone, Copy)]
pub struct Avx512Bf16;

impl Bf16Dot for Avx512Bf16 {
    type S = Avx512;
    type B = __m512bh;

    #[inline(always)]
    unsafe fn split(x: *const f32, out: *mut u16) {
        unsafe {
            let (a, b) = (_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(16)));
            // Element i of the 32 from a (i < 16) or b: the second operand fills the low half.
            let hi: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let widen = |h: __m256i| _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)));
            let (ha, hb) = (widen(_mm512_castsi512_si256(hi)), widen(_mm512_extracti64x4_epi64::<1>(hi)));
            // x − hi is exact in f32 (hi is x to 8 significant bits; a NaN where hi overflowed).
            let lo: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(_mm512_sub_ps(b, hb), _mm512_sub_ps(a, ha)));
            _mm512_storeu_si512(out as *mut __m512i, hi);
            _mm512_storeu_si512(out.add(32) as *mut __m512i, lo);
        }
    }
    #[inline(always)]
    unsafe fn load(p: *const u16) -> __m512bh {
        unsafe { std::mem::transmute(_mm512_loadu_si512(p as *const __m512i)) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
        unsafe { _mm512_dpbf16_ps(acc, a, b) }
    }
}
