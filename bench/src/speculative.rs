//! Speculative decoding rows: plain greedy decoding and speculative decoding with one draft
//! and one k, measured alternately in the same run (plain, speculative, plain, …), so the
//! speed-up is a ratio taken side by side. Each row also carries what the verification steps
//! read against what one plain decode step reads (both as the model accounts for the steps it
//! ran: the union of the experts the tokens were routed to, not a formula).

use std::time::Instant;

use gptoss_engine::speculative::SpeculationStats;
use gptoss_engine::{CausalLm, GenerationStats, Logits, Result, SamplingParams, prefill};
use serde::{Deserialize, Serialize};

use crate::stats::Spread;

/// One plain greedy run from an empty cache.
pub struct PlainRun {
    pub tok_s: f64,
    /// The prompt and the tokens decoded: the oracle draft's sequence.
    pub sequence: Vec<u32>,
    /// Mean bytes a decode step read, when the model reported them.
    pub step_bytes: Option<f64>,
}

/// Empties `lm`'s cache, prefills `prompt`, then times `gen_tokens` greedy decode steps (as
/// `measure` does).
pub fn plain_run(lm: &mut dyn CausalLm, prompt: &[u32], gen_tokens: usize) -> Result<PlainRun> {
    lm.rollback(0)?;
    prefill(lm, prompt, Logits::Last)?;
    let mut sequence = prompt.to_vec();
    let mut token = lm.sample(0, &SamplingParams::GREEDY, 0.0)?;
    let (mut bytes, mut reported) = (0.0, 0);
    let start = Instant::now();
    for _ in 0..gen_tokens {
        sequence.push(token);
        lm.forward(std::slice::from_ref(&token), 1)?;
        if let Some(r) = lm.last_step_reads() {
            (bytes, reported) = (bytes + r.bytes, reported + 1);
        }
        token = lm.sample(0, &SamplingParams::GREEDY, 0.0)?;
    }
    let tok_s = gen_tokens as f64 / start.elapsed().as_secs_f64();
    sequence.push(token);
    Ok(PlainRun { tok_s, sequence, step_bytes: (reported > 0).then(|| bytes / reported as f64) })
}

/// One speculative configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpecRow {
    pub model: String,
    pub backend: String,
    pub isa_or_device: String,
    pub weights: String,
    pub threads: usize,
    /// `oracle`, `random`, or a `--draft` source.
    pub draft: String,
    pub k: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub repetitions: usize,
    /// Medians over the repetitions.
    pub plain_tok_s: Option<f64>,
    pub tok_s: Option<f64>,
    /// The median of each repetition's speculative over plain tok/s.
    pub speedup: Option<f64>,
    pub plain_spread: Option<Spread>,
    pub spread: Option<Spread>,
    /// Accepted proposals per verification step, and tokens per step (accepted + 1).
    pub mean_accepted: f64,
    pub tokens_per_step: f64,
    /// At each position: accepted among the proposals reached.
    pub acceptance_by_position: Vec<f64>,
    pub draft_ms_per_step: f64,
    pub verify_ms_per_step: f64,
    /// Bytes one plain decode step read, and one verification step (means).
    pub decode_step_bytes: Option<f64>,
    pub verify_step_bytes: Option<f64>,
    /// Verification bytes per token it yielded.
    pub bytes_per_token: Option<f64>,
    /// Distinct experts a verification step touched per layer (a decode step: top-k).
    pub experts_per_layer: Option<f64>,
}

impl SpecRow {
    /// A row with its identifying columns only, the measured ones empty.
    pub fn head(
        model: String,
        backend: String,
        isa_or_device: String,
        weights: String,
        threads: usize,
        prompt_tokens: usize,
        gen_tokens: usize,
    ) -> Self {
        SpecRow {
            model,
            backend,
            isa_or_device,
            weights,
            threads,
            draft: String::new(),
            k: 0,
            prompt_tokens,
            gen_tokens,
            repetitions: 0,
            plain_tok_s: None,
            tok_s: None,
            speedup: None,
            plain_spread: None,
            spread: None,
            mean_accepted: 0.0,
            tokens_per_step: 0.0,
            acceptance_by_position: vec![],
            draft_ms_per_step: 0.0,
            verify_ms_per_step: 0.0,
            decode_step_bytes: None,
            verify_step_bytes: None,
            bytes_per_token: None,
            experts_per_layer: None,
        }
    }
}

/// The repetitions of one configuration as they come.
#[derive(Default)]
pub struct SpecSamples {
    plain: Vec<f64>,
    spec: Vec<f64>,
    ratio: Vec<f64>,
    plain_bytes: Vec<f64>,
    stats: Option<SpeculationStats>,
}

impl SpecSamples {
    /// Adds a repetition: a plain run and the speculative generation that followed it.
    pub fn add(&mut self, plain: &PlainRun, generation: &GenerationStats, stats: &SpeculationStats) {
        let tok_s = generation.decode_tok_s();
        self.plain.push(plain.tok_s);
        self.spec.push(tok_s);
        self.ratio.push(tok_s / plain.tok_s);
        self.plain_bytes.extend(plain.step_bytes);
        match &mut self.stats {
            Some(s) => s.merge(stats),
            None => self.stats = Some(stats.clone()),
        }
    }

