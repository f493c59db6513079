//! RMSNorm: `out = x · (mean(x²) + eps)^-1/2 · gain`, row by row, in f64.

pub fn f32_rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    let d = gain.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean_sq = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let r = 1.0 / (mean_sq + eps as f64).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(gain) {
            *o = (v as f64 * r * g as f64) as f32;
        }
    }
}
