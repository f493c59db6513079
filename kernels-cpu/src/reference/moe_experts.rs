//! The routed experts of a MoE block, fused: per token, for each selected expert e with
//! weight w: `u = W1[e]·x + b1[e]`, `a_j = swiglu(u_2j, u_2j+1)`, `y = W2[e]·a + b2[e]`;
//! `residual += Σ_e w · y` (f64 sum in routing order, added once).

use crate::pool::for_each_chunk;
use gptoss_engine::Swiglu;

use super::ROWS_PER_TASK;
use crate::view::WeightView;

/// gpt-oss's clamped SwiGLU on one (gate, up) pair, in f64.
#[inline]
pub fn swiglu(gate: f64, up: f64, p: Swiglu) -> f64 {
    let limit = p.limit as f64;
    let g = gate.min(limit);
    let u = up.clamp(-limit, limit);
    let sig = 1.0 / (1.0 + (-(p.alpha as f64) * g).exp());
    g * sig * (u + 1.0)
}

/// `act` is scratch of at least `top_k · gate_up.rows / 2` floats.
#[allow(clippy::too_many_arguments)]
pub fn f32_moe_experts(
    gate_up: &WeightView,
    down: &WeightView,
    x: &[f32],
    n: usize,
    ids: &[u32],
    weights: &[f32],
    top_k: usize,
    p: Swiglu,
    residual: &mut [f32],
    act: &mut [f32],
) {
    let hidden = gate_up.cols;
    let inter = gate_up.rows / 2;
    for t in 0..n {
        let xt = &x[t * hidden..(t + 1) * hidden];
        let sel = &ids[t * top_k..(t + 1) * top_k];
        for (k, &e) in sel.iter().enumerate() {
            let w1 = gate_up.expert(e as usize);
            for_each_chunk(&mut act[k * inter..(k + 1) * inter], ROWS_PER_TASK, |chunk, a| {
                for (i, a) in a.iter_mut().enumerate() {
                    let j = chunk * ROWS_PER_TASK + i;
                    let gate = w1.row_dot(2 * j, xt) + w1.bias_at(2 * j);
                    let up = w1.row_dot(2 * j + 1, xt) + w1.bias_at(2 * j + 1);
                    *a = swiglu(gate, up, p) as f32;
                }
            });
        }
        let act = &act[..top_k * inter];
        let w_t = &weights[t * top_k..(t + 1) * top_k];
        for_each_chunk(&mut residual[t * hidden..(t + 1) * hidden], ROWS_PER_TASK, |chunk, res| {
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
}
