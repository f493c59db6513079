//! The model calls the scheduler makes: a prefill chunk of one sequence, and a decode step over
//! every running sequence. These are the only places the server touches the model.
//!
//! [`decode`] is the function the batched path replaces: today it runs one single-token forward
//! per row (each row's context is its own KV cache); with a Backend op for attention over several
//! sequences it becomes one forward over all rows. Its contract already is the batched one: rows
//! in, one result per row out, and a row's result depends only on that row (its context, token,
//! sampling parameters and uniform number), never on the other rows.

use gptoss::{Context, Model, Result};
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
/// for every running sequence. One result per row, in row order.
///
/// This phase runs one forward per row. The batched path replaces this body by one forward over
/// all rows (attention over several sequences, each with its own cache and position); the
/// signature and the row-independence of the results stay.
pub fn decode(model: &mut Model, rows: &mut [DecodeRow<'_>], scratch: &mut Vec<f32>) -> Vec<Result<Sampled>> {
    rows.iter_mut()
        .map(|row| {
            let mut lm = model.session(row.ctx)?;
            lm.forward(std::slice::from_ref(&row.token), 1)?;
            sample(lm.as_mut(), &row.draw, scratch)
        })
        .collect()
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

/// Samples from the last forward's only row of logits.
fn sample(lm: &mut dyn CausalLm, draw: &Draw, scratch: &mut Vec<f32>) -> Result<Sampled> {
    let Some(top) = draw.top_logprobs else {
        return Ok(Sampled { token: lm.sample(0, &draw.sampling, draw.u)?, logprobs: None });
    };
    scratch.resize(lm.vocab_size(), 0.0);
    lm.logits(0, scratch)?;
    let token = lm.sample(0, &draw.sampling, draw.u)?;
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
