//! Dense matrix times a batch of vectors: `out[t] = (acc ? out[t] : 0) + W · x[t] + b`.
//! Tokens one after another; each token's output rows in parallel.

use gptoss_engine::MatmulArgs;

use super::ROWS_PER_TASK;
use crate::host::Host;
use crate::pool::for_each_chunk;
use crate::view::WeightView;
use crate::workspace::Workspace;

pub fn matmul(a: MatmulArgs<Host>, _: &mut Workspace) {
    rows(&a.w, a.x, a.out, a.accumulate);
}

/// `out[t] = (accumulate ? out[t] : 0) + W · x[t] + b` for every token row of `x` (f32, or the
/// q8 reference's rounded activations in f64).
pub fn rows<T: Copy + Into<f64> + Sync>(w: &WeightView, x: &[T], out: &mut [f32], accumulate: bool) {
    for (xt, ot) in x.chunks_exact(w.cols).zip(out.chunks_exact_mut(w.rows)) {
        for_each_chunk(ot, ROWS_PER_TASK, |chunk, rows| {
            for (i, o) in rows.iter_mut().enumerate() {
                let r = chunk * ROWS_PER_TASK + i;
                let base = if accumulate { *o as f64 } else { 0.0 };
                *o = (base + w.row_dot(r, xt) + w.bias_at(r)) as f32;
            }
        });
    }
}
