//! Decode steps over several contexts at once (continuous batching): the next token of each of
//! R sequences in one forward. Every op runs once over the R rows, so a step reads the dense
//! weights once for all of them and each routed expert once for the rows that chose it; the
//! two ops that depend on the sequence, `qkv_rope` and `attention`, take each row's own cache
//! (`Backend::qkv_rope_rows`, `attention_rows`). The contexts stay what they are, each its own
//! KV cache; a [`Batch`] holds only the activations of R rows.
//!
//! A row's results do not depend on the other rows: every op computes a row alone. On the CPU
//! a row's logits equal, bit for bit, those of a single-token forward of its context; on CUDA
//! they do while the batch stays below `GPTOSS_MMA_FROM` rows (16 by default), where every op
//! runs its GEMV / split-attention form (from that size on, the matmuls and the router and
//! expert projections switch to the tensor-core kernels, which sum in another order;
//! `kernels-cuda/README.md`).

use gptoss_engine::{Backend, DeviceBuffer, EngineError, Result, SampleArgs, SamplingParams, Step, StepMode};

use crate::context::{Activations, Context, OffloadScratch, unique_id};
use crate::graph::Caches;
use crate::model::GptOss;
use crate::residency::Residency;
use crate::self_draft::Form;

/// The activations of a decode step over up to `max_rows` contexts.
pub struct Batch<Buf> {
    act: Activations<Buf>,
    /// The rows' scratch when the model's experts stream (`--offload experts`).
    offload: Option<OffloadScratch<Buf>>,
    max_rows: usize,
    /// Host staging for token ids and positions, sized once.
    staging: Vec<u8>,
    /// The contexts of the last step's rows, in row order.
    rows: Vec<u64>,
    /// What a backend keys its recordings of these steps on: a fresh id whenever the rows'
    /// contexts change, since a recorded step carries its rows' cache addresses.
    key: u64,
    /// Rows of logits the last step produced.
    logits_rows: usize,
}

impl<Buf: DeviceBuffer> Batch<Buf> {
    /// The most contexts one step takes.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }
}

impl<B: Backend> GptOss<B> {
    /// Activations for decode steps of up to `max_rows` contexts at once (at most the tokens
    /// one forward takes, `max_batch`).
    pub fn new_batch(&mut self, max_rows: usize) -> crate::Result<Batch<B::Buffer>> {
        if max_rows == 0 || max_rows > self.max_batch() {
            return Err(EngineError::invalid(format!(
                "a batch of {max_rows} rows: must be between 1 and the {} tokens one forward takes (--batch)",
                self.max_batch()
            ))
            .into());
        }
        let act = Activations::new(&mut self.backend, &self.config, max_rows)?;
        let offload = match self.residency {
            Residency::Experts(_) => Some(OffloadScratch::new(&mut self.backend, &self.config, max_rows)?),
            _ => None,
        };
        Ok(Batch { act, offload, max_rows, staging: vec![0; 4 * max_rows], rows: Vec::new(), key: unique_id(), logits_rows: 0 })
    }

    /// What a decode step checks for each row: a token id within the vocabulary, and room for
    /// one more position in the context.
    pub fn check_decode(&self, ctx: &Context<B::Buffer>, token: u32) -> Result<()> {
        let vocab = self.config.vocab_size;
        if token as usize >= vocab {
            return Err(EngineError::TokenOutOfRange { id: token, vocab });
        }
        ctx.kv.check_append(1)
    }

