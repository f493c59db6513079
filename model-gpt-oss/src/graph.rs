//! The gpt-oss forward pass, written out by hand. Every op runs on the backend; the model only
//! knows shapes. Prefill (many tokens) and decode (one token) take the same path.
//!
//! Per token: embed → per layer [RMSNorm → q,k,v (+bias) → YaRN RoPE → KV cache → attention
//! with sinks (window on sliding layers) → o-proj (+bias) + residual → RMSNorm → router top-k →
//! experts (clamped SwiGLU, down + bias, weighted) + residual] → final RMSNorm → unembedding.

use std::sync::atomic::{AtomicU64, Ordering};

use gptoss_engine::{
    Backend, CausalLm, DType, DeviceBuffer, EngineError, KernelChoice, KvCache, KvLayerSpec, ModelPlan, OpCase, OpKind, Rope,
    SamplingParams, Step, StepMode, Swiglu,
};

use crate::accounting::Formats;
use crate::config::{GptOssConfig, SWIGLU_ALPHA};
use crate::error::Result;
use crate::quantization::WeightOnly;
use crate::source::OpenedModel;
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

/// Choices made when a context (a KV cache and its activations) is created.
#[derive(Clone, Copy, Debug)]
pub struct ContextOptions {
    /// Tokens the KV cache holds (at most the model's max_position_embeddings).
    pub max_context: usize,
    /// bf16 (default) or f32 for tight comparisons with f32 references.
    pub kv_dtype: DType,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions { max_context: 4096, kv_dtype: DType::Bf16 }
    }
}

/// Activation buffers, allocated once for `max_batch` tokens (shapes per token row).
struct Activations<Buf> {
    /// u32 [max_batch]: the ids being processed
    tokens: Buf,
    /// u32 [max_batch]: their absolute positions
    positions: Buf,
    /// f32 [max_batch, hidden]: the residual stream
    x: Buf,
    /// f32 [max_batch, hidden]: normalised input of the current block
    h: Buf,
    /// f32 [max_batch, q_heads·head_dim]: rotated queries
    q: Buf,
    /// f32 [max_batch, q_heads·head_dim]: attention output (heads concatenated)
    attn: Buf,
    /// u32 [max_batch, top_k]: routed expert ids
    expert_ids: Buf,
    /// f32 [max_batch, top_k]: their weights
    expert_weights: Buf,
    /// f32 [max_batch, hidden]: final-normed rows whose logits are wanted
    last: Buf,
    /// f32 [max_batch, vocab]
    logits: Buf,
}

/// One conversation's state on the device: its KV cache and the activation buffers its
/// forward passes write. A model serves any number of contexts, one call at a time.
pub struct Context<Buf> {
    /// Unique among the contexts of this process (a backend keys step recordings on it).
    id: u64,
    kv: KvCache<Buf>,
    act: Activations<Buf>,
    /// Rows of logits the last forward produced.
    logits_rows: usize,
    /// Host staging for token ids and positions, sized once (no allocation per step).
    staging: Vec<u8>,
}

impl<Buf: DeviceBuffer> Context<Buf> {
    /// Tokens in the cache; the next token's position.
    pub fn position(&self) -> usize {
        self.kv.len()
    }

    pub fn max_context(&self) -> usize {
        self.kv.max_context()
    }

    pub fn kv_cache_bytes(&self) -> usize {
        self.kv.bytes()
    }

    pub fn kv_dtype(&self) -> DType {
        self.kv.layers[0].dtype()
    }

    /// Forgets the tokens from position `to` on.
    pub fn rollback(&mut self, to: usize) -> gptoss_engine::Result<()> {
        self.logits_rows = 0;
        self.kv.rollback(to)
    }
}

/// Something that watches intermediate results (tests comparing layer by layer). Names:
/// `embeddings`, `layers.L.attention_residual`, `layers.L.router_ids`,
/// `layers.L.router_weights`, `layers.L.output`, `final_norm`, `logits`.
pub type Probe = Box<dyn FnMut(&str, ProbeData) + Send>;

