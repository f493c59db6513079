//! The weight formats as types. A kernel is compiled for one format (`drivers::matmul::matmul::<H, F, P>`),
//! so the registry's choice by the weight's `WeightFormat`, once at load, is the only dispatch on
//! it: each format's tiles are called directly.

use gptoss_engine::WeightFormat;

use super::block_row::{I4Row, I8Row, Mf4Row};
use super::q8::Layout;
use super::q8_tile;
use super::tile::{self, Bf16Row, F32Row, F32Rows, Q8Rows, Tile};
use crate::simd::{Q8, Simd};

/// A weight format's tiles.
///
/// # Safety
/// The tiles may only run on a CPU with the ISA they are compiled for, on activations prepared
/// for this format (see the tiles).
#[allow(clippy::missing_safety_doc)]
pub trait Format: Copy + Send + Sync + 'static {
    /// The format these kernels serve (int4: every group size; names take its tag).
    const FORMAT: WeightFormat;
    /// Whether the exact tiles decode 4-bit codes, evens then odds, so their activations are
    /// reordered to match (`prepare`).
    const NIBBLES: bool;

    /// Whether `f` is this format.
    fn is(f: WeightFormat) -> bool {
        f.kernel_tag() == Self::FORMAT.kernel_tag()
    }

    /// Rows of this format times f32 activations, exactly.
    unsafe fn exact<S: Simd>(t: &Tile<F32Rows>);
}

/// A format with integer dot products on int8 activations (the q8 tiles).
#[allow(clippy::missing_safety_doc)]
pub trait IntFormat: Format {
    /// How `Q` lays out the activations this format's q8 tiles read.
    fn layout<Q: Q8>() -> Layout {
        Layout::new(Self::FORMAT, Q::S::LANES, Q::UNSIGNED_NIBBLES)
    }

    unsafe fn q8<Q: Q8>(t: &Tile<Q8Rows>);
}

impl Format for F32Row {
    const FORMAT: WeightFormat = WeightFormat::F32;
    const NIBBLES: bool = false;
    #[inline(always)]
    unsafe fn exact<S: Simd>(t: &Tile<F32Rows>) {
        unsafe { tile::float::<S, Self>(t) }
    }
}

impl Format for Bf16Row {
    const FORMAT: WeightFormat = WeightFormat::Bf16;
    const NIBBLES: bool = false;
    #[inline(always)]
    unsafe fn exact<S: Simd>(t: &Tile<F32Rows>) {
        unsafe { tile::float::<S, Self>(t) }
    }
}

impl Format for I8Row {
    const FORMAT: WeightFormat = WeightFormat::Int8;
    const NIBBLES: bool = false;
    #[inline(always)]
    unsafe fn exact<S: Simd>(t: &Tile<F32Rows>) {
        unsafe { tile::block::<S, Self>(t) }
    }
}

impl IntFormat for I8Row {
    #[inline(always)]
    unsafe fn q8<Q: Q8>(t: &Tile<Q8Rows>) {
        unsafe { q8_tile::bytes::<Q>(t, Self::layout::<Q>()) }
    }
}

impl Format for I4Row {
    const FORMAT: WeightFormat = WeightFormat::Int4 { group: 32 };
    const NIBBLES: bool = true;
    #[inline(always)]
    unsafe fn exact<S: Simd>(t: &Tile<F32Rows>) {
        unsafe { tile::block::<S, Self>(t) }
    }
}

impl IntFormat for I4Row {
    #[inline(always)]
    unsafe fn q8<Q: Q8>(t: &Tile<Q8Rows>) {
        unsafe { q8_tile::nibbles::<Q, Self>(t, Self::layout::<Q>()) }
    }
}

impl Format for Mf4Row {
    const FORMAT: WeightFormat = WeightFormat::Mxfp4;
    const NIBBLES: bool = true;
    #[inline(always)]
    unsafe fn exact<S: Simd>(t: &Tile<F32Rows>) {
        unsafe { tile::block::<S, Self>(t) }
    }
}

impl IntFormat for Mf4Row {
    #[inline(always)]
    unsafe fn q8<Q: Q8>(t: &Tile<Q8Rows>) {
        unsafe { q8_tile::nibbles::<Q, Self>(t, Self::layout::<Q>()) }
    }
}
