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
