//! Attention input projections, rotary embedding and the KV-cache write; for the rows of one
//! sequence (one cache) or of several (`qkv_rope_rows`: a cache per row).

use gptoss_engine::{QkvRopeArgs, QkvRopeRowsArgs};

use super::matmul::rows;
use crate::host::Host;
use crate::view::{KvViewMut, RopeView, WeightView};
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

pub fn qkv_rope(mut a: QkvRopeArgs<Host>, ws: &mut Workspace) {
    let x = a.x;
    project([&a.wq, &a.wk, &a.wv], x, a.positions, &a.rope, std::slice::from_mut(&mut a.kv), a.q_out, ws);
}

pub fn qkv_rope_rows(mut a: QkvRopeRowsArgs<Host>, ws: &mut Workspace) {
    let x = a.x;
    project([&a.wq, &a.wk, &a.wv], x, a.positions, &a.rope, &mut a.kv, a.q_out, ws);
}

/// The projections `[wq, wk, wv]` of the activations `x` (the op's own, or the q8 reference's
/// rounding of them), one row per position of `positions`, then the rotation and the cache
/// write: row t's into `caches[t]`, or into `caches[0]` when there is one cache for all rows.
pub fn project<T: Copy + Into<f64> + Sync>(
    [wq, wk, wv]: [&WeightView; 3],
    x: &[T],
    positions: &[u32],
    rope: &RopeView,
    caches: &mut [KvViewMut],
    q_out: &mut [f32],
    ws: &mut Workspace,
) {
    let (n, shape) = (positions.len(), caches[0].shape);
    let (d, kv_row) = (shape.head_dim, shape.kv_heads * shape.head_dim);
    let (k_tmp, v_tmp) = (&mut ws.k[..n * kv_row], &mut ws.v[..n * kv_row]);
    rows(wq, x, q_out, false);
    rows(wk, x, k_tmp, false);
    rows(wv, x, v_tmp, false);
    let shared = caches.len() == 1;
    for (t, &pos) in positions.iter().enumerate() {
        rope_row(&mut q_out[t * wq.rows..(t + 1) * wq.rows], d, pos, rope);
        let k = &mut k_tmp[t * kv_row..(t + 1) * kv_row];
        rope_row(k, d, pos, rope);
        let v = &v_tmp[t * kv_row..(t + 1) * kv_row];
        let kv = &mut caches[if shared { 0 } else { t }];
        for h in 0..shape.kv_heads {
            let base = shape.offset(pos as usize, h);
            for j in 0..d {
                kv.k.set(base + j, k[h * d + j]);
                kv.v.set(base + j, v[h * d + j]);
            }
        }
    }
}
