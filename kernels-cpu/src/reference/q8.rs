//! The q8 definition: what the kernels on int8 activations (`--cpu-activations int8`) compute,
//! as scalar reference kernels for int8, int4 and MXFP4 weights. Each block of 32 activations
//! becomes `d · q` with `d = max|x| / 127` and `q = round(x · (127 / max|x|))` (to nearest, ties
//! to even, all in f32, as the SIMD quantizers do it); the products are then the exact
//! reference's, in f64 from those values. In the fused experts the SwiGLU outputs are rounded
//! to f32 and quantized again before the down projection, as the kernels do.

use gptoss_engine::{MatmulArgs, MoeExpertsArgs, QkvRopeArgs, QkvRopeRowsArgs};

use super::{matmul, moe_experts, qkv_rope};
use crate::host::Host;
use crate::workspace::Workspace;

/// `x` (rows of `cols`) rounded to int8 blocks of 32, each value `d · q` exactly, into `out`.
pub fn quantize_rows(x: &[f32], cols: usize, out: &mut [f64]) {
    for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        for (xb, ob) in xr.chunks(32).zip(or.chunks_mut(32)) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (d, inv) = (amax / 127.0, if amax > 0.0 { 127.0 / amax } else { 0.0 });
            for (o, &v) in ob.iter_mut().zip(xb) {
                *o = d as f64 * (v * inv).round_ties_even().clamp(-128.0, 127.0) as f64;
            }
        }
    }
}

pub fn matmul(a: MatmulArgs<Host>, ws: &mut Workspace) {
    let x = &mut ws.q8_reference[..a.x.len()];
    quantize_rows(a.x, a.w.cols, x);
    matmul::rows(&a.w, x, a.out, a.accumulate);
}

pub fn qkv_rope(mut a: QkvRopeArgs<Host>, ws: &mut Workspace) {
    // The rounded activations leave the workspace while the projections use the rest of it.
    let (mut x, len) = (std::mem::take(&mut ws.q8_reference), a.x.len());
    quantize_rows(a.x, a.wq.cols, &mut x[..len]);
    qkv_rope::project([&a.wq, &a.wk, &a.wv], &x[..len], a.positions, &a.rope, std::slice::from_mut(&mut a.kv), a.q_out, ws);
    ws.q8_reference = x;
}

pub fn qkv_rope_rows(mut a: QkvRopeRowsArgs<Host>, ws: &mut Workspace) {
    let (mut x, len) = (std::mem::take(&mut ws.q8_reference), a.x.len());
    quantize_rows(a.x, a.wq.cols, &mut x[..len]);
    qkv_rope::project([&a.wq, &a.wk, &a.wv], &x[..len], a.positions, &a.rope, &mut a.kv, a.q_out, ws);
    ws.q8_reference = x;
}

pub fn moe_experts(a: MoeExpertsArgs<Host>, ws: &mut Workspace) {
    moe_experts::experts(a, ws, true);
}
