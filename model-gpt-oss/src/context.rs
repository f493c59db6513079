//! Contexts: one conversation's KV cache and the activation buffers its forward passes write,
//! allocated once when the context is created so that a forward step allocates nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use gptoss_engine::{Backend, DType, DeviceBuffer, EngineError, KvCache, KvLayerSpec};

use crate::config::GptOssConfig;
use crate::error::Result;

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
pub(crate) struct Activations<Buf> {
    /// u32 [max_batch]: the ids being processed
    pub tokens: Buf,
    /// u32 [max_batch]: their absolute positions
    pub positions: Buf,
    /// f32 [max_batch, hidden]: the residual stream
    pub x: Buf,
    /// f32 [max_batch, hidden]: normalised input of the current block
    pub h: Buf,
    /// f32 [max_batch, q_heads·head_dim]: rotated queries
    pub q: Buf,
    /// f32 [max_batch, q_heads·head_dim]: attention output (heads concatenated)
    pub attn: Buf,
    /// u32 [max_batch, top_k]: routed expert ids
    pub expert_ids: Buf,
    /// f32 [max_batch, top_k]: their weights
    pub expert_weights: Buf,
    /// f32 [max_batch, hidden]: final-normed rows whose logits are wanted
    pub last: Buf,
    /// f32 [max_batch, vocab]
    pub logits: Buf,
}

/// Buffers the `experts` residency mode adds to a context.
pub(crate) struct OffloadScratch<Buf> {
    /// u32 [max_batch, top_k]: the pool slot of each routed expert of a token group
    pub slot_ids: Buf,
    /// f32 [max_batch, hidden]: a token group's normalised input (or, with prefetch, the
    /// residual normalised for the next layer's router)
    pub h: Buf,
    /// f32 [max_batch, hidden]: a token group's residual rows
    pub x: Buf,
    /// f32 [max_batch, top_k]: a token group's expert weights (or the prefetch router's)
    pub weights: Buf,
    /// u32 [top_k]: the experts prefetch expects the next layer to choose
    pub predicted: Buf,
}

/// One conversation's state on the device: its KV cache and the activation buffers its
/// forward passes write. A model serves any number of contexts, one call at a time.
pub struct Context<Buf> {
    /// Unique among the contexts of this process (a backend keys step recordings on it).
    pub(crate) id: u64,
    pub(crate) kv: KvCache<Buf>,
    pub(crate) act: Activations<Buf>,
    /// The `experts` mode's buffers (none in the other modes).
    pub(crate) offload: Option<OffloadScratch<Buf>>,
    /// Rows of logits the last forward produced.
    pub(crate) logits_rows: usize,
    /// Host staging for token ids and positions, sized once (no allocation per step).
    pub(crate) staging: Vec<u8>,
}

static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);

/// An id no other context (or batch, see `batch`) of this process has had.
pub(crate) fn unique_id() -> u64 {
    NEXT_CONTEXT.fetch_add(1, Ordering::Relaxed)
}

impl<Buf: DeviceBuffer> Activations<Buf> {
    /// The buffers of `rows` rows of a model with config `c` on `backend`.
    pub(crate) fn new<B: Backend<Buffer = Buf>>(backend: &mut B, c: &GptOssConfig, rows: usize) -> Result<Self> {
        let (h, qd, k, v) = (c.hidden_size, c.q_dim(), c.num_experts_per_tok, c.vocab_size);
        let mut alloc = |dtype, len| backend.alloc(dtype, len);
        Ok(Activations {
            tokens: alloc(DType::U32, rows)?,
            positions: alloc(DType::U32, rows)?,
            x: alloc(DType::F32, rows * h)?,
            h: alloc(DType::F32, rows * h)?,
            q: alloc(DType::F32, rows * qd)?,
            attn: alloc(DType::F32, rows * qd)?,
            expert_ids: alloc(DType::U32, rows * k)?,
            expert_weights: alloc(DType::F32, rows * k)?,
            last: alloc(DType::F32, rows * h)?,
            logits: alloc(DType::F32, rows * v)?,
        })
    }
}

impl<Buf: DeviceBuffer> OffloadScratch<Buf> {
    /// The scratch of `rows` rows of a model with config `c` whose experts stream.
    pub(crate) fn new<B: Backend<Buffer = Buf>>(backend: &mut B, c: &GptOssConfig, rows: usize) -> Result<Self> {
        let (h, k) = (c.hidden_size, c.num_experts_per_tok);
        let mut alloc = |dtype, len| backend.alloc(dtype, len);
        Ok(OffloadScratch {
            slot_ids: alloc(DType::U32, rows * k)?,
            h: alloc(DType::F32, rows * h)?,
            x: alloc(DType::F32, rows * h)?,
            weights: alloc(DType::F32, rows * k)?,
            predicted: alloc(DType::U32, k)?,
        })
    }
}

impl<Buf: DeviceBuffer> Context<Buf> {
    /// An empty context of a model with config `c` on `backend`, for forward calls of at most
    /// `max_batch` tokens.
    pub(crate) fn new<B: Backend<Buffer = Buf>>(
        backend: &mut B,
        c: &GptOssConfig,
        max_batch: usize,
        opts: ContextOptions,
        offload: bool,
    ) -> Result<Self> {
        if opts.max_context == 0 || opts.max_context > c.max_position_embeddings {
            return Err(EngineError::invalid(format!(
                "context of {} tokens: must be between 1 and the model's {}",
                opts.max_context, c.max_position_embeddings
            ))
            .into());
        }
        let max_batch = max_batch.min(opts.max_context);
        crate::memory::check_context(backend, c, opts.max_context, max_batch, opts.kv_dtype)?;
        let specs: Vec<KvLayerSpec> = (0..c.num_hidden_layers)
            .map(|l| KvLayerSpec { kv_heads: c.num_key_value_heads, head_dim: c.head_dim, window: c.window(l) })
            .collect();
        let kv = KvCache::new(backend, &specs, opts.kv_dtype, opts.max_context, max_batch)?;
        let act = Activations::new(backend, c, max_batch)?;
        let offload = if offload { Some(OffloadScratch::new(backend, c, max_batch)?) } else { None };
        Ok(Context { id: unique_id(), kv, act, offload, logits_rows: 0, staging: vec![0; max_batch * 4] })
    }

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

/// Bytes a context of a model with config `c` takes for forward calls of at most `max_batch`
/// tokens: its KV cache, activations and host staging (and the `experts` mode's buffers when
/// `offload`), as `Context::new` allocates them.
pub fn context_bytes(c: &GptOssConfig, max_batch: usize, opts: ContextOptions, offload: bool) -> u64 {
    let max_batch = max_batch.min(opts.max_context.max(1));
    let (h, qd, k, v) = (c.hidden_size, c.q_dim(), c.num_experts_per_tok, c.vocab_size);
    let kv: usize = (0..c.num_hidden_layers)
        .map(|l| {
            let slots = c.window(l).map_or(opts.max_context, |w| (w + max_batch).min(opts.max_context));
            2 * slots * c.kv_dim() * opts.kv_dtype.size()
        })
        .sum();
    let act = 4 * (2 * max_batch + max_batch * (3 * h + 2 * qd + 2 * k + v));
    let scratch = if offload { 4 * (max_batch * (2 * h + 2 * k) + k) } else { 0 };
    (kv + act + scratch + 4 * max_batch) as u64
}
