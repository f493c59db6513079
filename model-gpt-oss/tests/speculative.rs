//! Speculative decoding on real graphs (the reference fixture and synthetic:tiny, CPU): for
//! every draft source and k ∈ {1, 2, 4, 7}, greedy output identical to plain greedy decoding
//! and the KV cache left with the same attended contents — through prompts cut into several
//! chunks and generations that cross the sliding window many times, so that rejected
//! proposals are rolled back out of the rings. The host's copy of the sampling law agrees
//! with the backend's sampler, and speculative sampling draws from the target's law.

use std::path::Path;

use gptoss_engine::speculative::distribution::{distribution, draw};
use gptoss_engine::speculative::{
    Draft, ModelDraft, NgramDraft, OracleDraft, RandomDraft, Speculate, SpeculationStats, generate_speculative,
};
use gptoss_engine::{CausalLm, DType, GenerateOptions, SamplingParams, generate};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_model_gpt_oss::kv_read::AttendedKv;
use gptoss_model_gpt_oss::weight_only::{DEFAULT_FAMILIES, WeightOnly};
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource, SelfDraftSpec, shared_sessions};

const OPTS: ContextOptions = ContextOptions { max_context: 96, kv_dtype: DType::Bf16 };
const BATCH: usize = 8;

fn fixture() -> ModelSource {
    ModelSource::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/fixture"))
}

fn load(source: &ModelSource, weights: Option<WeightOnly>) -> GptOss<CpuBackend> {
    GptOss::load(
        CpuBackend::new(Some(2)).unwrap(),
        &source.open().unwrap(),
        LoadOptions { max_batch: BATCH, weights, ..LoadOptions::default() },
    )
    .unwrap()
}

/// A prompt of 13 ids (two chunks of at most 8) below `vocab`.
fn prompt(vocab: usize) -> Vec<u32> {
    (0..13u64).map(|i| ((i * 7919 + 11) % vocab as u64) as u32).collect()
}

const GREEDY_40: GenerateOptions = GenerateOptions { max_tokens: 40, stop_tokens: Vec::new(), sampling: SamplingParams::GREEDY, seed: 0 };

/// Plain greedy decoding: the tokens and the cache they leave.
fn plain(m: &mut GptOss<CpuBackend>, prompt: &[u32]) -> (Vec<u32>, Vec<AttendedKv>) {
    let mut ctx = m.new_context(OPTS).unwrap();
    let mut out = vec![];
    generate(&mut m.session(&mut ctx), prompt, &GREEDY_40, |t| {
        out.push(t);
        true
    })
    .unwrap();
    (out, m.attended_kv(&ctx).unwrap())
}

