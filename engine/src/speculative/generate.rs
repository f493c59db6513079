//! Generation with speculation: the draft proposes up to `k` tokens, the target runs the last
//! token and the proposal as one forward (the prefill path: `k + 1` rows of logits), keeps the
//! accepted prefix plus one token of its own, and rolls its KV cache back past the first
//! rejected proposal (the sliding-window rings included: `KvCache::rollback`).
//!
//! Same contract as `generator::generate`: stop tokens, a token budget, a streaming callback,
//! and afterwards the cache holds the prompt and every emitted token but the last.

use std::time::Instant;

use crate::error::{EngineError, Result};
use crate::generator::{GenerateOptions, GenerationStats, StopReason, check_finite_logits, check_request};
use crate::model::CausalLm;
use crate::prefill::{Logits, prefill};
use crate::sampling::Rng;

use super::accept::{Sampler, Verdict, verify_greedy};
use super::choose_k::{KChooser, Speculate};
use super::draft::{Draft, Proposal};
use super::stats::SpeculationStats;

/// Checks that `draft` can draft for `target` before any work: a draft model with another
/// vocabulary proposes ids that mean other things (or do not exist).
pub fn check_draft(target: &dyn CausalLm, draft: &dyn Draft) -> Result<()> {
    match draft.vocab_size() {
        Some(v) if v != target.vocab_size() => Err(EngineError::invalid(format!(
            "draft {} has a vocabulary of {v} tokens, the target {}: a draft must share the target's tokenizer",
            draft.name(),
            target.vocab_size()
        ))),
        _ => Ok(()),
    }
}

/// Runs `prompt` through `target` after the tokens `cached` it already holds (its
/// `position()` of them; the draft sees the whole sequence), then generates up to
/// `opts.max_tokens` tokens with `draft` proposing `speculate` tokens per step, calling
/// `on_token` with each (false stops). With greedy sampling the tokens are those of
/// `generate`; otherwise they are distributed as its are. As `generate`, stops with
/// `NonFiniteLogits` instead of sampling or verifying from logits that are not finite.
pub fn generate_speculative(
    target: &mut dyn CausalLm,
    draft: &mut dyn Draft,
    cached: &[u32],
    prompt: &[u32],
    opts: &GenerateOptions,
    speculate: Speculate,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<(GenerationStats, SpeculationStats)> {
    opts.sampling.validate()?;
    check_request(prompt, opts.max_tokens, target.vocab_size(), target.position(), target.max_context())?;
    if cached.len() != target.position() {
        return Err(EngineError::invalid(format!(
            "speculation needs the tokens in the cache: {} given for a cache of {}",
            cached.len(),
            target.position()
        )));
    }
    if speculate.max() == 0 {
        return Err(EngineError::invalid("speculate: at least 1 token per step"));
    }
    check_draft(target, draft)?;

    let mut stats = SpeculationStats::new(draft.name());
    let mut chooser = KChooser::new(speculate);
    let mut history: Vec<u32> = Vec::with_capacity(cached.len() + prompt.len() + opts.max_tokens);
    history.extend_from_slice(cached);
    history.extend_from_slice(prompt);
    let mut proposal = Proposal::default();
    let mut sampler = Sampler::default();
    let mut row = vec![0f32; target.vocab_size()];
    let mut rng = Rng::new(opts.seed);

    let start = Instant::now();
    prefill(target, prompt, Logits::Last)?;
    let prefill_time = start.elapsed();
    check_finite_logits(target, 0, &mut row)?;
    let first = target.sample(0, &opts.sampling, rng.next_unit())?;
    let ttft = start.elapsed();
    let decode_start = Instant::now();
    history.push(first);
    // Tokens of `history` not yet passed to `on_token`, from `emit_from` on.
    let mut emit_from = history.len() - 1;
    let mut generated = 0;
    let stop = 'generation: loop {
        for i in emit_from..history.len() {
            let token = history[i];
            generated += 1;
            let stop = if !on_token(token) {
                Some(StopReason::Callback)
            } else if opts.stop_tokens.contains(&token) {
                Some(StopReason::StopToken(token))
            } else if generated == opts.max_tokens {
                Some(StopReason::MaxTokens)
            } else {
                None
            };
            if let Some(stop) = stop {
                // The cache keeps what plain decoding would have fed back: all but this token.
                target.rollback(i)?;
                history.truncate(i + 1);
                break 'generation stop;
            }
        }
        emit_from = history.len();

        // The cache holds all of `history` but its last token; the step runs that token and
        // the proposal. Never more tokens than are still wanted, than one forward takes, or
        // than the context has room for.
        let room = target.max_context().saturating_sub(history.len());
        let k = chooser.next(&stats).min(opts.max_tokens - generated - 1).min(target.max_batch().saturating_sub(1)).min(room);
        let draft_start = Instant::now();
        if k > 0 {
            draft.propose(&history, k, &opts.sampling, &mut rng, &mut proposal)?;
            proposal.tokens.truncate(k);
        } else {
            proposal.clear();
        }
        let draft_time = draft_start.elapsed();

        let verify_start = Instant::now();
        let before = history.len();
        history.extend_from_slice(&proposal.tokens);
        target.forward(&history[before - 1..], proposal.tokens.len() + 1)?;
        let reads = target.last_step_reads();
        let Verdict { accepted, next } = if opts.sampling.is_greedy() {
            verify_greedy(target, &proposal.tokens, &mut row)?
        } else {
            sampler.verify(target, &proposal, &opts.sampling, &mut rng)?
        };
        history.truncate(before + accepted);
        target.rollback(history.len())?;
        history.push(next);
        stats.record(proposal.tokens.len(), accepted, draft_time, verify_start.elapsed(), reads);
    };
    let generation = GenerationStats {
        prompt_tokens: prompt.len(),
        generated_tokens: generated,
        ttft,
        prefill_time,
        decode_time: decode_start.elapsed(),
        stop,
    };
    Ok((generation, stats))
}
