//! `rms_norm`: widths at and off the vector widths (to gpt-oss's 2880), 0 to 4 rows.

use gptoss_engine::{Backend, RmsNormArgs};
use proptest::prelude::*;

use crate::budgets::budget;
use crate::io::{f32s, poisoned, read_f32};
use crate::metric::check;
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Case {
    pub d: usize,
    pub n: usize,
    pub seed: u64,
}

pub fn cases() -> impl Strategy<Value = Case> {
    (prop::sample::select(vec![1usize, 7, 8, 9, 16, 31, 64, 100, 2880]), 0..5usize, any::<u64>()).prop_map(|(d, n, seed)| Case {
        d,
        n,
        seed,
    })
}

impl Case {
    pub fn run<B: Backend>(&self, b: &mut B) -> Vec<f32> {
        let mut rng = Rng::new(self.seed);
        let (x, g) = (f32s(b, &rng.floats(self.n * self.d, 3.0)), f32s(b, &rng.floats(self.d, 1.5)));
        let mut out = poisoned(b, self.n * self.d);
        b.rms_norm(RmsNormArgs { x: &x, gain: &g, n: self.n, eps: 1e-5, out: &mut out }).expect("rms_norm");
        read_f32(b, &out)
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, on: &str) {
    check(&format!("rms_norm {case:?} on {on}"), &case.run(b), &case.run(reference), None, budget("rms_norm", "exact"));
}
