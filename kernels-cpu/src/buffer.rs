//! CPU buffers: owned 64-byte-aligned memory, or a read-only view of host memory (a region of
//! a memory-mapped checkpoint) used in place.
//!
//! Huge pages: a decode step streams ~2.5 GB of weights through the TLB. With 4 KiB pages that
//! is ~600k page walks per 20b token, two-dimensional ones in a virtual machine; with 2 MiB
//! pages ~1,200. So large owned buffers (weights generated or converted at load) are asked for
//! transparent huge pages (`MADV_HUGEPAGE`: Linux's default THP mode, `madvise`, gives them
//! only on request), and so are the large regions of mapped checkpoints that the kernels read
//! in place (where the kernel maps page-cache folios by PMD). `GPTOSS_HUGEPAGES=0` leaves both
//! at the system's default, for comparison (bench/NOTES.md).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use gptoss_engine::{DType, DeviceBuffer, EngineError, HostBytes, Result};

/// Owned zeroed memory, aligned to at least 64 bytes (any SIMD width). Large buffers are
/// anonymous page mappings, zero without a write pass (the allocator's aligned path memsets).
enum Owned {
    Heap(Aligned),
    Pages(memmap2::MmapMut),
}

impl Owned {
    /// Sizes from which whole pages are mapped.
    const PAGES_FROM: usize = 1 << 20;

    fn zeroed(len: usize) -> Option<Self> {
        if len >= Self::PAGES_FROM {
            let map = memmap2::MmapMut::map_anon(len).ok()?;
            if len >= HUGE_PAGE && huge_pages() {
                // A hint: where THP is off or short of memory the pages stay small.
                let _ = map.advise(memmap2::Advice::HugePage);
            }
            Some(Owned::Pages(map))
        } else {
            Aligned::zeroed(len).map(Owned::Heap)
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Owned::Heap(a) => a.as_slice(),
            Owned::Pages(m) => m,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Owned::Heap(a) => a.as_mut_slice(),
            Owned::Pages(m) => m,
        }
    }
}

/// The PMD size of x86-64 and aarch64 (4 KiB granule): the smallest region worth the hint.
const HUGE_PAGE: usize = 2 << 20;

/// Whether to ask for huge pages (`GPTOSS_HUGEPAGES` unset or not `0`), read once.
fn huge_pages() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("GPTOSS_HUGEPAGES").map_or(true, |v| v.trim() != "0"))
}