/// Every draft source.
#[derive(Clone, Copy, Debug)]
enum Source {
    Ngram,
    SelfDraft(&'static str),
    OtherModel,
    Random,
    Oracle,
}

const SOURCES: [Source; 7] = [
    Source::Ngram,
    Source::SelfDraft("int8"),
    Source::SelfDraft("int4:top2"),
    Source::SelfDraft("native"),
    Source::OtherModel,
    Source::Random,
    Source::Oracle,
];

/// Speculative greedy decoding with `source`: the tokens, the cache they leave, the stats.
fn speculative(
    m: &mut GptOss<CpuBackend>,
    other: &mut GptOss<CpuBackend>,
    source: Source,
    continuation: &[u32],
    prompt: &[u32],
    k: usize,
) -> (Vec<u32>, Vec<AttendedKv>, SpeculationStats) {
    let mut ctx = m.new_context(OPTS).unwrap();
    let vocab = m.config().vocab_size;
    let mut out = vec![];
    let mut run = |target: &mut dyn CausalLm, draft: &mut dyn Draft| {
        generate_speculative(target, draft, &[], prompt, &GREEDY_40, Speculate::Fixed(k), |t| {
            out.push(t);
            true
        })
        .unwrap()
        .1
    };
    let stats = match source {
        Source::Ngram => run(&mut m.session(&mut ctx), &mut NgramDraft::new(2).unwrap()),
        Source::Random => run(&mut m.session(&mut ctx), &mut RandomDraft::new(vocab, 1).unwrap()),
        Source::Oracle => run(&mut m.session(&mut ctx), &mut OracleDraft::new(continuation.to_vec())),
        Source::OtherModel => {
            let mut draft_ctx = other.new_context(OPTS).unwrap();
            let mut draft = ModelDraft::new("other", Box::new(other.session(&mut draft_ctx)), vec![]).unwrap();
            run(&mut m.session(&mut ctx), &mut draft)
        }
        Source::SelfDraft(spec) => {
            let mut draft_ctx = m.new_self_draft_context(spec.parse::<SelfDraftSpec>().unwrap(), OPTS).unwrap();
            let (mut target, draft_lm) = shared_sessions(m, &mut ctx, &mut draft_ctx);
            let mut draft = ModelDraft::new(spec, Box::new(draft_lm), vec![]).unwrap();
            run(&mut target, &mut draft)
        }
    };
    (out, m.attended_kv(&ctx).unwrap(), stats)
}

/// Greedy-exact for every source and k on `target`, `other` drafting as another model.
fn greedy_exact(target: &ModelSource, other: &ModelSource, other_weights: Option<WeightOnly>) {
    let mut m = load(target, None);
    let mut other = load(other, other_weights);
    let window = m.config().sliding_window;
    let prompt = prompt(m.config().vocab_size);
    let (want, want_kv) = plain(&mut m, &prompt);
    assert!(prompt.len() + want.len() > 2 * window + BATCH, "the generation crosses the sliding window");
    let sequence: Vec<u32> = prompt.iter().chain(&want).copied().collect();
    for k in [1, 2, 4, 7] {
        for source in SOURCES {
            let (got, kv, stats) = speculative(&mut m, &mut other, source, &sequence, &prompt, k);
            let what = format!("{target} drafted by {source:?}, k = {k}: {}", stats.summary());
            assert_eq!(got, want, "{what}");
            assert!(kv == want_kv, "{what}: the attended KV cache differs from plain decoding's");
            match source {
                Source::Oracle | Source::SelfDraft("native") => assert_eq!(stats.accepted, stats.proposed, "{what}"),
                // Rejections inside a run of acceptances: rollbacks of 1..k tokens, in the rings too.
                Source::SelfDraft("int8") if k >= 4 => assert!(0 < stats.accepted && stats.accepted < stats.proposed, "{what}"),
                _ => {}
            }
        }
    }
}

#[test]
fn greedy_speculation_is_plain_greedy_on_the_fixture() {
    let int4 = WeightOnly::new(gptoss_engine::WeightFormat::Int4 { group: 32 }, &DEFAULT_FAMILIES).unwrap();
    greedy_exact(&fixture(), &fixture(), Some(int4));
}

#[test]
fn greedy_speculation_is_plain_greedy_on_synthetic_tiny() {
    greedy_exact(&"synthetic:tiny".parse().unwrap(), &"synthetic:tiny@7".parse().unwrap(), None);
}

#[test]
fn the_host_s_sampling_law_is_the_backend_s() {
    // Sampling at u = (i + ½) / N for every i draws each id a number of times within 2 of
    // N · p(id) when p is the law the backend samples from.
    let mut m = load(&fixture(), None);
    let mut ctx = m.new_context(OPTS).unwrap();
    let mut lm = m.session(&mut ctx);
    gptoss_engine::prefill(&mut lm, &prompt(512), gptoss_engine::Logits::Last).unwrap();
    let mut row = vec![0f32; 512];
    lm.logits(0, &mut row).unwrap();
    const N: usize = 20_000;
    for params in [
        SamplingParams::default(),
        SamplingParams { temperature: 0.6, ..Default::default() },
        SamplingParams { top_k: 5, ..Default::default() },
        SamplingParams { top_p: 0.9, ..Default::default() },
        SamplingParams { top_k: 40, top_p: 0.7, temperature: 1.4 },
    ] {
        let (mut p, mut counts) = (vec![], vec![0usize; 512]);
        distribution(&row, &params, &mut vec![], &mut p);
        for i in 0..N {
            counts[lm.sample(0, &params, (i as f32 + 0.5) / N as f32).unwrap() as usize] += 1;
        }
        for (id, (&c, &p)) in counts.iter().zip(&p).enumerate() {
            assert!((c as f64 - N as f64 * p as f64).abs() <= 2.0, "{params:?}: id {id} drawn {c} times for p = {p}");
        }
    }
}

/// The chi-square quantile for `df` degrees of freedom at 1 − 1e-4 (Wilson–Hilferty).
fn chi_square_critical(df: usize) -> f64 {
    let (d, z) = (df as f64, 3.719);
    d * (1.0 - 2.0 / (9.0 * d) + z * (2.0 / (9.0 * d)).sqrt()).powi(3)
}

#[test]
fn speculative_sampling_draws_from_the_fixture_s_law() {
    // Tokens 2 and 3 of generations after a fixed prompt, drafted by the int4 self-draft with
    // k = 2 under top-k 3: their exact joint law, from the target's own distributions, against
    // 3000 seeded generations. Deterministic: the seeds are fixed.
    let mut m = load(&fixture(), None);
    let params = SamplingParams { top_k: 3, ..Default::default() };
    let prompt = [17u32, 300, 4];
    let law = |m: &mut GptOss<CpuBackend>, seq: &[u32]| {
        let mut ctx = m.new_context(OPTS).unwrap();
        let mut lm = m.session(&mut ctx);
        lm.forward(seq, 1).unwrap();
        let mut row = vec![0f32; 512];
        lm.logits(0, &mut row).unwrap();
        let mut p = vec![];
        distribution(&row, &params, &mut vec![], &mut p);
        p
    };
    let mut expected = std::collections::BTreeMap::<(u32, u32), f64>::new();
    let p1 = law(&mut m, &prompt);
    for t1 in (0..512u32).filter(|&t| p1[t as usize] > 0.0) {
        let s1 = [&prompt[..], &[t1]].concat();
        let p2 = law(&mut m, &s1);
        for t2 in (0..512u32).filter(|&t| p2[t as usize] > 0.0) {
            let p3 = law(&mut m, &[&s1[..], &[t2]].concat());
            for t3 in (0..512u32).filter(|&t| p3[t as usize] > 0.0) {
                *expected.entry((t2, t3)).or_default() += p1[t1 as usize] as f64 * p2[t2 as usize] as f64 * p3[t3 as usize] as f64;
            }
        }
    }
    const RUNS: u64 = 3000;
    let mut counts = std::collections::BTreeMap::<(u32, u32), usize>::new();
    let (mut proposed, mut accepted) = (0, 0);
    let mut draft_ctx = m.new_self_draft_context("int4".parse().unwrap(), OPTS).unwrap();
    let mut ctx = m.new_context(OPTS).unwrap();
    for seed in 0..RUNS {
        ctx.rollback(0).unwrap();
        let (mut target, draft_lm) = shared_sessions(&mut m, &mut ctx, &mut draft_ctx);
        let mut draft = ModelDraft::new("self:int4", Box::new(draft_lm), vec![]).unwrap();
        let o = GenerateOptions { max_tokens: 3, stop_tokens: vec![], sampling: params, seed };
        let mut got = vec![];
        let (_, s) = generate_speculative(&mut target, &mut draft, &[], &prompt, &o, Speculate::Fixed(2), |t| {
            got.push(t);
            true
        })
        .unwrap();
        (proposed, accepted) = (proposed + s.proposed, accepted + s.accepted);
        *counts.entry((got[1], got[2])).or_default() += 1;
    }
    assert!(counts.keys().all(|c| expected.contains_key(c)), "a pair outside the target's law was drawn");
    let chi: f64 =
        expected.iter().map(|(c, &p)| (counts.get(c).copied().unwrap_or(0) as f64 - p * RUNS as f64).powi(2) / (p * RUNS as f64)).sum();
    let critical = chi_square_critical(expected.len() - 1);
    assert!(chi < critical, "chi-square {chi:.1} ≥ {critical:.1} over {} pairs", expected.len());
    assert!(0 < accepted && accepted < proposed, "both acceptances and rejections: {accepted} of {proposed}");
    // The draft's own law is not the target's: the test could tell them apart.
    let mut rng = gptoss_engine::Rng::new(1);
    let mut far = std::collections::BTreeMap::<(u32, u32), usize>::new();
    for _ in 0..RUNS {
        let mut seq = prompt.to_vec();
        for _ in 0..3 {
            let mut lm = m.session(&mut draft_ctx);
            lm.rollback(0).unwrap();
            lm.forward(&seq, 1).unwrap();
            let mut row = vec![0f32; 512];
            lm.logits(0, &mut row).unwrap();
            let mut q = vec![];
            distribution(&row, &params, &mut vec![], &mut q);
            seq.push(draw(&q, rng.next_unit()));
        }
        *far.entry((seq[4], seq[5])).or_default() += 1;
    }
    let far_chi: f64 = far
        .iter()
        .map(|(c, &n)| {
            (n as f64 - expected.get(c).copied().unwrap_or(1e-9) * RUNS as f64).powi(2)
                / (expected.get(c).copied().unwrap_or(1e-9) * RUNS as f64)
        })
        .sum();
    assert!(far_chi > critical, "the draft alone gives chi-square {far_chi:.1}");
}
