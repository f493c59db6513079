//! Timing one configuration: prefill of a prompt, time to first token, and decode after a
//! given depth of context, repeated; all through the `CausalLm` interface, so any backend.

use std::time::Instant;

use gptoss_engine::{CausalLm, EngineError, Logits, Result, Rng, SamplingParams, prefill};

use crate::stats::Spread;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// Tokens prefilled and timed (`ppN`); 0 times decode only.
    pub prompt_tokens: usize,
    /// Tokens decoded and timed (`tgN`).
    pub gen_tokens: usize,
    /// Tokens of context already in the cache before the prompt (`@dN`).
    pub depth: usize,
    pub repetitions: usize,
}

impl Case {
    /// Cache positions the case uses.
    pub fn context_needed(&self) -> usize {
        self.depth + self.prompt_tokens.max(1) + self.gen_tokens
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measured {
    pub pp_tok_s: Option<Spread>,
    pub tg_tok_s: Option<Spread>,
    pub ttft_ms: Option<Spread>,
}

/// Deterministic token ids standing in for text (their values do not change the work).
pub fn synthetic_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_u64() % vocab as u64) as u32).collect()
}

/// Runs `case` on `lm`: per repetition, reset the cache, fill `depth` untimed, prefill the
/// prompt (timed; TTFT includes the first sample), then decode `gen_tokens` greedily (timed).
pub fn measure(lm: &mut dyn CausalLm, case: &Case) -> Result<Measured> {
    if case.context_needed() > lm.max_context() {
        return Err(EngineError::ContextOverflow { needed: case.context_needed(), capacity: lm.max_context() });
    }
    let vocab = lm.vocab_size();
    let context = synthetic_tokens(case.depth, vocab, 1);
    let prompt = synthetic_tokens(case.prompt_tokens.max(1), vocab, 2);
    let (mut pp, mut tg, mut ttft) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..case.repetitions.max(1) {
        lm.rollback(0)?;
        prefill(lm, &context, Logits::None)?;
        let start = Instant::now();
        prefill(lm, &prompt, Logits::Last)?;
        let prefill = start.elapsed().as_secs_f64();
        let mut token = lm.sample(0, &SamplingParams::GREEDY, 0.0)?;
        let first = start.elapsed().as_secs_f64();
        if case.prompt_tokens > 0 {
            pp.push(case.prompt_tokens as f64 / prefill);
            ttft.push(first * 1e3);
        }
        if case.gen_tokens > 0 {
            let start = Instant::now();
            for _ in 0..case.gen_tokens {
                lm.forward(std::slice::from_ref(&token), 1)?;
                token = lm.sample(0, &SamplingParams::GREEDY, 0.0)?;
            }
            tg.push(case.gen_tokens as f64 / start.elapsed().as_secs_f64());
        }
    }
    Ok(Measured { pp_tok_s: Spread::of(&pp), tg_tok_s: Spread::of(&tg), ttft_ms: Spread::of(&ttft) })
}
