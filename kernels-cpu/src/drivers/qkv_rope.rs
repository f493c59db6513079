//! The attention input projections as matmuls sharing one preparation of x (`drivers::matmul`),
//! then RoPE and the KV-cache write. RoPE and the write are cheap (≈ 5k multiplies per token)
//! and run on the caller. The rows form (`qkv_rope_rows`, a decode step of several sequences)
//! is the same code with a cache per row, so a row computes exactly what it would alone.

use gptoss_engine::{QkvRopeArgs, QkvRopeRowsArgs};

use super::matmul::{Products, run};
use crate::compiled::Compiled;
use crate::fast::matmul::format::Format;
use crate::host::Host;
use crate::view::{KvDataMut, KvViewMut, MAX_HEAD_DIM, RopeView, WeightView};
use crate::workspace::Workspace;

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

pub fn qkv_rope<H: Compiled, F: Format, P: Products<F>>(mut a: QkvRopeArgs<Host>, ws: &mut Workspace) {
    let w = [&a.wq, &a.wk, &a.wv];
    project::<H, F, P>(w, a.x, a.positions, &a.rope, std::slice::from_mut(&mut a.kv), a.q_out, ws);
}

pub fn qkv_rope_rows<H: Compiled, F: Format, P: Products<F>>(mut a: QkvRopeRowsArgs<Host>, ws: &mut Workspace) {
    project::<H, F, P>([&a.wq, &a.wk, &a.wv], a.x, a.positions, &a.rope, &mut a.kv, a.q_out, ws);
}

/// The projections `[wq, wk, wv]` of `x`, one row per position of `positions` (the weights
/// read once for all rows), then the rotation and the cache write: row t's into `caches[t]`,
/// or into `caches[0]` when there is one cache for all rows.
fn project<H: Compiled, F: Format, P: Products<F>>(
    [wq, wk, wv]: [&WeightView; 3],
    x: &[f32],
    positions: &[u32],
    rope: &RopeView,
    caches: &mut [KvViewMut],
    q_out: &mut [f32],
    ws: &mut Workspace,
) {
    let (n, shape) = (positions.len(), caches[0].shape);
    let (d, kv_row) = (shape.head_dim, shape.kv_heads * shape.head_dim);
    let Workspace { act: scratch, iota, k: kt, v: vt, .. } = ws;
    let act = P::prepare::<H>(x, wq.cols, n, scratch);
    let rows = &iota[..n];
    run::<H, F, P>(wq, act, rows, rows, q_out, wq.rows, false);
    run::<H, F, P>(wk, act, rows, rows, kt, kv_row, false);
    run::<H, F, P>(wv, act, rows, rows, vt, kv_row, false);
    let shared = caches.len() == 1;
    let mut cs = [0f32; MAX_HEAD_DIM];
    for (t, &pos) in positions.iter().enumerate() {
        for i in 0..d / 2 {
            // As the reference: the angle rounded to f32, its cos and sin in f64.
            let angle = (pos as f32 * rope.inv_freq[i]) as f64;
            cs[i] = (angle.cos() * rope.concentration as f64) as f32;
            cs[d / 2 + i] = (angle.sin() * rope.concentration as f64) as f32;
        }
        rotate(&mut q_out[t * wq.rows..(t + 1) * wq.rows], d, &cs[..d]);
        let kr = &mut kt[t * kv_row..(t + 1) * kv_row];
        rotate(kr, d, &cs[..d]);
        let kv = &mut caches[if shared { 0 } else { t }];
        let base = shape.offset(pos as usize, 0);
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