pub enum ProbeData<'a> {
    F32(&'a [f32]),
    U32(&'a [u32]),
}

/// gpt-oss loaded on a backend: weights, RoPE table and the chosen kernels.
pub struct GptOss<B: Backend> {
    backend: B,
    config: GptOssConfig,
    weights: Weights<B::Buffer>,
    rope: Rope<B::Buffer>,
    max_batch: usize,
    kernels: Vec<KernelChoice>,
    probe: Option<Probe>,
}

static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);

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
        let weights = load(&mut backend, model, opts.weights, max_batch, progress)?;
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
        let c = &self.config;
        if opts.max_context == 0 || opts.max_context > c.max_position_embeddings {
            return Err(EngineError::invalid(format!(
                "context of {} tokens: must be between 1 and the model's {}",
                opts.max_context, c.max_position_embeddings
            ))
            .into());
        }
        let max_batch = self.max_batch.min(opts.max_context);
        crate::memory::check_context(&self.backend, c, opts.max_context, max_batch, opts.kv_dtype)?;
        let specs: Vec<KvLayerSpec> = (0..c.num_hidden_layers)
            .map(|l| KvLayerSpec { kv_heads: c.num_key_value_heads, head_dim: c.head_dim, window: c.window(l) })
            .collect();
        let backend = &mut self.backend;
        let kv = KvCache::new(backend, &specs, opts.kv_dtype, opts.max_context, max_batch)?;
        let (h, qd, k, v) = (c.hidden_size, c.q_dim(), c.num_experts_per_tok, c.vocab_size);
        let mut alloc = |dtype, len| backend.alloc(dtype, len);
        let act = Activations {
            tokens: alloc(DType::U32, max_batch)?,
            positions: alloc(DType::U32, max_batch)?,
            x: alloc(DType::F32, max_batch * h)?,
            h: alloc(DType::F32, max_batch * h)?,
            q: alloc(DType::F32, max_batch * qd)?,
            attn: alloc(DType::F32, max_batch * qd)?,
            expert_ids: alloc(DType::U32, max_batch * k)?,
            expert_weights: alloc(DType::F32, max_batch * k)?,
            last: alloc(DType::F32, max_batch * h)?,
            logits: alloc(DType::F32, max_batch * v)?,
        };
        let id = NEXT_CONTEXT.fetch_add(1, Ordering::Relaxed);
        Ok(Context { id, kv, act, logits_rows: 0, staging: vec![0; max_batch * 4] })
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

    /// Installs (or removes) a probe that sees intermediate results. Probing copies buffers to
    /// the host and is meant for tests.
    pub fn set_probe(&mut self, probe: Option<Probe>) {
        self.probe = probe;
    }

    /// Appends `tokens` to `ctx` at its next positions and computes logits for the last
    /// `logits_rows` of them. Ids and room are checked first; on error the cache is unchanged.
    pub fn forward(&mut self, ctx: &mut Context<B::Buffer>, tokens: &[u32], logits_rows: usize) -> gptoss_engine::Result<()> {
        if tokens.is_empty() {
            return Err(EngineError::invalid("forward: no tokens"));
        }
        if logits_rows > tokens.len() {
            return Err(EngineError::invalid(format!("forward: {logits_rows} rows of logits asked for {} tokens", tokens.len())));
        }
        let vocab = self.config.vocab_size;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::TokenOutOfRange { id, vocab });
        }
        ctx.kv.check_append(tokens.len())?;
        ctx.logits_rows = 0;
        self.run(ctx, tokens, logits_rows).map_err(|e| match e {
            crate::error::ModelError::Engine(e) => e,
            other => EngineError::Backend { backend: "model", detail: other.to_string() },
        })?;
        ctx.kv.advance(tokens.len());
        Ok(())
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
        self.backend.sample(&ctx.act.logits, row, self.config.vocab_size, params, u)
    }

    fn probe_f32(&mut self, act: &Activations<B::Buffer>, name: &str, buf: Probed, elems: usize) -> Result<()> {
        let Some(probe) = self.probe.as_mut() else {
            return Ok(());
        };
        let mut bytes = vec![0u8; elems * 4];
        let src = match buf {
            Probed::X => &act.x,
            Probed::Last => &act.last,
            Probed::Logits => &act.logits,
            Probed::ExpertWeights => &act.expert_weights,
            Probed::ExpertIds => &act.expert_ids,
        };
        self.backend.read(src, 0, &mut bytes)?;
        if matches!(buf, Probed::ExpertIds) {
            let v: Vec<u32> = bytes.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
            probe(name, ProbeData::U32(&v));
        } else {
            let v: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            probe(name, ProbeData::F32(&v));
        }
        Ok(())
    }

    /// Uploads ids and positions through the context's preallocated staging area.
    fn stage(&mut self, ctx: &mut Context<B::Buffer>, tokens: &[u32]) -> Result<()> {
        let (n, start) = (tokens.len(), ctx.kv.len());
        for (i, t) in tokens.iter().enumerate() {
            ctx.staging[4 * i..4 * i + 4].copy_from_slice(&t.to_le_bytes());
        }
        self.backend.write(&mut ctx.act.tokens, 0, &ctx.staging[..4 * n])?;
        for i in 0..n {
            ctx.staging[4 * i..4 * i + 4].copy_from_slice(&((start + i) as u32).to_le_bytes());
        }
        self.backend.write(&mut ctx.act.positions, 0, &ctx.staging[..4 * n])?;
        Ok(())
    }

    fn run(&mut self, ctx: &mut Context<B::Buffer>, tokens: &[u32], logits_rows: usize) -> Result<()> {
        self.stage(ctx, tokens)?;
        let step = Step { context: ctx.id, tokens: tokens.len(), logits_rows, replayable: self.probe.is_none() };
        if self.backend.begin_step(step)? == StepMode::Run {
            self.ops(ctx, tokens.len(), logits_rows)?;
            self.backend.end_step()?;
        }
        ctx.logits_rows = logits_rows;
        Ok(())
    }

    /// The ops of one forward step over `n` staged tokens.
    fn ops(&mut self, ctx: &mut Context<B::Buffer>, n: usize, logits_rows: usize) -> Result<()> {
        let c = &self.config;
        let (hidden, top_k, eps) = (c.hidden_size, c.num_experts_per_tok, c.rms_norm_eps);
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let swiglu = Swiglu { alpha: SWIGLU_ALPHA, limit: c.swiglu_limit };
        let layers = c.num_hidden_layers;
        let (b, w, a) = (&mut self.backend, &self.weights, &mut ctx.act);

        // x [n, hidden] = embedding rows
        b.embed(&w.embed, &a.tokens, n, &mut a.x)?;
        self.probe_f32(&ctx.act, "embeddings", Probed::X, n * hidden)?;

        for l in 0..layers {
            let (b, w, a) = (&mut self.backend, &self.weights.layers[l], &mut ctx.act);
            let kv = &mut ctx.kv.layers[l];
            // h [n, hidden] = RMSNorm(x)
            b.rms_norm(&a.x, &w.attn_norm, n, eps, &mut a.h)?;
            // q [n, q_heads·d] rotated; k (rotated) and v into the cache at their positions
            b.qkv_rope(&w.q, &w.k, &w.v, &a.h, n, &a.positions, &self.rope, kv, &mut a.q)?;
            // attn [n, q_heads·d] = softmax(q·kᵀ/√d ∪ sink) · v over the allowed keys
            b.attention(&a.q, kv, n, &a.positions, &w.sinks, scale, &mut a.attn)?;
            // x += Wo · attn + bo
            b.matmul(&w.o, &a.attn, n, &mut a.x, true)?;
            if self.probe.is_some() {
                self.probe_f32(&ctx.act, &format!("layers.{l}.attention_residual"), Probed::X, n * hidden)?;
            }

            let (b, w, a) = (&mut self.backend, &self.weights.layers[l], &mut ctx.act);
            // h [n, hidden] = RMSNorm(x)
            b.rms_norm(&a.x, &w.mlp_norm, n, eps, &mut a.h)?;
            // expert_ids, expert_weights [n, top_k] = top-k of (Wr·h + br), softmax over the k
            b.moe_route(&w.router, &a.h, n, top_k, &mut a.expert_ids, &mut a.expert_weights)?;
            // x += Σ_k weight_k · (W2[e_k] · swiglu(W1[e_k] · h + b1) + b2)
            b.moe_experts(&w.gate_up, &w.down, &a.h, n, &a.expert_ids, &a.expert_weights, top_k, swiglu, &mut a.x)?;
            if self.probe.is_some() {
                self.probe_f32(&ctx.act, &format!("layers.{l}.router_ids"), Probed::ExpertIds, n * top_k)?;
                self.probe_f32(&ctx.act, &format!("layers.{l}.router_weights"), Probed::ExpertWeights, n * top_k)?;
                self.probe_f32(&ctx.act, &format!("layers.{l}.output"), Probed::X, n * hidden)?;
            }
        }

        if logits_rows == 0 {
            return Ok(());
        }
        let (b, w, a) = (&mut self.backend, &self.weights, &mut ctx.act);
        let first = n - logits_rows;
        // last [rows, hidden] = RMSNorm(x[first..n])
        b.copy(&a.x, first * hidden, &mut a.h, 0, logits_rows * hidden)?;
        b.rms_norm(&a.h, &w.norm, logits_rows, eps, &mut a.last)?;
        // logits [rows, vocab] = W_U · last
        b.matmul(&w.unembed, &a.last, logits_rows, &mut a.logits, false)?;
        self.probe_f32(&ctx.act, "final_norm", Probed::Last, logits_rows * hidden)?;
        self.probe_f32(&ctx.act, "logits", Probed::Logits, logits_rows * self.config.vocab_size)?;
        Ok(())
    }
}

