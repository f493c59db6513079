//! Launcher for `cuda/split.cu`: f32 activations to the bf16 planes the tensor-core kernels
//! read, into scratch sized once by `prepare`.

use gptoss_engine::{DeviceBuffer, EngineError, Result};

use super::{On, blocks, u32_of};
use crate::args::{GPTOSS_COPY_THREADS, GPTOSS_GEMM_BK, GptossSplit, GptossSplitArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};

const OP: &str = "split";

/// The planes' row stride for rows of `cols` values: whole k steps of the GEMM.
pub fn stride(cols: usize) -> usize {
    cols.next_multiple_of(GPTOSS_GEMM_BK as usize)
}

/// bf16 scratch for the hi and lo planes of one batch of activations (equal lengths).
pub struct Planes<D: Device> {
    pub hi: CudaBuffer<D>,
    pub lo: CudaBuffer<D>,
}

/// What the tensor-core form of a batched op needs besides its kernel: the split kernel, its
/// scratch, and the smallest batch that takes that form.
pub struct Tiles<'a, D: Device> {
    pub split: &'a D::Function,
    pub planes: &'a mut Planes<D>,
    pub mma_from: usize,
}

impl<D: Device> Tiles<'_, D> {
    /// Writes the planes of `x` (`n` rows of `cols` f32; lo only when `terms` is 2) and
    /// returns them as a kernel sees them.
    pub fn split(&mut self, on: &On<D>, x: &CudaBuffer<D>, n: usize, cols: usize, terms: u32, op: &'static str) -> Result<GptossSplit> {
        let stride = stride(cols);
        let capacity = self.planes.hi.len();
        if n * stride > capacity {
            return Err(EngineError::invalid(format!(
                "{op}: {n} tokens of {cols} values need {} bf16 planes of activations; the backend was prepared for {capacity} (a larger batch or width than the model plan)",
                n * stride
            )));
        }
        let lo = if terms == 2 { self.planes.lo.ptr() } else { 0 };
        let args = GptossSplitArgs {
            x: x.ptr() as *const f32,
            hi: self.planes.hi.ptr() as *mut u16,
            lo: lo as *mut u16,
            n: u32_of(n, OP, "tokens")?,
            cols: u32_of(cols, OP, "cols")?,
            stride: u32_of(stride, OP, "stride")?,
            pad_: 0,
        };
        let cfg = Launch::linear([blocks(n * stride / 8, GPTOSS_COPY_THREADS, OP)?, 1, 1], GPTOSS_COPY_THREADS);
        // SAFETY: x holds n rows of cols floats (the caller's op checked it), each plane
        // n · stride bf16 (checked above); the planes are 16-byte aligned allocations and stride
        // is a multiple of 8, so every thread's 16-byte stores are aligned and in bounds.
        unsafe { on.dev.launch(self.split, cfg, &args)? };
        Ok(GptossSplit { hi: args.hi, lo: lo as *const u16, stride: args.stride, pad_: 0 })
    }
}
