//! Launcher for `cuda/embed.cu`.

use gptoss_engine::{Buffers, EmbedArgs, Result, checks};

use super::{On, dense, u32_of};
use crate::args::{GPTOSS_COPY_THREADS, GptossEmbedArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};

const OP: &str = "embed";

pub fn embed<D: Device>(on: &On<D>, f: &D::Function, a: EmbedArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
    checks::embed(&a)?;
    if a.n == 0 {
        return Ok(());
    }
    let args = GptossEmbedArgs {
        table: dense(a.table, OP)?,
        tokens: a.tokens.ptr() as *const u32,
        out: a.out.ptr() as *mut f32,
        status: on.status as *mut u32,
        n: u32_of(a.n, OP, "tokens")?,
        pad_: 0,
    };
    let cfg = Launch::linear([args.n, 1, 1], GPTOSS_COPY_THREADS);
    // SAFETY: the table's buffers match its format and shape, tokens hold n ids and out n rows
    // of table.cols floats (`checks::embed`); ids beyond the table are caught in the kernel.
    unsafe { on.dev.launch(f, cfg, &args) }
}
