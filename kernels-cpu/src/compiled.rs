//! Each instruction set's hot loops, compiled for it: the generic bodies of `fast` (over
//! `simd::Simd`, `simd::Q8` and `simd::Bf16Dot`) instantiated inside `#[target_feature]`
//! functions, one implementation of [`Compiled`] per ISA and extension (q8 products, bf16 dot
//! products), all in this file. The build targets
//! the baseline; which of these runs is chosen once, at load, by the registry (after checking
//! the CPU has it). The drivers (`drivers`) are generic over `Compiled` and call these directly.

use gptoss_engine::Swiglu;

use crate::fast::attention::AttnTask;
use crate::fast::matmul::bf16_dot::SplitRows;
use crate::fast::matmul::format::{Format, IntFormat};
use crate::fast::matmul::tile::{F32Rows, Q8Rows, Tile};
use crate::isa::Isa;
use crate::simd::{Q8, Simd};

/// One ISA's compiled hot loops.
///
/// # Safety
/// Every function may only run on a CPU with [`Compiled::ISA`] (and the extension the set is
/// named for, see [`Compiled::available`]); its arguments are as the body it compiles asks.
#[allow(clippy::missing_safety_doc)]
pub trait Compiled: Copy + Send + Sync + 'static {
    /// The suffix of this set's q8 kernel names: `avx2`, `avx512_vnni`, `neon_dotprod`, … (its
    /// exact kernels, the same in every set of an ISA, take the ISA's name, and so do the bf16
    /// dot products of the sets that have them: `dpbf16_<isa>`).
    const NAME: &'static str;
    const ISA: Isa;
    /// The optional extension the set needs (`vnni`, `vnni_vbmi_bf16`, `dotprod`), if any.
    const EXTENSION: Option<&'static str>;
    /// Whether the set multiplies bf16 weights by bf16 dot products ([`Compiled::tile_bf16_dot`]).
    const BF16_DOT: bool = false;
    type S: Simd;
    type Q: Q8<S = Self::S>;

    /// Whether this CPU can run the set.
    fn available() -> bool {
        Self::ISA.available() && Self::EXTENSION.is_none_or(|e| Self::ISA.has_extension(e))
    }

    /// A tile of rows of format `F` times f32 activations (`fast::matmul::tile`).
    unsafe fn tile_exact<F: Format>(t: &Tile<F32Rows>);
    /// A tile of rows of format `F` times int8 activations (`fast::matmul::q8_tile`).
    unsafe fn tile_q8<F: IntFormat>(t: &Tile<Q8Rows>);
    /// A row of activations reordered for the 4-bit decoders (`fast::matmul::prepare`).
    unsafe fn prepare(x: &[f32], out: &mut [f32]);
    /// A row of activations quantized for `F`'s q8 tiles (`fast::matmul::q8`).
    unsafe fn quantize<F: IntFormat>(x: &[f32], out: &mut [u8]);
    /// RMSNorm of one row (`fast::rms_norm`).
    unsafe fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]);
    /// The query heads of one kv head for one token (`fast::attention`).
    unsafe fn attention(t: &AttnTask);
    /// The clamped SwiGLU of a row of interleaved (gate, up) pairs (`fast::swiglu`).
    unsafe fn swiglu(pairs: &[f32], p: Swiglu, out: &mut [f32]);
    /// A row of activations split into bf16 planes (`fast::matmul::bf16_dot`); only where
    /// [`Compiled::BF16_DOT`].
    unsafe fn split_bf16(_x: &[f32], _out: &mut [u16]) {
        unreachable!("the {} kernels have no bf16 dot products", Self::NAME)
    }
    /// A tile of bf16 rows times activations split into bf16 planes (`fast::matmul::bf16_dot`);
    /// only where [`Compiled::BF16_DOT`].
    unsafe fn tile_bf16_dot(_t: &Tile<SplitRows>) {
        unreachable!("the {} kernels have no bf16 dot products", Self::NAME)
    }
}

