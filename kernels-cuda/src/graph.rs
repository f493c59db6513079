//! Decode steps recorded once and replayed: one call per token (a CUDA graph on a GPU, the list
//! of launches on the emulator).
//!
//! A step is recorded the second time the same shape arrives in a row (the first run is eager,
//! so one-off prefill shapes are never recorded), then replayed for as long as the shape stays
//! the same. This works because every per-step input (token ids, positions) is written to the
//! same device buffers before the step, kernels read positions from device memory, and every
//! launch shape depends only on the step's shape. `GPTOSS_CUDA_GRAPHS=0` turns it off.

use gptoss_engine::{Result, Step, StepMode};

use crate::device::Device;

pub const ENV: &str = "GPTOSS_CUDA_GRAPHS";

pub struct Recorder<D: Device> {
    disabled: bool,
    last: Option<Step>,
    graph: Option<(Step, D::Graph)>,
    capturing: Option<Step>,
}

impl<D: Device> Recorder<D> {
    pub fn from_env() -> Self {
        Recorder { disabled: std::env::var(ENV).is_ok_and(|v| v == "0"), last: None, graph: None, capturing: None }
    }

    pub fn begin(&mut self, dev: &D, step: Step) -> Result<StepMode> {
        // A recording abandoned by a failed step: close it and forget it.
        if self.capturing.take().is_some() {
            let _ = dev.end_capture();
        }
        let repeat = self.last.replace(step) == Some(step);
        if self.disabled || !step.replayable {
            return Ok(StepMode::Run);
        }
        if let Some((recorded, graph)) = &self.graph
            && *recorded == step
        {
            dev.replay(graph)?;
            return Ok(StepMode::Replayed);
        }
        if repeat {
            self.graph = None;
            dev.begin_capture()?;
            self.capturing = Some(step);
        }
        Ok(StepMode::Run)
    }

    /// Ends a recording and runs it once (recording executed nothing).
    pub fn end(&mut self, dev: &D) -> Result<()> {
        let Some(step) = self.capturing.take() else {
            return Ok(());
        };
        let Some(graph) = dev.end_capture()? else {
            return Ok(());
        };
        dev.replay(&graph)?;
        self.graph = Some((step, graph));
        Ok(())
    }

    /// True while ops are being recorded rather than run (no host reads allowed).
    pub fn capturing(&self) -> bool {
        self.capturing.is_some()
    }
}
