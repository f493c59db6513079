//! Launcher for `cuda/synth.cu`: synthetic tensors generated in device memory.

use gptoss_engine::{DType, DeviceBuffer, EngineError, Result, SynthFill, SynthTensor};

use crate::args::{GPTOSS_COPY_THREADS, GptossSynthArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};

const OP: &str = "synth";

/// The three kernels of synth.cu.
pub struct SynthKernels<D: Device> {
    pub bf16: D::Function,
    pub f32: D::Function,
    pub bytes: D::Function,
}

/// Fills all of `out` (allocated for `t`'s element type) with `t`'s values.
pub fn synth<D: Device>(dev: &D, k: &SynthKernels<D>, t: &SynthTensor, out: &mut CudaBuffer<D>) -> Result<()> {
    let (center, half_width, lo, span) = match t.fill {
        SynthFill::Uniform { center, half_width } => (center, half_width, 0, 0),
        SynthFill::Bytes => (0.0, 0.0, 0, 0),
        SynthFill::ByteRange { lo, hi } if hi >= lo => (0.0, 0.0, lo as u32, hi as u32 - lo as u32 + 1),
        SynthFill::ByteRange { lo, hi } => return Err(EngineError::invalid(format!("{OP}: byte range {lo}..={hi} is empty"))),
    };
    let (f, words) = match (out.dtype(), t.fill) {
        (DType::Bf16, SynthFill::Uniform { .. }) => (&k.bf16, out.len()),
        (DType::F32, SynthFill::Uniform { .. }) => (&k.f32, out.len()),
        (DType::U8 | DType::I8, SynthFill::Bytes | SynthFill::ByteRange { .. }) => (&k.bytes, out.len().div_ceil(8)),
        (dtype, fill) => return Err(EngineError::unsupported(OP, format!("{dtype} tensors filled by {fill:?}"))),
    };
    if words == 0 {
        return Ok(());
    }
    let args = GptossSynthArgs { out: out.ptr() as *mut _, len: out.len() as u64, stream: t.stream(), center, half_width, lo, span };
    // A grid-stride loop: enough blocks to fill any GPU, no more.
    let grid = words.div_ceil(GPTOSS_COPY_THREADS as usize).min(65_536) as u32;
    let cfg = Launch::linear([grid, 1, 1], GPTOSS_COPY_THREADS);
    // SAFETY: the kernel writes exactly out.len() elements of out's type (selected above).
    unsafe { dev.launch(f, cfg, &args) }
}
