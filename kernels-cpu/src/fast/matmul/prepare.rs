//! Activations for the 4-bit formats (MXFP4, int4), prepared once per matmul, not per row.
//!
//! Those formats store element 2i of a block in a byte's low nibble and 2i+1 in its high
//! nibble; the decoders (`Simd::wf_mf4`, `wf_i4`) produce a block's 16 even elements, then its
//! 16 odd ones. So each block of activations is stored evens first, and divided by
//! `NIB_UNIT` (a power of two, exact) to cancel the decoders' scaling. The products stay
//! exact in f32; no activation is rounded.
//!
//! Why not quantize activations to int8 or int16 as llama.cpp does: int8 blocks put every
//! layer ~1e-2 from the reference, and even int16 blocks of 32 (error ≤ 2^−15 of the block's
//! largest value) measured 1.5e-4 on the reference fixture, beyond its 1e-4 budget.
//!
//! Parallel strategy: one row per call; callers spread tokens over the pool.

/// `out[32b + j] = x[32b + 2j] / unit`, `out[32b + 16 + j] = x[32b + 2j + 1] / unit` for every
/// block b; `x.len()` is a multiple of 32 and `out` as long.
#[inline(always)]
pub fn deinterleave_row(x: &[f32], unit: f32, out: &mut [f32]) {
    let inv = 1.0 / unit;
    for (xb, ob) in x.chunks_exact(32).zip(out.chunks_exact_mut(32)) {
        for i in 0..16 {
            ob[i] = xb[2 * i] * inv;
            ob[16 + i] = xb[2 * i + 1] * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_go_evens_first() {
        let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let mut out = vec![0f32; 64];
        deinterleave_row(&x, 2.0, &mut out);
        let want: Vec<f32> = (0..2)
            .flat_map(|b| (0..16).map(move |i| (32 * b + 2 * i) as f32).chain((0..16).map(move |i| (32 * b + 2 * i + 1) as f32)))
            .map(|v| v / 2.0)
            .collect();
        assert_eq!(out, want);
    }
}
