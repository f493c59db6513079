//! Causal grouped-query attention with learned sinks and an optional sliding window.
//!
//! For query head h of the token at position p: logits `z_s = q·k_s · scale` over the allowed
//! keys s, `m = max(sink_h, max z)`, `out = Σ e^{z_s − m} v_s / (e^{sink_h − m} + Σ e^{z_s − m})`.
//! Two passes over the keys (max, then weighted sum), all in f64; one task per (token, head).

use crate::pool::for_each_chunk;

use crate::view::KvView;

/// Head dimensions the reference supports (its accumulator lives on the stack).
pub const MAX_HEAD_DIM: usize = 256;

/// The first position a query at `pos` may attend.
#[inline]
pub fn first_key(pos: usize, window: Option<usize>) -> usize {
    window.map_or(0, |w| (pos + 1).saturating_sub(w))
}

pub fn f32_attention(q: &[f32], kv: &KvView, n: usize, positions: &[u32], sinks: &[f32], scale: f32, out: &mut [f32]) {
    let d = kv.shape.head_dim;
    let q_heads = sinks.len();
    let group = q_heads / kv.shape.kv_heads;
    for_each_chunk(&mut out[..n * q_heads * d], d, |i, o| {
        let (t, h) = (i / q_heads, i % q_heads);
        let pos = positions[t] as usize;
        let g = h / group;
        let qh = &q[i * d..(i + 1) * d];
        let logit = |s: usize| {
            let base = kv.shape.offset(s, g);
            let dot: f64 = (0..d).map(|j| qh[j] as f64 * kv.k.get(base + j) as f64).sum();
            dot * scale as f64
        };
        let keys = first_key(pos, kv.shape.window)..=pos;
        let sink = sinks[h] as f64;
        let m = keys.clone().map(logit).fold(sink, f64::max);
        let mut acc = [0.0f64; MAX_HEAD_DIM];
        let mut den = (sink - m).exp();
        for s in keys {
            let p = (logit(s) - m).exp();
            den += p;
            let base = kv.shape.offset(s, g);
            for (j, a) in acc[..d].iter_mut().enumerate() {
                *a += p * kv.v.get(base + j) as f64;
            }
        }
        for (o, a) in o.iter_mut().zip(&acc[..d]) {
            *o = (a / den) as f32;
        }
    });
}
