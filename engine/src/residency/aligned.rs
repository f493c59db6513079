//! Host memory aligned for direct I/O: `O_DIRECT` reads need the buffer's address, the file
//! offset and the length to be multiples of the device's block size; [`ALIGN`] covers every
//! block size Linux uses (512 B to 4 KiB).

use std::ptr::NonNull;

/// The alignment of buffers, offsets and lengths of direct reads.
pub const ALIGN: usize = 4096;

/// A fixed-capacity byte buffer aligned to [`ALIGN`]: anonymous pages, zero until written and
/// resident only once touched, allocated once and reused across reads.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
}

// SAFETY: `AlignedBuf` uniquely owns its mapping, like a `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of at least `capacity` bytes (rounded up to [`ALIGN`]), or `None` when
    /// the system refuses the mapping.
    pub fn new(capacity: usize) -> Option<Self> {
        let capacity = capacity.max(1).checked_next_multiple_of(ALIGN)?;
        // SAFETY: an anonymous private mapping of a non-zero length; the result is checked.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), capacity, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(AlignedBuf { ptr: NonNull::new(ptr.cast())?, capacity })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is valid, initialised (zero or written) and ours for `capacity`
        // bytes for our lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.capacity) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.capacity) }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with exactly this length; nothing borrows it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.capacity) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_rounded_up() {
        let mut b = AlignedBuf::new(5000).unwrap();
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[8191] = 7;
        assert_eq!(b.as_slice()[8191], 7);
    }
}
