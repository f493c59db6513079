//! What one forward step actually read, from the experts its tokens were routed to: a decode
//! step reads `top_k` experts per layer, a step of `n` tokens the union of theirs — the price of
//! verifying `n − 1` speculated tokens on a mixture of experts. Kept only when a context is
//! asked to record its routing (`Context::record_routing`).

use gptoss_engine::{Backend, StepReads};

use crate::accounting::{Formats, step_bytes};
use crate::context::Context;
use crate::model::GptOss;
use crate::self_draft::Form;

/// The expert ids of every layer of the last forward.
pub(crate) struct RoutingRecord {
    /// u32 [layers, max_tokens · max_top_k], each layer's first `tokens · top_k` in use.
    ids: Vec<u32>,
    stride: usize,
    /// The last forward's shape, once one has run.
    pub step: Option<RecordedStep>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordedStep {
    pub tokens: usize,
    pub top_k: usize,
    /// The position of the step's first token.
    pub start: usize,
    pub logits_rows: usize,
}

impl RoutingRecord {
    pub fn new(layers: usize, max_tokens: usize, max_top_k: usize) -> Self {
        let stride = max_tokens * max_top_k;
        RoutingRecord { ids: vec![0; layers * stride], stride, step: None }
    }

    /// Where layer `l`'s ids of a step of `n` tokens with `top_k` experts each go.
    pub fn layer_mut(&mut self, l: usize, n: usize, top_k: usize) -> &mut [u32] {
        &mut self.ids[l * self.stride..l * self.stride + n * top_k]
    }

    /// Distinct experts per layer in the recorded step.
    fn distinct(&self, step: RecordedStep) -> impl Iterator<Item = usize> + '_ {
        self.ids.chunks(self.stride).map(move |layer| {
            let mut ids = layer[..step.tokens * step.top_k].to_vec();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        })
    }
}

impl<B: Backend> GptOss<B> {
    /// What the last forward on `ctx` read, when `ctx` records its routing.
    pub fn last_step_reads(&self, ctx: &Context<B::Buffer>) -> Option<StepReads> {
        let record = ctx.routing.as_ref()?;
        let step = record.step?;
        let layers = self.config.num_hidden_layers;
        let experts: usize = record.distinct(step).sum();
        let bytes = step_bytes(&self.config, &self.form_formats(ctx), experts as f64, step.start, step.tokens, step.logits_rows > 0);
        Some(StepReads { bytes: bytes.total(), experts_per_layer: experts as f64 / layers as f64 })
    }

    /// How the weights a context's forward passes read are stored.
    fn form_formats(&self, ctx: &Context<B::Buffer>) -> Formats {
        let formats = self.formats(ctx.kv_dtype());
        let Form::Draft(i) = ctx.form else { return formats };
        let d = &self.drafts[i];
        Formats {
            attention: d.attention.first().map_or(formats.attention, |a| a.q.format),
            unembedding: d.unembed.as_ref().map_or(formats.unembedding, |u| u.format),
            ..formats
        }
    }
}
