//! Attention driver: one task per (token, kv head, group of ≤ `MAX_GROUP` query heads)
//! (`fast::attention`); prefill has tokens × kv heads tasks, decode 8 in gpt-oss. The rows form
//! (`attention_rows`, a decode step of several sequences) has the same tasks, each reading its
//! row's own cache, so a row computes exactly what it would alone.

use gptoss_engine::{AttentionArgs, AttentionRowsArgs};

use crate::compiled::Compiled;
use crate::fast::attention::{AttnTask, MAX_GROUP};
use crate::host::Host;
use crate::pool::{SendPtr, for_each_task};
use crate::view::{KvView, MAX_HEAD_DIM};
use crate::workspace::Workspace;

pub fn attention<H: Compiled>(a: AttentionArgs<Host>, _: &mut Workspace) {
    tasks::<H>(a.q, std::slice::from_ref(&a.kv), a.positions, a.sinks, a.scale, a.out);
}

pub fn attention_rows<H: Compiled>(a: AttentionRowsArgs<Host>, _: &mut Workspace) {
    tasks::<H>(a.q, &a.kv, a.positions, a.sinks, a.scale, a.out);
}

/// Every task of `positions.len()` tokens: token t reads `caches[t]`, or `caches[0]` when there
/// is one cache for all tokens.
fn tasks<H: Compiled>(q: &[f32], caches: &[KvView], positions: &[u32], sinks: &[f32], scale: f32, out: &mut [f32]) {
    let (d, kv_heads, q_heads) = (caches[0].shape.head_dim, caches[0].shape.kv_heads, sinks.len());
    let group = q_heads / kv_heads;
    let parts = group.div_ceil(MAX_GROUP);
    let per_part = group.div_ceil(parts);
    let row = q_heads * d;
    assert!(d <= MAX_HEAD_DIM, "head_dim is checked when the backend is prepared");
    let op = SendPtr(out.as_mut_ptr());
    let shared = caches.len() == 1;
    for_each_task(positions.len() * kv_heads * parts, |i| {
        let (t, g, part) = (i / (kv_heads * parts), i / parts % kv_heads, i % parts);
        let h0 = g * group + part * per_part;
        let heads = per_part.min(g * group + group - h0);
        let task = AttnTask {
            q: &q[t * row..(t + 1) * row],
            kv: &caches[if shared { 0 } else { t }],
            pos: positions[t] as usize,
            g,
            h0,
            heads,
            sinks,
            scale,
            // SAFETY (pointer arithmetic): row t lies within `out` (n rows of `row`).
            out: unsafe { op.get().add(t * row) },
        };
        // SAFETY: each task writes only heads h0..h0 + heads of its token's row; this CPU runs
        // `H`; head_dim and the group size are within the stack buffers' bounds.
        unsafe { H::attention(&task) }
    });
}