/// Something done with each compiled set, generically (the registry's lists, tests).
pub trait Visit {
    fn visit<H: Compiled>(&mut self);
}

/// Calls `v` with every set this CPU can run, widest first.
pub fn each_available(v: &mut impl Visit) {
    #[cfg(target_arch = "x86_64")]
    {
        visit_if::<Avx512VnniVbmiBf16>(v);
        visit_if::<Avx512VnniVbmi>(v);
        visit_if::<Avx512Vnni>(v);
        visit_if::<Avx512>(v);
        visit_if::<Avx2>(v);
    }
    #[cfg(target_arch = "aarch64")]
    {
        visit_if::<NeonDot>(v);
        visit_if::<Neon>(v);
    }
}

fn visit_if<H: Compiled>(v: &mut impl Visit) {
    if H::available() {
        v.visit::<H>();
    }
}

/// The names of the sets of `isa` this CPU runs, widest first (`avx512_vnni_vbmi_bf16`,
/// `avx512_vnni_vbmi`, `avx512_vnni`, `avx512` on a CPU with VNNI, VBMI and BF16).
pub fn names_for(isa: Isa) -> Vec<&'static str> {
    struct Names(Isa, Vec<&'static str>);
    impl Visit for Names {
        fn visit<H: Compiled>(&mut self) {
            if H::ISA == self.0 {
                self.1.push(H::NAME);
            }
        }
    }
    let mut names = Names(isa, Vec::new());
    each_available(&mut names);
    names.1
}

/// Calls `v` with the set of `isa` this CPU runs: the one named `set`, or the widest (with its
/// q8 extension where it has one) when `None`; false when there is none (the scalar path, an
/// ISA or set this CPU or build lacks).
pub fn for_isa(isa: Isa, set: Option<&str>, v: &mut impl Visit) -> bool {
    struct First<'a, 's, V> {
        isa: Isa,
        set: Option<&'s str>,
        v: &'a mut V,
        done: bool,
    }
    impl<V: Visit> Visit for First<'_, '_, V> {
        fn visit<H: Compiled>(&mut self) {
            if !self.done && H::ISA == self.isa && self.set.is_none_or(|s| s == H::NAME) {
                self.v.visit::<H>();
                self.done = true;
            }
        }
    }
    let mut first = First { isa, set, v, done: false };
    each_available(&mut first);
    first.done
}

/// One implementation of `Compiled`: `$simd`'s f32 side, `$q8`'s integer dots and, where
/// given, `$dot`'s bf16 dot products, compiled with `$features`.
macro_rules! compiled {
    ($(#[$doc:meta])* $name:ident = $label:literal, $isa:expr, $ext:expr, $features:literal, $simd:ty, $q8:ty $(, bf16 = $dot:ty)?) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name;

        impl Compiled for $name {
            const NAME: &'static str = $label;
            const ISA: Isa = $isa;
            const EXTENSION: Option<&'static str> = $ext;
            type S = $simd;
            type Q = $q8;

            #[target_feature(enable = $features)]
            unsafe fn tile_exact<F: Format>(t: &Tile<F32Rows>) {
                unsafe { F::exact::<$simd>(t) }
            }
            #[target_feature(enable = $features)]
            unsafe fn tile_q8<F: IntFormat>(t: &Tile<Q8Rows>) {
                unsafe { F::q8::<$q8>(t) }
            }
            #[target_feature(enable = $features)]
            unsafe fn prepare(x: &[f32], out: &mut [f32]) {
                crate::fast::matmul::prepare::deinterleave_row(x, <$simd as Simd>::NIB_UNIT, out)
            }
            #[target_feature(enable = $features)]
            unsafe fn quantize<F: IntFormat>(x: &[f32], out: &mut [u8]) {
                unsafe { crate::fast::matmul::q8::quantize_row::<$q8>(x, F::layout::<$q8>(), out) }
            }
            #[target_feature(enable = $features)]
            unsafe fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
                unsafe { crate::fast::rms_norm::rms_norm_row::<$simd>(x, gain, eps, out) }
            }
            #[target_feature(enable = $features)]
            unsafe fn attention(t: &AttnTask) {
                unsafe { crate::fast::attention::group::<$simd>(t) }
            }
            #[target_feature(enable = $features)]
            unsafe fn swiglu(pairs: &[f32], p: Swiglu, out: &mut [f32]) {
                unsafe { crate::fast::swiglu::swiglu_row::<$simd>(pairs, p, out) }
            }
            $(
                const BF16_DOT: bool = true;
                #[target_feature(enable = $features)]
                unsafe fn split_bf16(x: &[f32], out: &mut [u16]) {
                    unsafe { crate::fast::matmul::bf16_dot::split_row::<$dot>(x, out) }
                }
                #[target_feature(enable = $features)]
                unsafe fn tile_bf16_dot(t: &Tile<SplitRows>) {
                    unsafe { crate::fast::matmul::bf16_dot::tile::<$dot>(t) }
                }
            )?
        }
    };
}

