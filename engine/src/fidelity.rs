//! Fidelity of one model against a reference on the same token stream: the KL divergence of
//! their next-token distributions, top-1 agreement, and each one's perplexity on the stream.
//! The measure `gptoss eval` reports for a quantized model against the original.

use crate::error::{EngineError, Result};
use crate::model::CausalLm;
use crate::prefill::{Logits, prefill_chunks};

/// What [`compare`] measured, over every position of the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Fidelity {
    pub positions: usize,
    /// Mean and largest `KL(reference ‖ model)` in nats, and where the largest was.
    pub kl_mean: f64,
    pub kl_max: f64,
    pub kl_max_position: usize,
    /// Positions whose most likely next token (lowest id on ties) is the same in both.
    pub top1_agree: usize,
    /// Mean negative log-likelihood (nats) of each next token of the stream, over the
    /// `positions − 1` positions that have one.
    pub nll_model: f64,
    pub nll_reference: f64,
}

impl Fidelity {
    pub fn top1_rate(&self) -> f64 {
        self.top1_agree as f64 / self.positions as f64
    }
    pub fn perplexity_model(&self) -> f64 {
        self.nll_model.exp()
    }
    pub fn perplexity_reference(&self) -> f64 {
        self.nll_reference.exp()
    }
}

/// Runs both models (each from an empty cache) over `tokens` and compares their logits at every
/// position. Both must have the same vocabulary and room for the whole stream.
pub fn compare(model: &mut dyn CausalLm, reference: &mut dyn CausalLm, tokens: &[u32]) -> Result<Fidelity> {
    let vocab = model.vocab_size();
    if reference.vocab_size() != vocab {
        return Err(EngineError::invalid(format!("the model has {vocab} tokens but the reference {}", reference.vocab_size())));
    }
    if tokens.len() < 2 {
        return Err(EngineError::invalid(format!("a stream of {} tokens: at least 2 are needed", tokens.len())));
    }
    model.rollback(0)?;
    reference.rollback(0)?;
    let (mut lm, mut lr) = (vec![0f32; vocab], vec![0f32; vocab]);
    let mut kl = Stats::default();
    let (mut agree, mut nll_m, mut nll_r) = (0, 0.0, 0.0);
    prefill_chunks(model, tokens, Logits::All, |model, start, chunk| {
        // The reference takes the model's chunk in chunks of its own (its batch may be smaller).
        prefill_chunks(reference, chunk, Logits::All, |reference, sub, part| {
            for i in 0..part.len() {
                let pos = start + sub + i;
                model.logits(sub + i, &mut lm)?;
                reference.logits(i, &mut lr)?;
                let (pm, pr) = (log_softmax(&lm), log_softmax(&lr));
                kl.add(pos, pr.iter().zip(&pm).map(|(r, m)| if *r == f64::NEG_INFINITY { 0.0 } else { r.exp() * (r - m) }).sum());
                agree += usize::from(argmax(&lm) == argmax(&lr));
                if let Some(&next) = tokens.get(pos + 1) {
                    nll_m -= pm[next as usize];
                    nll_r -= pr[next as usize];
                }
            }
            Ok::<(), EngineError>(())
        })
    })?;
    let n = tokens.len();
    Ok(Fidelity {
        positions: n,
        kl_mean: kl.sum / n as f64,
        kl_max: kl.max,
        kl_max_position: kl.max_at,
        top1_agree: agree,
        nll_model: nll_m / (n - 1) as f64,
        nll_reference: nll_r / (n - 1) as f64,
    })
}

#[derive(Default)]
struct Stats {
    sum: f64,
    max: f64,
    max_at: usize,
}

impl Stats {
    fn add(&mut self, pos: usize, v: f64) {
        self.sum += v;
        if v > self.max {
            (self.max, self.max_at) = (v, pos);
        }
    }
}

/// `log softmax(x)` in f64.
fn log_softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let lse = max + x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    x.iter().map(|&v| v as f64 - lse).collect()
}

