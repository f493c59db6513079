//! The fast kernels with the registry's signatures, one instance per ISA table `T`.

use gptoss_engine::Swiglu;

use crate::reference::qkv_rope::RopeView;
use crate::simd::Table;
use crate::view::{KvView, KvViewMut, WeightView};
use crate::workspace::Workspace;

pub fn rms_norm<T: Table>(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    super::ops::rms_norm(T::table(), x, gain, eps, out)
}

pub fn matmul<T: Table>(w: &WeightView, x: &[f32], n: usize, out: &mut [f32], accumulate: bool, ws: &mut Workspace) {
    super::matmul::matmul(T::table(), w, x, n, out, accumulate, ws)
}

#[allow(clippy::too_many_arguments)]
pub fn qkv_rope<T: Table>(
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
    super::ops::qkv_rope(T::table(), wq, wk, wv, x, n, positions, rope, kv, q_out, ws)
}

pub fn attention<T: Table>(q: &[f32], kv: &KvView, n: usize, positions: &[u32], sinks: &[f32], scale: f32, out: &mut [f32]) {
    super::ops::attention(T::table(), q, kv, n, positions, sinks, scale, out)
}

pub fn moe_route<T: Table>(
    router: &WeightView,
    x: &[f32],
    n: usize,
    top_k: usize,
    ids: &mut [u32],
    weights: &mut [f32],
    ws: &mut Workspace,
) {
    super::moe::moe_route(T::table(), router, x, n, top_k, ids, weights, ws)
}

#[allow(clippy::too_many_arguments)]
pub fn moe_experts<T: Table>(
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
    super::moe::moe_experts(T::table(), gate_up, down, x, n, ids, weights, top_k, p, residual, ws)
}
