//! Launcher for `cuda/attention.cu`: the split pass, then the combine pass.

use gptoss_engine::checks::{self, buffer as need};
use gptoss_engine::{AttentionArgs, Buffers, DType, DeviceBuffer, EngineError, Result};

use super::{On, u32_of};
use crate::args::{GPTOSS_ATTENTION_WARPS, GPTOSS_MAX_GROUP, GPTOSS_WARP_THREADS, GptossAttentionArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::Resolved;

const OP: &str = "attention";
/// Keys per split that make splitting worth a block; at most this many splits.
const KEYS_PER_SPLIT: usize = 256;
const MAX_SPLITS: usize = 32;
/// Splits × tokens the partials scratch is sized for (at least; see `scratch_rows`).
const SPLIT_BUDGET: usize = 128;

/// Splits for `n` tokens over a layer of `capacity` slots: enough to fill the GPU at decode,
/// fewer as the batch itself provides blocks. Depends only on (n, capacity), so a replayed
/// decode step launches the same grid.
pub fn splits(n: usize, capacity: usize) -> usize {
    capacity.div_ceil(KEYS_PER_SPLIT).clamp(1, MAX_SPLITS).min((SPLIT_BUDGET / n.max(1)).max(1))
}

/// Rows (token · split) of partials the scratch must hold for batches up to `max_tokens`.
pub fn scratch_rows(max_tokens: usize) -> usize {
    SPLIT_BUDGET.max(max_tokens)
}

/// Per-(token, head, split) partial results of the split pass.
pub struct Partials<D: Device> {
    /// f32 [rows, q_heads, head_dim]
    pub acc: CudaBuffer<D>,
    /// f32 [rows, q_heads, 2]
    pub ml: CudaBuffer<D>,
}

pub fn attention<D: Device>(
    on: &On<D>,
    kernels: &Resolved<D>,
    part: &mut Partials<D>,
    a: AttentionArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    let s = checks::attention(&a)?;
    let (d, q_heads, kv) = (s.head_dim, s.q_heads, a.kv);
    if s.group > GPTOSS_MAX_GROUP as usize {
        return Err(EngineError::unsupported(OP, format!("{} query heads per kv head (at most {GPTOSS_MAX_GROUP} on CUDA)", s.group)));
    }
    let Resolved::Attention { bf16, f32, combine } = kernels else {
        return Err(EngineError::Backend { backend: D::BACKEND, detail: format!("{OP}: kernel table mismatch") });
    };
    let split_kernel = match kv.k.dtype() {
        DType::Bf16 => bf16,
        DType::F32 => f32,
        other => return Err(EngineError::shape(OP, format!("kv cache of {other}"))),
    };
    if !matches!(d, 16 | 64 | 128) {
        return Err(EngineError::unsupported(OP, format!("head_dim {d} (the CUDA kernels take 16, 64 or 128)")));
    }
    if a.n == 0 {
        return Ok(());
    }
    let sp = splits(a.n, kv.capacity);
    need(&part.acc, DType::F32, a.n * sp * q_heads * d, OP, "partials (prepared batch)")?;
    need(&part.ml, DType::F32, a.n * sp * q_heads * 2, OP, "partials (prepared batch)")?;
    let args = GptossAttentionArgs {
        q: a.q.ptr() as *const f32,
        k_cache: kv.k.ptr() as *const _,
        v_cache: kv.v.ptr() as *const _,
        positions: a.positions.ptr() as *const u32,
        sinks: a.sinks.ptr() as *const f32,
        out: a.out.ptr() as *mut f32,
        part_acc: part.acc.ptr() as *mut f32,
        part_ml: part.ml.ptr() as *mut f32,
        status: on.status as *mut u32,
        n: u32_of(a.n, OP, "tokens")?,
        q_heads: q_heads as u32,
        kv_heads: kv.kv_heads as u32,
        head_dim: d as u32,
        capacity: u32_of(kv.capacity, OP, "capacity")?,
        window: u32_of(kv.window.unwrap_or(0), OP, "window")?,
        splits: sp as u32,
        scale: a.scale,
    };
    let block = GPTOSS_ATTENTION_WARPS * GPTOSS_WARP_THREADS;
    let split_cfg = Launch::linear([kv.kv_heads as u32, sp as u32, args.n], block);
    let combine_cfg = Launch::linear([q_heads as u32, args.n, 1], d as u32);
    // SAFETY: q / out hold n × q_heads × d floats, the cache matches its geometry, positions
    // hold n ids, the partials n × splits rows (checked above); keys are read at pos % capacity,
    // and positions past what the ring holds are reported by the kernel, not read out of bounds.
    unsafe {
        on.dev.launch(split_kernel, split_cfg, &args)?;
        on.dev.launch(combine, combine_cfg, &args)
    }
}
