//! Launcher for `cuda/attention.cu`: below the tensor-core crossover the split pass, then the
//! combine pass; from it on the FlashAttention-2-style kernel (`attention_mma.cuh`), one pass.

use gptoss_engine::checks::{self, buffer as need};
use gptoss_engine::{AttentionArgs, Buffers, DType, DeviceBuffer, EngineError, Result};

use super::{On, blocks, u32_of};
use crate::args::{
    GPTOSS_ATTENTION_MMA_ROWS, GPTOSS_ATTENTION_MMA_SMEM_D16_KVBF16, GPTOSS_ATTENTION_MMA_SMEM_D16_KVF32,
    GPTOSS_ATTENTION_MMA_SMEM_D64_KVBF16, GPTOSS_ATTENTION_MMA_SMEM_D64_KVF32, GPTOSS_ATTENTION_MMA_SMEM_D128_KVBF16,
    GPTOSS_ATTENTION_MMA_SMEM_D128_KVF32, GPTOSS_ATTENTION_MMA_WARPS, GPTOSS_ATTENTION_WARPS, GPTOSS_MAX_GROUP, GPTOSS_MAX_ROWS,
    GPTOSS_WARP_THREADS, GptossAttentionArgs,
};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::{Loaded, Resolved};

const OP: &str = "attention";
/// Keys per split that make splitting worth a block; at most this many splits.
const KEYS_PER_SPLIT: usize = 256;
pub const MAX_SPLITS: usize = 32;
/// Splits × tokens the partials scratch is sized for (at least; see `scratch_rows`).
const SPLIT_BUDGET: usize = 128;

/// Splits for `n` tokens over a layer of `capacity` slots: enough to fill the GPU at decode,
/// fewer as the batch itself provides blocks. Depends only on (n, capacity), so a replayed
/// decode step launches the same grid.
pub fn splits(n: usize, capacity: usize) -> usize {
    capacity.div_ceil(KEYS_PER_SPLIT).clamp(1, MAX_SPLITS).min((SPLIT_BUDGET / n.max(1)).max(1))
}

/// Rows (token · split) of partials the scratch must hold for batches up to `max_tokens`, and
/// for as many rows of several sequences (`ops::rows`), each split as a lone decode token.
pub fn scratch_rows(max_tokens: usize) -> usize {
    SPLIT_BUDGET.max(max_tokens).max(max_tokens.min(GPTOSS_MAX_ROWS as usize) * MAX_SPLITS)
}

/// The dynamic shared memory of the tensor-core kernel for head dim `d` and a cache of `kv`
/// elements (its tiles; `cuda/args.h`), or None for a shape it does not take.
pub fn mma_shared_bytes(d: usize, kv: DType) -> Option<u32> {
    Some(match (d, kv) {
        (16, DType::Bf16) => GPTOSS_ATTENTION_MMA_SMEM_D16_KVBF16,
        (16, DType::F32) => GPTOSS_ATTENTION_MMA_SMEM_D16_KVF32,
        (64, DType::Bf16) => GPTOSS_ATTENTION_MMA_SMEM_D64_KVBF16,
        (64, DType::F32) => GPTOSS_ATTENTION_MMA_SMEM_D64_KVF32,
        (128, DType::Bf16) => GPTOSS_ATTENTION_MMA_SMEM_D128_KVBF16,
        (128, DType::F32) => GPTOSS_ATTENTION_MMA_SMEM_D128_KVF32,
        _ => return None,
    })
}

/// Per-(token, head, split) partial results of the split pass.
pub struct Partials<D: Device> {
    /// f32 [rows, q_heads, head_dim]
    pub acc: CudaBuffer<D>,
    /// f32 [rows, q_heads, 2]
    pub ml: CudaBuffer<D>,
}

/// The form a batch runs in.
enum Form<'k, D: Device> {
    Split(&'k Loaded<D>, &'k D::Function),
    Mma(&'k Loaded<D>),
}

/// The form for `n` tokens: the tensor-core kernel from `mma_from` tokens on when the chosen
/// variant has both forms, the one form a forced variant has otherwise.
fn form<D: Device>(kernels: &Resolved<D>, n: usize, mma_from: usize) -> Result<Form<'_, D>> {
    match kernels {
        Resolved::Attention { split: Some((s, combine)), mma: Some(m), .. } => {
            Ok(if n >= mma_from { Form::Mma(m) } else { Form::Split(s, combine) })
        }
        Resolved::Attention { split: Some((s, combine)), mma: None, .. } => Ok(Form::Split(s, combine)),
        Resolved::Attention { split: None, mma: Some(m), .. } => Ok(Form::Mma(m)),
        _ => Err(EngineError::Backend { backend: D::BACKEND, detail: format!("{OP}: kernel table mismatch") }),
    }
}

