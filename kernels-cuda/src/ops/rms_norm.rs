//! Launcher for `cuda/rms_norm.cu`.

use gptoss_engine::{Buffers, Result, RmsNormArgs, checks};

use super::{On, u32_of};
use crate::args::{GPTOSS_REDUCE_THREADS, GptossRmsNormArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};

const OP: &str = "rms_norm";

pub fn rms_norm<D: Device>(on: &On<D>, f: &D::Function, a: RmsNormArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
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
    let cfg = Launch::linear([args.n, 1, 1], GPTOSS_REDUCE_THREADS);
    // SAFETY: x and out hold n rows of d floats and gain d floats (`checks::rms_norm`).
    unsafe { on.dev.launch(f, cfg, &args) }
}
