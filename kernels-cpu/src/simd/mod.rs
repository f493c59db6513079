//! The vector primitives the fast kernels are written in: one implementation per instruction
//! set of [`Simd`] (f32 lanes, weight decoders) and [`Q8`] (integer dot products on int8
//! activations). Nothing here knows a kernel: the generic bodies in `crate::fast` are
//! `#[inline(always)]` functions over these traits, compiled per ISA inside the
//! `#[target_feature]` functions of `crate::fast::compiled`.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// The widest vector any [`Simd`] has, in f32 lanes (AVX-512).
pub const MAX_LANES: usize = 16;

/// Most blocks of 32 in one [`Q8`] group on any ISA (AVX-512: four MXFP4 blocks in a 512-bit
/// register).
pub const MAX_GROUP: usize = 4;

/// The range `Simd::exp` computes over (its inputs are clamped to it): 2^n stays normal.
pub const EXP_LO: f32 = -87.0;
pub const EXP_HI: f32 = 88.0;
/// ln 2 = LN2_HI + LN2_LO, LN2_HI with few mantissa bits so that n · LN2_HI is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' expf polynomial: e^r ≈ 1 + r + r² · P(r), coefficients of P from r⁵ down to r⁰.
const EXP_POLY: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// Vector operations on `LANES` f32 lanes (`F`).
///
/// # Safety
/// Every function may only run on a CPU with the ISA, and its pointers must be valid for the
/// elements it reads or writes.
#[allow(clippy::missing_safety_doc)]
pub trait Simd: Copy {
    const LANES: usize;
    type F: Copy;
    /// One block of 32 weights as f32 lanes.
    type WF: Copy;
    /// What one integer step of a 4-bit code decodes to in `WF` (x86 decodes into the top
    /// byte of each 32-bit lane, a factor 2^24 the activations take back, see `fast::prepare`).
    const NIB_UNIT: f32;

