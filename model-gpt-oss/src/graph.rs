//! The gpt-oss forward pass, written out by hand. Every op runs on the backend; the model only
//! knows shapes. Prefill (many tokens) and decode (one token) take the same path.
//!
//! Per token: embed → per layer [RMSNorm → q,k,v (+bias) → YaRN RoPE → KV cache → attention
//! with sinks (window on sliding layers) → o-proj (+bias) + residual → RMSNorm → router top-k →
//! experts (clamped SwiGLU, down + bias, weighted) + residual] → final RMSNorm → unembedding.
//!
//! The semantics are those of OpenAI's reference (`gpt_oss/torch/model.py`); where it does
//! something a reader would not guess, the call below says so.
//!
//! A decode step over several contexts (`batch`) runs these same ops on its rows, every op
//! batched but the two that depend on the sequence, which take each row's own cache
//! ([`Caches::Rows`]).

use gptoss_engine::{
    AttentionArgs, AttentionRowsArgs, Backend, EmbedArgs, EngineError, KvCache, KvLayer, MatmulArgs, MoeRouteArgs, QkvRopeArgs,
    QkvRopeRowsArgs, Result, RmsNormArgs, Step, StepMode, Swiglu,
};

use crate::config::SWIGLU_ALPHA;
use crate::context::{Activations, Context, OffloadScratch};
use crate::model::GptOss;
use crate::probe::Probed;
use crate::residency;
use crate::self_draft::{Form, FormWeights};
use crate::step_reads::{RecordedStep, RoutingRecord};

/// Where the keys and values of a step's rows live: one sequence's cache (its tokens in order),
/// or each row's own context (a decode step of several sequences, row t one token of the t-th).
pub(crate) enum Caches<'c, 'x, Buf> {
    One(&'c mut KvCache<Buf>),
    Rows(&'c mut [&'x mut Context<Buf>]),
}

impl<B: Backend> GptOss<B> {
    /// Appends `tokens` to `ctx` at its next positions and computes logits for the last
    /// `logits_rows` of them. Ids and room are checked first; on error the cache is unchanged.
    pub fn forward(&mut self, ctx: &mut Context<B::Buffer>, tokens: &[u32], logits_rows: usize) -> Result<()> {
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
        self.run(ctx, tokens, logits_rows)?;
        ctx.kv.advance(tokens.len());
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
        // A step that streams weights or records routing does host work between ops: it runs
        // op by op, never as a recording.
        let replayable = self.probe.is_none() && self.routing.is_none() && ctx.routing.is_none() && self.residency.replayable();
        let step = Step { context: ctx.id, tokens: tokens.len(), logits_rows, replayable };
        if self.backend.begin_step(step)? == StepMode::Run {
            self.ops(
                &mut ctx.act,
                ctx.offload.as_mut(),
                Caches::One(&mut ctx.kv),
                ctx.form,
                ctx.routing.as_mut(),
                tokens.len(),
                logits_rows,
            )?;
            self.backend.end_step()?;
        }
        self.residency.after_step(&mut self.backend, tokens.len())?;
        ctx.logits_rows = logits_rows;
        let (start, top_k) = (ctx.kv.len(), FormWeights::new(&self.drafts, ctx.form).top_k(&self.config));
        if let Some(record) = ctx.routing.as_mut() {
            record.step = Some(RecordedStep { tokens: tokens.len(), top_k, start, logits_rows });
        }
        Ok(())
    }

