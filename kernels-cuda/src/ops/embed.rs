//! Launcher for `cuda/embed.cu`.

use cudarc::driver::{CudaFunction, LaunchConfig};
use gptoss_engine::{DType, Result, Weight};

use super::{dense, u32_of};
use crate::args::GptossEmbedArgs;
use crate::buffer::CudaBuffer;
use crate::device::Device;
use gptoss_engine::checks::buffer as need;

const OP: &str = "embed";

pub fn embed(
    dev: &Device,
    f: &CudaFunction,
    table: &Weight<CudaBuffer>,
    tokens: &CudaBuffer,
    n: usize,
    out: &mut CudaBuffer,
) -> Result<()> {
    let t = dense(table, OP)?;
    need(tokens, DType::U32, n, OP, "tokens")?;
    need(out, DType::F32, n * table.cols, OP, "out")?;
    if n == 0 {
        return Ok(());
    }
    let args = GptossEmbedArgs {
        table: t,
        tokens: tokens.ptr() as *const u32,
        out: out.ptr() as *mut f32,
        status: dev.status_ptr as *mut u32,
        n: u32_of(n, OP, "tokens")?,
        pad_: 0,
    };
    let cfg = LaunchConfig { grid_dim: (args.n, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the table's buffers match its format and shape (`dense`), tokens hold n ids and out
    // n rows of table.cols floats (checked above); ids beyond the table are caught in the kernel.
    unsafe { dev.launch(f, cfg, &args) }
}
