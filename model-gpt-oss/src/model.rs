//! gpt-oss loaded on a backend: loading (weights, RoPE table, kernel choice), new contexts, and
//! what can be asked of a loaded model. The forward pass itself is in `graph`.

use gptoss_engine::{Backend, DType, EngineError, KernelChoice, Rope, SampleArgs, SamplingParams};

use crate::accounting::Formats;
use crate::config::GptOssConfig;
use crate::context::{Context, ContextOptions};
use crate::error::Result;
use crate::plan::plan;
use crate::probe::Probe;
use crate::session::Session;
use crate::source::OpenedModel;
use crate::weight_only::WeightOnly;
use crate::weights::{Weights, load};

/// Choices made when a model is loaded.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Tokens one forward call takes at most (prefill chunk); sizes every context's buffers.
    pub max_batch: usize,
    /// Families to quantize while loading (none by default: weights run as stored).
    pub weights: Option<WeightOnly>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { max_batch: 128, weights: None }
    }
}

/// gpt-oss loaded on a backend: weights, RoPE table and the chosen kernels.
pub struct GptOss<B: Backend> {
    pub(crate) backend: B,
    pub(crate) config: GptOssConfig,
    pub(crate) weights: Weights<B::Buffer>,
    pub(crate) rope: Rope<B::Buffer>,
    max_batch: usize,
    kernels: Vec<KernelChoice>,
    pub(crate) probe: Option<Probe>,
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
        let weights = load(&mut backend, model, opts.weights, progress)?;
        let kernels = backend.prepare(&plan(&c, &weights, max_batch))?;

        let table = c.rope().table()?;
        let inv_freq: Vec<u8> = table.inv_freq.iter().flat_map(|f| f.to_le_bytes()).collect();
        let mut inv = backend.alloc(DType::F32, table.inv_freq.len())?;
        backend.write(&mut inv, 0, &inv_freq)?;
        let rope = Rope { inv_freq: inv, concentration: table.concentration };
        Ok(GptOss { backend, config: c, weights, rope, max_batch, kernels, probe: None })
    }

    /// A new, empty context with its own KV cache.
    pub fn new_context(&mut self, opts: ContextOptions) -> Result<Context<B::Buffer>> {
        Context::new(&mut self.backend, &self.config, self.max_batch, opts)
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
        let l0 = &self.weights.layers[0];
        Formats {
            embedding: self.weights.embed.format,
            attention: l0.q.format,
            router: l0.router.format,
            experts: l0.gate_up.format,
            unembedding: self.weights.unembed.format,
            vector_bytes: 4,
            kv,
        }
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