    /// The ops of one forward step over `n` staged tokens (rows of `act`), whose keys and values
    /// go to and come from `caches`; `offload` is the rows' scratch where the experts stream.
    /// `form` is the model as loaded or one of its self-drafts; `routing`, when given, receives
    /// the experts each layer routed the rows to.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ops(
        &mut self,
        act: &mut Activations<B::Buffer>,
        mut offload: Option<&mut OffloadScratch<B::Buffer>>,
        mut caches: Caches<'_, '_, B::Buffer>,
        form: Form,
        mut routing: Option<&mut RoutingRecord>,
        n: usize,
        logits_rows: usize,
    ) -> Result<()> {
        let c = &self.config;
        // A self-draft context reads its own attention and unembedding and may route to fewer
        // experts; everything else is the model's.
        let top_k = FormWeights::new(&self.drafts, form).top_k(c);
        let (hidden, eps) = (c.hidden_size, c.rms_norm_eps);
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let swiglu = Swiglu { alpha: SWIGLU_ALPHA, limit: c.swiglu_limit };
        let layers = c.num_hidden_layers;
        let (b, w, a) = (&mut self.backend, &self.weights, &mut *act);

        // x [n, hidden] = embedding rows
        b.embed(EmbedArgs { table: &w.embed, tokens: &a.tokens, n, out: &mut a.x })?;
        self.probe_buffer(act, "embeddings", Probed::X, n * hidden)?;

        for l in 0..layers {
            // The layer's weights: resident, or (layered) read now while the next is read ahead.
            self.residency.enter_layer(&mut self.backend, &self.config, l)?;
            let w = residency::layer(&self.weights, &self.residency, l)?;
            let (b, a) = (&mut self.backend, &mut *act);
            let [wq, wk, wv, wo] = FormWeights::new(&self.drafts, form).attention(l, w);
            // h [n, hidden] = RMSNorm(x)
            b.rms_norm(RmsNormArgs { x: &a.x, gain: &w.attn_norm, n, eps, out: &mut a.h })?;
            // q [n, q_heads·d] rotated; k (rotated) and v into the cache at their positions.
            // attn [n, q_heads·d] = softmax([q·kᵀ/√d | sink]) · v over the allowed keys (causal;
            // the last sliding_window positions on sliding layers). The head's learned sink is
            // one more column of the softmax whose value is dropped (model.py's sdpa concatenates
            // S to QK, then keeps W[..., :-1]): it takes probability from the keys, adds no value.
            let (rope, positions) = (&self.rope, &a.positions);
            match &mut caches {
                Caches::One(cache) => {
                    let kv = &mut cache.layers[l];
                    b.qkv_rope(QkvRopeArgs { wq, wk, wv, x: &a.h, n, positions, rope, kv, q_out: &mut a.q })?;
                    b.attention(AttentionArgs { q: &a.q, kv, n, positions, sinks: &w.sinks, scale, out: &mut a.attn })?;
                }
                Caches::Rows(contexts) => {
                    // Row t's cache is its own context's layer l.
                    let mut kv: Vec<&mut KvLayer<B::Buffer>> = contexts.iter_mut().map(|c| &mut c.kv.layers[l]).collect();
                    b.qkv_rope_rows(QkvRopeRowsArgs { wq, wk, wv, x: &a.h, n, positions, rope, kv: &mut kv[..], q_out: &mut a.q })?;
                    let kv: Vec<&KvLayer<B::Buffer>> = contexts.iter().map(|c| &c.kv.layers[l]).collect();
                    b.attention_rows(AttentionRowsArgs { q: &a.q, kv: &kv[..], n, positions, sinks: &w.sinks, scale, out: &mut a.attn })?;
                }
            }
            // x += Wo · attn + bo
            b.matmul(MatmulArgs { w: wo, x: &a.attn, n, out: &mut a.x, accumulate: true })?;
            if self.probe.is_some() {
                self.probe_buffer(act, &format!("layers.{l}.attention_residual"), Probed::X, n * hidden)?;
            }

            let w = residency::layer(&self.weights, &self.residency, l)?;
            let (b, a) = (&mut self.backend, &mut *act);
            // h [n, hidden] = RMSNorm(x)
            b.rms_norm(RmsNormArgs { x: &a.x, gain: &w.mlp_norm, n, eps, out: &mut a.h })?;
            // expert_ids, expert_weights [n, top_k] = top-k of (Wr·h + br), softmax over those k
            // logits only (not over every expert)
            b.moe_route(MoeRouteArgs { router: &w.router, x: &a.h, n, top_k, ids: &mut a.expert_ids, weights: &mut a.expert_weights })?;
            if let Some(record) = routing.as_deref_mut() {
                b.read(&a.expert_ids, 0, bytemuck::cast_slice_mut(record.layer_mut(l, n, top_k)))?;
            }
            if let Some(r) = &mut self.routing {
                r.layer(&mut self.backend, &act.expert_ids, l, n)?;
            }
            // x += Σ_k weight_k · (W2[e_k] · swiglu(W1[e_k] · h + b1) + b2), as model.py's
            // MLPBlock: W1's rows interleave gate and up (row 2j is gate j, row 2j+1 is up j:
            // x[..., ::2] and x[..., 1::2]); the gate is clamped above at the limit only, up on
            // both sides (±limit); swiglu = gate · σ(α · gate) · (up + 1), the `+1` on the
            // linear branch. The bias b2 is inside the weighted sum. The experts are the layer's
            // own, or (experts mode) read into the expert pool as the router chose them.
            let scratch = offload.as_deref_mut();
            residency::moe_experts(&mut self.backend, &self.config, &self.weights, &mut self.residency, act, scratch, l, n, top_k, swiglu)?;
            if self.probe.is_some() {
                self.probe_buffer(act, &format!("layers.{l}.router_ids"), Probed::ExpertIds, n * top_k)?;
                self.probe_buffer(act, &format!("layers.{l}.router_weights"), Probed::ExpertWeights, n * top_k)?;
                self.probe_buffer(act, &format!("layers.{l}.output"), Probed::X, n * hidden)?;
            }
        }

        if let Some(r) = &mut self.routing {
            r.finish_step()?;
        }
        if logits_rows == 0 {
            return Ok(());
        }
        let (b, w, a) = (&mut self.backend, &self.weights, &mut *act);
        let first = n - logits_rows;
        // last [rows, hidden] = RMSNorm(x[first..n])
        b.copy(&a.x, first * hidden, &mut a.h, 0, logits_rows * hidden)?;
        b.rms_norm(RmsNormArgs { x: &a.h, gain: &w.norm, n: logits_rows, eps, out: &mut a.last })?;
        // logits [rows, vocab] = W_U · last
        let unembed = FormWeights::new(&self.drafts, form).unembed(w);
        b.matmul(MatmulArgs { w: unembed, x: &a.last, n: logits_rows, out: &mut a.logits, accumulate: false })?;
        self.probe_buffer(act, "final_norm", Probed::Last, logits_rows * hidden)?;
        self.probe_buffer(act, "logits", Probed::Logits, logits_rows * self.config.vocab_size)?;
        Ok(())
    }
}
