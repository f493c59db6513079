//! Drivers of the small ops: RMSNorm, the attention input projections with RoPE and the
//! KV-cache write, and attention.
//!
//! Parallel strategy: RMSNorm one task per token row; attention one task per (token, kv
//! head, group of ≤ 16 query heads); the q/k/v projections as matmuls (`fast::matmul`)
//! sharing one quantization of x. RoPE and the cache write are cheap (≈ 5k multiplies per
//! token) and run on the caller.

use super::attention::{AttnTask, MAX_GROUP};
use super::matmul::{activations, run};
use crate::pool::{SendPtr, for_each_task};
use crate::reference::attention::MAX_HEAD_DIM;
use crate::reference::qkv_rope::RopeView;
use crate::simd::Kernels;
use crate::view::{KvDataMut, KvView, KvViewMut, WeightView};
use crate::workspace::Workspace;

pub fn rms_norm(k: &Kernels, x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    let d = gain.len();
    let op = SendPtr(out.as_mut_ptr());
    for_each_task(x.len() / d, |t| {
        // SAFETY: each task owns row t of `out` (as long as `x`); `k` suits this CPU.
        unsafe { (k.rms_norm)(&x[t * d..(t + 1) * d], gain, eps, std::slice::from_raw_parts_mut(op.get().add(t * d), d)) }
    });
}

#[allow(clippy::too_many_arguments)]
pub fn attention(k: &Kernels, q: &[f32], kv: &KvView, n: usize, positions: &[u32], sinks: &[f32], scale: f32, out: &mut [f32]) {
    let (d, kv_heads, q_heads) = (kv.shape.head_dim, kv.shape.kv_heads, sinks.len());
    let group = q_heads / kv_heads;
    let parts = group.div_ceil(MAX_GROUP);
    let per_part = group.div_ceil(parts);
    let row = q_heads * d;
    assert!(d <= MAX_HEAD_DIM && out.len() >= n * row && q.len() >= n * row, "attention shapes are checked by the backend");
    let op = SendPtr(out.as_mut_ptr());
    for_each_task(n * kv_heads * parts, |i| {
        let (t, g, part) = (i / (kv_heads * parts), i / parts % kv_heads, i % parts);
        let h0 = g * group + part * per_part;
        let heads = per_part.min(g * group + group - h0);
        let task = AttnTask {
            q: &q[t * row..(t + 1) * row],
            kv,
            pos: positions[t] as usize,
            g,
            h0,
            heads,
            sinks,
            scale,
            // SAFETY (pointer arithmetic): row t lies within `out` (asserted above).
            out: unsafe { op.get().add(t * row) },
        };
        // SAFETY: each task writes only heads h0..h0 + heads of its token's row; `k` suits
        // this CPU; head_dim and the group size are within the stack buffers' bounds.
        unsafe { (k.attention)(&task) }
    });
}

/// Rotates each `head_dim` slice of `x` by the angles whose cos and sin are `cs` (`[cos | sin]`,
/// `head_dim / 2` each, the concentration included).
fn rotate(x: &mut [f32], d: usize, cs: &[f32]) {
    let half = d / 2;
    let (cos, sin) = cs.split_at(half);
    for head in x.chunks_exact_mut(d) {
        let (a, b) = head.split_at_mut(half);
        for i in 0..half {
            let (x0, x1) = (a[i], b[i]);
            a[i] = x0 * cos[i] - x1 * sin[i];
            b[i] = x1 * cos[i] + x0 * sin[i];
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn qkv_rope(
    k: &Kernels,
    wq: &WeightView,
    wk: &WeightView,
    wv: &WeightView,
    x: &[f32],
    n: usize,
    positions: &[u32],
    rope: &RopeView,
    kv: &mut KvViewMut,
    q_out: &mut [f32],
    ws: &mut Workspace,
) {
    let (d, kv_row) = (kv.shape.head_dim, kv.shape.kv_heads * kv.shape.head_dim);
    let Workspace { xp, iota, k: kt, v: vt, .. } = ws;
    let act = activations(k, wq.format, x, wq.cols, n, xp);
    let rows = &iota[..n];
    run(k, wq, &act, rows, rows, q_out, wq.rows, false);
    run(k, wk, &act, rows, rows, kt, kv_row, false);
    run(k, wv, &act, rows, rows, vt, kv_row, false);
    let mut cs = [0f32; MAX_HEAD_DIM];
    for (t, &pos) in positions.iter().enumerate().take(n) {
        for i in 0..d / 2 {
            // As the reference: the angle rounded to f32, its cos and sin in f64.
            let angle = (pos as f32 * rope.inv_freq[i]) as f64;
            cs[i] = (angle.cos() * rope.concentration as f64) as f32;
            cs[d / 2 + i] = (angle.sin() * rope.concentration as f64) as f32;
        }
        rotate(&mut q_out[t * wq.rows..(t + 1) * wq.rows], d, &cs[..d]);
        let kr = &mut kt[t * kv_row..(t + 1) * kv_row];
        rotate(kr, d, &cs[..d]);
        let base = kv.shape.offset(pos as usize, 0);
        write_cache(&mut kv.k, base, kr);
        write_cache(&mut kv.v, base, &vt[t * kv_row..(t + 1) * kv_row]);
    }
}

/// One position's kv heads (contiguous in the cache) from f32, rounded to the cache's type.
fn write_cache(dst: &mut KvDataMut, base: usize, src: &[f32]) {
    match dst {
        KvDataMut::F32(d) => d[base..base + src.len()].copy_from_slice(src),
        KvDataMut::Bf16(d) => {
            for (o, &v) in d[base..base + src.len()].iter_mut().zip(src) {
                *o = half::bf16::from_f32(v).to_bits();
            }
        }
    }
}
