//! The attention input projections as matmuls sharing one preparation of x (`drivers::matmul`),
//! then RoPE and the KV-cache write. RoPE and the write are cheap (≈ 5k multiplies per token)
//! and run on the caller.

use gptoss_engine::QkvRopeArgs;

use super::matmul::{Products, run};
use crate::compiled::Compiled;
use crate::fast::matmul::format::Format;
use crate::host::Host;
use crate::view::{KvDataMut, MAX_HEAD_DIM};
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
    let (n, d) = (a.n, a.kv.shape.head_dim);
    let kv_row = a.kv.shape.kv_heads * d;
    let Workspace { act: scratch, iota, k: kt, v: vt, .. } = ws;
    let act = P::prepare::<H>(a.x, a.wq.cols, n, scratch);
    let rows = &iota[..n];
    run::<H, F, P>(&a.wq, act, rows, rows, a.q_out, a.wq.rows, false);
    run::<H, F, P>(&a.wk, act, rows, rows, kt, kv_row, false);
    run::<H, F, P>(&a.wv, act, rows, rows, vt, kv_row, false);
    let mut cs = [0f32; MAX_HEAD_DIM];
    for (t, &pos) in a.positions.iter().enumerate() {
        for i in 0..d / 2 {
            // As the reference: the angle rounded to f32, its cos and sin in f64.
            let angle = (pos as f32 * a.rope.inv_freq[i]) as f64;
            cs[i] = (angle.cos() * a.rope.concentration as f64) as f32;
            cs[d / 2 + i] = (angle.sin() * a.rope.concentration as f64) as f32;
        }
        rotate(&mut a.q_out[t * a.wq.rows..(t + 1) * a.wq.rows], d, &cs[..d]);
        let kr = &mut kt[t * kv_row..(t + 1) * kv_row];
        rotate(kr, d, &cs[..d]);
        let base = a.kv.shape.offset(pos as usize, 0);
        write_cache(&mut a.kv.k, base, kr);
        write_cache(&mut a.kv.v, base, &vt[t * kv_row..(t + 1) * kv_row]);
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
