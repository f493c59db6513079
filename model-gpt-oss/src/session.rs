//! A model and one of its contexts, borrowed together: what the generator, the bench and the
//! fidelity comparison drive, through the engine's `CausalLm`.

use gptoss_engine::{Backend, CausalLm, SamplingParams};

use crate::context::Context;
use crate::model::GptOss;

/// A model and one of its contexts, borrowed together: a `CausalLm` for the generator.
pub struct Session<'a, B: Backend> {
    pub model: &'a mut GptOss<B>,
    pub ctx: &'a mut Context<B::Buffer>,
}

impl<B: Backend> CausalLm for Session<'_, B> {
    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    fn max_context(&self) -> usize {
        self.ctx.max_context()
    }

    fn max_batch(&self) -> usize {
        self.model.max_batch().min(self.ctx.max_context())
    }

    fn position(&self) -> usize {
        self.ctx.position()
    }

    fn rollback(&mut self, to: usize) -> gptoss_engine::Result<()> {
        self.ctx.rollback(to)
    }

    fn forward(&mut self, tokens: &[u32], logits_rows: usize) -> gptoss_engine::Result<()> {
        self.model.forward(self.ctx, tokens, logits_rows)
    }

    fn logits(&mut self, row: usize, out: &mut [f32]) -> gptoss_engine::Result<()> {
        self.model.logits(self.ctx, row, out)
    }

    fn sample(&mut self, row: usize, params: &SamplingParams, u: f32) -> gptoss_engine::Result<u32> {
        self.model.sample(self.ctx, row, params, u)
    }
}