/// Asks for huge pages on the whole 2 MiB pages inside `bytes` (host memory the kernels read in
/// place, e.g. a tensor of a mapped checkpoint). A hint: errors are ignored.
fn advise_huge(bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        let start = (bytes.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let end = (bytes.as_ptr() as usize + bytes.len()) / HUGE_PAGE * HUGE_PAGE;
        if end > start && huge_pages() {
            // SAFETY: madvise only changes how the kernel backs these pages, which stay mapped
            // with their contents; the range lies inside `bytes`.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bytes;
}

/// Heap memory aligned to 64 bytes.
struct Aligned {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Aligned` uniquely owns its allocation, like a `Vec<u8>`.
unsafe impl Send for Aligned {}
unsafe impl Sync for Aligned {}

impl Aligned {
    const ALIGN: usize = 64;

    fn zeroed(len: usize) -> Option<Self> {
        if len == 0 {
            // A dangling pointer with the full alignment, so that empty buffers cast to any type.
            // SAFETY: ALIGN is not zero.
            return Some(Aligned { ptr: unsafe { NonNull::new_unchecked(std::ptr::without_provenance_mut(Self::ALIGN)) }, len });
        }
        let layout = Layout::from_size_align(len, Self::ALIGN).ok()?;
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { alloc_zeroed(layout) }).map(|ptr| Aligned { ptr, len })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised (zeroed at least) bytes for our lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            unsafe { dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.len, Self::ALIGN)) }
        }
    }
}

enum Storage {
    Owned(Owned),
    Host(HostBytes),
}

pub struct CpuBuffer {
    dtype: DType,
    len: usize,
    storage: Storage,
}

impl DeviceBuffer for CpuBuffer {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
}

fn byte_len(dtype: DType, len: usize) -> Result<usize> {
    dtype.bytes(len).ok_or_else(|| EngineError::invalid(format!("{len} elements of {dtype} overflow the address space")))
}

impl CpuBuffer {
    pub fn zeroed(dtype: DType, len: usize) -> Result<Self> {
        let bytes = byte_len(dtype, len)?;
        let mem = Owned::zeroed(bytes).ok_or(EngineError::OutOfMemory { backend: "cpu", bytes })?;
        Ok(CpuBuffer { dtype, len, storage: Storage::Owned(mem) })
    }

    /// Uses `bytes` in place when they are aligned for `dtype`, else copies them.
    /// Returns the buffer and whether it was copied.
    pub fn from_host(dtype: DType, len: usize, bytes: HostBytes) -> Result<(Self, bool)> {
        let want = byte_len(dtype, len)?;
        if bytes.len() != want {
            return Err(EngineError::invalid(format!("{len} elements of {dtype} need {want} bytes, got {}", bytes.len())));
        }
        if (bytes.as_bytes().as_ptr() as usize).is_multiple_of(dtype.size()) {
            advise_huge(bytes.as_bytes());
            return Ok((CpuBuffer { dtype, len, storage: Storage::Host(bytes) }, false));
        }
        let mut buf = Self::zeroed(dtype, len)?;
        buf.bytes_mut()?.copy_from_slice(bytes.as_bytes());
        Ok((buf, true))
    }

    /// Whether the data lives in host memory owned elsewhere (e.g. a memory map).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.storage, Storage::Host(_))
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Owned(mem) => mem.as_slice(),
            Storage::Host(h) => h.as_bytes(),
        }
    }

    pub fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        match &mut self.storage {
            Storage::Owned(mem) => Ok(mem.as_mut_slice()),
            Storage::Host(_) => Err(EngineError::invalid("a buffer that maps host memory is read-only")),
        }
    }

    fn typed<T: bytemuck::Pod>(&self, dtype: DType, what: &'static str) -> Result<&[T]> {
        self.check(dtype, what)?;
        bytemuck::try_cast_slice(self.bytes()).map_err(|e| EngineError::shape(what, format!("{e:?}")))
    }

    fn typed_mut<T: bytemuck::Pod>(&mut self, dtype: DType, what: &'static str) -> Result<&mut [T]> {
        self.check(dtype, what)?;
        bytemuck::try_cast_slice_mut(self.bytes_mut()?).map_err(|e| EngineError::shape(what, format!("{e:?}")))
    }

    fn check(&self, dtype: DType, what: &'static str) -> Result<()> {
        if self.dtype == dtype { Ok(()) } else { Err(EngineError::shape(what, format!("expected a {dtype} buffer, got {}", self.dtype))) }
    }

    pub fn f32s(&self, what: &'static str) -> Result<&[f32]> {
        self.typed(DType::F32, what)
    }
    pub fn f32s_mut(&mut self, what: &'static str) -> Result<&mut [f32]> {
        self.typed_mut(DType::F32, what)
    }
    pub fn u32s(&self, what: &'static str) -> Result<&[u32]> {
        self.typed(DType::U32, what)
    }
    pub fn u32s_mut(&mut self, what: &'static str) -> Result<&mut [u32]> {
        self.typed_mut(DType::U32, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_buffers_are_zeroed_aligned_and_typed() {
        let mut b = CpuBuffer::zeroed(DType::F32, 5).unwrap();
        assert_eq!(b.bytes().as_ptr() as usize % 64, 0);
        assert_eq!(b.f32s("t").unwrap(), &[0.0; 5]);
        b.f32s_mut("t").unwrap()[4] = 2.0;
        assert_eq!(b.f32s("t").unwrap()[4], 2.0);
        assert!(b.u32s("t").unwrap_err().to_string().contains("expected a u32 buffer"));
    }

    #[test]
    fn host_bytes_are_used_in_place_or_copied_when_misaligned() {
        let host = HostBytes::from_vec((0u8..17).collect());
        let aligned = host.slice(0, 8).unwrap();
        let (b, copied) = CpuBuffer::from_host(DType::F32, 2, aligned).unwrap();
        assert!(!copied && b.is_borrowed());
        let odd = host.slice(1, 8).unwrap();
        let (b, copied) = CpuBuffer::from_host(DType::F32, 2, odd).unwrap();
        assert!(copied && !b.is_borrowed());
        assert_eq!(b.bytes(), &(1u8..9).collect::<Vec<_>>()[..]);
        assert!(CpuBuffer::from_host(DType::F32, 3, host.slice(0, 8).unwrap()).is_err());
    }

    #[test]
    fn host_buffers_are_read_only() {
        let (mut b, _) = CpuBuffer::from_host(DType::U8, 4, HostBytes::from_vec(vec![1, 2, 3, 4])).unwrap();
        assert!(b.bytes_mut().is_err());
    }
}
