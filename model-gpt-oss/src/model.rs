//! gpt-oss loaded on a backend: loading (weights, RoPE table, kernel choice), new contexts, and
//! what can be asked of a loaded model. The forward pass itself is in `graph`.

use gptoss_engine::residency::Offload;
use gptoss_engine::{Backend, DType, EngineError, KernelChoice, Rope, SampleArgs, SamplingParams, WeightFormat};

use std::path::Path;

use crate::accounting::{Formats, stored_formats};
use crate::config::GptOssConfig;
use crate::context::{Context, ContextOptions};
use crate::error::Result;
use crate::plan::plan;
use crate::probe::Probe;
use crate::residency::plan::{ResidencyOptions, ResidencyPlan};
use crate::residency::record::RoutingRecorder;
use crate::residency::{self, Residency, StreamStats};
use crate::self_draft::{Form, SelfDraft, SelfDraftSpec};
use crate::session::Session;
use crate::source::OpenedModel;
use crate::weight_only::WeightOnly;
use crate::weights::Weights;

/// Choices made when a model is loaded.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Tokens one forward call takes at most (prefill chunk); sizes every context's buffers.
    pub max_batch: usize,
    /// Families to quantize while loading (none by default: weights run as stored).
    pub weights: Option<WeightOnly>,
    /// Where weights live: the memory budget and the residency mode.
    pub residency: ResidencyOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { max_batch: 128, weights: None, residency: ResidencyOptions::default() }
    }
}

/// gpt-oss loaded on a backend: weights, RoPE table and the chosen kernels.
pub struct GptOss<B: Backend> {
    pub(crate) backend: B,
    pub(crate) config: GptOssConfig,
    pub(crate) weights: Weights<B::Buffer>,
    /// What streams from disk while running (`layered`, `experts`), and the plan behind it.
    pub(crate) residency: Residency<B::Buffer>,
    plan: ResidencyPlan,
    /// How the weights are stored once loaded (the KV cache's element type aside).
    formats: Formats,
    pub(crate) rope: Rope<B::Buffer>,
    max_batch: usize,
    kernels: Vec<KernelChoice>,
    pub(crate) probe: Option<Probe>,
    /// `--record-routing`: every step's routed experts written to a trace.
    pub(crate) routing: Option<RoutingRecorder>,
    /// Cheaper forms of the model that draft for it (`self_draft`), sharing its experts.
    pub(crate) drafts: Vec<SelfDraft<B::Buffer>>,
}

impl<B: Backend> GptOss<B> {
    pub fn load(backend: B, model: &OpenedModel, opts: LoadOptions) -> Result<Self> {
        Self::load_with_progress(backend, model, opts, &mut |_, _| {})
    }

    /// As `load`, telling `progress` (bytes loaded, bytes in all) as weights arrive.
    pub fn load_with_progress(
        mut backend: B,
        model: &OpenedModel,
        opts: LoadOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let max_batch = opts.max_batch.clamp(1, model.config.max_position_embeddings);
        let residency_plan = Self::plan_residency(&backend, model, &opts)?;
        let (weights, residency) = residency::load(&mut backend, model, &residency_plan, opts.weights, max_batch, progress)?;
        Self::assemble(backend, model, weights, residency, residency_plan, max_batch)
    }

    /// As `load_with_progress`, with the routed experts computed by `experts_on` (the CPU,
    /// beside a GPU: `--cpu-experts`) from the model as opened, and the rest on `backend`.
    /// The memory budget and residency modes are for one backend's weights: they are refused.
    pub fn load_with_experts_on<C: Backend + Send + 'static>(
        mut backend: B,
        experts_on: C,
        model: &OpenedModel,
        opts: LoadOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self>
    where
        C::Buffer: Send,
    {
        let r = &opts.residency;
        if r.budget.is_some() || !matches!(r.offload, Offload::Auto | Offload::None) {
            return Err(crate::error::ModelError::Residency(
                "the experts on a second backend stay in host memory: a memory budget or an offload mode does not combine with it".into(),
            ));
        }
        let max_batch = opts.max_batch.clamp(1, model.config.max_position_embeddings);
        let plan_opts = LoadOptions { residency: ResidencyOptions { offload: Offload::None, ..*r }, ..opts };
        let residency_plan = Self::plan_residency(&backend, model, &plan_opts)?;
        let (weights, residency) = residency::load_elsewhere(&mut backend, experts_on, model, opts.weights, max_batch, progress)?;
        Self::assemble(backend, model, weights, residency, residency_plan, max_batch)
    }

