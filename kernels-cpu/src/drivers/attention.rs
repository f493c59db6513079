//! Attention driver: one task per (token, kv head, group of ≤ `MAX_GROUP` query heads)
//! (`fast::attention`); prefill has tokens × kv heads tasks, decode 8 in gpt-oss.

use gptoss_engine::AttentionArgs;

use crate::compiled::Compiled;
use crate::fast::attention::{AttnTask, MAX_GROUP};
use crate::host::Host;
use crate::pool::{SendPtr, for_each_task};
use crate::view::MAX_HEAD_DIM;
use crate::workspace::Workspace;

pub fn attention<H: Compiled>(a: AttentionArgs<Host>, _: &mut Workspace) {
    let (d, kv_heads, q_heads) = (a.kv.shape.head_dim, a.kv.shape.kv_heads, a.sinks.len());
    let group = q_heads / kv_heads;
    let parts = group.div_ceil(MAX_GROUP);
    let per_part = group.div_ceil(parts);
    let row = q_heads * d;
    assert!(d <= MAX_HEAD_DIM, "head_dim is checked when the backend is prepared");
    let op = SendPtr(a.out.as_mut_ptr());
    let kv = &a.kv;
    for_each_task(a.n * kv_heads * parts, |i| {
        let (t, g, part) = (i / (kv_heads * parts), i / parts % kv_heads, i % parts);
        let h0 = g * group + part * per_part;
        let heads = per_part.min(g * group + group - h0);
        let task = AttnTask {
            q: &a.q[t * row..(t + 1) * row],
            kv,
            pos: a.positions[t] as usize,
            g,
            h0,
            heads,
            sinks: a.sinks,
            scale: a.scale,
            // SAFETY (pointer arithmetic): row t lies within `out` (n rows of `row`).
            out: unsafe { op.get().add(t * row) },
        };
        // SAFETY: each task writes only heads h0..h0 + heads of its token's row; this CPU runs
        // `H`; head_dim and the group size are within the stack buffers' bounds.
        unsafe { H::attention(&task) }
    });
}
