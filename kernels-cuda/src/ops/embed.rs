//! Launcher for `cuda/embed.cu`.

use cudarc::driver::{CudaFunction, LaunchConfig};
use gptoss_engine::{Buffers, EmbedArgs, Result, checks};

use super::{dense, u32_of};
use crate::args::{GPTOSS_COPY_THREADS, GptossEmbedArgs};
use crate::buffer::CudaBuffer;
use crate::device::Device;

const OP: &str = "embed";

pub fn embed(dev: &Device, f: &CudaFunction, a: EmbedArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
    checks::embed(&a)?;
    if a.n == 0 {
        return Ok(());
    }
    let args = GptossEmbedArgs {
        table: dense(a.table, OP)?,
        tokens: a.tokens.ptr() as *const u32,
        out: a.out.ptr() as *mut f32,
        status: dev.status_ptr as *mut u32,
        n: u32_of(a.n, OP, "tokens")?,
        pad_: 0,
    };
    let cfg = LaunchConfig { grid_dim: (args.n, 1, 1), block_dim: (GPTOSS_COPY_THREADS, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the table's buffers match its format and shape, tokens hold n ids and out n rows
    // of table.cols floats (`checks::embed`); ids beyond the table are caught in the kernel.
    unsafe { dev.launch(f, cfg, &args) }
}
