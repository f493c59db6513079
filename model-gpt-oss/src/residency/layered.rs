//! The `layered` residency mode (AirLLM's method, the baseline): each whole layer is read from
//! disk just before it runs and dropped after, while the next layer's reads are already in
//! flight on the I/O threads (two layers' buffers, allocated as needed and reused). After the
//! last layer the first one of the next step is read, so it overlaps the unembedding. When the
//! budget holds only one layer's buffer, each layer is read and then computed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gptoss_engine::Backend;
use gptoss_engine::residency::{AlignedBuf, DirectFile, IoPool};

use super::layout::Layout;
use super::read::{ReadTensors, Run, collect_runs, plan_runs, submit_runs};
use crate::config::GptOssConfig;
use crate::error::Result;
use crate::safetensors::StDtype;
use crate::tensors::TensorSpec;
use crate::weights::{LayerWeights, Loader};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerStats {
    /// Bytes read from disk and layers read.
    pub bytes_read: u64,
    pub layers_read: u64,
    /// Time the computing thread waited for a layer's reads.
    pub wait: Duration,
}

pub(crate) struct LayerStream<Buf> {
    io: IoPool,
    files: Vec<Arc<DirectFile>>,
    /// Each layer's reads, planned once.
    runs: Vec<Vec<Run>>,
    dtypes: HashMap<String, StDtype>,
    specs: HashMap<String, TensorSpec>,
    spare: Vec<AlignedBuf>,
    /// The layer computing now, and the read buffers its weights use in place.
    current: Option<(usize, LayerWeights<Buf>, ReadTensors)>,
    /// The layer whose reads are in flight.
    pending: Option<usize>,
    /// Whether the next layer is read while this one computes.
    read_ahead: bool,
    stats: LayerStats,
}

impl<Buf: 'static> LayerStream<Buf> {
    pub fn new(
        layout: &Layout,
        files: Vec<Arc<DirectFile>>,
        io_threads: usize,
        read_ahead: bool,
        dtypes: HashMap<String, StDtype>,
        specs: HashMap<String, TensorSpec>,
    ) -> Result<Self> {
        let runs = layout.layers.iter().map(|l| plan_runs(l)).collect();
        Ok(LayerStream {
            io: IoPool::new(io_threads)?,
            files,
            runs,
            dtypes,
            specs,
            spare: Vec::new(),
            current: None,
            pending: None,
            read_ahead,
            stats: LayerStats::default(),
        })
    }

    pub fn stats(&self) -> LayerStats {
        self.stats
    }

    /// Makes layer `l` the current one: the previous one dropped, `l` read (or its reads in
    /// flight waited for) and put on the backend, and the reads of the layer after it started.
    pub fn enter<B: Backend<Buffer = Buf>>(&mut self, b: &mut B, c: &GptOssConfig, l: usize) -> gptoss_engine::Result<()> {
        if self.current.as_ref().is_some_and(|(cur, _, _)| *cur == l) {
            return Ok(());
        }
        if let Some((_, weights, tensors)) = self.current.take() {
            drop(weights);
            tensors.release(&mut self.spare);
        }
        let start = Instant::now();
        match self.pending.take() {
            Some(p) if p == l => {}
            other => {
                // A step that failed part-way left another layer in flight: drain it.
                if let Some(p) = other
                    && let Ok(t) = self.collect(p)
                {
                    t.release(&mut self.spare);
                }
                submit_runs(&mut self.io, &self.files, &self.runs[l], &mut self.spare)?;
            }
        }
        let tensors = self.collect(l)?;
        self.stats.wait += start.elapsed();
        let mut quiet = |_, _| {};
        let weights = Loader::new(b, &tensors, &self.specs, None, 0, &mut quiet).layer(c, l, true);
        let weights = match weights {
            Ok(w) => w,
            Err(e) => {
                tensors.release(&mut self.spare);
                return Err(e.into());
            }
        };
        self.current = Some((l, weights, tensors));
        if self.read_ahead {
            let next = (l + 1) % c.num_hidden_layers;
            submit_runs(&mut self.io, &self.files, &self.runs[next], &mut self.spare)?;
            self.pending = Some(next);
        }
        Ok(())
    }

    /// The current layer's weights.
    pub fn current(&self, l: usize) -> Option<&LayerWeights<Buf>> {
        self.current.as_ref().filter(|(cur, _, _)| *cur == l).map(|(_, w, _)| w)
    }

    fn collect(&mut self, l: usize) -> Result<ReadTensors> {
        let runs = &self.runs[l];
        let t = collect_runs(&mut self.io, runs, &self.dtypes, &mut self.spare, &mut |_| {})?;
        self.stats.bytes_read += runs.iter().map(|r| DirectFile::span(r.offset, r.len) as u64).sum::<u64>();
        self.stats.layers_read += 1;
        Ok(t)
    }
}
