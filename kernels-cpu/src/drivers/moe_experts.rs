//! The routed experts, fused: gate_up → clamped SwiGLU → down → weighted sum + residual.
//!
//! Parallel strategy: the (token, k) slots are grouped by expert (a counting sort), then one
//! pass per projection runs tasks of (expert, block of output rows); each task computes its
//! rows for all of that expert's tokens (`fast::matmul::tile`), so an expert's weights are read once
//! per pass however many tokens chose it. Decode has 4 experts × 1 token; prefill of 128
//! tokens ~16 tokens per expert (random routing, 32 experts). The SwiGLU runs in the gate_up
//! task that produced its pair of rows; the weighted sum runs per token after `down`.
//! Trade-off: the slots' intermediate results go through scratch (`MoeScratch`, ~40 KB per
//! slot) instead of staying in registers, which costs little next to the weight reads.

use gptoss_engine::MoeExpertsArgs;

use super::matmul::{Products, rows_per_task};
use crate::compiled::Compiled;
use crate::fast::matmul::format::Format;
use crate::fast::matmul::tile::Tile;
use crate::host::Host;
use crate::pool::{SendPtr, current_threads, for_each_task};
use crate::view::WeightView;
use crate::workspace::{MoeScratch, Workspace};

/// Orders the slots by expert: `order` lists slots, `tokens` their tokens, `starts[e]..starts[e + 1]`
/// are expert e's.
fn group_by_expert(ids: &[u32], top_k: usize, experts: usize, m: &mut MoeScratch) {
    let starts = &mut m.starts[..experts + 1];
    starts.fill(0);
    for &e in ids {
        starts[e as usize + 1] += 1;
    }
    for e in 0..experts {
        starts[e + 1] += starts[e];
    }
    // `task_starts` serves as the fill cursor here; the passes overwrite it.
    let cursor = &mut m.task_starts[..experts];
    cursor.copy_from_slice(&starts[..experts]);
    for (slot, &e) in ids.iter().enumerate() {
        let c = &mut cursor[e as usize];
        m.order[*c as usize] = slot as u32;
        m.tokens[*c as usize] = (slot / top_k) as u32;
        *c += 1;
    }
}

/// Runs one projection over every expert's slots: tasks of `per` rows per expert with slots;
/// `epilogue(slots, rows)` runs in the task after its tile.
#[allow(clippy::too_many_arguments)]
fn grouped_pass<H: Compiled, F: Format, P: Products<F>>(
    w: &WeightView,
    act: P::Act<'_>,
    xrows_of_slots: &[u32],
    order: &[u32],
    starts: &[u32],
    task_starts: &mut [u32],
    out: &mut [f32],
    ostride: usize,
    epilogue: impl Fn(&[u32], std::ops::Range<usize>) + Sync,
) {
    let experts = starts.len() - 1;
    let most = (0..experts).map(|e| (starts[e + 1] - starts[e]) as usize).max().unwrap_or(0);
    let active = (0..experts).filter(|&e| starts[e + 1] > starts[e]).count();
    let per = rows_per_task(w.rows * active, most, current_threads()).min(w.rows.next_multiple_of(4));
    let chunks = w.rows.div_ceil(per) as u32;
    let task_starts = &mut task_starts[..experts + 1];
    task_starts[0] = 0;
    for e in 0..experts {
        task_starts[e + 1] = task_starts[e] + if starts[e + 1] > starts[e] { chunks } else { 0 };
    }
    let task_starts = &*task_starts;
    let outp = SendPtr(out.as_mut_ptr());
    for_each_task(task_starts[experts] as usize, |i| {
        let e = task_starts.partition_point(|&s| s as usize <= i) - 1;
        let c = i - task_starts[e] as usize;
        let rows = c * per..((c + 1) * per).min(w.rows);
        let slots = &order[starts[e] as usize..starts[e + 1] as usize];
        let xrows = &xrows_of_slots[starts[e] as usize..starts[e + 1] as usize];
        let we = w.expert(e);
        let tile = Tile { w: &we, rows: rows.clone(), act, xrows, orows: slots, out: outp.get(), ostride, accumulate: false };
        // SAFETY: tasks write disjoint (slot, row) ranges of `out`, which has a row per slot;
        // the activations were prepared by `P` with `H`, which this CPU runs.
        unsafe { P::tile::<H>(&tile) };
        epilogue(slots, rows);
    });
}

pub fn moe_experts<H: Compiled, F: Format, P: Products<F>>(a: MoeExpertsArgs<Host>, ws: &mut Workspace) {
    let (gate_up, down, top_k, n) = (&a.gate_up, &a.down, a.top_k, a.n);
    let (hidden, inter, experts) = (gate_up.cols, gate_up.rows / 2, gate_up.experts);
    let slots = n * top_k;
    let Workspace { act: scratch, moe, .. } = ws;
    group_by_expert(a.ids, top_k, experts, moe);
    let MoeScratch { u, a: act_out, y, order, tokens, starts, task_starts } = moe;
    let (order, tokens, starts) = (&order[..slots], &tokens[..slots], &starts[..experts + 1]);

    // u[slot] = W1[e] · x[token] + b1[e]; then a[slot][j] = swiglu(u[2j], u[2j + 1]) per task.
    let act = P::prepare::<H>(a.x, hidden, n, scratch);
    let (u, ap) = (&mut u[..slots * 2 * inter], SendPtr(act_out.as_mut_ptr()));
    let up = SendPtr(u.as_mut_ptr());
    let p = a.swiglu;
    grouped_pass::<H, F, P>(gate_up, act, tokens, order, starts, task_starts, u, 2 * inter, |slots, rows| {
        for &s in slots {
            let s = s as usize;
            // SAFETY: this task alone wrote these u rows and owns these a columns (rows are
            // split in multiples of 4, so gate/up pairs never straddle tasks); this CPU runs `H`.
            unsafe {
                let pairs = std::slice::from_raw_parts(up.get().add(s * 2 * inter + rows.start), rows.end - rows.start);
                let out = std::slice::from_raw_parts_mut(ap.get().add(s * inter + rows.start / 2), (rows.end - rows.start) / 2);
                H::swiglu(pairs, p, out);
            }
        }
    });

    // y[slot] = W2[e] · a[slot] + b2[e]
    let act = P::prepare::<H>(&act_out[..slots * inter], inter, slots, scratch);
    let y = &mut y[..slots * hidden];
    grouped_pass::<H, F, P>(down, act, order, order, starts, task_starts, y, hidden, |_, _| {});

    // residual[t] += Σ_k w[t, k] · y[t · top_k + k]
    let rp = SendPtr(a.residual.as_mut_ptr());
    let (y, weights) = (&*y, a.weights);
    for_each_task(n, |t| {
        // SAFETY: each task owns token t's residual row.
        let res = unsafe { std::slice::from_raw_parts_mut(rp.get().add(t * hidden), hidden) };
        for (c, r) in res.iter_mut().enumerate() {
            let sum: f32 = (0..top_k).map(|kk| weights[t * top_k + kk] * y[(t * top_k + kk) * hidden + c]).sum();
            *r += sum;
        }
    });
}
