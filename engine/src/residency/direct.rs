//! Reading byte ranges of weight files without leaving them in the page cache: `O_DIRECT`
//! where the filesystem allows it (the disk's data lands in our buffer, ~3 % of a core per
//! reader), else ordinary reads followed by `POSIX_FADV_DONTNEED` on the range.
//!
//! A file shorter than a range asks for (truncated while the model runs) is an error naming the
//! file and both offsets, never a short buffer. A deleted file keeps its data while open: reads
//! go on from the descriptor.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};
use crate::residency::aligned::{ALIGN, AlignedBuf};

/// A weight file open for reads of byte ranges.
pub struct DirectFile {
    file: File,
    path: PathBuf,
    direct: bool,
}

impl DirectFile {
    /// Opens `path`, with `O_DIRECT` when its filesystem takes it (checked by reading the
    /// first block), else for ordinary reads.
    pub fn open(path: &Path) -> Result<Self> {
        let fail = |e: std::io::Error| EngineError::WeightRead { path: path.to_path_buf(), detail: e.to_string() };
        if let Some(file) = open_direct(path) {
            return Ok(DirectFile { file, path: path.to_path_buf(), direct: true });
        }
        let file = File::open(path).map_err(fail)?;
        Ok(DirectFile { file, path: path.to_path_buf(), direct: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether reads bypass the page cache through `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The buffer bytes a read of `len` bytes at `offset` needs: the range widened to whole
    /// aligned blocks.
    pub fn span(offset: u64, len: usize) -> usize {
        let start = offset - offset % ALIGN as u64;
        ((offset + len as u64).next_multiple_of(ALIGN as u64) - start) as usize
    }

    /// Reads bytes `offset .. offset + len` of the file into `buf` (at least
    /// [`span`](Self::span) bytes) and returns where in `buf` they are.
    pub fn read(&self, offset: u64, len: usize, buf: &mut AlignedBuf) -> Result<Range<usize>> {
        let start = offset - offset % ALIGN as u64;
        let span = Self::span(offset, len);
        let needed_end = offset + len as u64;
        if buf.capacity() < span {
            return Err(EngineError::invalid(format!(
                "read of {len} bytes at {offset} of {}: buffer of {} bytes, {span} needed",
                self.path.display(),
                buf.capacity()
            )));
        }
        let out = &mut buf.as_mut_slice()[..span];
        let mut done = 0usize;
        let mut at_end = false;
        while start + (done as u64) < needed_end && !at_end {
            let want = span - done;
            match self.file.read_at(&mut out[done..], start + done as u64) {
                // A short read is the end of the file (a direct read may not go on from an
                // unaligned offset to find out).
                Ok(n) => {
                    done += n;
                    at_end = n < want;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(EngineError::WeightRead {
                        path: self.path.clone(),
                        detail: format!("reading {len} bytes at offset {offset}: {e}"),
                    });
                }
            }
        }
        if start + (done as u64) < needed_end {
            return Err(EngineError::WeightRead {
                path: self.path.clone(),
                detail: format!(
                    "the file ends at byte {} but bytes up to {needed_end} are needed (truncated while in use?)",
                    start + done as u64
                ),
            });
        }
        if !self.direct {
            drop_cached(&self.file, start, done);
        }
        let first = (offset - start) as usize;
        Ok(first..first + len)
    }
}

/// The file opened with `O_DIRECT`, if the filesystem serves a direct read of its first block.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).ok()?;
    let mut probe = AlignedBuf::new(ALIGN)?;
    file.read_at(probe.as_mut_slice(), 0).ok()?;
    Some(file)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> Option<File> {
    None
}

/// Asks the OS to drop the cached pages of a range just read (best effort: a refusal only
/// leaves them cached).
fn drop_cached(file: &File, start: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain advisory call on a descriptor we own.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), start as libc::off_t, len as libc::off_t, libc::POSIX_FADV_DONTNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, start, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_unaligned_ranges_exactly() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_dir, path) = file_of(&data);
        let f = DirectFile::open(&path).unwrap();
        let mut buf = AlignedBuf::new(DirectFile::span(4095, 12_000)).unwrap();
        for (offset, len) in [(0u64, 1usize), (4095, 12_000), (19_999, 1), (8192, 4096), (100, 0)] {
            let r = f.read(offset, len, &mut buf).unwrap();
            assert_eq!(&buf.as_slice()[r], &data[offset as usize..offset as usize + len], "{offset} {len}");
        }
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it_and_the_offsets() {
        let (_dir, path) = file_of(&vec![1u8; 10_000]);
        let f = DirectFile::open(&path).unwrap();
        let mut buf = AlignedBuf::new(16_384).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(5000).unwrap();
        let e = f.read(6000, 1000, &mut buf).unwrap_err().to_string();
        assert!(e.contains("w.bin") && e.contains("ends at byte 5000") && e.contains("7000"), "{e}");
        // A range still inside the shortened file reads.
        assert!(f.read(0, 5000, &mut buf).is_ok());
    }

    #[test]
    fn a_too_small_buffer_is_refused() {
        let (_dir, path) = file_of(&[0u8; 100]);
        let f = DirectFile::open(&path).unwrap();
        let mut buf = AlignedBuf::new(4096).unwrap();
        assert!(f.read(4000, 200, &mut buf).unwrap_err().to_string().contains("8192 needed"));
    }
}
