//! RMSNorm of one row: `out = x · (mean(x²) + eps)^-1/2 · gain`.
//!
//! Parallel strategy: one row per call; the driver (`drivers::rms_norm`) spreads rows over the
//! pool. The sum of squares runs in f32 lanes and is finished in f64.

use crate::simd::Simd;

/// # Safety
/// The CPU supports `S`; `x`, `gain` and `out` have the same length.
#[inline(always)]
pub unsafe fn rms_norm_row<S: Simd>(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    let d = gain.len();
    let (xp, gp, op) = (x.as_ptr(), gain.as_ptr(), out.as_mut_ptr());
    unsafe {
        // Two accumulators halve the FMA dependency chain.
        let (mut a0, mut a1) = (S::zero(), S::zero());
        let mut c = 0;
        while c + 2 * S::LANES <= d {
            let (v0, v1) = (S::load(xp.add(c)), S::load(xp.add(c + S::LANES)));
            a0 = S::fma(v0, v0, a0);
            a1 = S::fma(v1, v1, a1);
            c += 2 * S::LANES;
        }
        let mut ss = S::sum(S::add(a0, a1)) as f64;
        ss += x[c..].iter().map(|&v| v as f64 * v as f64).sum::<f64>();
        let r = (1.0 / (ss / d as f64 + eps as f64).sqrt()) as f32;
        let rv = S::splat(r);
        let mut c = 0;
        while c + S::LANES <= d {
            S::store(op.add(c), S::mul(S::mul(S::load(xp.add(c)), rv), S::load(gp.add(c))));
            c += S::LANES;
        }
        for i in c..d {
            out[i] = x[i] * r * gain[i];
        }
    }
}
