//! Dense matrix times a batch of vectors: `out[t] = (acc ? out[t] : 0) + W · x[t] + b`.
//! Tokens one after another; each token's output rows in parallel.

use crate::pool::for_each_chunk;

use super::ROWS_PER_TASK;
use crate::view::WeightView;

pub fn f32_matmul(w: &WeightView, x: &[f32], n: usize, out: &mut [f32], accumulate: bool) {
    for t in 0..n {
        let xt = &x[t * w.cols..(t + 1) * w.cols];
        let ot = &mut out[t * w.rows..(t + 1) * w.rows];
        for_each_chunk(ot, ROWS_PER_TASK, |chunk, rows| {
            for (i, o) in rows.iter_mut().enumerate() {
                let r = chunk * ROWS_PER_TASK + i;
                let base = if accumulate { *o as f64 } else { 0.0 };
                *o = (base + w.row_dot(r, xt) + w.bias_at(r)) as f32;
            }
        });
    }
}
