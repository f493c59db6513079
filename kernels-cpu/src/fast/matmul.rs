//! Dense matmul driver: `out[t] = (accumulate ? out[t] : 0) + W · x[t] + b` for `t < n`.
//!
//! Parallel strategy: output rows are split into tasks of `rows_per_task` rows; every task
//! computes its rows for all n tokens (`fast::tile`), so a task's weights are read from
//! memory once and reused from cache across token groups. The 4-bit formats reorder the
//! activations first (`fast::prepare`), once per matmul, spread over tokens.

use gptoss_engine::WeightFormat;

use super::tile::{Act, Tile};
use crate::pool::{SendPtr, current_threads, for_each_task};
use crate::simd::Kernels;
use crate::view::WeightView;
use crate::workspace::Workspace;

/// Fewest rows in a task: enough to amortise the task's start and the tile's edges.
const MIN_ROWS_PER_TASK: usize = 16;
/// Tasks per thread when rows allow: several, so that two cores finish together even when
/// one is interrupted.
const TASKS_PER_THREAD: usize = 8;
/// Most rows per task when several tokens share a weight read (prefill): a task's block of
/// 64 rows × 2880 bf16 (368 KB) stays in a 1 MB L2 while every token group passes over it.
const MAX_ROWS_PER_TASK_GEMM: usize = 64;

/// Rows per task for a matrix of `rows` outputs and `n` tokens: a multiple of 4 (the tiles'
/// row group), at least `MIN_ROWS_PER_TASK`.
pub fn rows_per_task(rows: usize, n: usize, threads: usize) -> usize {
    let even = rows.div_ceil(threads * TASKS_PER_THREAD).next_multiple_of(4).max(MIN_ROWS_PER_TASK);
    if n > 1 { even.min(MAX_ROWS_PER_TASK_GEMM) } else { even }
}

/// The activations of `n` rows of `cols` floats as `format`'s tiles read them: the rows
/// themselves, or their reordered copy in `scratch` for the 4-bit formats.
pub fn activations<'a>(k: &Kernels, format: WeightFormat, x: &'a [f32], cols: usize, n: usize, scratch: &'a mut [f32]) -> Act<'a> {
    if !matches!(format, WeightFormat::Int4 { .. } | WeightFormat::Mxfp4) {
        return Act { x, stride: cols };
    }
    assert!(cols.is_multiple_of(32) && scratch.len() >= n * cols, "workspace too small for {n} rows of {cols}");
    let sp = SendPtr(scratch.as_mut_ptr());
    for_each_task(n, |t| {
        // SAFETY: each task writes its own row of `scratch` (long enough, asserted); `k` was
        // built for an ISA this CPU has.
        unsafe { (k.prepare)(&x[t * cols..(t + 1) * cols], std::slice::from_raw_parts_mut(sp.get().add(t * cols), cols)) }
    });
    Act { x: &scratch[..n * cols], stride: cols }
}

/// Runs `w` over activations already prepared, for the tokens listed in `xrows` / `orows`.
#[allow(clippy::too_many_arguments)]
pub fn run(k: &Kernels, w: &WeightView, act: &Act, xrows: &[u32], orows: &[u32], out: &mut [f32], ostride: usize, accumulate: bool) {
    let per = rows_per_task(w.rows, xrows.len(), current_threads());
    let need = orows.iter().map(|&o| o as usize * ostride + w.rows).max().unwrap_or(0);
    assert!(out.len() >= need && ostride >= w.rows, "output of {} floats cannot hold the tile's rows", out.len());
    let outp = SendPtr(out.as_mut_ptr());
    for_each_task(w.rows.div_ceil(per), |i| {
        let tile = Tile { w, rows: i * per..((i + 1) * per).min(w.rows), act, xrows, orows, out: outp.get(), ostride, accumulate };
        // SAFETY: tasks write disjoint row ranges of the output rows checked above; the
        // activations were built for this format by `activations`; `k` suits this CPU.
        unsafe { (k.tile)(&tile) }
    });
}

/// The whole dense matmul.
pub fn matmul(k: &Kernels, w: &WeightView, x: &[f32], n: usize, out: &mut [f32], accumulate: bool, ws: &mut Workspace) {
    let act = activations(k, w.format, x, w.cols, n, &mut ws.xp);
    run(k, w, &act, &ws.iota[..n], &ws.iota[..n], out, w.rows, accumulate);
}
