//! gpt-oss loaded on a backend: loading (weights, RoPE table, kernel choice), new contexts, and
//! what can be asked of a loaded model. The forward pass itself is in `graph`.

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
        let c = model.config.clone();
        let max_batch = opts.max_batch.clamp(1, c.max_position_embeddings);
        let residency_plan = Self::plan_residency(&backend, model, &opts)?;
        let (weights, residency) = residency::load(&mut backend, model, &residency_plan, opts.weights, max_batch, progress)?;
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
        let expert_matrices = c.num_local_experts.max(residency_plan.slots);
        let kernels = backend.prepare(&plan(&c, &formats, max_batch, expert_matrices))?;

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
        Context::new(&mut self.backend, &self.config, self.max_batch, opts, offload)
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
