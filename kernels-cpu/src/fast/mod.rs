//! The SIMD kernels: generic bodies over `simd::Simd`, instantiated per ISA in `simd::*`, and
//! the drivers that thread them on the pool. Each kernel is checked against its reference in
//! `reference/` by `tests/simd_vs_reference.rs`, on every ISA this CPU has.

pub mod attention;
pub mod block_row;
pub mod entry;
pub mod matmul;
pub mod moe;
pub mod norm;
pub mod ops;
pub mod prepare;
pub mod q8;
pub mod q8_tile;
pub mod swiglu;
pub mod tile;