/// Index of the largest value, the lowest on ties.
fn argmax(x: &[f32]) -> usize {
    x.iter().enumerate().fold(0, |best, (i, &v)| if v > x[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::SamplingParams;

    /// A model whose logits at position p are a fixed function of (p, token), scaled.
    struct Toy {
        vocab: usize,
        temperature: f32,
        batch: usize,
        pos: usize,
        rows: Vec<Vec<f32>>,
    }

    impl Toy {
        fn new(temperature: f32) -> Self {
            Toy { vocab: 5, temperature, batch: 3, pos: 0, rows: Vec::new() }
        }
    }

    impl CausalLm for Toy {
        fn vocab_size(&self) -> usize {
            self.vocab
        }
        fn max_context(&self) -> usize {
            64
        }
        fn max_batch(&self) -> usize {
            self.batch
        }
        fn position(&self) -> usize {
            self.pos
        }
        fn rollback(&mut self, to: usize) -> Result<()> {
            self.pos = to;
            Ok(())
        }
        fn forward(&mut self, tokens: &[u32], logits_rows: usize) -> Result<()> {
            self.rows = tokens[tokens.len() - logits_rows..]
                .iter()
                .enumerate()
                .map(|(i, &t)| (0..self.vocab).map(|v| ((v * 7 + t as usize * 3 + self.pos + i) % 5) as f32 / self.temperature).collect())
                .collect();
            self.pos += tokens.len();
            Ok(())
        }
        fn logits(&mut self, row: usize, out: &mut [f32]) -> Result<()> {
            out.copy_from_slice(&self.rows[row]);
            Ok(())
        }
        fn sample(&mut self, _: usize, _: &SamplingParams, _: f32) -> Result<u32> {
            unreachable!("not sampled")
        }
    }

    #[test]
    fn a_model_against_itself_is_exact() {
        let tokens = [1, 4, 2, 2, 0, 3, 1];
        let f = compare(&mut Toy::new(1.0), &mut Toy::new(1.0), &tokens).unwrap();
        assert_eq!((f.positions, f.kl_mean, f.kl_max, f.top1_agree), (7, 0.0, 0.0, 7));
        assert_eq!(f.nll_model, f.nll_reference);
    }

    #[test]
    fn kl_matches_a_direct_computation() {
        let tokens = [1, 4, 2, 2];
        // Doubling the temperature keeps the argmax and spreads the distribution.
        let f = compare(&mut Toy::new(2.0), &mut Toy::new(1.0), &tokens).unwrap();
        assert_eq!(f.top1_agree, 4);
        let p: Vec<f64> = (0..5).map(|v| (v as f64).exp()).collect();
        let q: Vec<f64> = (0..5).map(|v| (v as f64 / 2.0).exp()).collect();
        let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
        let want: f64 = p.iter().zip(&q).map(|(a, b)| a / sp * ((a / sp) / (b / sq)).ln()).sum();
        // Every position's logits are a permutation of 0..5, so every KL is the same.
        assert!((f.kl_mean - want).abs() < 1e-12 && (f.kl_max - want).abs() < 1e-12, "{f:?} vs {want}");
        assert!(f.perplexity_model() > 1.0 && f.perplexity_reference() > 1.0);
    }

    #[test]
    fn models_taking_different_batches_are_compared_position_by_position() {
        let tokens = [1, 4, 2, 2, 0, 3, 1, 0];
        let same = compare(&mut Toy::new(2.0), &mut Toy::new(1.0), &tokens).unwrap();
        for (m, r) in [(3, 2), (2, 3), (8, 1)] {
            let (mut model, mut reference) = (Toy::new(2.0), Toy::new(1.0));
            (model.batch, reference.batch) = (m, r);
            assert_eq!(compare(&mut model, &mut reference, &tokens).unwrap(), same, "batches {m} and {r}");
        }
    }

    #[test]
    fn mismatches_are_errors() {
        let mut other = Toy::new(1.0);
        other.vocab = 6;
        assert!(compare(&mut Toy::new(1.0), &mut other, &[1, 2]).unwrap_err().to_string().contains("6"));
        assert!(compare(&mut Toy::new(1.0), &mut Toy::new(1.0), &[1]).unwrap_err().to_string().contains("at least 2"));
    }
}
