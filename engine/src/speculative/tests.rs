//! The speculation loop against plain generation on small made-up models whose logits are a
//! pure function of the whole prefix (as a transformer's are): greedy output and cache
//! identical for every source and k, the sampled law identical (chi-square), bad input refused.

use super::*;
use crate::error::{EngineError, Result};
use crate::generator::{GenerateOptions, StopReason, generate};
use crate::model::CausalLm;
use crate::sampling::{Rng, SamplingParams};
use crate::synth::mix;

use super::distribution::{distribution, draw};

/// A model over `vocab` ids whose logits after a prefix are a hash of it (seeded), plus
/// `noise` times a second hash: a draft with small noise agrees with its target often.
#[derive(Clone)]
struct Mock {
    vocab: usize,
    seed: u64,
    noise: f32,
    context: usize,
    batch: usize,
    /// The "KV cache": the tokens it holds.
    cache: Vec<u32>,
    rows: Vec<Vec<f32>>,
    forwards: usize,
}

impl Mock {
    fn new(vocab: usize, seed: u64, noise: f32) -> Self {
        Mock { vocab, seed, noise, context: 256, batch: 8, cache: vec![], rows: vec![], forwards: 0 }
    }

    fn logits_after(&self, prefix: &[u32]) -> Vec<f32> {
        let h = prefix.iter().fold(0x5eed_u64, |h, &t| mix(h ^ t as u64));
        let unit = |x: u64| (mix(x) >> 40) as f32 / (1u64 << 24) as f32;
        (0..self.vocab as u64)
            .map(|i| 4.0 * unit(h ^ self.seed.wrapping_mul(31) ^ i) + self.noise * unit(h ^ 0xABCD ^ (i << 32) ^ self.seed))
            .collect()
    }
}

impl CausalLm for Mock {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn max_context(&self) -> usize {
        self.context
    }
    fn max_batch(&self) -> usize {
        self.batch
    }
    fn position(&self) -> usize {
        self.cache.len()
    }
    fn rollback(&mut self, to: usize) -> Result<()> {
        if to > self.cache.len() {
            return Err(EngineError::invalid("rollback beyond the cache"));
        }
        self.cache.truncate(to);
        self.rows.clear();
        Ok(())
    }
    fn forward(&mut self, tokens: &[u32], rows: usize) -> Result<()> {
        assert!(!tokens.is_empty() && tokens.len() <= self.batch && rows <= tokens.len());
        if self.cache.len() + tokens.len() > self.context {
            return Err(EngineError::ContextOverflow { needed: self.cache.len() + tokens.len(), capacity: self.context });
        }
        self.forwards += 1;
        self.cache.extend_from_slice(tokens);
        let len = self.cache.len();
        self.rows = (len - rows..len).map(|end| self.logits_after(&self.cache[..end + 1])).collect();
        Ok(())
    }
    fn logits(&mut self, row: usize, out: &mut [f32]) -> Result<()> {
        out.copy_from_slice(&self.rows[row]);
        Ok(())
    }
    fn sample(&mut self, row: usize, params: &SamplingParams, u: f32) -> Result<u32> {
        let mut p = vec![];
        distribution(&self.rows[row], params, &mut vec![], &mut p);
        Ok(draw(&p, u))
    }
}

fn opts(max_tokens: usize, stop: &[u32], sampling: SamplingParams, seed: u64) -> GenerateOptions {
    GenerateOptions { max_tokens, stop_tokens: stop.to_vec(), sampling, seed }
}

/// Plain generation: (tokens, the cache afterwards, stop reason).
fn plain(target: &Mock, prompt: &[u32], o: &GenerateOptions) -> (Vec<u32>, Vec<u32>, StopReason) {
    let mut m = target.clone();
    let mut out = vec![];
    let s = generate(&mut m, prompt, o, |t| {
        out.push(t);
        true
    })
    .unwrap();
    (out, m.cache, s.stop)
}

fn speculative(
    target: &Mock,
    draft: &mut dyn Draft,
    prompt: &[u32],
    o: &GenerateOptions,
    k: Speculate,
) -> (Vec<u32>, Vec<u32>, SpeculationStats) {
    let mut m = target.clone();
    let mut out = vec![];
    let (g, s) = generate_speculative(&mut m, draft, &[], prompt, o, k, |t| {
        out.push(t);
        true
    })
    .unwrap();
    assert_eq!(g.generated_tokens, out.len());
    (out, m.cache, s)
}

