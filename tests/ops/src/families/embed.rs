//! `embed`: f32 and bf16 tables (the formats embeddings come in), any width, ids anywhere in
//! the table.

use gptoss_engine::{Backend, EmbedArgs, WeightFormat};
use proptest::prelude::*;

use crate::budgets::budget;
use crate::io::{poisoned, read_f32, u32s};
use crate::metric::check;
use crate::rng::Rng;
use crate::weights::Spec;

#[derive(Clone, Debug)]
pub struct Case {
    pub format: WeightFormat,
    pub vocab: usize,
    pub cols: usize,
    pub n: usize,
    pub seed: u64,
}

pub fn cases() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![WeightFormat::F32, WeightFormat::Bf16]),
        prop::sample::select(vec![1usize, 37, 1000]),
        prop::sample::select(vec![1usize, 45, 2880]),
        0..6usize,
        any::<u64>(),
    )
        .prop_map(|(format, vocab, cols, n, seed)| Case { format, vocab, cols, n, seed })
}

impl Case {
    pub fn run<B: Backend>(&self, b: &mut B) -> Vec<f32> {
        let mut rng = Rng::new(self.seed);
        let table = Spec::random(self.format, 1, self.vocab, self.cols, false, &mut rng).load(b);
        let ids: Vec<u32> = (0..self.n).map(|_| rng.below(self.vocab) as u32).collect();
        let (tokens, mut out) = (u32s(b, &ids), poisoned(b, self.n * self.cols));
        b.embed(EmbedArgs { table: &table, tokens: &tokens, n: self.n, out: &mut out }).expect("embed");
        read_f32(b, &out)
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, on: &str) {
    check(&format!("embed {case:?} on {on}"), &case.run(b), &case.run(reference), None, budget("embed", "exact"));
}
