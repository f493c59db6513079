//! Launcher for `cuda/moe_experts.cu`: gate_up + SwiGLU, then down + weighted combine.

use gptoss_engine::checks::{self, buffer as need};
use gptoss_engine::{Buffers, DType, EngineError, MoeExpertsArgs, Result};

use super::{On, blocks, u32_of, weight};
use crate::args::{GPTOSS_MOE_WARPS, GPTOSS_WARP_THREADS, GptossMoeDownArgs, GptossMoeGateUpArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::Resolved;

const OP: &str = "moe_experts";

pub fn moe_experts<D: Device>(
    on: &On<D>,
    kernels: &Resolved<D>,
    act: &mut CudaBuffer<D>,
    a: MoeExpertsArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    let shape = checks::moe_experts(&a)?;
    let (n, top_k, inter) = (a.n, a.top_k, shape.intermediate);
    need(act, DType::F32, n * top_k * inter, OP, "activation scratch (prepared batch, top-k, intermediate)")?;
    let Resolved::Moe { gate_up: f_gate_up, down: f_down } = kernels else {
        return Err(EngineError::Backend { backend: D::BACKEND, detail: format!("{OP}: kernel table mismatch") });
    };
    if n == 0 {
        return Ok(());
    }
    let slots = u32_of(n * top_k, OP, "tokens × top-k")?;
    let status = on.status as *mut u32;
    let gate_up_args = GptossMoeGateUpArgs {
        w: weight(a.gate_up, OP)?,
        x: a.x.ptr() as *const f32,
        ids: a.ids.ptr() as *const u32,
        act: act.ptr() as *mut f32,
        status,
        n: n as u32,
        top_k: top_k as u32,
        alpha: a.swiglu.alpha,
        limit: a.swiglu.limit,
    };
    let down_args = GptossMoeDownArgs {
        w: weight(a.down, OP)?,
        act: act.ptr() as *const f32,
        ids: a.ids.ptr() as *const u32,
        weights: a.weights.ptr() as *const f32,
        residual: a.residual.ptr() as *mut f32,
        status,
        n: n as u32,
        top_k: top_k as u32,
    };
    let block = GPTOSS_MOE_WARPS * GPTOSS_WARP_THREADS;
    let gate_up_cfg = Launch::linear([blocks(inter, GPTOSS_MOE_WARPS, OP)?, slots, 1], block);
    let down_cfg = Launch::linear([blocks(shape.hidden, GPTOSS_MOE_WARPS, OP)?, n as u32, 1], block);
    // SAFETY: both weights match their formats and form an expert MLP, x / ids / weights /
    // residual / act are long enough (checked above); expert ids (device memory) are range-checked
    // by the kernels, which skip and report an out-of-range id.
    unsafe {
        on.dev.launch(f_gate_up, gate_up_cfg, &gate_up_args)?;
        on.dev.launch(f_down, down_cfg, &down_args)
    }
}
