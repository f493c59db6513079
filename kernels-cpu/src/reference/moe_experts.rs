//! The routed experts of a MoE block, fused: per token, for each selected expert e with
//! weight w: `u = W1[e]·x + b1[e]`, `a_j = swiglu(u_2j, u_2j+1)`, `y = W2[e]·a + b2[e]`;
//! `residual += Σ_e w · y` (f64 sum in routing order, added once).

use gptoss_engine::{MoeExpertsArgs, Swiglu};

use super::ROWS_PER_TASK;
use crate::host::Host;
use crate::pool::for_each_chunk;
use crate::view::WeightView;
use crate::workspace::Workspace;

/// gpt-oss's clamped SwiGLU on one (gate, up) pair, in f64, as model.py: the gate clamped
/// from above only, the up (linear) branch on both sides and shifted by +1.
#[inline]
pub fn swiglu(gate: f64, up: f64, p: Swiglu) -> f64 {
    let limit = p.limit as f64;
    let g = gate.min(limit);
    let u = up.clamp(-limit, limit);
    let sig = 1.0 / (1.0 + (-(p.alpha as f64) * g).exp());
    g * sig * (u + 1.0)
}

pub fn moe_experts(a: MoeExpertsArgs<Host>, ws: &mut Workspace) {
    experts(a, ws, false);
}

/// The experts on exact activations, or (`q8`) on the q8 definition's (`reference::q8`): x and
/// each SwiGLU output rounded to int8 blocks before the projection that reads it.
pub fn experts(a: MoeExpertsArgs<Host>, ws: &mut Workspace, q8: bool) {
    let MoeExpertsArgs { gate_up, down, x, ids, weights, top_k, swiglu: p, residual, .. } = a;
    let (hidden, inter) = (gate_up.cols, gate_up.rows / 2);
    let Workspace { moe, q8_reference, .. } = ws;
    let act = &mut moe.a[..top_k * inter];
    for (t, (xt, res)) in x.chunks_exact(hidden).zip(residual.chunks_exact_mut(hidden)).enumerate() {
        let (sel, w_t) = (&ids[t * top_k..(t + 1) * top_k], &weights[t * top_k..(t + 1) * top_k]);
        if q8 {
            let xq = &mut q8_reference[..hidden];
            super::q8::quantize_rows(xt, hidden, xq);
            gate_up_swiglu(&gate_up, sel, &*xq, p, act);
            let aq = &mut q8_reference[..top_k * inter];
            super::q8::quantize_rows(act, inter, aq);
            down_combine(&down, sel, w_t, &*aq, res);
        } else {
            gate_up_swiglu(&gate_up, sel, xt, p, act);
            down_combine(&down, sel, w_t, &*act, res);
        }
    }
}

/// `act[k] = swiglu(W1[e_k] · x + b1[e_k])` for each selected expert, rows 2j and 2j + 1 the
/// pair's gate and up (interleaved, as model.py).
fn gate_up_swiglu<T: Copy + Into<f64> + Sync>(gate_up: &WeightView, sel: &[u32], x: &[T], p: Swiglu, act: &mut [f32]) {
    let inter = gate_up.rows / 2;
    for (k, &e) in sel.iter().enumerate() {
        let w1 = gate_up.expert(e as usize);
        for_each_chunk(&mut act[k * inter..(k + 1) * inter], ROWS_PER_TASK, |chunk, out| {
            for (i, o) in out.iter_mut().enumerate() {
                let j = chunk * ROWS_PER_TASK + i;
                let gate = w1.row_dot(2 * j, x) + w1.bias_at(2 * j);
                let up = w1.row_dot(2 * j + 1, x) + w1.bias_at(2 * j + 1);
                *o = swiglu(gate, up, p) as f32;
            }
        });
    }
}

/// `res += Σ_k w_k · (W2[e_k] · act[k] + b2[e_k])`, the sum in f64 in routing order, added once.
fn down_combine<T: Copy + Into<f64> + Sync>(down: &WeightView, sel: &[u32], w_t: &[f32], act: &[T], res: &mut [f32]) {
    let inter = down.cols;
    for_each_chunk(res, ROWS_PER_TASK, |chunk, res| {
        for (i, r_out) in res.iter_mut().enumerate() {
            let r = chunk * ROWS_PER_TASK + i;
            let mut sum = 0.0f64;
            for (k, &e) in sel.iter().enumerate() {
                let w2 = down.expert(e as usize);
                let y = w2.row_dot(r, &act[k * inter..(k + 1) * inter]) + w2.bias_at(r);
                sum += w_t[k] as f64 * y;
            }
            *r_out = (*r_out as f64 + sum) as f32;
        }
    });
}