pub fn attention<D: Device>(
    on: &On<D>,
    kernels: &Resolved<D>,
    part: &mut Partials<D>,
    mma_from: usize,
    a: AttentionArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    let s = checks::attention(&a)?;
    let (d, q_heads, kv) = (s.head_dim, s.q_heads, a.kv);
    if s.group > GPTOSS_MAX_GROUP as usize {
        return Err(EngineError::unsupported(OP, format!("{} query heads per kv head (at most {GPTOSS_MAX_GROUP} on CUDA)", s.group)));
    }
    let dtype = kv.k.dtype();
    if !matches!(dtype, DType::Bf16 | DType::F32) {
        return Err(EngineError::shape(OP, format!("kv cache of {dtype}")));
    }
    let Some(mma_bytes) = mma_shared_bytes(d, dtype) else {
        return Err(EngineError::unsupported(OP, format!("head_dim {d} (the CUDA kernels take 16, 64 or 128)")));
    };
    let chosen = form(kernels, a.n, mma_from)?;
    if a.n == 0 {
        return Ok(());
    }
    let mut args = GptossAttentionArgs {
        q: a.q.ptr() as *const f32,
        k_cache: kv.k.ptr() as *const _,
        v_cache: kv.v.ptr() as *const _,
        positions: a.positions.ptr() as *const u32,
        sinks: a.sinks.ptr() as *const f32,
        out: a.out.ptr() as *mut f32,
        part_acc: std::ptr::null_mut(),
        part_ml: std::ptr::null_mut(),
        status: on.status as *mut u32,
        n: u32_of(a.n, OP, "tokens")?,
        q_heads: q_heads as u32,
        kv_heads: kv.kv_heads as u32,
        head_dim: d as u32,
        capacity: u32_of(kv.capacity, OP, "capacity")?,
        window: u32_of(kv.window.unwrap_or(0), OP, "window")?,
        splits: 0,
        scale: a.scale,
    };
    match chosen {
        Form::Split(split, combine) => {
            let sp = splits(a.n, kv.capacity);
            need(&part.acc, DType::F32, a.n * sp * q_heads * d, OP, "partials (prepared batch)")?;
            need(&part.ml, DType::F32, a.n * sp * q_heads * 2, OP, "partials (prepared batch)")?;
            args.part_acc = part.acc.ptr() as *mut f32;
            args.part_ml = part.ml.ptr() as *mut f32;
            args.splits = sp as u32;
            let block = GPTOSS_ATTENTION_WARPS * GPTOSS_WARP_THREADS;
            let split_cfg = Launch::linear([kv.kv_heads as u32, sp as u32, args.n], block);
            let combine_cfg = Launch::linear([q_heads as u32, args.n, 1], d as u32);
            // SAFETY: q / out hold n × q_heads × d floats, the cache matches its geometry,
            // positions hold n ids, the partials n × splits rows (checked above); keys are read
            // at pos % capacity, and positions past what the ring holds are reported by the
            // kernel, not read out of bounds.
            unsafe {
                on.dev.launch(split.for_kv(dtype, OP)?, split_cfg, &args)?;
                on.dev.launch(combine, combine_cfg, &args)
            }
        }
        Form::Mma(mma) => {
            // Rows are (token, head of the group) pairs, 64 to a block, per kv head.
            u32_of(a.n * s.group, OP, "query rows")?;
            let grid = [blocks(a.n * s.group, GPTOSS_ATTENTION_MMA_ROWS, OP)?, kv.kv_heads as u32, 1];
            let cfg = Launch { shared_bytes: mma_bytes, ..Launch::linear(grid, GPTOSS_ATTENTION_MMA_WARPS * GPTOSS_WARP_THREADS) };
            // SAFETY: as for the split form (no partials); the kernel's shared memory limit was
            // raised to `mma_bytes` when it was loaded (`registry`), rows past n × group are
            // neither read nor written, and keys are read at key % capacity only.
            unsafe { on.dev.launch(mma.for_kv(dtype, OP)?, cfg, &args) }
        }
    }
}
