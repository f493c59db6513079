//! The MoE block: router (matmul + top-k + softmax) and the routed experts, fused as
//! gate_up → clamped SwiGLU → down → weighted sum + residual.
//!
//! Parallel strategy: the (token, k) slots are grouped by expert (a counting sort), then one
//! pass per projection runs tasks of (expert, block of output rows); each task computes its
//! rows for all of that expert's tokens (`fast::tile`), so an expert's weights are read once
//! per pass however many tokens chose it. Decode has 4 experts × 1 token; prefill of 128
//! tokens ~16 tokens per expert (random routing, 32 experts). The SwiGLU runs in the gate_up
//! task that produced its pair of rows; the weighted sum runs per token after `down`.
//! Trade-off: the slots' intermediate results go through scratch (`MoeScratch`, ~40 KB per
//! slot) instead of staying in registers, which costs little next to the weight reads.

use gptoss_engine::Swiglu;

use super::matmul::{Products, prepare, rows_per_task};
use super::tile::{Act, Tile};
use crate::pool::{SendPtr, current_threads, for_each_task};
use crate::reference::moe_route::top_k_softmax;
use crate::simd::Kernels;
use crate::view::WeightView;
use crate::workspace::{MoeScratch, Workspace};

#[allow(clippy::too_many_arguments)]
pub fn moe_route(
    k: &Kernels,
    router: &WeightView,
    x: &[f32],
    n: usize,
    top_k: usize,
    ids: &mut [u32],
    weights: &mut [f32],
    ws: &mut Workspace,
) {
    let e = router.rows;
    let logits = &mut ws.router_logits[..n * e];
    let act = prepare(k, Products::Exact, router.format, x, router.cols, n, &mut ws.act);
    super::matmul::run(k, router, &act, &ws.iota[..n], &ws.iota[..n], logits, e, false);
    for t in 0..n {
        top_k_softmax(&logits[t * e..(t + 1) * e], &mut ids[t * top_k..(t + 1) * top_k], &mut weights[t * top_k..(t + 1) * top_k]);
    }
}

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

/// Runs one projection over every expert's slots: tasks of `per` rows per expert with slots.
#[allow(clippy::too_many_arguments)]
fn grouped_pass(
    k: &Kernels,
    w: &WeightView,
    act: &Act,
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
        // the activations were prepared for this format; `k` suits this CPU.
        unsafe { (k.tile)(&tile) };
        epilogue(slots, rows);
    });
}

#[allow(clippy::too_many_arguments)]
pub fn moe_experts(
    k: &Kernels,
    products: Products,
    gate_up: &WeightView,
    down: &WeightView,
    x: &[f32],
    n: usize,
    ids: &[u32],
    weights: &[f32],
    top_k: usize,
    p: Swiglu,
    residual: &mut [f32],
    ws: &mut Workspace,
) {
    let (hidden, inter, experts) = (gate_up.cols, gate_up.rows / 2, gate_up.experts);
    let slots = n * top_k;
    let Workspace { act: scratch, moe, .. } = ws;
    group_by_expert(&ids[..slots], top_k, experts, moe);
    let MoeScratch { u, a, y, order, tokens, starts, task_starts } = moe;
    let (order, tokens, starts) = (&order[..slots], &tokens[..slots], &starts[..experts + 1]);

    // u[slot] = W1[e] · x[token] + b1[e]; then a[slot][j] = swiglu(u[2j], u[2j + 1]) per task.
    let act = prepare(k, products, gate_up.format, x, hidden, n, scratch);
    let (u, ap) = (&mut u[..slots * 2 * inter], SendPtr(a.as_mut_ptr()));
    let up = SendPtr(u.as_mut_ptr());
    grouped_pass(k, gate_up, &act, tokens, order, starts, task_starts, u, 2 * inter, |slots, rows| {
        for &s in slots {
            let s = s as usize;
            // SAFETY: this task alone wrote these u rows and owns these a columns (rows are
            // split in multiples of 4, so gate/up pairs never straddle tasks); the table is
            // this CPU's.
            unsafe {
                let pairs = std::slice::from_raw_parts(up.get().add(s * 2 * inter + rows.start), rows.end - rows.start);
                let out = std::slice::from_raw_parts_mut(ap.get().add(s * inter + rows.start / 2), (rows.end - rows.start) / 2);
                (k.swiglu)(pairs, p, out);
            }
        }
    });

    // y[slot] = W2[e] · a[slot] + b2[e]
    let act = prepare(k, products, down.format, &a[..slots * inter], inter, slots, scratch);
    let y = &mut y[..slots * hidden];
    grouped_pass(k, down, &act, order, order, starts, task_starts, y, hidden, |_, _| {});

    // residual[t] += Σ_k w[t, k] · y[t · top_k + k]
    let rp = SendPtr(residual.as_mut_ptr());
    let y = &*y;
    for_each_task(n, |t| {
        // SAFETY: each task owns token t's residual row.
        let res = unsafe { std::slice::from_raw_parts_mut(rp.get().add(t * hidden), hidden) };
        for (c, r) in res.iter_mut().enumerate() {
            let sum: f32 = (0..top_k).map(|kk| weights[t * top_k + kk] * y[(t * top_k + kk) * hidden + c]).sum();
            *r += sum;
        }
    });
}
