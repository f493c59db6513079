//! RMSNorm: `out = x · (mean(x²) + eps)^-1/2 · gain`, row by row, in f64.

use gptoss_engine::RmsNormArgs;

use crate::host::Host;
use crate::workspace::Workspace;

pub fn rms_norm(a: RmsNormArgs<Host>, _: &mut Workspace) {
    let d = a.gain.len();
    for (xr, or) in a.x.chunks_exact(d).zip(a.out.chunks_exact_mut(d)) {
        let mean_sq = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let r = 1.0 / (mean_sq + a.eps as f64).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(a.gain) {
            *o = (v as f64 * r * g as f64) as f32;
        }
    }
}
