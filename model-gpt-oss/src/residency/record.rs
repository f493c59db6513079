//! `--record-routing FILE`: the experts each forward step routed to, per layer and token,
//! written as a routing trace (`gptoss_engine::residency::expert_cache::trace`) as the model
//! runs, whatever its residency mode.

use std::path::Path;

use gptoss_engine::Backend;
use gptoss_engine::residency::expert_cache::trace::TraceWriter;

use crate::config::GptOssConfig;
use crate::error::Result;

pub(crate) struct RoutingRecorder {
    writer: TraceWriter,
    top_k: usize,
    /// The step in progress: each layer's ids, `[n, top_k]`.
    step: Vec<Vec<u32>>,
}

impl RoutingRecorder {
    pub fn create(path: &Path, model: &str, c: &GptOssConfig) -> Result<Self> {
        let writer = TraceWriter::create(path, model, c.num_hidden_layers, c.num_local_experts, c.num_experts_per_tok)?;
        Ok(RoutingRecorder { writer, top_k: c.num_experts_per_tok, step: vec![Vec::new(); c.num_hidden_layers] })
    }

    /// Copies layer `l`'s routed ids (`ids`, `[n, top_k]` on the backend) into the step.
    pub fn layer<B: Backend>(&mut self, b: &mut B, ids: &B::Buffer, l: usize, n: usize) -> gptoss_engine::Result<()> {
        let layer = &mut self.step[l];
        layer.resize(n * self.top_k, 0);
        b.read(ids, 0, bytemuck::cast_slice_mut(layer))
    }

    /// Writes the finished step.
    pub fn finish_step(&mut self) -> gptoss_engine::Result<()> {
        self.writer.write_step(&self.step)
    }
}
