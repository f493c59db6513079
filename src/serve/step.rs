//! The model calls the scheduler makes: a prefill chunk of one sequence, and a decode step over
//! every running sequence. These are the only places the server touches the model.
//!
//! [`decode`] runs all running sequences' next tokens in one forward (`Model::forward_rows`: the
//! dense weights read once for all rows, attention over each row's own cache). A row's result
//! depends only on that row (its context, token, sampling parameters and uniform number), never
//! on the other rows: on the CPU its logits equal, bit for bit, those of a forward of its context
//! alone (`model-gpt-oss/src/batch.rs` says when that holds on CUDA).

use gptoss::{Batch, Context, Model, Result};
use gptoss_engine::{CausalLm, SamplingParams};

/// How a row's next token is chosen.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    pub sampling: SamplingParams,
    /// The uniform number the sampler uses, drawn from the sequence's own seeded source.
    pub u: f32,
    /// Report the chosen token's log-probability and this many alternatives.
    pub top_logprobs: Option<usize>,
}

/// One running sequence's part of a decode step.
pub struct DecodeRow<'a> {
    /// The sequence's slot: its KV cache and activations.
    pub ctx: &'a mut Context,
    /// The token sampled last, appended at the context's next position.
    pub token: u32,
    pub draw: Draw,
}

/// A sampled token.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    pub token: u32,
    pub logprobs: Option<TokenLogprobs>,
}

/// Log-probabilities (natural log, of the model's distribution before temperature and cuts).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprobs {
    /// Of the chosen token.
    pub logprob: f32,
    /// The most likely tokens, most likely first (lowest id first on ties).
    pub top: Vec<(u32, f32)>,
}

/// Appends each row's token to its context and samples each row's next token: one decode step
/// for every running sequence, in forwards of at most `batch.max_rows()` rows. One result per
/// row, in row order: its token, or the error's message. A row that cannot take the step (its
/// context full) fails alone; a forward that fails fails its rows.
pub fn decode(model: &mut Model, batch: &mut Batch, rows: &mut [DecodeRow<'_>], scratch: &mut Vec<f32>) -> Vec<Result<Sampled, String>> {
    let mut results: Vec<Option<Result<Sampled, String>>> =
        rows.iter().map(|r| model.check_decode(r.ctx, r.token).err().map(|e| Err(e.to_string()))).collect();
    let mut ready: Vec<(usize, &mut DecodeRow<'_>)> = rows.iter_mut().enumerate().filter(|(i, _)| results[*i].is_none()).collect();
    for group in ready.chunks_mut(batch.max_rows()) {
        let tokens: Vec<u32> = group.iter().map(|(_, r)| r.token).collect();
        let mut contexts: Vec<&mut Context> = group.iter_mut().map(|(_, r)| &mut *r.ctx).collect();
        let step = model.forward_rows(batch, &mut contexts, &tokens);
        for (row, (i, r)) in group.iter().enumerate() {
            results[*i] = Some(match &step {
                Ok(()) => sample(&mut BatchRow { model, batch, row }, &r.draw, scratch).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            });
        }
    }
    results.into_iter().map(|r| r.expect("every row has a result")).collect()
}

/// Runs `tokens` (a chunk of a prompt) through `ctx` from its current position. With `draw`
/// (the prompt's last chunk) it also computes the last token's logits and samples from them.
pub fn prefill(
    model: &mut Model,
    ctx: &mut Context,
    tokens: &[u32],
    draw: Option<&Draw>,
    scratch: &mut Vec<f32>,
) -> Result<Option<Sampled>> {
    let mut lm = model.session(ctx)?;
    lm.forward(tokens, usize::from(draw.is_some()))?;
    draw.map(|draw| sample(lm.as_mut(), draw, scratch)).transpose()
}

/// Empties a context for a new sequence.
pub fn reset(model: &mut Model, ctx: &mut Context) -> Result<()> {
    Ok(model.session(ctx)?.rollback(0)?)
}

/// Tokens one prefill forward takes at most for `ctx` (the generator's chunk, so a prompt is
/// cut at the same places as in `gptoss generate`).
pub fn prefill_chunk(model: &mut Model, ctx: &mut Context) -> Result<usize> {
    Ok(model.session(ctx)?.max_batch())
}

/// One row of logits on the device: what sampling reads.
trait LogitsRow {
    fn vocab(&self) -> usize;
    fn read(&mut self, out: &mut [f32]) -> Result<()>;
    fn pick(&mut self, params: &SamplingParams, u: f32) -> Result<u32>;
}

/// The only row of a single-context forward.
impl LogitsRow for dyn CausalLm + '_ {
    fn vocab(&self) -> usize {
        self.vocab_size()
    }
    fn read(&mut self, out: &mut [f32]) -> Result<()> {
        Ok(self.logits(0, out)?)
    }
    fn pick(&mut self, params: &SamplingParams, u: f32) -> Result<u32> {
        Ok(self.sample(0, params, u)?)
    }
}

/// Row `row` of the last decode step.
struct BatchRow<'a> {
    model: &'a mut Model,
    batch: &'a Batch,
    row: usize,
}

