//! Launcher for `cuda/qkv_rope.cu`.

use gptoss_engine::{DType, DeviceBuffer, EngineError, KvLayer, Result, Rope, Weight};

use cudarc::driver::LaunchConfig;

use super::{blocks, dense, u32_of};
use crate::args::GptossQkvRopeArgs;
use crate::buffer::CudaBuffer;
use crate::device::Device;
use crate::registry::Resolved;
use gptoss_engine::checks;
use gptoss_engine::checks::buffer as need;

const OP: &str = "qkv_rope";
/// Rotation pairs (warps) per block, as in qkv_rope.cu.
const WARPS: usize = 8;

#[allow(clippy::too_many_arguments)]
pub fn qkv_rope(
    dev: &Device,
    kernels: &Resolved,
    wq: &Weight<CudaBuffer>,
    wk: &Weight<CudaBuffer>,
    wv: &Weight<CudaBuffer>,
    x: &CudaBuffer,
    n: usize,
    positions: &CudaBuffer,
    rope: &Rope<CudaBuffer>,
    kv: &mut KvLayer<CudaBuffer>,
    q_out: &mut CudaBuffer,
) -> Result<()> {
    checks::qkv(wq, wk, wv, kv, OP)?;
    let (q, k, v) = (dense(wq, OP)?, dense(wk, OP)?, dense(wv, OP)?);
    let d = kv.head_dim;
    need(x, DType::F32, n * wq.cols, OP, "x")?;
    need(positions, DType::U32, n, OP, "positions")?;
    need(&rope.inv_freq, DType::F32, d / 2, OP, "rope inv_freq")?;
    need(q_out, DType::F32, n * wq.rows, OP, "q_out")?;
    let f = match (kernels, kv.k.dtype()) {
        (Resolved::ByKv { bf16, .. }, DType::Bf16) => bf16,
        (Resolved::ByKv { f32, .. }, DType::F32) => f32,
        (_, other) => return Err(EngineError::shape(OP, format!("kv cache of {other}"))),
    };
    if n == 0 {
        return Ok(());
    }
    let q_heads = wq.rows / d;
    let args = GptossQkvRopeArgs {
        q,
        k,
        v,
        x: x.ptr() as *const f32,
        positions: positions.ptr() as *const u32,
        inv_freq: rope.inv_freq.ptr() as *const f32,
        k_cache: kv.k.ptr() as *mut _,
        v_cache: kv.v.ptr() as *mut _,
        q_out: q_out.ptr() as *mut f32,
        n: u32_of(n, OP, "tokens")?,
        head_dim: u32_of(d, OP, "head_dim")?,
        q_heads: u32_of(q_heads, OP, "q heads")?,
        kv_heads: u32_of(kv.kv_heads, OP, "kv heads")?,
        capacity: u32_of(kv.capacity, OP, "capacity")?,
        concentration: rope.concentration,
    };
    let pairs = (q_heads + 2 * kv.kv_heads) * d / 2;
    let cfg = LaunchConfig { grid_dim: (blocks(pairs, WARPS, OP)?, 1, 1), block_dim: (32 * WARPS as u32, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the weights match their formats and the cache geometry, x / positions / inv_freq /
    // q_out are long enough (checked above); cache slots are pos % capacity, always in bounds.
    unsafe { dev.launch(f, cfg, &args) }
}
