//! Launcher for `cuda/qkv_rope.cu`.

use gptoss_engine::{Buffers, DType, DeviceBuffer, EngineError, QkvRopeArgs, Result, checks};

use super::{On, blocks, dense, u32_of};
use crate::args::{GPTOSS_QKV_WARPS, GPTOSS_WARP_THREADS, GptossQkvRopeArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::Resolved;

const OP: &str = "qkv_rope";

pub fn qkv_rope<D: Device>(on: &On<D>, kernels: &Resolved<D>, a: QkvRopeArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
    let s = checks::qkv_rope(&a)?;
    let f = match (kernels, a.kv.k.dtype()) {
        (Resolved::ByKv { bf16, .. }, DType::Bf16) => bf16,
        (Resolved::ByKv { f32, .. }, DType::F32) => f32,
        (_, other) => return Err(EngineError::shape(OP, format!("kv cache of {other}"))),
    };
    if a.n == 0 {
        return Ok(());
    }
    let args = GptossQkvRopeArgs {
        q: dense(a.wq, OP)?,
        k: dense(a.wk, OP)?,
        v: dense(a.wv, OP)?,
        x: a.x.ptr() as *const f32,
        positions: a.positions.ptr() as *const u32,
        inv_freq: a.rope.inv_freq.ptr() as *const f32,
        k_cache: a.kv.k.ptr() as *mut _,
        v_cache: a.kv.v.ptr() as *mut _,
        q_out: a.q_out.ptr() as *mut f32,
        n: u32_of(a.n, OP, "tokens")?,
        head_dim: u32_of(s.head_dim, OP, "head_dim")?,
        q_heads: u32_of(s.q_heads, OP, "q heads")?,
        kv_heads: u32_of(s.kv_heads, OP, "kv heads")?,
        capacity: u32_of(a.kv.capacity, OP, "capacity")?,
        concentration: a.rope.concentration,
    };
    let pairs = (s.q_heads + 2 * s.kv_heads) * s.head_dim / 2;
    let block = GPTOSS_QKV_WARPS * GPTOSS_WARP_THREADS;
    let cfg = Launch::linear([blocks(pairs, GPTOSS_QKV_WARPS, OP)?, 1, 1], block);
    // SAFETY: the weights match their formats and the cache geometry, x / positions / inv_freq /
    // q_out are long enough (`checks::qkv_rope`); cache slots are pos % capacity, always in bounds.
    unsafe { on.dev.launch(f, cfg, &args) }
}
