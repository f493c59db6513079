//! The vector primitives the fast kernels are written in, one implementation per instruction
//! set, and each ISA's table of hot functions.
//!
//! The generic kernel bodies (`crate::fast`) are `#[inline(always)]` functions over a [`Simd`]
//! type. Each ISA module instantiates them inside its own `#[target_feature]` functions, so
//! the bodies are compiled for that ISA while the build itself targets the baseline: the
//! choice among ISAs happens at run time, once, through [`Kernels::for_isa`]. The threading,
//! tiling and bookkeeping around those hot functions is plain Rust, shared by all ISAs.

use crate::fast::attention::AttnTask;
use crate::fast::tile::Tile;
use crate::isa::Isa;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

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
    /// Sum of the lanes.
    unsafe fn sum(v: Self::F) -> f32;

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

/// One ISA's hot functions: each is a generic body compiled inside a `#[target_feature]`
/// function of that ISA. Obtained only through [`Kernels::for_isa`], which checks the CPU.
pub struct Kernels {
    pub isa: Isa,
    /// A block of output rows for a list of tokens (`fast::tile`).
    pub tile: unsafe fn(&Tile),
    /// A row of activations reordered for the 4-bit decoders (`fast::prepare`).
    pub prepare: unsafe fn(&[f32], &mut [f32]),
    /// RMSNorm of one row (`fast::norm`).
    pub rms_norm: unsafe fn(&[f32], &[f32], f32, &mut [f32]),
    /// All query heads of one kv head for one token (`fast::attention`).
    pub attention: unsafe fn(&AttnTask),
}

impl Kernels {
    /// The table for `isa`, or `None` for the scalar path or an ISA this CPU (or this build's
    /// target architecture) lacks.
    pub fn for_isa(isa: Isa) -> Option<&'static Kernels> {
        if !isa.available() {
            return None;
        }
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(&avx2::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(&avx512::KERNELS),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Some(&neon::KERNELS),
            _ => None,
        }
    }
}

/// The table of a [`Simd`] type, for instantiating the registry's entry points per ISA
/// (`fast::entry`). Only the registry of a backend whose ISA this CPU has uses them.
pub trait Table {
    fn table() -> &'static Kernels;
}
