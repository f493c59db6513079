//! Reading tensors from a checkpoint's files into memory of our own with direct reads (not
//! the page cache): neighbouring tensors of a shard are read together in runs of up to
//! [`RUN_BYTES`] (a tensor larger than that is a run of its own), several runs in flight on
//! the I/O threads. Each tensor is handed out as a region of its run's buffer, so a backend
//! that computes from host memory uses it in place.

use std::collections::HashMap;
use std::sync::Arc;

use gptoss_engine::HostBytes;
use gptoss_engine::residency::{AlignedBuf, DirectFile, IoPool, ReadRequest};

use super::layout::Extent;
use crate::error::{ModelError, Result};
use crate::safetensors::StDtype;
use crate::source::TensorData;
use crate::tensors::TensorSpec;
use crate::weights::TensorSource;

/// Runs grow by whole tensors up to this size: large enough for sequential speed, small
/// enough that several are in flight at once.
pub const RUN_BYTES: usize = 64 << 20;

/// Neighbouring tensors of one shard read with one request.
#[derive(Clone, Debug)]
pub struct Run {
    pub shard: usize,
    pub offset: u64,
    pub len: usize,
    /// (tensor, offset in the run, length).
    pub members: Vec<(String, usize, usize)>,
}

/// `extents` (sorted or not) grouped into runs of neighbours: tensors that touch or are less
/// than a block apart join a run while it stays within [`RUN_BYTES`].
pub fn plan_runs(extents: &[Extent]) -> Vec<Run> {
    let mut sorted: Vec<&Extent> = extents.iter().collect();
    sorted.sort_by_key(|e| (e.shard, e.offset));
    let mut runs: Vec<Run> = Vec::new();
    for e in sorted {
        let joins = runs.last().is_some_and(|r| {
            let end = r.offset + r.len as u64;
            r.shard == e.shard && e.offset >= end && e.offset - end < 4096 && (e.offset + e.len as u64 - r.offset) as usize <= RUN_BYTES
        });
        if joins {
            let r = runs.last_mut().expect("checked");
            let at = (e.offset - r.offset) as usize;
            r.len = at + e.len;
            r.members.push((e.name.clone(), at, e.len));
        } else {
            runs.push(Run { shard: e.shard, offset: e.offset, len: e.len, members: vec![(e.name.clone(), 0, e.len)] });
        }
    }
    runs
}

/// Tensors read into memory: each one's bytes and stored dtype.
pub struct ReadTensors {
    pub tensors: HashMap<String, (HostBytes, StDtype)>,
    /// The run buffers, to take back (`Arc::try_unwrap`) once every tensor is dropped.
    pub buffers: Vec<Arc<AlignedBuf>>,
}

impl TensorSource for ReadTensors {
    fn tensor(&self, spec: &TensorSpec) -> Result<TensorData> {
        let (bytes, dtype) = self
            .tensors
            .get(&spec.name)
            .ok_or_else(|| ModelError::Engine(gptoss_engine::EngineError::invalid(format!("tensor '{}' was not read", spec.name))))?;
        Ok(TensorData::Host(bytes.clone(), *dtype))
    }
}

/// A buffer of at least `span` bytes: the smallest fitting spare one, else a new one.
pub fn take_buffer(spare: &mut Vec<AlignedBuf>, span: usize) -> Result<AlignedBuf> {
    let best = spare.iter().enumerate().filter(|(_, b)| b.capacity() >= span).min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i);
    match best {
        Some(i) => Ok(spare.swap_remove(i)),
        None => AlignedBuf::new(span).ok_or(ModelError::Engine(gptoss_engine::EngineError::OutOfMemory { backend: "host", bytes: span })),
    }
}

/// Queues the reads of `runs` on `io`, tagged with their index, into spare buffers.
pub fn submit_runs(io: &mut IoPool, files: &[Arc<DirectFile>], runs: &[Run], spare: &mut Vec<AlignedBuf>) -> Result<()> {
    for (i, r) in runs.iter().enumerate() {
        let buf = take_buffer(spare, DirectFile::span(r.offset, r.len))?;
        io.submit(ReadRequest { tag: i as u64, file: Arc::clone(&files[r.shard]), offset: r.offset, len: r.len, buf })?;
    }
    Ok(())
}

/// Waits for the `runs.len()` reads `submit_runs` queued and returns the tensors, telling
/// `progress` the bytes of each finished run. On a failed read every other read is still
/// waited for (their buffers go back to `spare`) and the first error is returned.
pub fn collect_runs(
    io: &mut IoPool,
    runs: &[Run],
    dtypes: &HashMap<String, StDtype>,
    spare: &mut Vec<AlignedBuf>,
    progress: &mut dyn FnMut(usize),
) -> Result<ReadTensors> {
    let mut out = ReadTensors { tensors: HashMap::new(), buffers: Vec::new() };
    let mut failure = None;
    for _ in 0..runs.len() {
        let Some(done) = io.wait()? else { break };
        match done.result {
            Ok(range) if failure.is_none() => {
                let run = &runs[done.tag as usize];
                let buf = Arc::new(done.buf);
                let whole = HostBytes::new(Arc::clone(&buf) as Arc<dyn AsRef<[u8]> + Send + Sync>);
                for (name, at, len) in &run.members {
                    let bytes = whole.slice(range.start + at, *len).expect("a member lies inside its run");
                    out.tensors.insert(name.clone(), (bytes, dtypes[name]));
                }
                out.buffers.push(buf);
                progress(run.len);
            }
            Ok(_) => spare.push(done.buf),
            Err(e) => {
                spare.push(done.buf);
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => {
            out.release(spare);
            Err(e.into())
        }
        None => Ok(out),
    }
}

impl ReadTensors {
    /// Drops the tensors and puts the buffers nobody else holds back into `spare`.
    pub fn release(self, spare: &mut Vec<AlignedBuf>) {
        drop(self.tensors);
        spare.extend(self.buffers.into_iter().filter_map(|b| Arc::try_unwrap(b).ok()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, shard: usize, offset: u64, len: usize) -> Extent {
        Extent { name: name.into(), shard, offset, len }
    }

    #[test]
    fn neighbours_share_a_run_up_to_its_size() {
        let runs = plan_runs(&[
            ext("b", 0, 100, 50),
            ext("a", 0, 0, 100),
            ext("c", 0, 10_000, 8),
            ext("d", 1, 150, 8),
            ext("big", 0, 10_008, RUN_BYTES),
        ]);
        let shape: Vec<(usize, u64, usize, usize)> = runs.iter().map(|r| (r.shard, r.offset, r.len, r.members.len())).collect();
        assert_eq!(shape, vec![(0, 0, 150, 2), (0, 10_000, 8, 1), (0, 10_008, RUN_BYTES, 1), (1, 150, 8, 1)]);
        assert_eq!(runs[0].members[1], ("b".to_string(), 100, 50));
    }
}
