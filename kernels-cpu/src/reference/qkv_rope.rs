//! Attention input projections, rotary embedding and the KV-cache write.

use gptoss_engine::QkvRopeArgs;

use super::matmul::rows;
use crate::host::Host;
use crate::view::RopeView;
use crate::workspace::Workspace;

/// Rotates every `head_dim` slice of `x` (a row of heads) by position `pos`, split halves.
pub fn rope_row(x: &mut [f32], head_dim: usize, pos: u32, rope: &RopeView) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..half {
            // The angle is rounded to f32 as the f32 references compute it.
            let angle = (pos as f32 * rope.inv_freq[i]) as f64;
            let c = angle.cos() * rope.concentration as f64;
            let s = angle.sin() * rope.concentration as f64;
            let (a, b) = (head[i] as f64, head[i + half] as f64);
            head[i] = (a * c - b * s) as f32;
            head[i + half] = (b * c + a * s) as f32;
        }
    }
}

pub fn qkv_rope(a: QkvRopeArgs<Host>, ws: &mut Workspace) {
    let x = a.x;
    project(a, x, ws);
}

/// The projections of the activations `x` (`a.x` itself, or the q8 reference's rounding of
/// it), then the rotation and the cache write.
pub fn project<T: Copy + Into<f64> + Sync>(mut a: QkvRopeArgs<Host>, x: &[T], ws: &mut Workspace) {
    let (n, d) = (a.n, a.kv.shape.head_dim);
    let kv_row = a.kv.shape.kv_heads * d;
    let (k_tmp, v_tmp) = (&mut ws.k[..n * kv_row], &mut ws.v[..n * kv_row]);
    rows(&a.wq, x, a.q_out, false);
    rows(&a.wk, x, k_tmp, false);
    rows(&a.wv, x, v_tmp, false);
    for t in 0..n {
        let pos = a.positions[t];
        rope_row(&mut a.q_out[t * a.wq.rows..(t + 1) * a.wq.rows], d, pos, &a.rope);
        let k = &mut k_tmp[t * kv_row..(t + 1) * kv_row];
        rope_row(k, d, pos, &a.rope);
        let v = &v_tmp[t * kv_row..(t + 1) * kv_row];
        for h in 0..a.kv.shape.kv_heads {
            let base = a.kv.shape.offset(pos as usize, h);
            for j in 0..d {
                a.kv.k.set(base + j, k[h * d + j]);
                a.kv.v.set(base + j, v[h * d + j]);
            }
        }
    }
}