    unsafe fn zero() -> Self::F;
    unsafe fn splat(v: f32) -> Self::F;
    unsafe fn load(p: *const f32) -> Self::F;
    /// `LANES` bf16 values widened to f32 (exact).
    unsafe fn load_bf16(p: *const u16) -> Self::F;
    unsafe fn store(p: *mut f32, v: Self::F);
    /// `a · b + c`, fused.
    unsafe fn fma(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    unsafe fn mul(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn div(a: Self::F, b: Self::F) -> Self::F;
    /// Sum of the lanes.
    unsafe fn sum(v: Self::F) -> f32;
    /// A hint to fetch the cache line at `p` (which need not be valid memory).
    unsafe fn prefetch(p: *const u8);
    /// Lane-wise minimum and maximum; a NaN in `b` comes through.
    unsafe fn min(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn max(a: Self::F, b: Self::F) -> Self::F;
    /// Rounded to the nearest integer, ties to even.
    unsafe fn round(v: Self::F) -> Self::F;
    /// `2^n` for lanes holding integers `n` in −126..=127 (a normal number: built in the
    /// exponent bits).
    unsafe fn pow2i(n: Self::F) -> Self::F;

    /// `e^x` per lane, within 2 ulp of the exact value for x in [EXP_LO, EXP_HI] (below, a
    /// tiny positive number instead of 0: no softmax or sigmoid here tells them apart; above,
    /// e^EXP_HI instead of infinity). Cephes' method: x = n·ln 2 + r with n = round(x·log2 e)
    /// and |r| ≤ ln 2 / 2 (ln 2 in two parts so that r is exact), e^r by a degree-5 polynomial
    /// in r plus 1 + r, times 2^n.
    #[inline(always)]
    unsafe fn exp(x: Self::F) -> Self::F {
        unsafe {
            let x = Self::min(Self::splat(EXP_HI), Self::max(Self::splat(EXP_LO), x));
            let n = Self::round(Self::mul(x, Self::splat(std::f32::consts::LOG2_E)));
            let r = Self::fma(n, Self::splat(-LN2_HI), x);
            let r = Self::fma(n, Self::splat(-LN2_LO), r);
            let mut p = Self::splat(EXP_POLY[0]);
            for &c in &EXP_POLY[1..] {
                p = Self::fma(p, r, Self::splat(c));
            }
            let y = Self::fma(p, Self::mul(r, r), Self::add(r, Self::splat(1.0)));
            Self::mul(y, Self::pow2i(n))
        }
    }

    /// 32 int8 weights, in order, exactly.
    unsafe fn wf_i8(p: *const i8) -> Self::WF;
    /// 16 bytes of MXFP4 codes as doubled E2M1 integers (−12..12) times `NIB_UNIT`: the 16
    /// even elements (low nibbles), then the 16 odd ones (high nibbles).
    unsafe fn wf_mf4(p: *const u8) -> Self::WF;
    /// 16 bytes of int4 codes minus the zero point 8 (−8..7) times `NIB_UNIT`, evens then odds.
    unsafe fn wf_i4(p: *const u8) -> Self::WF;
    /// f32 lanes whose sum is `Σ w[j] · x[j]` over the block's 32 activations at `x`.
    unsafe fn dot_wf(w: Self::WF, x: *const f32) -> Self::F;
}

/// Integer dot products of int8, int4 and MXFP4 weights with int8 activations (`fast::q8`), for
/// one ISA and one choice of its optional extensions (VNNI, dotprod); `S` is its f32 side.
///
/// A group is the blocks of 32 one step takes: `S::LANES / 4` for the 4-bit formats (their
/// evens and odds halves each fill a vector), the int8 layout's `group` for int8 weights. Lane
/// l of a dot sums the products of bytes 4l..4l+4 of each vector of the group.
///
/// # Safety
/// Every function may only run on a CPU with the ISA and extensions, and its pointers must be
/// valid for one group.
#[allow(clippy::missing_safety_doc)]
pub trait Q8: Copy {
    type S: Simd;
    /// Whether the 4-bit decoders give unsigned `value + offset` (x86's `maddubs` and `dpbusd`
    /// take one unsigned operand); the activations then carry the correction (`fast::q8`).
    const UNSIGNED_NIBBLES: bool;
    /// A group of decoded weights.
    type W: Copy;

    /// `16 · group` bytes of MXFP4 codes as doubled E2M1 values (+ 12 when unsigned): the evens
    /// of each block, then the odds.
    unsafe fn w_mf4(p: *const u8) -> Self::W;
    /// `16 · group` bytes of int4 codes as values −8..7 (+ 8 when unsigned), evens then odds.
    unsafe fn w_i4(p: *const u8) -> Self::W;
    /// `32 · group` int8 weights.
    unsafe fn w_i8(p: *const i8) -> Self::W;
    /// Per lane, the integer dot of a decoded 4-bit group with the activations at `a`, as f32
    /// (exact: every sum is far below 2^24).
    unsafe fn dot_nib(w: Self::W, a: *const i8) -> <Self::S as Simd>::F;
    /// The same for a group of int8 weights.
    unsafe fn dot_i8(w: Self::W, a: *const i8) -> <Self::S as Simd>::F;
    /// 32 activations at `x` as int8 `round(x · 127 / max|x|)` (to nearest, ties to even), in
    /// order, and their scale `max|x| / 127`.
    unsafe fn quantize_block(x: *const f32) -> ([i8; 32], f32);
    /// How many consecutive 4-bit groups `e8m0_scales` converts at once.
    const E8M0_GROUPS: usize;
    /// The E8M0 scales of `E8M0_GROUPS` groups from their bytes at `p` (`E8M0_GROUPS · group`
    /// of them), as `E8M0_HALF` values but 0 for bytes 0 and 1 (2^−128 and 2^−127 there), in an
    /// order of the ISA's choosing for `e8m0_group`.
    unsafe fn e8m0_scales(p: *const u8) -> <Self::S as Simd>::F;
    /// Group `k`'s scales in the lanes of its blocks, as `nib_scales` gives them.
    unsafe fn e8m0_group(s: <Self::S as Simd>::F, k: usize) -> <Self::S as Simd>::F;
    /// Lanes holding `s[b]` for each block b of a 4-bit group.
    unsafe fn nib_scales(s: [f32; MAX_GROUP]) -> <Self::S as Simd>::F;
    /// `a · b − c`, fused.
    unsafe fn fmsub(a: <Self::S as Simd>::F, b: <Self::S as Simd>::F, c: <Self::S as Simd>::F) -> <Self::S as Simd>::F;
}

/// bf16 dot products of bf16 weights with f32 activations carried by two bf16 planes
/// (`fast::matmul::bf16_dot`), for an ISA that has them (AVX512-BF16's `vdpbf16ps`); `S` is
/// its f32 side. A vector `B` holds 2 · `S::LANES` bf16 values, in the order of the memory it
/// was loaded from.
///
/// # Safety
/// Every function may only run on a CPU with the ISA and extension, and its pointers must be
/// valid for the elements it reads or writes.
#[allow(clippy::missing_safety_doc)]
pub trait Bf16Dot: Copy {
    type S: Simd;
    type B: Copy;

    /// `2 · S::LANES` activations at `x` as `hi = bf16(x)` then `lo = bf16(x − hi)` (each
    /// rounded to nearest even, denormals flushed to zero: so `x − hi − lo` is within 2⁻¹⁶ of
    /// `x`, or of 2⁻¹²⁶), stored as `2 · S::LANES` bf16 of `hi` at `out`, then as many of `lo`.
    unsafe fn split(x: *const f32, out: *mut u16);
    /// `2 · S::LANES` bf16 values at `p`.
    unsafe fn load(p: *const u16) -> Self::B;
    /// `acc` plus, per f32 lane l, the products of the bf16 lanes 2l + 1 and then 2l of `a`
    /// and `b`, each exact and added with its own rounding.
    unsafe fn dot(acc: <Self::S as Simd>::F, a: Self::B, b: Self::B) -> <Self::S as Simd>::F;
}
