//! Launcher for `cuda/matmul.cu`.

use cudarc::driver::{CudaFunction, LaunchConfig};
use gptoss_engine::{DType, Result, Weight};

use super::{blocks, dense, u32_of};
use crate::args::GptossMatmulArgs;
use crate::buffer::CudaBuffer;
use crate::device::Device;
use gptoss_engine::checks::buffer as need;

const OP: &str = "matmul";
/// Rows (warps) per block, as in matmul.cu.
const WARPS: usize = 8;

pub fn matmul(
    dev: &Device,
    f: &CudaFunction,
    w: &Weight<CudaBuffer>,
    x: &CudaBuffer,
    n: usize,
    out: &mut CudaBuffer,
    accumulate: bool,
) -> Result<()> {
    let wa = dense(w, OP)?;
    need(x, DType::F32, n * w.cols, OP, "x")?;
    need(out, DType::F32, n * w.rows, OP, "out")?;
    if n == 0 {
        return Ok(());
    }
    let args = GptossMatmulArgs {
        w: wa,
        x: x.ptr() as *const f32,
        out: out.ptr() as *mut f32,
        n: u32_of(n, OP, "tokens")?,
        accumulate: accumulate as u32,
    };
    let cfg = LaunchConfig { grid_dim: (blocks(w.rows, WARPS, OP)?, 1, 1), block_dim: (32 * WARPS as u32, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the weight's buffers match its format and shape (`dense`), x holds n rows of cols
    // floats and out n rows of rows floats (checked above); x and out are distinct buffers
    // (Rust's borrows), and buffers are padded to 16 bytes for the vector loads.
    unsafe { dev.launch(f, cfg, &args) }
}
