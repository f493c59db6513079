//! The disk's read bandwidth for the reads an expert cache makes: random, expert-sized chunks
//! of the model's own files, direct (no page cache), several in flight — measured in the same
//! run as the modes it is compared with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use gptoss_engine::Rng;
use gptoss_engine::residency::aligned::ALIGN;
use gptoss_engine::residency::{AlignedBuf, DirectFile, IoPool, ReadRequest};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskRead {
    /// 1e9 bytes per second.
    pub gb_s: f64,
    pub chunk_bytes: usize,
    pub reads: usize,
    pub in_flight: usize,
    /// Whether the reads bypassed the page cache (`O_DIRECT`).
    pub direct: bool,
}

/// Reads `reads` chunks of `chunk` bytes at random block-aligned offsets of `files`, keeping
/// `in_flight` reads queued, and returns the rate.
pub fn random_read(files: &[PathBuf], chunk: usize, reads: usize, in_flight: usize, seed: u64) -> gptoss_engine::Result<DiskRead> {
    let opened = files.iter().map(|p| DirectFile::open(p).map(Arc::new)).collect::<gptoss_engine::Result<Vec<_>>>()?;
    let sizes: Vec<u64> = files.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).collect();
    let usable: Vec<usize> = (0..files.len()).filter(|&i| sizes[i] > (chunk + ALIGN) as u64).collect();
    if usable.is_empty() {
        return Err(gptoss_engine::EngineError::invalid(format!("no file is larger than a {chunk}-byte chunk")));
    }
    let mut rng = Rng::new(seed);
    let mut pool = IoPool::new(in_flight)?;
    let mut buffers: Vec<AlignedBuf> = Vec::new();
    for _ in 0..in_flight {
        buffers.push(AlignedBuf::new(chunk + ALIGN).ok_or(gptoss_engine::EngineError::OutOfMemory { backend: "host", bytes: chunk })?);
    }
    let start = Instant::now();
    let mut submitted = 0;
    let mut failure = None;
    loop {
        while submitted < reads
            && let Some(buf) = buffers.pop()
        {
            let f = usable[(rng.next_u64() % usable.len() as u64) as usize];
            let blocks = (sizes[f] - chunk as u64) / ALIGN as u64;
            let offset = (rng.next_u64() % blocks) * ALIGN as u64;
            pool.submit(ReadRequest { tag: submitted as u64, file: Arc::clone(&opened[f]), offset, len: chunk, buf })?;
            submitted += 1;
        }
        let Some(done) = pool.wait()? else { break };
        if let Err(e) = done.result {
            failure.get_or_insert(e);
        }
        buffers.push(done.buf);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(DiskRead {
        gb_s: (reads * chunk) as f64 / secs / 1e9,
        chunk_bytes: chunk,
        reads,
        in_flight,
        direct: opened.iter().all(|f| f.is_direct()),
    })
}
