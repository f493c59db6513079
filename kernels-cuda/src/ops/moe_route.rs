//! Launcher for `cuda/moe_route.cu`.

use gptoss_engine::checks::{self, buffer as need};
use gptoss_engine::{Buffers, DType, EngineError, MoeRouteArgs, Result};

use super::{On, blocks, dense, u32_of};
use crate::args::{GPTOSS_MAX_EXPERTS, GPTOSS_MAX_TOP_K, GPTOSS_ROUTE_WARPS, GPTOSS_WARP_THREADS, GptossMoeRouteArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};

const OP: &str = "moe_route";

/// Per-token scratch of the fused router: logits and the last-block tickets.
pub struct RouteScratch<D: Device> {
    /// f32 [max_tokens, experts]
    pub logits: CudaBuffer<D>,
    /// u32 [max_tokens], zero between launches (the kernel resets what it uses)
    pub counters: CudaBuffer<D>,
}

pub fn moe_route<D: Device>(
    on: &On<D>,
    f: &D::Function,
    scratch: &mut RouteScratch<D>,
    a: MoeRouteArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    checks::moe_route(&a)?;
    let (experts, top_k, n) = (a.router.rows, a.top_k, a.n);
    if top_k > GPTOSS_MAX_TOP_K as usize || experts > GPTOSS_MAX_EXPERTS as usize {
        return Err(EngineError::unsupported(
            OP,
            format!("top-{top_k} of {experts} experts (at most {GPTOSS_MAX_TOP_K} of {GPTOSS_MAX_EXPERTS} on CUDA)"),
        ));
    }
    need(&scratch.logits, DType::F32, n * experts, OP, "logits scratch (prepared batch and experts)")?;
    need(&scratch.counters, DType::U32, n, OP, "ticket scratch (prepared batch)")?;
    if n == 0 {
        return Ok(());
    }
    let args = GptossMoeRouteArgs {
        router: dense(a.router, OP)?,
        x: a.x.ptr() as *const f32,
        logits: scratch.logits.ptr() as *mut f32,
        counters: scratch.counters.ptr() as *mut u32,
        ids: a.ids.ptr() as *mut u32,
        weights: a.weights.ptr() as *mut f32,
        n: u32_of(n, OP, "tokens")?,
        top_k: top_k as u32,
    };
    let block = GPTOSS_ROUTE_WARPS * GPTOSS_WARP_THREADS;
    let cfg = Launch::linear([blocks(experts, GPTOSS_ROUTE_WARPS, OP)?, args.n, 1], block);
    // SAFETY: the router matches its format, x / ids / weights / scratch are long enough and
    // top_k and the expert count are within the kernel's register tables (checked above).
    unsafe { on.dev.launch(f, cfg, &args) }
}
