//! Prefill then decode: stop tokens, a token budget, a streaming callback and timings.
//! The decode loop allocates nothing.

use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};
use crate::model::CausalLm;
use crate::sampling::{Rng, SamplingParams};

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// Generation ends after one of these is produced (it is passed to the callback).
    pub stop_tokens: Vec<u32>,
    pub sampling: SamplingParams,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    MaxTokens,
    StopToken(u32),
    /// The callback asked to stop.
    Callback,
}

#[derive(Clone, Debug)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// From the call until the first token was sampled (prefill plus one sample).
    pub ttft: Duration,
    pub prefill_time: Duration,
    /// From the first sampled token to the last: `generated_tokens − 1` decode steps.
    pub decode_time: Duration,
    pub stop: StopReason,
}

impl GenerationStats {
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill_time)
    }

    pub fn decode_tok_s(&self) -> f64 {
        rate(self.generated_tokens.saturating_sub(1), self.decode_time)
    }
}

fn rate(tokens: usize, t: Duration) -> f64 {
    if tokens == 0 || t.is_zero() { 0.0 } else { tokens as f64 / t.as_secs_f64() }
}

/// Checks a request before any work: a non-empty prompt of known ids, at least one token to
/// generate, and room in the context for the prompt and every sampled token but the last
/// (which is never fed back). `position` is where the prompt will start.
pub fn check_request(prompt: &[u32], max_tokens: usize, vocab: usize, position: usize, max_context: usize) -> Result<()> {
    if prompt.is_empty() {
        return Err(EngineError::invalid("the prompt is empty: at least one token is needed"));
    }
    if max_tokens == 0 {
        return Err(EngineError::invalid("max tokens must be at least 1"));
    }
    if let Some(&id) = prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(EngineError::TokenOutOfRange { id, vocab });
    }
    let needed = position + prompt.len() + max_tokens - 1;
    if needed > max_context {
        return Err(EngineError::ContextOverflow { needed, capacity: max_context });
    }
    Ok(())
}

/// Runs `prompt` through the model from its current position, then samples up to
/// `max_tokens` tokens, calling `on_token` with each; `on_token` returns false to stop.
pub fn generate(
    model: &mut dyn CausalLm,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationStats> {
    opts.sampling.validate()?;
    check_request(prompt, opts.max_tokens, model.vocab_size(), model.position(), model.max_context())?;

    let mut rng = Rng::new(opts.seed);
    let start = Instant::now();
    let chunks = prompt.len().div_ceil(model.max_batch());
    for (i, chunk) in prompt.chunks(model.max_batch()).enumerate() {
        model.forward(chunk, if i + 1 == chunks { 1 } else { 0 })?;
    }
    let prefill_time = start.elapsed();

    let mut token = model.sample(0, &opts.sampling, rng.next_unit())?;
    let ttft = start.elapsed();
    let mut generated = 1;
    let decode_start = Instant::now();
    let stop = loop {
        if !on_token(token) {
            break StopReason::Callback;
        }
        if opts.stop_tokens.contains(&token) {
            break StopReason::StopToken(token);
        }
        if generated == opts.max_tokens {
            break StopReason::MaxTokens;
        }
        model.forward(std::slice::from_ref(&token), 1)?;
        token = model.sample(0, &opts.sampling, rng.next_unit())?;
        generated += 1;
    };
    Ok(GenerationStats {
        prompt_tokens: prompt.len(),
        generated_tokens: generated,
        ttft,
        prefill_time,
        decode_time: decode_start.elapsed(),
        stop,
    })
}