impl LogitsRow for BatchRow<'_> {
    fn vocab(&self) -> usize {
        self.model.config().vocab_size
    }
    fn read(&mut self, out: &mut [f32]) -> Result<()> {
        self.model.batch_logits(self.batch, self.row, out)
    }
    fn pick(&mut self, params: &SamplingParams, u: f32) -> Result<u32> {
        self.model.batch_sample(self.batch, self.row, params, u)
    }
}

/// Samples from `logits`, with log-probabilities when the draw asks for them.
fn sample(logits: &mut (impl LogitsRow + ?Sized), draw: &Draw, scratch: &mut Vec<f32>) -> Result<Sampled> {
    let Some(top) = draw.top_logprobs else {
        return Ok(Sampled { token: logits.pick(&draw.sampling, draw.u)?, logprobs: None });
    };
    scratch.resize(logits.vocab(), 0.0);
    logits.read(scratch)?;
    let token = logits.pick(&draw.sampling, draw.u)?;
    Ok(Sampled { token, logprobs: Some(logprobs(scratch, token, top)) })
}

/// The log-softmax of `logits` at `token`, and the `top` most likely tokens.
pub fn logprobs(logits: &[f32], token: u32, top: usize) -> TokenLogprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = f64::from(max) + sum.ln();
    let lp = |l: f32| (f64::from(l) - log_z) as f32;
    // Keep the best `top` in a small sorted list: one pass over the vocabulary.
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        for (id, &l) in logits.iter().enumerate() {
            if best.len() == top && best.last().is_some_and(|&(_, worst)| l <= worst) {
                continue;
            }
            let at = best.partition_point(|&(_, b)| b >= l);
            best.insert(at, (id as u32, l));
            best.truncate(top);
        }
    }
    TokenLogprobs {
        logprob: logits.get(token as usize).map_or(f32::NEG_INFINITY, |&l| lp(l)),
        top: best.into_iter().map(|(id, l)| (id, lp(l))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gptoss::{BackendKind, RuntimeOptions};
    use gptoss_engine::DType;
    use gptoss_model_gpt_oss::{ContextOptions, LoadOptions, ModelSource};

    const GREEDY: Draw = Draw { sampling: SamplingParams::GREEDY, u: 0.0, top_logprobs: Some(3) };

    /// synthetic:tiny on the CPU, forwards of at most 2 tokens, contexts of 8.
    fn model() -> (Model, ContextOptions) {
        let opts = RuntimeOptions {
            backend: BackendKind::Cpu,
            threads: Some(1),
            load: LoadOptions { max_batch: 2, ..LoadOptions::default() },
            context: ContextOptions { max_context: 8, kv_dtype: DType::Bf16 },
            ..Default::default()
        };
        let model = Model::load(&"synthetic:tiny".parse::<ModelSource>().unwrap().open().unwrap(), &opts, &mut |_, _| {}).unwrap();
        (model, opts.context)
    }

    /// A context holding `prompt`.
    fn prefilled(model: &mut Model, opts: ContextOptions, prompt: &[u32]) -> Context {
        let mut ctx = model.new_context(opts).unwrap();
        for chunk in prompt.chunks(2) {
            prefill(model, &mut ctx, chunk, None, &mut Vec::new()).unwrap();
        }
        ctx
    }

    #[test]
    fn a_decode_step_gives_each_row_what_it_gives_alone_and_a_full_context_fails_alone() {
        let (mut model, opts) = model();
        let prompts: [&[u32]; 4] = [&[1, 2, 3], &[4, 5, 6, 7, 8, 9, 10, 11], &[12], &[13, 14, 15, 16, 17]];
        let solo: Vec<Sampled> = [0, 2, 3]
            .iter()
            .map(|&i| {
                let mut ctx = prefilled(&mut model, opts, prompts[i]);
                let mut batch = model.new_batch(1).unwrap();
                let mut row = [DecodeRow { ctx: &mut ctx, token: 7, draw: GREEDY }];
                decode(&mut model, &mut batch, &mut row, &mut Vec::new()).remove(0).unwrap()
            })
            .collect();
        // Four rows in forwards of two; row 1's context is full.
        let mut contexts: Vec<Context> = prompts.iter().map(|p| prefilled(&mut model, opts, p)).collect();
        let mut batch = model.new_batch(2).unwrap();
        let mut rows: Vec<DecodeRow<'_>> = contexts.iter_mut().map(|ctx| DecodeRow { ctx, token: 7, draw: GREEDY }).collect();
        let mut results = decode(&mut model, &mut batch, &mut rows, &mut Vec::new());
        let full = results.remove(1).expect_err("a full context cannot take a step");
        assert!(full.contains("context"), "{full}");
        let together: Vec<Sampled> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(together, solo);
    }

    #[test]
    fn logprobs_are_a_log_softmax_with_the_best_first() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let p = logprobs(&logits, 2, 3);
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        assert!((f64::from(p.logprob) - (2.0 - z.ln())).abs() < 1e-6);
        let ids: Vec<u32> = p.top.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, [1, 3, 2], "ties keep the lower id first");
        assert!(p.top[0].1 > p.top[2].1);
        assert!(logprobs(&logits, 0, 0).top.is_empty());
        assert_eq!(logprobs(&logits, 0, 9).top.len(), 5);
    }
}
