//! `sample`: greedy, temperature, top-k and top-p draws from rows of logits with ties, on
//! vocabularies from 1 to 5000. The token must be the reference's, or — only where the
//! backend's masses are computed differently (the CUDA kernel sums fixed-point weights) — the
//! reference's for `u` or `top_p` moved by `BOUNDARY`: a draw that close to a boundary of the
//! cumulative distribution may land on either side.

use gptoss_engine::{Backend, SampleArgs, SamplingParams};
use proptest::prelude::*;

use crate::io::f32s;
use crate::rng::Rng;

/// How far `u` and `top_p` may move for a backend's token to count as the reference's.
pub const BOUNDARY: f32 = 1e-5;

#[derive(Clone, Debug)]
pub struct Case {
    pub vocab: usize,
    pub rows: usize,
    pub row: usize,
    pub params: SamplingParams,
    pub u: f32,
    /// Logits drawn from a few values, so ties are common.
    pub tied: bool,
    pub seed: u64,
}

pub fn cases() -> impl Strategy<Value = Case> {
    let params = (
        prop::sample::select(vec![0.0f32, 0.5, 1.0, 2.0]),
        prop::sample::select(vec![0usize, 1, 2, 5, 50, 10_000]),
        prop::sample::select(vec![1.0f32, 0.9, 0.5, 0.01]),
    );
    (prop::sample::select(vec![1usize, 2, 7, 257, 5000]), 1..3usize, params, 0.0f32..1.0, any::<bool>(), any::<u64>()).prop_map(
        |(vocab, rows, (temperature, top_k, top_p), u, tied, seed)| Case {
            vocab,
            rows,
            row: (seed % rows as u64) as usize,
            params: SamplingParams { temperature, top_k, top_p },
            u,
            tied,
            seed,
        },
    )
}

impl Case {
    fn logits(&self) -> Vec<f32> {
        let mut rng = Rng::new(self.seed);
        (0..self.rows * self.vocab).map(|_| if self.tied { rng.below(4) as f32 } else { rng.f() * 8.0 }).collect()
    }

    pub fn run<B: Backend>(&self, b: &mut B, params: &SamplingParams, u: f32) -> u32 {
        let logits = f32s(b, &self.logits());
        b.sample(SampleArgs { logits: &logits, row: self.row, vocab: self.vocab, params, u }).expect("sample")
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, on: &str) {
    let got = case.run(b, &case.params, case.u);
    let want = case.run(reference, &case.params, case.u);
    if got == want {
        return;
    }
    let p = case.params;
    let near = [
        (p, (case.u - BOUNDARY).max(0.0)),
        (p, (case.u + BOUNDARY).min(1.0 - f32::EPSILON)),
        (SamplingParams { top_p: (p.top_p - BOUNDARY).max(BOUNDARY), ..p }, case.u),
        (SamplingParams { top_p: (p.top_p + BOUNDARY).min(1.0), ..p }, case.u),
    ];
    let neighbours: Vec<u32> = near.iter().map(|(p, u)| case.run(reference, p, *u)).collect();
    assert!(neighbours.contains(&got), "sample {case:?} on {on}: token {got}, the reference's {want} (near a boundary: {neighbours:?})");
}
