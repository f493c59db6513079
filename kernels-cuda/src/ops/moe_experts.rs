//! Launcher for `cuda/moe_experts.cu`: gate_up + SwiGLU, then down + weighted combine.

use cudarc::driver::LaunchConfig;
use gptoss_engine::{DType, EngineError, Result, Swiglu, Weight};

use super::{blocks, u32_of, weight};
use crate::args::{GptossMoeDownArgs, GptossMoeGateUpArgs};
use crate::buffer::CudaBuffer;
use crate::device::Device;
use crate::registry::Resolved;
use gptoss_engine::checks;
use gptoss_engine::checks::buffer as need;

const OP: &str = "moe_experts";
/// Output rows (warps) per block, as in moe_experts.cu.
const WARPS: usize = 8;

#[allow(clippy::too_many_arguments)]
pub fn moe_experts(
    dev: &Device,
    kernels: &Resolved,
    act: &mut CudaBuffer,
    gate_up: &Weight<CudaBuffer>,
    down: &Weight<CudaBuffer>,
    x: &CudaBuffer,
    n: usize,
    ids: &CudaBuffer,
    weights: &CudaBuffer,
    top_k: usize,
    swiglu: Swiglu,
    residual: &mut CudaBuffer,
) -> Result<()> {
    let inter = checks::expert_mlp(gate_up, down, OP)?;
    let (g, dn) = (weight(gate_up, OP)?, weight(down, OP)?);
    need(x, DType::F32, n * gate_up.cols, OP, "x")?;
    need(ids, DType::U32, n * top_k, OP, "ids")?;
    need(weights, DType::F32, n * top_k, OP, "weights")?;
    need(residual, DType::F32, n * gate_up.cols, OP, "residual")?;
    need(act, DType::F32, n * top_k * inter, OP, "activation scratch (prepared batch, top-k, intermediate)")?;
    let Resolved::Moe { gate_up: f_gate_up, down: f_down } = kernels else {
        return Err(EngineError::Backend { backend: "cuda", detail: format!("{OP}: kernel table mismatch") });
    };
    if n == 0 || top_k == 0 {
        return Ok(());
    }
    let slots = u32_of(n * top_k, OP, "tokens × top-k")?;
    let status = dev.status_ptr as *mut u32;
    let gate_up_args = GptossMoeGateUpArgs {
        w: g,
        x: x.ptr() as *const f32,
        ids: ids.ptr() as *const u32,
        act: act.ptr() as *mut f32,
        status,
        n: n as u32,
        top_k: top_k as u32,
        alpha: swiglu.alpha,
        limit: swiglu.limit,
    };
    let down_args = GptossMoeDownArgs {
        w: dn,
        act: act.ptr() as *const f32,
        ids: ids.ptr() as *const u32,
        weights: weights.ptr() as *const f32,
        residual: residual.ptr() as *mut f32,
        status,
        n: n as u32,
        top_k: top_k as u32,
    };
    let block = (32 * WARPS as u32, 1, 1);
    let gate_up_cfg = LaunchConfig { grid_dim: (blocks(inter, WARPS, OP)?, slots, 1), block_dim: block, shared_mem_bytes: 0 };
    let down_cfg = LaunchConfig { grid_dim: (blocks(down.rows, WARPS, OP)?, n as u32, 1), block_dim: block, shared_mem_bytes: 0 };
    // SAFETY: both weights match their formats and form an expert MLP, x / ids / weights /
    // residual / act are long enough (checked above); expert ids (device memory) are range-checked
    // by the kernels, which skip and report an out-of-range id.
    unsafe {
        dev.launch(f_gate_up, gate_up_cfg, &gate_up_args)?;
        dev.launch(f_down, down_cfg, &down_args)
    }
}
