//! Causal grouped-query attention with learned sinks and an optional sliding window.
//!
//! For query head h of the token at position p: logits `z_s = q·k_s · scale` over the allowed
//! keys s, `m = max(sink_h, max z)`, `out = Σ e^{z_s − m} v_s / (e^{sink_h − m} + Σ e^{z_s − m})`:
//! the sink is one more column of the softmax whose value is never read (model.py's
//! `torch.cat([QK, S], dim=-1)` then dropping that column). Two passes over the keys (max, then
//! weighted sum), all in f64; one task per (token, head). The rows form (`attention_rows`)
//! reads each row's own cache.

use gptoss_engine::{AttentionArgs, AttentionRowsArgs};

use crate::host::Host;
use crate::pool::for_each_chunk;
use crate::view::{KvView, MAX_HEAD_DIM};
use crate::workspace::Workspace;

pub fn attention(a: AttentionArgs<Host>, _: &mut Workspace) {
    heads(a.q, std::slice::from_ref(&a.kv), a.positions, a.sinks, a.scale, a.out);
}

pub fn attention_rows(a: AttentionRowsArgs<Host>, _: &mut Workspace) {
    heads(a.q, &a.kv, a.positions, a.sinks, a.scale, a.out);
}

/// Every (token, head) of `out`: token t reads `caches[t]`, or `caches[0]` when there is one
/// cache for all tokens.
fn heads(q: &[f32], caches: &[KvView], positions: &[u32], sinks: &[f32], scale: f32, out: &mut [f32]) {
    let d = caches[0].shape.head_dim;
    let q_heads = sinks.len();
    let group = q_heads / caches[0].shape.kv_heads;
    for_each_chunk(out, d, |i, o| {
        let (t, h) = (i / q_heads, i % q_heads);
        let kv = &caches[if caches.len() == 1 { 0 } else { t }];
        let pos = positions[t] as usize;
        let g = h / group;
        let qh = &q[i * d..(i + 1) * d];
        let logit = |s: usize| {
            let base = kv.shape.offset(s, g);
            let dot: f64 = (0..d).map(|j| qh[j] as f64 * kv.k.get(base + j) as f64).sum();
            dot * scale as f64
        };
        let keys = kv.shape.first_key(pos)..=pos;
        let sink = sinks[h] as f64;
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
