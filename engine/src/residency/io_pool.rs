//! A small pool of I/O threads that read byte ranges of weight files into buffers the caller
//! owns, so that several reads are in flight at once (the disk serves a queue of reads faster
//! than one at a time) while the caller's thread computes.
//!
//! Buffers travel with their requests and come back with the completions: the caller decides
//! how many exist (the memory the reads may use) and the pool allocates nothing per read.

use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{EngineError, Result};
use crate::residency::aligned::AlignedBuf;
use crate::residency::direct::DirectFile;

/// One read: bytes `offset .. offset + len` of `file` into `buf` (at least
/// `DirectFile::span(offset, len)` bytes). `tag` is the caller's.
pub struct ReadRequest {
    pub tag: u64,
    pub file: Arc<DirectFile>,
    pub offset: u64,
    pub len: usize,
    pub buf: AlignedBuf,
}

/// A finished read: the buffer back, and where in it the bytes are (or why there are none).
pub struct ReadDone {
    pub tag: u64,
    pub buf: AlignedBuf,
    pub result: Result<Range<usize>>,
    /// Bytes transferred from the file (the range widened to whole blocks).
    pub span: usize,
}

pub struct IoPool {
    jobs: Option<Sender<ReadRequest>>,
    done: Receiver<ReadDone>,
    threads: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl IoPool {
    /// A pool of `threads` readers (at least one).
    pub fn new(threads: usize) -> Result<Self> {
        let (jobs, queue) = channel::<ReadRequest>();
        let (done_tx, done) = channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (queue, done_tx) = (Arc::clone(&queue), done_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("gptoss-io-{i}"))
                .spawn(move || reader(&queue, &done_tx))
                .map_err(|e| EngineError::invalid(format!("cannot start an I/O thread: {e}")))?;
            handles.push(handle);
        }
        Ok(IoPool { jobs: Some(jobs), done, threads: handles, in_flight: 0 })
    }

    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queues a read; its completion comes back from [`wait`](Self::wait).
    pub fn submit(&mut self, request: ReadRequest) -> Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(request).map_err(|_| stopped())?;
        self.in_flight += 1;
        Ok(())
    }

    /// Reads submitted and not yet returned by `wait`.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The next finished read, in completion order; `None` when nothing is in flight.
    pub fn wait(&mut self) -> Result<Option<ReadDone>> {
        if self.in_flight == 0 {
            return Ok(None);
        }
        let done = self.done.recv().map_err(|_| stopped())?;
        self.in_flight -= 1;
        Ok(Some(done))
    }
}

/// Readers answer every request they take and stop only when the pool is dropped: this is
/// what is left if one died anyway.
fn stopped() -> EngineError {
    EngineError::invalid("the I/O threads have stopped")
}

impl Drop for IoPool {
    fn drop(&mut self) {
        // Closing the queue stops each reader after its current read.
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A reader thread: takes requests until the queue closes and answers each one, a panic in a
/// read included (as an error), so that `wait` never waits for an answer that cannot come.
fn reader(queue: &Mutex<Receiver<ReadRequest>>, done: &Sender<ReadDone>) {
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(mut r) = next else { return };
        let span = DirectFile::span(r.offset, r.len);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.file.read(r.offset, r.len, &mut r.buf)))
            .unwrap_or_else(|_| Err(EngineError::WeightRead { path: r.file.path().to_path_buf(), detail: "the read panicked".into() }));
        if done.send(ReadDone { tag: r.tag, buf: r.buf, result, span }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_come_back_with_their_tags_and_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(DirectFile::open(&path).unwrap());
        let mut pool = IoPool::new(3).unwrap();
        for tag in 0..8u64 {
            let (offset, len) = (tag * 9_999, 7_777);
            let buf = AlignedBuf::new(DirectFile::span(offset, len)).unwrap();
            pool.submit(ReadRequest { tag, file: Arc::clone(&file), offset, len, buf }).unwrap();
        }
        let mut seen = Vec::new();
        while let Some(d) = pool.wait().unwrap() {
            let r = d.result.unwrap();
            let offset = d.tag as usize * 9_999;
            assert_eq!(&d.buf.as_slice()[r], &data[offset..offset + 7_777]);
            seen.push(d.tag);
        }
        seen.sort();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn a_failed_read_is_an_answer_and_the_pool_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        std::fs::write(&path, vec![3u8; 5000]).unwrap();
        let file = Arc::new(DirectFile::open(&path).unwrap());
        let mut pool = IoPool::new(1).unwrap();
        pool.submit(ReadRequest { tag: 1, file: Arc::clone(&file), offset: 4000, len: 2000, buf: AlignedBuf::new(8192).unwrap() }).unwrap();
        let d = pool.wait().unwrap().unwrap();
        assert!(d.result.unwrap_err().to_string().contains("ends at byte 5000"));
        pool.submit(ReadRequest { tag: 2, file, offset: 0, len: 5000, buf: d.buf }).unwrap();
        assert!(pool.wait().unwrap().unwrap().result.is_ok());
    }
}
