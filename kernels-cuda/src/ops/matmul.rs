//! Launcher for `cuda/matmul.cu`: the GEMV kernels for small batches, the tensor-core GEMM
//! (after splitting the activations into bf16 planes) for large ones.

use gptoss_engine::{Buffers, MatmulArgs, Result, checks};

use super::split::Tiles;
use super::{Form, On, blocks, dense, form, mma_rows_fit, u32_of};
use crate::args::{
    GPTOSS_GEMM_BM, GPTOSS_GEMM_BN, GPTOSS_GEMM_WARPS, GPTOSS_MATMUL_WARPS, GPTOSS_WARP_THREADS, GptossMatmulArgs, GptossSplit,
};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::Resolved;

const OP: &str = "matmul";

pub fn matmul<D: Device>(
    on: &On<D>,
    kernels: &Resolved<D>,
    mut tiles: Tiles<'_, D>,
    a: MatmulArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    checks::matmul(&a)?;
    let chosen = form(kernels, a.n, tiles.mma_from, mma_rows_fit(a.w), OP)?;
    if a.n == 0 {
        return Ok(());
    }
    let mut args = GptossMatmulArgs {
        w: dense(a.w, OP)?,
        x: a.x.ptr() as *const f32,
        out: a.out.ptr() as *mut f32,
        n: u32_of(a.n, OP, "tokens")?,
        accumulate: a.accumulate as u32,
        xs: GptossSplit::default(),
    };
    let (f, cfg) = match chosen {
        Form::Gemv(k) => {
            let block = GPTOSS_MATMUL_WARPS * GPTOSS_WARP_THREADS;
            (k.one(OP)?, Launch::linear([blocks(a.w.rows, GPTOSS_MATMUL_WARPS, OP)?, 1, 1], block))
        }
        Form::Mma(k, terms) => {
            args.xs = tiles.split(on, a.x, a.n, a.w.cols, terms, OP)?;
            let grid = [blocks(a.n, GPTOSS_GEMM_BN, OP)?, blocks(a.w.rows, GPTOSS_GEMM_BM, OP)?, 1];
            (k.one(OP)?, Launch::linear(grid, GPTOSS_GEMM_WARPS * GPTOSS_WARP_THREADS))
        }
    };
    // SAFETY: the weight's buffers match its format and shape, x holds n rows of cols floats and
    // out n rows of rows floats (`checks::matmul`); x and out are distinct buffers (Rust's
    // borrows), and buffers are padded to 16 bytes for the vector loads. The tensor-core form
    // reads the planes `split` just wrote (n rows of its stride) and whole 16-byte chunks of
    // each weight row (`mma_rows_fit`).
    unsafe { on.dev.launch(f, cfg, &args) }
}
