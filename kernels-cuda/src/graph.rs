//! Decode steps recorded once as a CUDA graph and replayed: one driver call per token.
//!
//! A step is captured the second time the same shape arrives in a row (the first run is eager,
//! so one-off prefill shapes are never captured), then replayed for as long as the shape stays
//! the same. This works because every per-step input (token ids, positions) is written to
//! the same device buffers before the step, kernels read positions from device memory, and
//! every launch shape depends only on the step's shape. `GPTOSS_CUDA_GRAPHS=0` turns it off.

use cudarc::driver::CudaGraph;
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use gptoss_engine::{Result, Step, StepMode};

use crate::device::{Device, cuda_err};

pub const ENV: &str = "GPTOSS_CUDA_GRAPHS";

#[derive(Default)]
pub struct Recorder {
    disabled: bool,
    last: Option<Step>,
    graph: Option<(Step, Graph)>,
    capturing: Option<Step>,
}

/// An instantiated graph that may move between threads with its backend.
struct Graph(CudaGraph);

// SAFETY: the driver's graph handles are not tied to a thread (the driver API is thread-safe
// and cudarc binds the context to the calling thread before each use), and the graph is only
// ever used through `&mut Recorder`, so no two threads use it at once.
unsafe impl Send for Graph {}
// SAFETY: `&Recorder` gives no access to the graph (every use takes `&mut self`).
unsafe impl Sync for Graph {}

impl Recorder {
    pub fn from_env() -> Self {
        Recorder { disabled: std::env::var(ENV).is_ok_and(|v| v == "0"), ..Default::default() }
    }

    pub fn begin(&mut self, dev: &Device, step: Step) -> Result<StepMode> {
        // A capture abandoned by a failed step: close it and forget it.
        if self.capturing.take().is_some() {
            let _ = dev.stream.end_capture(CUgraphInstantiate_flags(0));
        }
        let repeat = self.last.replace(step) == Some(step);
        if self.disabled || !step.replayable {
            return Ok(StepMode::Run);
        }
        if let Some((recorded, graph)) = &self.graph
            && *recorded == step
        {
            graph.0.launch().map_err(cuda_err("replaying the decode graph"))?;
            return Ok(StepMode::Replayed);
        }
        if repeat {
            self.graph = None;
            dev.stream
                .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                .map_err(cuda_err("starting graph capture"))?;
            self.capturing = Some(step);
        }
        Ok(StepMode::Run)
    }

    /// Ends a capture: instantiates the graph and runs it once (capturing executed nothing).
    pub fn end(&mut self, dev: &Device) -> Result<()> {
        let Some(step) = self.capturing.take() else {
            return Ok(());
        };
        let graph = dev.stream.end_capture(CUgraphInstantiate_flags(0)).map_err(cuda_err("ending graph capture"))?;
        let Some(graph) = graph else {
            return Ok(());
        };
        graph.upload().map_err(cuda_err("uploading the decode graph"))?;
        graph.launch().map_err(cuda_err("launching the decode graph"))?;
        self.graph = Some((step, Graph(graph)));
        Ok(())
    }

    /// True while ops are being recorded rather than run (no host reads allowed).
    pub fn capturing(&self) -> bool {
        self.capturing.is_some()
    }
}