/// Every source the engine has, for a target: (draft, whether it should accept some but not all).
fn drafts<'a>(target: &Mock, continuation: &[u32]) -> Vec<(Box<dyn Draft + 'a>, bool)> {
    vec![
        (Box::new(NgramDraft::new(2).unwrap()), false),
        (Box::new(ModelDraft::new("noisy", Box::new(Mock::new(target.vocab, target.seed, 1.5)), vec![]).unwrap()), true),
        (Box::new(ModelDraft::new("other", Box::new(Mock::new(target.vocab, 99, 0.0)), vec![]).unwrap()), false),
        (Box::new(RandomDraft::new(target.vocab, 3).unwrap()), false),
        (Box::new(OracleDraft::new(continuation.to_vec())), false),
    ]
}

#[test]
fn greedy_speculation_is_plain_greedy_for_every_source_and_k() {
    let target = Mock::new(7, 1, 0.0);
    let prompt = [1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4];
    let o = opts(40, &[], SamplingParams::GREEDY, 0);
    let (want, want_cache, want_stop) = plain(&target, &prompt, &o);
    let sequence: Vec<u32> = prompt.iter().chain(&want).copied().collect();
    for k in [Speculate::Fixed(1), Speculate::Fixed(2), Speculate::Fixed(4), Speculate::Fixed(7), "auto".parse().unwrap()] {
        for (mut draft, partial) in drafts(&target, &sequence) {
            let name = draft.name();
            let (got, cache, stats) = speculative(&target, draft.as_mut(), &prompt, &o, k);
            assert_eq!(got, want, "{name}, k = {k}");
            assert_eq!(cache, want_cache, "{name}, k = {k}: the cache holds what plain decoding fed back");
            assert_eq!(want_stop, StopReason::MaxTokens);
            if name == "oracle" && k != "auto".parse().unwrap() {
                assert_eq!(stats.accepted, stats.proposed, "the oracle is always right");
                assert!(stats.steps < 40, "{stats:?}");
            }
            if partial && k == Speculate::Fixed(4) {
                assert!(0 < stats.accepted && stats.accepted < stats.proposed, "{name}: {}", stats.summary());
            }
        }
    }
}

#[test]
fn stop_tokens_callbacks_and_the_budget_end_a_run_of_accepted_tokens_where_plain_decoding_would() {
    let target = Mock::new(5, 2, 0.0);
    let prompt = [1, 2];
    let base = opts(30, &[], SamplingParams::GREEDY, 0);
    let (all, _, _) = plain(&target, &prompt, &base);
    let sequence: Vec<u32> = prompt.iter().chain(&all).copied().collect();
    // A stop token that first appears a few tokens in, in the middle of an oracle step.
    let stop = all[5];
    let o = opts(30, &[stop], SamplingParams::GREEDY, 0);
    let (want, want_cache, want_stop) = plain(&target, &prompt, &o);
    assert!(want.len() < 30 && want_stop == StopReason::StopToken(stop));
    let (got, cache, _) = speculative(&target, &mut OracleDraft::new(sequence.clone()), &prompt, &o, Speculate::Fixed(4));
    assert_eq!((got, cache), (want, want_cache));
    // The callback asks to stop after 3 tokens.
    let mut m = target.clone();
    let mut n = 0;
    let (g, _) = generate_speculative(&mut m, &mut OracleDraft::new(sequence.clone()), &[], &prompt, &base, Speculate::Fixed(7), |_| {
        n += 1;
        n < 3
    })
    .unwrap();
    assert_eq!((g.generated_tokens, g.stop, m.cache.len()), (3, StopReason::Callback, prompt.len() + 2));
    // The budget: 6 tokens, proposals of 7 clamped.
    let o = opts(6, &[], SamplingParams::GREEDY, 0);
    let (got, cache, _) = speculative(&target, &mut OracleDraft::new(sequence), &prompt, &o, Speculate::Fixed(7));
    assert_eq!((got.as_slice(), cache.len()), (&all[..6], prompt.len() + 5));
}