    /// Appends `tokens[t]` to `contexts[t]` at its next position and computes every row's
    /// logits (row t for context t): one decode step of several sequences in one forward. The
    /// contexts must be of one shape (context length, cache element type). Every row is checked
    /// first; on error no context has advanced.
    pub fn forward_rows(&mut self, batch: &mut Batch<B::Buffer>, contexts: &mut [&mut Context<B::Buffer>], tokens: &[u32]) -> Result<()> {
        let n = contexts.len();
        if n == 0 || n != tokens.len() || n > batch.max_rows {
            return Err(EngineError::invalid(format!(
                "forward_rows: {n} contexts and {} tokens (one each, at least one, at most the batch's {})",
                tokens.len(),
                batch.max_rows
            )));
        }
        let shape = |c: &Context<B::Buffer>| (c.max_context(), c.kv_dtype());
        let first = shape(contexts[0]);
        for (t, (ctx, &token)) in contexts.iter().zip(tokens).enumerate() {
            self.check_decode(ctx, token)?;
            if ctx.form != Form::Full || ctx.routing.is_some() {
                return Err(EngineError::invalid(format!(
                    "forward_rows: row {t}'s context is a self-draft's or records its routing: such a context decodes alone"
                )));
            }
            if shape(ctx) != first {
                return Err(EngineError::invalid(format!(
                    "forward_rows: row {t}'s context holds {} tokens of {}, row 0's {} of {}: one step takes contexts of one shape",
                    ctx.max_context(),
                    ctx.kv_dtype(),
                    first.0,
                    first.1
                )));
            }
        }
        batch.logits_rows = 0;
        for ctx in contexts.iter_mut() {
            ctx.logits_rows = 0;
        }
        self.stage_rows(batch, contexts, tokens)?;
        // As a single context's step: host work between ops (streamed weights, recorded
        // routing, probes) rules out a recording.
        let replayable = self.probe.is_none() && self.routing.is_none() && self.residency.replayable();
        let step = Step { context: batch.key, tokens: n, logits_rows: n, replayable };
        if self.backend.begin_step(step)? == StepMode::Run {
            // The batched rows are the model as loaded (a self-draft decodes alone), none recording routing.
            self.ops(&mut batch.act, batch.offload.as_mut(), Caches::Rows(contexts), Form::Full, None, n, n)?;
            self.backend.end_step()?;
        }
        self.residency.after_step(&mut self.backend, n)?;
        for ctx in contexts.iter_mut() {
            ctx.kv.advance(1);
        }
        batch.logits_rows = n;
        Ok(())
    }

    /// Uploads the rows' token ids and positions (each context's next), and renews the batch's
    /// recording key when the rows are not the last step's contexts.
    fn stage_rows(&mut self, batch: &mut Batch<B::Buffer>, contexts: &[&mut Context<B::Buffer>], tokens: &[u32]) -> Result<()> {
        let n = tokens.len();
        for (i, t) in tokens.iter().enumerate() {
            batch.staging[4 * i..4 * i + 4].copy_from_slice(&t.to_le_bytes());
        }
        self.backend.write(&mut batch.act.tokens, 0, &batch.staging[..4 * n])?;
        for (i, ctx) in contexts.iter().enumerate() {
            batch.staging[4 * i..4 * i + 4].copy_from_slice(&(ctx.position() as u32).to_le_bytes());
        }
        self.backend.write(&mut batch.act.positions, 0, &batch.staging[..4 * n])?;
        if !contexts.iter().map(|c| c.id).eq(batch.rows.iter().copied()) {
            batch.rows.clear();
            batch.rows.extend(contexts.iter().map(|c| c.id));
            batch.key = unique_id();
        }
        Ok(())
    }

    /// Copies logits row `row` (context `row` of the last `forward_rows`) to the host.
    pub fn batch_logits(&mut self, batch: &Batch<B::Buffer>, row: usize, out: &mut [f32]) -> Result<()> {
        let vocab = self.config.vocab_size;
        if row >= batch.logits_rows || out.len() != vocab {
            return Err(EngineError::invalid(format!(
                "logits row {row} of {} (buffer of {} for a vocabulary of {vocab})",
                batch.logits_rows,
                out.len()
            )));
        }
        self.backend.read(&batch.act.logits, row * vocab, bytemuck::cast_slice_mut(out))
    }

    /// Samples from logits row `row` of the last `forward_rows` with the uniform number `u`.
    pub fn batch_sample(&mut self, batch: &Batch<B::Buffer>, row: usize, params: &SamplingParams, u: f32) -> Result<u32> {
        if row >= batch.logits_rows {
            return Err(EngineError::invalid(format!("sample: row {row} but the last step produced {} rows of logits", batch.logits_rows)));
        }
        self.backend.sample(SampleArgs { logits: &batch.act.logits, row, vocab: self.config.vocab_size, params, u })
    }
}