/// A model and one of its contexts, borrowed together: a `CausalLm` for the generator.
pub struct Session<'a, B: Backend> {
    pub model: &'a mut GptOss<B>,
    pub ctx: &'a mut Context<B::Buffer>,
}

/// Which activation buffer a probe reads.
#[derive(Clone, Copy)]
enum Probed {
    X,
    Last,
    Logits,
    ExpertIds,
    ExpertWeights,
}

/// The cases the backend must have kernels for, and the sizes of its scratch.
fn plan<Buf>(c: &GptOssConfig, w: &Weights<Buf>, max_batch: usize) -> ModelPlan {
    let l0 = &w.layers[0];
    let mut cases = vec![
        OpCase { op: OpKind::Embed, format: Some(w.embed.format) },
        OpCase { op: OpKind::RmsNorm, format: None },
        OpCase { op: OpKind::QkvRope, format: Some(l0.q.format) },
        OpCase { op: OpKind::Attention, format: None },
        OpCase { op: OpKind::Matmul, format: Some(l0.o.format) },
        OpCase { op: OpKind::Matmul, format: Some(w.unembed.format) },
        OpCase { op: OpKind::MoeRoute, format: Some(l0.router.format) },
        OpCase { op: OpKind::MoeExperts, format: Some(l0.gate_up.format) },
        OpCase { op: OpKind::Sample, format: None },
    ];
    let mut seen = Vec::new();
    cases.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    ModelPlan {
        max_tokens: max_batch,
        hidden: c.hidden_size,
        q_heads: c.num_attention_heads,
        kv_heads: c.num_key_value_heads,
        head_dim: c.head_dim,
        experts: c.num_local_experts,
        top_k: c.num_experts_per_tok,
        intermediate: c.intermediate_size,
        vocab: c.vocab_size,
        cases,
    }
}

impl<B: Backend> CausalLm for Session<'_, B> {
    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }

    fn max_context(&self) -> usize {
        self.ctx.max_context()
    }

    fn max_batch(&self) -> usize {
        self.model.max_batch.min(self.ctx.max_context())
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
