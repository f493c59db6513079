//! The routed experts on a second backend (`--cpu-experts`: the CPU, beside a GPU that runs
//! the rest, as llama.cpp's `--cpu-moe`): the experts stay in host memory (a mapped checkpoint
//! computed from in place, or generated there), the device holds only the dense weights.
//!
//! Per layer the step reads the layer's normalised input, routing and residual back from the
//! device, the second backend adds the experts' weighted sum to the residual, and the residual
//! goes back: ~4 · hidden floats each way per token, so the cost is the second backend's
//! expert time plus a round trip per layer, and the step cannot be recorded.

use gptoss_engine::{Backend, DType, MoeExpertsArgs, Result as Run, Swiglu};

use crate::config::GptOssConfig;
use crate::context::Activations;
use crate::weights::Experts;

/// Experts computed away from the model's backend, on host slices.
pub trait ExpertsElsewhere: Send {
    /// `x += Σ weight · expert(h)` over layer `l`'s experts for `n` rows routed to `top_k`
    /// experts each (`h`, `x`: `[n, hidden]`; `ids`, `weights`: `[n, top_k]`).
    #[allow(clippy::too_many_arguments)]
    fn run(&mut self, l: usize, h: &[f32], ids: &[u32], weights: &[f32], n: usize, top_k: usize, swiglu: Swiglu, x: &mut [f32]) -> Run<()>;
}

/// [`ExpertsElsewhere`] on a backend `C`: the experts loaded on it, and its buffers for one step.
pub(crate) struct OnBackend<C: Backend> {
    backend: C,
    layers: Vec<Experts<C::Buffer>>,
    h: C::Buffer,
    x: C::Buffer,
    ids: C::Buffer,
    weights: C::Buffer,
}

impl<C: Backend> OnBackend<C> {
    /// `layers` on `backend`, with buffers for steps of up to `max_tokens` tokens.
    pub fn new(mut backend: C, layers: Vec<Experts<C::Buffer>>, c: &GptOssConfig, max_tokens: usize) -> Run<Self> {
        let (rows, pairs) = (max_tokens * c.hidden_size, max_tokens * c.num_experts_per_tok);
        Ok(OnBackend {
            h: backend.alloc(DType::F32, rows)?,
            x: backend.alloc(DType::F32, rows)?,
            ids: backend.alloc(DType::U32, pairs)?,
            weights: backend.alloc(DType::F32, pairs)?,
            backend,
            layers,
        })
    }
}

impl<C: Backend + Send> ExpertsElsewhere for OnBackend<C>
where
    C::Buffer: Send,
{
    fn run(&mut self, l: usize, h: &[f32], ids: &[u32], weights: &[f32], n: usize, top_k: usize, swiglu: Swiglu, x: &mut [f32]) -> Run<()> {
        let b = &mut self.backend;
        b.write(&mut self.h, 0, bytemuck::cast_slice(h))?;
        b.write(&mut self.x, 0, bytemuck::cast_slice(x))?;
        b.write(&mut self.ids, 0, bytemuck::cast_slice(ids))?;
        b.write(&mut self.weights, 0, bytemuck::cast_slice(weights))?;
        let e = self.layers.get(l).ok_or_else(|| gptoss_engine::EngineError::invalid(format!("layer {l} has no experts here")))?;
        b.moe_experts(MoeExpertsArgs {
            gate_up: &e.gate_up,
            down: &e.down,
            x: &self.h,
            n,
            ids: &self.ids,
            weights: &self.weights,
            top_k,
            swiglu,
            residual: &mut self.x,
        })?;
        b.read(&self.x, 0, bytemuck::cast_slice_mut(x))
    }
}

/// The experts elsewhere, and host copies of one step's operands.
pub(crate) struct Elsewhere {
    experts: Box<dyn ExpertsElsewhere>,
    h: Vec<f32>,
    x: Vec<f32>,
    ids: Vec<u32>,
    weights: Vec<f32>,
}

impl Elsewhere {
    pub fn new(experts: Box<dyn ExpertsElsewhere>) -> Self {
        Elsewhere { experts, h: Vec::new(), x: Vec::new(), ids: Vec::new(), weights: Vec::new() }
    }

    /// Layer `l`'s experts for the `n` routed rows of `a` (on `b`): operands to the host, the
    /// experts' sum added there, the residual back.
    #[allow(clippy::too_many_arguments)]
    pub fn run<B: Backend>(
        &mut self,
        b: &mut B,
        l: usize,
        a: &mut Activations<B::Buffer>,
        n: usize,
        hidden: usize,
        top_k: usize,
        swiglu: Swiglu,
    ) -> Run<()> {
        self.h.resize(n * hidden, 0.0);
        self.x.resize(n * hidden, 0.0);
        self.ids.resize(n * top_k, 0);
        self.weights.resize(n * top_k, 0.0);
        b.read(&a.h, 0, bytemuck::cast_slice_mut(&mut self.h))?;
        b.read(&a.x, 0, bytemuck::cast_slice_mut(&mut self.x))?;
        b.read(&a.expert_ids, 0, bytemuck::cast_slice_mut(&mut self.ids))?;
        b.read(&a.expert_weights, 0, bytemuck::cast_slice_mut(&mut self.weights))?;
        self.experts.run(l, &self.h, &self.ids, &self.weights, n, top_k, swiglu, &mut self.x)?;
        b.write(&mut a.x, 0, bytemuck::cast_slice(&self.x))
    }
}
