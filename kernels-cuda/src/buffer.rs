//! Device buffers: a typed, sized allocation on the GPU.

use cudarc::driver::{CudaSlice, CudaView, DevicePtr};
use gptoss_engine::{DType, DeviceBuffer, EngineError, Result};

use crate::device::{Device, cuda_err};

pub struct CudaBuffer {
    dtype: DType,
    len: usize,
    mem: CudaSlice<u8>,
    /// The allocation's device address (stable for its lifetime).
    ptr: u64,
}

impl DeviceBuffer for CudaBuffer {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// Allocations are rounded up to 16 bytes (never empty), so a kernel's 16-byte vector load of a
/// buffer's last elements stays inside the allocation.
const GRANULE: usize = 16;

impl CudaBuffer {
    /// A zero-filled buffer of `len` elements.
    pub(crate) fn zeroed(dev: &Device, dtype: DType, len: usize) -> Result<Self> {
        let bytes = dtype.bytes(len).ok_or_else(|| EngineError::invalid(format!("{len} × {dtype} overflows")))?;
        let padded = bytes.div_ceil(GRANULE).max(1) * GRANULE;
        let mem = dev
            .stream
            .alloc_zeros::<u8>(padded)
            .map_err(|e| EngineError::Backend { backend: "cuda", detail: format!("allocating {bytes} bytes on {}: {e}", dev.name) })?;
        let ptr = mem.device_ptr(&dev.stream).0;
        Ok(CudaBuffer { dtype, len, mem, ptr })
    }

    /// Device address of element `first`.
    pub(crate) fn at(&self, first: usize) -> u64 {
        self.ptr + (first * self.dtype.size()) as u64
    }

    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }

    /// The bytes of elements `first .. first + len`.
    pub(crate) fn view(&self, first: usize, len: usize) -> CudaView<'_, u8> {
        let size = self.dtype.size();
        self.mem.slice(first * size..(first + len) * size)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.len * self.dtype.size()
    }

    /// Host bytes into elements `first..`.
    pub(crate) fn write(&mut self, dev: &Device, first: usize, bytes: &[u8]) -> Result<()> {
        let start = first * self.dtype.size();
        if !bytes.len().is_multiple_of(self.dtype.size()) || start + bytes.len() > self.bytes() {
            return Err(EngineError::shape(
                "write",
                format!("{} bytes at element {first} do not fit a buffer of {} bytes", bytes.len(), self.bytes()),
            ));
        }
        let mut dst = self.mem.slice_mut(start..start + bytes.len());
        dev.stream.memcpy_htod(bytes, &mut dst).map_err(cuda_err("host to device copy"))
    }

    /// Elements `first..` into host bytes (waits for the copy).
    pub(crate) fn read(&self, dev: &Device, first: usize, out: &mut [u8]) -> Result<()> {
        let start = first * self.dtype.size();
        if start + out.len() > self.bytes() {
            return Err(EngineError::shape(
                "read",
                format!("{} bytes at element {first} exceed a buffer of {} bytes", out.len(), self.bytes()),
            ));
        }
        let src = self.mem.slice(start..start + out.len());
        dev.stream.memcpy_dtoh(&src, out).map_err(cuda_err("device to host copy"))
    }

    /// `len` elements from `src[src_first..]` into `self[dst_first..]`, on the stream.
    pub(crate) fn copy_from(&mut self, dev: &Device, src: &CudaBuffer, src_first: usize, dst_first: usize, len: usize) -> Result<()> {
        if src.dtype != self.dtype || src_first + len > src.len || dst_first + len > self.len {
            return Err(EngineError::shape(
                "copy",
                format!(
                    "{len} elements from {} [{src_first}..] of {} to {} [{dst_first}..] of {}",
                    src.dtype, src.len, self.dtype, self.len
                ),
            ));
        }
        let size = self.dtype.size();
        let from = src.mem.slice(src_first * size..(src_first + len) * size);
        let mut to = self.mem.slice_mut(dst_first * size..(dst_first + len) * size);
        dev.stream.memcpy_dtod(&from, &mut to).map_err(cuda_err("device to device copy"))
    }
}
