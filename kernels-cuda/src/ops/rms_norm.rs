//! Launcher for `cuda/rms_norm.cu`.

use cudarc::driver::{CudaFunction, LaunchConfig};
use gptoss_engine::{DType, DeviceBuffer, EngineError, Result};

use super::u32_of;
use crate::args::{GPTOSS_REDUCE_THREADS, GptossRmsNormArgs};
use crate::buffer::CudaBuffer;
use crate::device::Device;
use gptoss_engine::checks::buffer as need;

const OP: &str = "rms_norm";

pub fn rms_norm(dev: &Device, f: &CudaFunction, x: &CudaBuffer, gain: &CudaBuffer, n: usize, eps: f32, out: &mut CudaBuffer) -> Result<()> {
    let d = gain.len();
    need(gain, DType::F32, d, OP, "gain")?;
    need(x, DType::F32, n * d, OP, "x")?;
    need(out, DType::F32, n * d, OP, "out")?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(EngineError::shape(OP, format!("eps {eps} must be finite and ≥ 0")));
    }
    if n == 0 || d == 0 {
        return Ok(());
    }
    let args = GptossRmsNormArgs {
        x: x.ptr() as *const f32,
        gain: gain.ptr() as *const f32,
        out: out.ptr() as *mut f32,
        n: u32_of(n, OP, "rows")?,
        d: u32_of(d, OP, "width")?,
        eps,
        pad_: 0,
    };
    let cfg = LaunchConfig { grid_dim: (args.n, 1, 1), block_dim: (GPTOSS_REDUCE_THREADS, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: x and out hold n rows of d floats and gain d floats (checked above); out may
    // alias x (each element is read before it is written by the same thread).
    unsafe { dev.launch(f, cfg, &args) }
}
