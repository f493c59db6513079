//! Launcher for `cuda/rms_norm.cu`.

use cudarc::driver::{CudaFunction, LaunchConfig};
use gptoss_engine::{Buffers, Result, RmsNormArgs, checks};

use super::u32_of;
use crate::args::{GPTOSS_REDUCE_THREADS, GptossRmsNormArgs};
use crate::buffer::CudaBuffer;
use crate::device::Device;

const OP: &str = "rms_norm";

pub fn rms_norm(dev: &Device, f: &CudaFunction, a: RmsNormArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
    let d = checks::rms_norm(&a)?;
    if a.n == 0 || d == 0 {
        return Ok(());
    }
    let args = GptossRmsNormArgs {
        x: a.x.ptr() as *const f32,
        gain: a.gain.ptr() as *const f32,
        out: a.out.ptr() as *mut f32,
        n: u32_of(a.n, OP, "rows")?,
        d: u32_of(d, OP, "width")?,
        eps: a.eps,
        pad_: 0,
    };
    let cfg = LaunchConfig { grid_dim: (args.n, 1, 1), block_dim: (GPTOSS_REDUCE_THREADS, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: x and out hold n rows of d floats and gain d floats (`checks::rms_norm`).
    unsafe { dev.launch(f, cfg, &args) }
}
