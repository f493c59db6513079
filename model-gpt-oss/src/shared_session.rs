//! One model driven through two of its contexts at once — a target and its self-draft, or the
//! target and an oracle copy of itself — as two `CausalLm`s. Each call borrows the model for
//! its own duration only, so the two never hold it at the same time.

use std::cell::RefCell;
use std::rc::Rc;

use gptoss_engine::{Backend, CausalLm, SamplingParams, StepReads};

use crate::context::Context;
use crate::model::GptOss;

/// A model shared by several contexts, and one of them: a `CausalLm`.
pub struct SharedSession<'a, B: Backend> {
    model: Rc<RefCell<&'a mut GptOss<B>>>,
    ctx: &'a mut Context<B::Buffer>,
}

/// `model` with `first` and with `second`, usable side by side (not across threads).
pub fn shared_sessions<'a, B: Backend>(
    model: &'a mut GptOss<B>,
    first: &'a mut Context<B::Buffer>,
    second: &'a mut Context<B::Buffer>,
) -> (SharedSession<'a, B>, SharedSession<'a, B>) {
    let model = Rc::new(RefCell::new(model));
    (SharedSession { model: model.clone(), ctx: first }, SharedSession { model, ctx: second })
}

impl<B: Backend> CausalLm for SharedSession<'_, B> {
    fn vocab_size(&self) -> usize {
        self.model.borrow().config().vocab_size
    }

    fn max_context(&self) -> usize {
        self.ctx.max_context()
    }

    fn max_batch(&self) -> usize {
        self.model.borrow().max_batch().min(self.ctx.max_context())
    }

    fn position(&self) -> usize {
        self.ctx.position()
    }

    fn rollback(&mut self, to: usize) -> gptoss_engine::Result<()> {
        self.ctx.rollback(to)
    }

    fn forward(&mut self, tokens: &[u32], logits_rows: usize) -> gptoss_engine::Result<()> {
        self.model.borrow_mut().forward(self.ctx, tokens, logits_rows)
    }

    fn logits(&mut self, row: usize, out: &mut [f32]) -> gptoss_engine::Result<()> {
        self.model.borrow_mut().logits(self.ctx, row, out)
    }

    fn sample(&mut self, row: usize, params: &SamplingParams, u: f32) -> gptoss_engine::Result<u32> {
        self.model.borrow_mut().sample(self.ctx, row, params, u)
    }

    fn last_step_reads(&self) -> Option<StepReads> {
        self.model.borrow().last_step_reads(self.ctx)
    }
}
