//! gpt-oss's clamped SwiGLU over a row of interleaved (gate, up) pairs, `LANES` pairs at a
//! time: `min(g, limit) · σ(α · min(g, limit)) · (clamp(u, ±limit) + 1)` with the sigmoid's
//! exponential from `Simd::exp` (the reference, `reference::moe_experts::swiglu`, is f64).
//! The pairs are split into gate and up lanes through a small stack buffer: next to the
//! exponential and the division that costs little.

use gptoss_engine::Swiglu;

use crate::simd::{MAX_LANES, Simd};

/// `out[j] = swiglu(pairs[2j], pairs[2j + 1])` for every j < `out.len()`.
///
/// # Safety
/// The CPU supports `S`; `pairs` holds `2 · out.len()` floats.
#[inline(always)]
pub unsafe fn swiglu_row<S: Simd>(pairs: &[f32], p: Swiglu, out: &mut [f32]) {
    debug_assert_eq!(pairs.len(), 2 * out.len());
    let (limit, neg_limit, neg_alpha, one) = unsafe { (S::splat(p.limit), S::splat(-p.limit), S::splat(-p.alpha), S::splat(1.0)) };
    let mut g = [0f32; MAX_LANES];
    let mut u = [0f32; MAX_LANES];
    let mut y = [0f32; MAX_LANES];
    for (chunk, dst) in pairs.chunks(2 * S::LANES).zip(out.chunks_mut(S::LANES)) {
        // A short last chunk leaves zeros in the lanes past it, which compute harmlessly.
        for (j, pair) in chunk.chunks_exact(2).enumerate() {
            g[j] = pair[0];
            u[j] = pair[1];
        }
        unsafe {
            // min(g, limit) with g second: a NaN gate gives the limit, as f32::min does.
            let gv = S::min(limit, S::load(g.as_ptr()));
            let uv = S::max(neg_limit, S::min(limit, S::load(u.as_ptr())));
            let e = S::exp(S::mul(neg_alpha, gv));
            S::store(y.as_mut_ptr(), S::mul(S::div(gv, S::add(one, e)), S::add(uv, one)));
        }
        dst.copy_from_slice(&y[..dst.len()]);
    }
}

#[cfg(test)]
mod tests {
    use gptoss_engine::Swiglu;

    use crate::compiled::{Compiled, Visit, each_available};
    use crate::reference::moe_experts::swiglu;

    /// Every compiled SwiGLU (its exponential is `Simd::exp`) against the f64 reference, over
    /// gates and ups from deep in the sigmoid's tails through the clamp, at lengths that leave
    /// partial vectors: within 2e-6 of each value (the exponential's 2 ulp, its argument's
    /// rounding × |α g| ≤ 12, a division).
    #[test]
    fn matches_the_reference() {
        struct Check;
        impl Visit for Check {
            fn visit<H: Compiled>(&mut self) {
                let p = Swiglu { alpha: 1.702, limit: 7.0 };
                let mut seed = 7u64;
                let mut next = || {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 12.0
                };
                for len in [0usize, 1, 3, 8, 17, 33, 2880] {
                    let mut pairs: Vec<f32> = (0..2 * len).map(|_| next()).collect();
                    for (pair, g) in pairs.chunks_exact_mut(2).zip([-80.0f32, -51.3, -30.0, 7.0, 7.5, 60.0]) {
                        pair[0] = g;
                    }
                    let want: Vec<f32> = pairs.chunks_exact(2).map(|c| swiglu(c[0] as f64, c[1] as f64, p) as f32).collect();
                    let mut got = vec![f32::NAN; len];
                    // SAFETY: `each_available` visits only sets this CPU runs; the lengths match.
                    unsafe { H::swiglu(&pairs, p, &mut got) };
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert!((g - w).abs() as f64 <= 2e-6 * w.abs() as f64 + 1e-30, "{} swiglu × {len} [{i}]: {g} vs {w}", H::NAME);
                    }
                }
            }
        }
        each_available(&mut Check);
    }
}
