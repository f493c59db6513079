//! Launcher for `cuda/moe_route.cu`.

use cudarc::driver::{CudaFunction, LaunchConfig};
use gptoss_engine::{DType, EngineError, Result, Weight};

use super::{blocks, dense, u32_of};
use crate::args::{GPTOSS_MAX_EXPERTS, GPTOSS_MAX_TOP_K, GptossMoeRouteArgs};
use crate::buffer::CudaBuffer;
use crate::device::Device;
use gptoss_engine::checks;
use gptoss_engine::checks::buffer as need;

const OP: &str = "moe_route";
/// Experts (warps) per block, as in moe_route.cu.
const WARPS: usize = 8;

/// Per-token scratch of the fused router: logits and the last-block tickets.
pub struct RouteScratch {
    /// f32 [max_tokens, experts]
    pub logits: CudaBuffer,
    /// u32 [max_tokens], zero between launches (the kernel resets what it uses)
    pub counters: CudaBuffer,
}

#[allow(clippy::too_many_arguments)]
pub fn moe_route(
    dev: &Device,
    f: &CudaFunction,
    scratch: &mut RouteScratch,
    router: &Weight<CudaBuffer>,
    x: &CudaBuffer,
    n: usize,
    top_k: usize,
    ids: &mut CudaBuffer,
    weights: &mut CudaBuffer,
) -> Result<()> {
    let r = dense(router, OP)?;
    checks::top_k(router.rows, top_k, OP)?;
    if top_k > GPTOSS_MAX_TOP_K as usize || router.rows > GPTOSS_MAX_EXPERTS as usize {
        return Err(EngineError::unsupported(
            OP,
            format!("top-{top_k} of {} experts (at most {GPTOSS_MAX_TOP_K} of {GPTOSS_MAX_EXPERTS} on CUDA)", router.rows),
        ));
    }
    need(x, DType::F32, n * router.cols, OP, "x")?;
    need(ids, DType::U32, n * top_k, OP, "ids")?;
    need(weights, DType::F32, n * top_k, OP, "weights")?;
    need(&scratch.logits, DType::F32, n * router.rows, OP, "logits scratch (prepared batch and experts)")?;
    need(&scratch.counters, DType::U32, n, OP, "ticket scratch (prepared batch)")?;
    if n == 0 {
        return Ok(());
    }
    let args = GptossMoeRouteArgs {
        router: r,
        x: x.ptr() as *const f32,
        logits: scratch.logits.ptr() as *mut f32,
        counters: scratch.counters.ptr() as *mut u32,
        ids: ids.ptr() as *mut u32,
        weights: weights.ptr() as *mut f32,
        n: u32_of(n, OP, "tokens")?,
        top_k: top_k as u32,
    };
    let cfg =
        LaunchConfig { grid_dim: (blocks(router.rows, WARPS, OP)?, args.n, 1), block_dim: (32 * WARPS as u32, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the router matches its format, x / ids / weights / scratch are long enough and
    // top_k and the expert count are within the kernel's register tables (checked above).
    unsafe { dev.launch(f, cfg, &args) }
}
