//! Attention input projections, rotary embedding and the KV-cache write.

use super::matmul::f32_matmul;
use crate::view::{KvViewMut, WeightView};

/// Inverse frequencies and the factor on cos and sin.
pub struct RopeView<'a> {
    pub inv_freq: &'a [f32],
    pub concentration: f32,
}

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

/// `k_tmp` and `v_tmp` are scratch of at least `n · kv_heads · head_dim` floats.
#[allow(clippy::too_many_arguments)]
pub fn f32_qkv_rope(
    wq: &WeightView,
    wk: &WeightView,
    wv: &WeightView,
    x: &[f32],
    n: usize,
    positions: &[u32],
    rope: &RopeView,
    kv: &mut KvViewMut,
    q_out: &mut [f32],
    k_tmp: &mut [f32],
    v_tmp: &mut [f32],
) {
    let d = kv.shape.head_dim;
    let kv_row = kv.shape.kv_heads * d;
    f32_matmul(wq, x, n, q_out, false);
    f32_matmul(wk, x, n, k_tmp, false);
    f32_matmul(wv, x, n, v_tmp, false);
    for t in 0..n {
        let pos = positions[t];
        rope_row(&mut q_out[t * wq.rows..(t + 1) * wq.rows], d, pos, rope);
        let k = &mut k_tmp[t * kv_row..(t + 1) * kv_row];
        rope_row(k, d, pos, rope);
        let v = &v_tmp[t * kv_row..(t + 1) * kv_row];
        for h in 0..kv.shape.kv_heads {
            let base = kv.shape.offset(pos as usize, h);
            for j in 0..d {
                kv.k.set(base + j, k[h * d + j]);
                kv.v.set(base + j, v[h * d + j]);
            }
        }
    }
}
