//! Device buffers: a typed, sized allocation on a device, real or emulated.

use gptoss_engine::{DType, DeviceBuffer, EngineError, Result};

use crate::device::Device;

pub struct CudaBuffer<D: Device> {
    dtype: DType,
    len: usize,
    mem: D::Memory,
    /// The allocation's device address (stable for its lifetime).
    ptr: u64,
    holds: Holds,
}

/// What a buffer's memory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holds {
    /// Its `len` elements of `dtype`.
    Values,
    /// The data of a stack of experts reached through a table (`tables.rs`): `dtype` and `len`
    /// are the stack's, the memory is the table, u64 `[experts, 2]` (each expert's data and
    /// scales addresses). Only `moe_experts` reads it; it is never read, written or copied as
    /// values.
    ExpertTable,
    /// The scales of such a stack: their addresses are in the table, this holds nothing.
    Nothing,
}

impl<D: Device> DeviceBuffer for CudaBuffer<D> {
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

impl<D: Device> CudaBuffer<D> {
    /// A zero-filled buffer of `len` elements.
    pub(crate) fn zeroed(dev: &D, dtype: DType, len: usize) -> Result<Self> {
        let bytes = dtype.bytes(len).ok_or_else(|| EngineError::invalid(format!("{len} × {dtype} overflows")))?;
        let (mem, ptr) = dev.alloc(bytes.div_ceil(GRANULE).max(1) * GRANULE)?;
        Ok(CudaBuffer { dtype, len, mem, ptr, holds: Holds::Values })
    }

    /// A zero-filled buffer of `len` elements in host memory the device reads in place.
    pub(crate) fn mapped(dev: &D, dtype: DType, len: usize) -> Result<Self> {
        let bytes = dtype.bytes(len).ok_or_else(|| EngineError::invalid(format!("{len} × {dtype} overflows")))?;
        let (mem, ptr) = dev.alloc_mapped(bytes.div_ceil(GRANULE).max(1) * GRANULE)?;
        Ok(CudaBuffer { dtype, len, mem, ptr, holds: Holds::Values })
    }

    /// A buffer standing for `len` elements of `dtype` whose memory (`bytes`, zeroed) holds
    /// something else (`holds`).
    pub(crate) fn standing_for(dev: &D, dtype: DType, len: usize, bytes: usize, holds: Holds) -> Result<Self> {
        let (mem, ptr) = dev.alloc(bytes.div_ceil(GRANULE).max(1) * GRANULE)?;
        Ok(CudaBuffer { dtype, len, mem, ptr, holds })
    }

    pub(crate) fn holds(&self) -> Holds {
        self.holds
    }

    /// The buffer's own memory, for the table code that writes addresses into it.
    pub(crate) fn memory_mut(&mut self) -> &mut D::Memory {
        &mut self.mem
    }

    pub(crate) fn memory(&self) -> &D::Memory {
        &self.mem
    }

    /// An error unless the buffer holds its values.
    fn values(&self, what: &'static str) -> Result<()> {
        match self.holds {
            Holds::Values => Ok(()),
            _ => Err(EngineError::invalid(format!("{what}: a stack of experts reached through a table has no bytes of its own"))),
        }
    }

    /// Device address of element `first`.
    pub(crate) fn at(&self, first: usize) -> u64 {
        self.ptr + (first * self.dtype.size()) as u64
    }

    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }

    pub(crate) fn bytes(&self) -> usize {
        self.len * self.dtype.size()
    }

    /// Host bytes into elements `first..`.
    pub(crate) fn write(&mut self, dev: &D, first: usize, bytes: &[u8]) -> Result<()> {
        self.values("write")?;
        let start = first * self.dtype.size();
        if !bytes.len().is_multiple_of(self.dtype.size()) || start + bytes.len() > self.bytes() {
            return Err(EngineError::shape(
                "write",
                format!("{} bytes at element {first} do not fit a buffer of {} bytes", bytes.len(), self.bytes()),
            ));
        }
        dev.write(&mut self.mem, start, bytes)
    }

    /// Elements `first..` into host bytes (waits for the copy).
    pub(crate) fn read(&self, dev: &D, first: usize, out: &mut [u8]) -> Result<()> {
        self.values("read")?;
        let start = first * self.dtype.size();
        if start + out.len() > self.bytes() {
            return Err(EngineError::shape(
                "read",
                format!("{} bytes at element {first} exceed a buffer of {} bytes", out.len(), self.bytes()),
            ));
        }
        dev.read(&self.mem, start, out)
    }

    /// `len` elements from `src[src_first..]` into `self[dst_first..]`, queued.
    pub(crate) fn copy_from(&mut self, dev: &D, src: &CudaBuffer<D>, src_first: usize, dst_first: usize, len: usize) -> Result<()> {
        self.values("copy")?;
        src.values("copy")?;
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
        dev.copy(&src.mem, src_first * size, &mut self.mem, dst_first * size, len * size)
    }
}