    /// The row, with `head` giving the identifying columns.
    pub fn row(&self, head: SpecRow) -> SpecRow {
        let s = self.stats.clone().unwrap_or_default();
        let per_step = |t: std::time::Duration| if s.steps == 0 { 0.0 } else { t.as_secs_f64() * 1e3 / s.steps as f64 };
        let (plain, spec) = (Spread::of(&self.plain), Spread::of(&self.spec));
        SpecRow {
            repetitions: self.spec.len(),
            plain_tok_s: plain.map(|p| p.median),
            tok_s: spec.map(|p| p.median),
            speedup: Spread::of(&self.ratio).map(|r| r.median),
            plain_spread: plain,
            spread: spec,
            mean_accepted: s.mean_accepted(),
            tokens_per_step: s.tokens_per_step(),
            acceptance_by_position: s.acceptance_by_position(),
            draft_ms_per_step: per_step(s.draft_time),
            verify_ms_per_step: per_step(s.verify_time),
            decode_step_bytes: Spread::of(&self.plain_bytes).map(|b| b.median),
            verify_step_bytes: s.bytes_per_step(),
            bytes_per_token: s.bytes_per_step().map(|b| b / s.tokens_per_step()),
            experts_per_layer: s.experts_per_layer(),
            ..head
        }
    }
}

const HEAD: [&str; 14] = [
    "model",
    "weights",
    "draft",
    "k",
    "plain t/s",
    "spec t/s",
    "speed-up",
    "accepted/step",
    "acceptance by position",
    "GB/verify step",
    "GB/decode step",
    "GB/token",
    "experts/layer",
    "draft / verify ms/step",
];

fn cells(r: &SpecRow) -> [String; 14] {
    let gb =
        |b: Option<f64>| b.map_or_else(|| "-".into(), |b| if b >= 1e8 { format!("{:.3}", b / 1e9) } else { format!("{:.5}", b / 1e9) });
    let opt = |v: Option<f64>, d: usize| v.map_or_else(|| "-".into(), |x| format!("{x:.d$}"));
    let by_position: Vec<String> = r.acceptance_by_position.iter().map(|a| format!("{:.0}", 100.0 * a)).collect();
    [
        r.model.clone(),
        format!("{} ({})", r.weights, r.isa_or_device),
        r.draft.clone(),
        r.k.to_string(),
        opt(r.plain_tok_s, 2),
        opt(r.tok_s, 2),
        r.speedup.map_or_else(|| "-".into(), |x| format!("{x:.2}×")),
        format!("{:.2}", r.mean_accepted),
        // No proposals at all (n-gram lookup finding nothing): no acceptance to show.
        if by_position.is_empty() { "-".into() } else { format!("{}%", by_position.join("/")) },
        gb(r.verify_step_bytes),
        gb(r.decode_step_bytes),
        gb(r.bytes_per_token),
        opt(r.experts_per_layer, 1),
        format!("{:.1} / {:.1}", r.draft_ms_per_step, r.verify_ms_per_step),
    ]
}

/// Plain text, columns aligned.
pub fn text(rows: &[SpecRow]) -> String {
    crate::table::aligned(&HEAD, rows.iter().map(cells).collect())
}

/// GitHub-flavoured markdown.
pub fn markdown(rows: &[SpecRow]) -> String {
    crate::table::md_table(&HEAD, rows.iter().map(cells).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gptoss_engine::{StepReads, StopReason};

    use super::*;

    #[test]
    fn repetitions_become_one_row_of_medians_and_merged_counts() {
        let mut samples = SpecSamples::default();
        for (plain_tok_s, spec_s) in [(10.0, 0.5), (8.0, 0.4), (9.0, 0.25)] {
            let plain = PlainRun { tok_s: plain_tok_s, sequence: vec![], step_bytes: Some(3.7e9) };
            let generation = GenerationStats {
                prompt_tokens: 4,
                generated_tokens: 9,
                ttft: Duration::ZERO,
                prefill_time: Duration::ZERO,
                decode_time: Duration::from_secs_f64(spec_s),
                stop: StopReason::MaxTokens,
            };
            let mut stats = SpeculationStats::new("oracle".into());
            stats.record(4, 4, Duration::ZERO, Duration::from_millis(100), Some(StepReads { bytes: 7.4e9, experts_per_layer: 15.6 }));
            stats.record(4, 3, Duration::ZERO, Duration::from_millis(100), Some(StepReads { bytes: 7.4e9, experts_per_layer: 15.6 }));
            samples.add(&plain, &generation, &stats);
        }
        let head =
            SpecRow { draft: "oracle".into(), k: 4, ..SpecRow::head("m".into(), "cpu".into(), "avx2".into(), "native".into(), 2, 4, 8) };
        let r = samples.row(head);
        // 8 tokens in 0.5, 0.4, 0.25 s: 16, 20, 32 tok/s against 10, 8, 9: ratios 1.6, 2.5, 3.56.
        assert_eq!((r.repetitions, r.plain_tok_s, r.tok_s, r.speedup), (3, Some(9.0), Some(20.0), Some(2.5)));
        assert_eq!((r.mean_accepted, r.tokens_per_step), (3.5, 4.5));
        assert_eq!(r.acceptance_by_position, vec![1.0, 1.0, 1.0, 0.5]);
        assert_eq!((r.verify_step_bytes, r.decode_step_bytes), (Some(7.4e9), Some(3.7e9)));
        assert!((r.bytes_per_token.unwrap() - 7.4e9 / 4.5).abs() < 1.0);
        assert_eq!(r.verify_ms_per_step, 100.0);
        let t = text(std::slice::from_ref(&r));
        assert!(t.contains("2.50×") && t.contains("100/100/100/50%") && t.contains("7.400"), "{t}");
        let md = markdown(&[r]);
        assert_eq!(md.lines().count(), 3);
        // Every line, the separator included, has one cell per column: no '|' inside a cell.
        assert!(md.lines().all(|l| l.matches('|').count() == HEAD.len() + 1), "{md}");
    }
}
