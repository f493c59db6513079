//! Causal grouped-query attention with learned sinks and an optional sliding window.
//!
//! For query head h of the token at position p: logits `z_s = q·k_s · scale` over the allowed
//! keys s, `m = max(sink_h, max z)`, `out = Σ e^{z_s − m} v_s / (e^{sink_h − m} + Σ e^{z_s − m})`:
//! the sink is one more column of the softmax whose value is never read (model.py's
//! `torch.cat([QK, S], dim=-1)` then dropping that column). Two passes over the keys (max, then
//! weighted sum), all in f64; one task per (token, head).

use gptoss_engine::AttentionArgs;

use crate::host::Host;
use crate::pool::for_each_chunk;
use crate::view::MAX_HEAD_DIM;
use crate::workspace::Workspace;

pub fn attention(a: AttentionArgs<Host>, _: &mut Workspace) {
    let (kv, d) = (&a.kv, a.kv.shape.head_dim);
    let q_heads = a.sinks.len();
    let group = q_heads / kv.shape.kv_heads;
    for_each_chunk(a.out, d, |i, o| {
        let (t, h) = (i / q_heads, i % q_heads);
        let pos = a.positions[t] as usize;
        let g = h / group;
        let qh = &a.q[i * d..(i + 1) * d];
        let logit = |s: usize| {
            let base = kv.shape.offset(s, g);
            let dot: f64 = (0..d).map(|j| qh[j] as f64 * kv.k.get(base + j) as f64).sum();
            dot * a.scale as f64
        };
        let keys = kv.shape.first_key(pos)..=pos;
        let sink = a.sinks[h] as f64;
        let m = keys.clone().map(logit).fold(sink, f64::max);
        let mut acc = [0.0f64; MAX_HEAD_DIM];
        let mut den = (sink - m).exp();
        for s in keys {
            let p = (logit(s) - m).exp();
            den += p;
            let base = kv.shape.offset(s, g);
            for (j, acc) in acc[..d].iter_mut().enumerate() {
                *acc += p * kv.v.get(base + j) as f64;
            }
        }
        for (o, acc) in o.iter_mut().zip(&acc[..d]) {
            *o = (acc / den) as f32;
        }
    });
}
