//! Launcher for `cuda/matmul.cu`.

use gptoss_engine::{Buffers, MatmulArgs, Result, checks};

use super::{On, blocks, dense, u32_of};
use crate::args::{GPTOSS_MATMUL_WARPS, GPTOSS_WARP_THREADS, GptossMatmulArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};

const OP: &str = "matmul";

pub fn matmul<D: Device>(on: &On<D>, f: &D::Function, a: MatmulArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
    checks::matmul(&a)?;
    if a.n == 0 {
        return Ok(());
    }
    let args = GptossMatmulArgs {
        w: dense(a.w, OP)?,
        x: a.x.ptr() as *const f32,
        out: a.out.ptr() as *mut f32,
        n: u32_of(a.n, OP, "tokens")?,
        accumulate: a.accumulate as u32,
    };
    let block = GPTOSS_MATMUL_WARPS * GPTOSS_WARP_THREADS;
    let cfg = Launch::linear([blocks(a.w.rows, GPTOSS_MATMUL_WARPS, OP)?, 1, 1], block);
    // SAFETY: the weight's buffers match its format and shape, x holds n rows of cols floats and
    // out n rows of rows floats (`checks::matmul`); x and out are distinct buffers (Rust's
    // borrows), and buffers are padded to 16 bytes for the vector loads.
    unsafe { on.dev.launch(f, cfg, &args) }
}
