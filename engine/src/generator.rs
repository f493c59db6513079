//! Prefill then decode: stop tokens, a token budget, a streaming callback and timings.
//! The decode loop allocates nothing.

use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};
use crate::model::CausalLm;
use crate::prefill::{Logits, prefill};
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

/// Fails unless logits row `row` of the last forward is finite everywhere; `scratch` holds a
/// row (vocab_size floats). A sample from NaN or infinite logits would be an arbitrary id, so
/// every token `generate` samples is checked: one row copied to the host per token, under 1 MB,
/// next to the gigabytes of weights a token of the real models reads.
pub fn check_finite_logits(model: &mut dyn CausalLm, row: usize, scratch: &mut [f32]) -> Result<()> {
    model.logits(row, scratch)?;
    match scratch.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(EngineError::NonFiniteLogits { position: model.position(), index, value: scratch[index] }),
    }
}

/// Runs `prompt` through the model from its current position, then samples up to
/// `max_tokens` tokens, calling `on_token` with each; `on_token` returns false to stop. Stops
/// with `NonFiniteLogits` instead of sampling from logits that are not finite.
pub fn generate(
    model: &mut dyn CausalLm,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationStats> {
    opts.sampling.validate()?;
    check_request(prompt, opts.max_tokens, model.vocab_size(), model.position(), model.max_context())?;

    let mut rng = Rng::new(opts.seed);
    let mut row = vec![0f32; model.vocab_size()];
    let start = Instant::now();
    prefill(model, prompt, Logits::Last)?;
    let prefill_time = start.elapsed();

    check_finite_logits(model, 0, &mut row)?;
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
        check_finite_logits(model, 0, &mut row)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose logits favour `(last token + 1) % vocab`; after the token `poison` its
    /// logits are NaN.
    struct Counter {
        vocab: usize,
        context: usize,
        pos: usize,
        last: u32,
        forwards: Vec<usize>,
        poison: Option<u32>,
    }

    impl CausalLm for Counter {
        fn vocab_size(&self) -> usize {
            self.vocab
        }
        fn max_context(&self) -> usize {
            self.context
        }
        fn max_batch(&self) -> usize {
            4
        }
        fn position(&self) -> usize {
            self.pos
        }
        fn rollback(&mut self, to: usize) -> Result<()> {
            self.pos = to;
            Ok(())
        }
        fn forward(&mut self, tokens: &[u32], _rows: usize) -> Result<()> {
            assert!(tokens.len() <= 4);
            self.pos += tokens.len();
            self.last = *tokens.last().unwrap();
            self.forwards.push(tokens.len());
            Ok(())
        }
        fn logits(&mut self, _row: usize, out: &mut [f32]) -> Result<()> {
            out.fill(0.0);
            out[(self.last as usize + 1) % self.vocab] = if self.poison == Some(self.last) { f32::NAN } else { 10.0 };
            Ok(())
        }
        fn sample(&mut self, _row: usize, p: &SamplingParams, u: f32) -> Result<u32> {
            let next = (self.last + 1) % self.vocab as u32;
            Ok(if p.is_greedy() || u < 0.5 { next } else { (next + 1) % self.vocab as u32 })
        }
    }

    fn model() -> Counter {
        Counter { vocab: 10, context: 32, pos: 0, last: 0, forwards: vec![], poison: None }
    }

    fn opts(max_tokens: usize, stop: &[u32]) -> GenerateOptions {
        GenerateOptions { max_tokens, stop_tokens: stop.to_vec(), sampling: SamplingParams::GREEDY, seed: 0 }
    }

    #[test]
    fn prefill_is_chunked_then_decodes_one_token_at_a_time() {
        let mut m = model();
        let mut out = vec![];
        let s = generate(&mut m, &[1, 2, 3, 4, 5, 6], &opts(3, &[]), |t| {
            out.push(t);
            true
        })
        .unwrap();
        assert_eq!(out, vec![7, 8, 9]);
        assert_eq!(m.forwards, vec![4, 2, 1, 1]);
        assert_eq!((s.prompt_tokens, s.generated_tokens, s.stop), (6, 3, StopReason::MaxTokens));
    }

    #[test]
    fn stops_on_a_stop_token_and_on_request() {
        let mut m = model();
        let mut out = vec![];
        let s = generate(&mut m, &[1], &opts(8, &[4]), |t| {
            out.push(t);
            true
        })
        .unwrap();
        assert_eq!((out.as_slice(), s.stop), (&[2, 3, 4][..], StopReason::StopToken(4)));
        let mut m = model();
        let s = generate(&mut m, &[1], &opts(8, &[]), |t| t != 3).unwrap();
        assert_eq!((s.generated_tokens, s.stop), (2, StopReason::Callback));
    }

    #[test]
    fn bad_requests_fail_before_any_forward() {
        let mut m = model();
        let e = generate(&mut m, &[1, 10], &opts(2, &[]), |_| true).unwrap_err();
        assert!(matches!(e, EngineError::TokenOutOfRange { id: 10, vocab: 10 }), "{e}");
        let e = generate(&mut m, &[], &opts(2, &[]), |_| true).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = generate(&mut m, &[1; 30], &opts(4, &[]), |_| true).unwrap_err();
        assert!(matches!(e, EngineError::ContextOverflow { needed: 33, capacity: 32 }), "{e}");
        let e = generate(&mut m, &[1], &opts(0, &[]), |_| true).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let bad = GenerateOptions { sampling: SamplingParams { top_p: 2.0, ..Default::default() }, ..opts(1, &[]) };
        assert!(generate(&mut m, &[1], &bad, |_| true).is_err());
        assert!(m.forwards.is_empty());
        // Exactly full: the last sampled token is never fed back.
        assert!(generate(&mut m, &[1; 29], &opts(4, &[]), |_| true).is_ok());
    }

    #[test]
    fn logits_that_are_not_finite_stop_generation_with_an_error() {
        let mut m = Counter { poison: Some(3), ..model() };
        let mut out = vec![];
        let e = generate(&mut m, &[1], &opts(8, &[]), |t| {
            out.push(t);
            true
        })
        .unwrap_err();
        // 2 and 3 came from finite logits; the logits after 3 hold a NaN at id 4.
        assert_eq!(out, vec![2, 3]);
        assert!(matches!(e, EngineError::NonFiniteLogits { position: 3, index: 4, .. }), "{e}");
        assert!(e.to_string().contains("logit 4 is NaN"), "{e}");
    }

    #[test]
    fn the_same_seed_gives_the_same_tokens() {
        let run = |seed| {
            let mut m = model();
            let o = GenerateOptions { sampling: SamplingParams::default(), seed, ..opts(16, &[]) };
            let mut out = vec![];
            generate(&mut m, &[1], &o, |t| {
                out.push(t);
                true
            })
            .unwrap();
            out
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
