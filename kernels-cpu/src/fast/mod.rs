//! The SIMD kernel bodies, one module per op family: generic, `#[inline(always)]` functions
//! over `simd::Simd` / `simd::Q8` that do one row, one tile or one task, compiled per ISA in
//! `compiled` and threaded by `drivers`. Each is checked against its family's reference in
//! `reference/` by the op tests (`tests/ops`), on every ISA this CPU has.

pub mod attention;
pub mod matmul;
pub mod rms_norm;
pub mod swiglu;
