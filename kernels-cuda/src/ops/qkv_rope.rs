//! Launcher for `cuda/qkv_rope.cu`: the GEMV kernels for small batches, the tensor-core GEMM
//! over q, k and v (after splitting the activations into bf16 planes) for large ones.

use gptoss_engine::{Buffers, DeviceBuffer, QkvRopeArgs, Result, checks};

use super::split::Tiles;
use super::{Form, On, blocks, dense, form, mma_rows_fit, u32_of};
use crate::args::{
    GPTOSS_GEMM_BM, GPTOSS_GEMM_BN, GPTOSS_GEMM_WARPS, GPTOSS_QKV_WARPS, GPTOSS_WARP_THREADS, GptossQkvRopeArgs, GptossSplit,
};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::Resolved;

const OP: &str = "qkv_rope";

pub fn qkv_rope<D: Device>(
    on: &On<D>,
    kernels: &Resolved<D>,
    mut tiles: Tiles<'_, D>,
    a: QkvRopeArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    let s = checks::qkv_rope(&a)?;
    // The GEMM's epilogue pairs rows i and i + d/2 within one row tile.
    let fits = mma_rows_fit(a.wq).and_then(|()| match GPTOSS_GEMM_BM as usize % s.head_dim {
        0 => Ok(()),
        _ => Err(format!("head_dim {} does not divide its {GPTOSS_GEMM_BM}-row tiles", s.head_dim)),
    });
    let chosen = form(kernels, a.n, tiles.mma_from, fits, OP)?;
    let kv = a.kv.k.dtype();
    if a.n == 0 {
        return Ok(());
    }
    let mut args = GptossQkvRopeArgs {
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
        xs: GptossSplit::default(),
    };
    let rows = (s.q_heads + 2 * s.kv_heads) * s.head_dim;
    let (f, cfg) = match chosen {
        Form::Gemv(k) => {
            let block = GPTOSS_QKV_WARPS * GPTOSS_WARP_THREADS;
            (k.for_kv(kv, OP)?, Launch::linear([blocks(rows / 2, GPTOSS_QKV_WARPS, OP)?, 1, 1], block))
        }
        Form::Mma(k, terms) => {
            let f = k.for_kv(kv, OP)?;
            args.xs = tiles.split(on, a.x, a.n, a.wq.cols, terms, OP)?;
            let grid = [blocks(a.n, GPTOSS_GEMM_BN, OP)?, blocks(rows, GPTOSS_GEMM_BM, OP)?, 1];
            (f, Launch::linear(grid, GPTOSS_GEMM_WARPS * GPTOSS_WARP_THREADS))
        }
    };
    // SAFETY: the weights match their formats and the cache geometry, x / positions / inv_freq /
    // q_out are long enough (`checks::qkv_rope`); cache slots are pos % capacity, always in
    // bounds. The tensor-core form reads the planes `split` just wrote and whole 16-byte chunks
    // of each weight row (`mma_rows_fit`; q, k and v share a format and width).
    unsafe { on.dev.launch(f, cfg, &args) }
}