#[test]
fn k_is_clamped_to_the_context_left_and_the_batch() {
    let mut target = Mock::new(6, 4, 0.0);
    let prompt = [3, 1, 4, 1, 5];
    // Room for the prompt and every sampled token but the last, not one more.
    target.context = prompt.len() + 20 - 1;
    target.batch = 4;
    let o = opts(20, &[], SamplingParams::GREEDY, 0);
    let (want, _, _) = plain(&target, &prompt, &o);
    let sequence: Vec<u32> = prompt.iter().chain(&want).copied().collect();
    let (got, _, stats) = speculative(&target, &mut OracleDraft::new(sequence), &prompt, &o, Speculate::Fixed(7));
    assert_eq!(got, want);
    assert_eq!(stats.by_tokens.len(), 4, "at most max_batch tokens per verification");
}

#[test]
fn continues_a_cache_that_already_holds_tokens() {
    let target = Mock::new(7, 5, 0.0);
    let (head, prompt) = ([6u32, 5, 4, 3], [2u32, 1]);
    let o = opts(12, &[], SamplingParams::GREEDY, 0);
    let mut plain_model = target.clone();
    plain_model.forward(&head, 0).unwrap();
    let mut want = vec![];
    generate(&mut plain_model, &prompt, &o, |t| {
        want.push(t);
        true
    })
    .unwrap();
    let mut m = target.clone();
    m.forward(&head, 0).unwrap();
    let mut draft = ModelDraft::new("noisy", Box::new(Mock::new(7, 5, 1.0)), vec![]).unwrap();
    let mut got = vec![];
    generate_speculative(&mut m, &mut draft, &head, &prompt, &o, Speculate::Fixed(3), |t| {
        got.push(t);
        true
    })
    .unwrap();
    assert_eq!((got, m.cache), (want, plain_model.cache));
    // The tokens in the cache must be given.
    let mut m = target.clone();
    m.forward(&head, 0).unwrap();
    let e = generate_speculative(&mut m, &mut draft, &[], &prompt, &o, Speculate::Fixed(3), |_| true).unwrap_err();
    assert!(e.to_string().contains("0 given for a cache of 4"), "{e}");
}

#[test]
fn a_draft_with_another_vocabulary_is_refused_before_any_work() {
    let mut target = Mock::new(7, 1, 0.0);
    let mut draft = ModelDraft::new("small", Box::new(Mock::new(5, 1, 0.0)), vec![]).unwrap();
    let o = opts(4, &[], SamplingParams::GREEDY, 0);
    let e = generate_speculative(&mut target, &mut draft, &[], &[1, 2], &o, Speculate::Fixed(2), |_| true).unwrap_err();
    assert!(e.to_string().contains("draft small has a vocabulary of 5 tokens, the target 7"), "{e}");
    assert_eq!(target.forwards, 0);
    let e = generate_speculative(&mut target, &mut NgramDraft::new(1).unwrap(), &[], &[1], &o, Speculate::Fixed(0), |_| true).unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
}

#[test]
fn logits_that_are_not_finite_are_never_sampled_from() {
    let mut nan = Mock::new(7, 1, f32::NAN);
    let not_finite = |e: EngineError| assert!(matches!(e, EngineError::NonFiniteLogits { .. }), "{e}");
    for sampling in [SamplingParams::GREEDY, SamplingParams { temperature: 1.0, ..SamplingParams::GREEDY }] {
        let o = opts(4, &[], sampling, 0);
        not_finite(
            generate_speculative(&mut nan, &mut NgramDraft::new(1).unwrap(), &[], &[1, 2], &o, Speculate::Fixed(2), |_| true).unwrap_err(),
        );
        nan.rollback(0).unwrap();
    }
    // Verification checks every row it reads, not only the first token's.
    nan.forward(&[1, 2, 3], 3).unwrap();
    not_finite(accept::verify_greedy(&mut nan, &[2, 3], &mut [0.0; 7]).unwrap_err());
    let proposal = Proposal { tokens: vec![2, 3], probs: vec![] };
    let params = SamplingParams { temperature: 1.0, ..SamplingParams::GREEDY };
    not_finite(accept::Sampler::default().verify(&mut nan, &proposal, &params, &mut Rng::new(1)).unwrap_err());
}