#[cfg(target_arch = "x86_64")]
compiled!(
    /// AVX2 + FMA.
    Avx2 = "avx2", Isa::Avx2, None, "avx2,fma", crate::simd::avx2::Avx2, crate::simd::avx2::Avx2
);
#[cfg(target_arch = "x86_64")]
compiled!(
    /// AVX-512 F + BW + VL, q8 products with `vpmaddubsw`.
    Avx512 = "avx512", Isa::Avx512, None, "avx512f,avx512bw,avx512vl,avx2,fma",
    crate::simd::avx512::Avx512, crate::simd::avx512::Avx512Maddubs
);
#[cfg(target_arch = "x86_64")]
compiled!(
    /// AVX-512 with VNNI: q8 products with `vpdpbusd`.
    Avx512Vnni = "avx512_vnni", Isa::Avx512, Some("vnni"), "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma",
    crate::simd::avx512::Avx512, crate::simd::avx512::Avx512Vnni
);
#[cfg(target_arch = "x86_64")]
compiled!(
    /// AVX-512 with VNNI and VBMI: q8 products with `vpdpbusd`, the MXFP4 lookup with `vpermb`.
    Avx512VnniVbmi = "avx512_vnni_vbmi", Isa::Avx512, Some("vnni_vbmi"), "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma",
    crate::simd::avx512::Avx512, crate::simd::avx512::Avx512VnniVbmi
);
#[cfg(target_arch = "x86_64")]
compiled!(
    /// AVX-512 with VNNI, VBMI and BF16: as `Avx512VnniVbmi`, and bf16 weights by `vdpbf16ps` on
    /// activations split into two bf16 planes (Sapphire Rapids and later, Zen 4; Cooper Lake,
    /// which has BF16 without VBMI, keeps `Avx512Vnni`).
    Avx512VnniVbmiBf16 = "avx512_vnni_vbmi_bf16", Isa::Avx512, Some("vnni_vbmi_bf16"),
    "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512bf16,avx2,fma",
    crate::simd::avx512::Avx512, crate::simd::avx512::Avx512VnniVbmi, bf16 = crate::simd::avx512::Avx512Bf16
);
#[cfg(target_arch = "aarch64")]
compiled!(
    /// Advanced SIMD, q8 products with widening multiplies.
    Neon = "neon", Isa::Neon, None, "neon", crate::simd::neon::Neon, crate::simd::neon::NeonWide
);
#[cfg(target_arch = "aarch64")]
compiled!(
    /// Advanced SIMD with the dot-product extension: q8 products with `sdot`.
    NeonDot = "neon_dotprod", Isa::Neon, Some("dotprod"), "neon,dotprod", crate::simd::neon::Neon, crate::simd::neon::NeonDot
);