    /// A loaded model from its weights: kernels chosen, the RoPE table made.
    fn assemble(
        mut backend: B,
        model: &OpenedModel,
        weights: Weights<B::Buffer>,
        residency: Residency<B::Buffer>,
        residency_plan: ResidencyPlan,
        max_batch: usize,
    ) -> Result<Self> {
        let c = model.config.clone();
        let formats = match weights.layers.first() {
            Some(l0) => Formats {
                embedding: weights.embed.format,
                attention: l0.q.format,
                router: l0.router.format,
                experts: WeightFormat::Mxfp4,
                unembedding: weights.unembed.format,
                vector_bytes: 4,
                kv: DType::Bf16,
            },
            // Streamed layers run as stored.
            None => {
                Formats { embedding: weights.embed.format, unembedding: weights.unembed.format, vector_bytes: 4, ..stored_formats(model) }
            }
        };
        // The expert pool is one stack of `slots` experts: the backend's scratch is sized for it.
        let expert_matrices = residency_plan.expert_matrices(c.num_local_experts);
        let kernels = backend.prepare(&plan::<B::Buffer>(&c, &formats, &[], max_batch, expert_matrices))?;

        let table = c.rope().table()?;
        let inv_freq: Vec<u8> = table.inv_freq.iter().flat_map(|f| f.to_le_bytes()).collect();
        let mut inv = backend.alloc(DType::F32, table.inv_freq.len())?;
        backend.write(&mut inv, 0, &inv_freq)?;
        let rope = Rope { inv_freq: inv, concentration: table.concentration };
        Ok(GptOss {
            backend,
            config: c,
            weights,
            residency,
            plan: residency_plan,
            formats,
            rope,
            max_batch,
            kernels,
            probe: None,
            routing: None,
            drafts: Vec::new(),
        })
    }

    /// The residency plan a load of `model` with `opts` on `backend` would follow (refused as
    /// the load would be), for printing before loading.
    pub fn plan_residency(backend: &B, model: &OpenedModel, opts: &LoadOptions) -> Result<ResidencyPlan> {
        ResidencyPlan::new(model, &opts.residency, opts.weights, backend.copies_host_bytes(), backend.memory_available())
    }

    /// A new, empty context with its own KV cache.
    pub fn new_context(&mut self, opts: ContextOptions) -> Result<Context<B::Buffer>> {
        let offload = matches!(self.residency, Residency::Experts(_));
        Context::new(&mut self.backend, &self.config, self.max_batch, opts, Form::Full, offload)
    }

    /// A new, empty context whose forward passes run the self-draft `spec` (added to the model
    /// on first use: see `self_draft`). Its KV cache is its own: the draft's attention
    /// weights differ from the model's.
    pub fn new_self_draft_context(&mut self, spec: SelfDraftSpec, opts: ContextOptions) -> Result<Context<B::Buffer>> {
        let draft = self.self_draft(spec)?;
        let offload = matches!(self.residency, Residency::Experts(_));
        Context::new(&mut self.backend, &self.config, self.max_batch, opts, Form::Draft(draft), offload)
    }

    /// Chooses kernels again when the newest self-draft brings formats the plan lacked (a
    /// backend prepares afresh: done before the draft's first forward, never on a plan that
    /// did not change).
    pub(crate) fn prepare_for_new_draft(&mut self) -> Result<()> {
        let (c, f, d) = (&self.config, &self.formats, &self.drafts);
        let experts = self.plan.expert_matrices(c.num_local_experts);
        let before = plan(c, f, &d[..d.len().saturating_sub(1)], self.max_batch, experts);
        let after = plan(c, f, d, self.max_batch, experts);
        if after != before {
            self.kernels = self.backend.prepare(&after)?;
        }
        Ok(())
    }

    /// Where the weights live.
    pub fn residency_plan(&self) -> &ResidencyPlan {
        &self.plan
    }

    /// What streaming from disk has done since the load.
    pub fn stream_stats(&self) -> StreamStats {
        self.residency.stats()
    }

    /// Writes every following step's routed experts to a routing trace at `path`.
    pub fn record_routing(&mut self, path: &Path, model_name: &str) -> Result<()> {
        self.routing = Some(RoutingRecorder::create(path, model_name, &self.config)?);
        Ok(())
    }

    /// The model and a context together: what the generator drives.
    pub fn session<'a>(&'a mut self, ctx: &'a mut Context<B::Buffer>) -> Session<'a, B> {
        Session { model: self, ctx }
    }

    pub fn config(&self) -> &GptOssConfig {
        &self.config
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Tokens one forward call takes at most.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The kernel chosen for every op of this model.
    pub fn kernels(&self) -> &[KernelChoice] {
        &self.kernels
    }

    /// How the loaded weights are stored (and a cache of `kv` elements), for byte accounting.
    pub fn formats(&self, kv: DType) -> Formats {
        Formats { kv, ..self.formats }
    }

    /// Copies logits row `row` (of the last forward's `logits_rows`) to the host.
    pub fn logits(&mut self, ctx: &Context<B::Buffer>, row: usize, out: &mut [f32]) -> gptoss_engine::Result<()> {
        let vocab = self.config.vocab_size;
        if row >= ctx.logits_rows || out.len() != vocab {
            return Err(EngineError::invalid(format!(
                "logits row {row} of {} (buffer of {} for a vocabulary of {vocab})",
                ctx.logits_rows,
                out.len()
            )));
        }
        self.backend.read(&ctx.act.logits, row * vocab, bytemuck::cast_slice_mut(out))
    }

    /// Samples from logits row `row` with the uniform number `u`.
    pub fn sample(&mut self, ctx: &Context<B::Buffer>, row: usize, params: &SamplingParams, u: f32) -> gptoss_engine::Result<u32> {
        if row >= ctx.logits_rows {
            return Err(EngineError::invalid(format!(
                "sample: row {row} but the last forward produced {} rows of logits",
                ctx.logits_rows
            )));
        }
        self.backend.sample(SampleArgs { logits: &ctx.act.logits, row, vocab: self.config.vocab_size, params, u })
    }
}