/// The exact probability of each pair of generated tokens 2 and 3 after `prompt`.
fn exact_pairs(target: &Mock, prompt: &[u32], params: &SamplingParams) -> Vec<f64> {
    let v = target.vocab;
    let law = |prefix: &[u32]| {
        let mut p = vec![];
        distribution(&target.logits_after(prefix), params, &mut vec![], &mut p);
        p
    };
    let mut pairs = vec![0.0; v * v];
    let p1 = law(prompt);
    for t1 in 0..v as u32 {
        let with1: Vec<u32> = prompt.iter().copied().chain([t1]).collect();
        let p2 = law(&with1);
        for t2 in 0..v as u32 {
            let with2: Vec<u32> = with1.iter().copied().chain([t2]).collect();
            let p3 = law(&with2);
            for t3 in 0..v {
                pairs[t2 as usize * v + t3] += p1[t1 as usize] as f64 * p2[t2 as usize] as f64 * p3[t3] as f64;
            }
        }
    }
    pairs
}

/// Pearson's statistic of `counts` against `expected` probabilities; cells the law excludes
/// must be empty.
fn chi_square(counts: &[usize], expected: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .zip(expected)
        .map(|(&c, &p)| {
            if p < 1e-12 {
                assert_eq!(c, 0, "a token the target's law excludes was emitted");
                0.0
            } else {
                let e = p * n as f64;
                (c as f64 - e).powi(2) / e
            }
        })
        .sum()
}

#[test]
fn speculative_sampling_draws_from_the_target_s_law() {
    // Tokens 2 and 3 of each generation: decided by the first verification step (k = 2 or 3),
    // through acceptances and rejections alike. 16 cells; the critical value of chi-square
    // with 15 degrees of freedom at p = 1e-4 is 42.6. Seeds are fixed: the test is
    // deterministic.
    let target = Mock::new(4, 7, 0.0);
    let prompt = [1u32, 3, 2];
    const RUNS: u64 = 12_000;
    let cases = [
        (SamplingParams::default(), 2),
        (SamplingParams { temperature: 0.7, ..Default::default() }, 3),
        (SamplingParams { top_k: 3, ..Default::default() }, 2),
        (SamplingParams { top_p: 0.8, temperature: 1.3, ..Default::default() }, 3),
    ];
    for (params, k) in cases {
        let expected = exact_pairs(&target, &prompt, &params);
        for source in ["model", "ngram"] {
            let mut counts = vec![0usize; 16];
            let mut rejected = 0;
            for seed in 0..RUNS {
                let o = opts(3, &[], params, seed);
                let mut draft: Box<dyn Draft> = match source {
                    "model" => Box::new(ModelDraft::new("noisy", Box::new(Mock::new(4, 7, 3.0)), vec![]).unwrap()),
                    _ => Box::new(NgramDraft::new(1).unwrap()),
                };
                let (got, _, stats) = speculative(&target, draft.as_mut(), &prompt, &o, Speculate::Fixed(k));
                counts[got[1] as usize * 4 + got[2] as usize] += 1;
                rejected += stats.proposed - stats.accepted;
            }
            let chi = chi_square(&counts, &expected);
            assert!(chi < 42.6, "{source} {params:?}: chi-square {chi:.1} over {counts:?} against {expected:?}");
            assert!(rejected > RUNS as usize / 10, "{source}: rejections are exercised ({rejected})");
        }
        // The test has power: the draft's own law is far from the target's.
        let draft = Mock::new(4, 7, 3.0);
        let mut far = [0usize; 16];
        let mut rng = Rng::new(1);
        for _ in 0..RUNS {
            let mut seq = prompt.to_vec();
            for _ in 0..3 {
                let mut q = vec![];
                distribution(&draft.logits_after(&seq), &params, &mut vec![], &mut q);
                seq.push(draw(&q, rng.next_unit()));
            }
            far[seq[4] as usize * 4 + seq[5] as usize] += 1;
        }
        let expected_nonzero: Vec<f64> = expected.iter().map(|&p| p.max(1e-9)).collect();
        let far_chi: f64 = far.iter().zip(&expected_nonzero).map(|(&c, &p)| (c as f64 - p * RUNS as f64).powi(2) / (p * RUNS as f64)).sum();
        assert!(far_chi > 200.0, "{params:?}: the draft alone gives chi-square {far_chi:.1}");
    }
}
