//! `matmul`: every weight format, rows and input widths at the tiles' edges, 0 to 12 tokens,
//! with and without bias, overwriting (poisoned output) or accumulating.

use gptoss_engine::{Backend, MatmulArgs, WeightFormat};
use proptest::prelude::*;

use crate::io::{f32s, poisoned, read_f32};
use crate::metric::check;
use crate::rng::Rng;
use crate::shapes::{MMA_ROWS, MMA_TOKENS, ROWS, TOKENS, cols_for, mma_cols_for};
use crate::weights::Spec;

#[derive(Clone, Debug)]
pub struct Case {
    pub format: WeightFormat,
    pub rows: usize,
    pub cols: usize,
    pub n: usize,
    pub bias: bool,
    pub accumulate: bool,
    pub seed: u64,
}

/// Cases over `formats`.
pub fn cases(formats: &'static [WeightFormat]) -> impl Strategy<Value = Case> {
    (0..formats.len(), 0..ROWS.len(), 0..12usize, 0..TOKENS.len(), any::<bool>(), any::<bool>(), any::<u64>()).prop_map(
        move |(f, r, k, t, bias, accumulate, seed)| Case {
            format: formats[f],
            rows: ROWS[r],
            cols: cols_for(formats[f], k),
            n: TOKENS[t],
            bias,
            accumulate,
            seed,
        },
    )
}

/// Cases over `formats` at the tensor-core GEMM's edges (`shapes::MMA_*`).
pub fn mma_cases(formats: &'static [WeightFormat]) -> impl Strategy<Value = Case> {
    (0..formats.len(), 0..MMA_ROWS.len(), 0..12usize, 0..MMA_TOKENS.len(), any::<bool>(), any::<bool>(), any::<u64>()).prop_map(
        move |(f, r, k, t, bias, accumulate, seed)| Case {
            format: formats[f],
            rows: MMA_ROWS[r],
            cols: mma_cols_for(formats[f], k),
            n: MMA_TOKENS[t],
            bias,
            accumulate,
            seed,
        },
    )
}

/// The inputs of a case: the weight, `n` rows of activations, the output's first contents.
pub struct Inputs {
    pub spec: Spec,
    pub x: Vec<f32>,
    pub out0: Vec<f32>,
}

impl Case {
    pub fn inputs(&self) -> Inputs {
        let mut rng = Rng::new(self.seed);
        let spec = Spec::random(self.format, 1, self.rows, self.cols, self.bias, &mut rng);
        Inputs { spec, x: rng.floats(self.n * self.cols, 4.0), out0: rng.floats(self.n * self.rows, 2.0) }
    }

    /// The output on `b` (poisoned first when the op overwrites it).
    pub fn run<B: Backend>(&self, inputs: &Inputs, b: &mut B) -> Vec<f32> {
        let (w, x) = (inputs.spec.load(b), f32s(b, &inputs.x));
        let mut out = if self.accumulate { f32s(b, &inputs.out0) } else { poisoned(b, self.n * self.rows) };
        b.matmul(MatmulArgs { w: &w, x: &x, n: self.n, out: &mut out, accumulate: self.accumulate }).expect("matmul");
        read_f32(b, &out)
    }
}

/// `b` against `reference` on `case`, within `budget`.
pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget: f64, on: &str) {
    let inputs = case.inputs();
    let (got, want) = (case.run(&inputs, b), case.run(&inputs, reference));
    let base = case.accumulate.then_some(&inputs.out0[..]);
    check(&format!("matmul {case:?} on {on}"), &got, &want, base, budget);
}

/// Where a batch of `case.n` tokens differs from the same tokens one at a time on `b`, if
/// anywhere (it must not, bit for bit: a rollback replays a prefill token by token, and a
/// request's result must not depend on its batch-mates).
pub fn batch_dependence<B: Backend>(case: &Case, b: &mut B) -> Option<String> {
    let inputs = case.inputs();
    let all = Case { accumulate: false, ..case.clone() }.run(&inputs, b);
    let (cols, rows) = (case.cols, case.rows);
    for t in 0..case.n {
        let one = Case { n: 1, accumulate: false, ..case.clone() };
        let single = Inputs { spec: inputs.spec.clone(), x: inputs.x[t * cols..(t + 1) * cols].to_vec(), out0: vec![0.0; rows] };
        if one.run(&single, b) != all[t * rows..(t + 1) * rows] {
            return Some(format!("matmul {case:?}: token {t} of {} differs from the token alone", case.n));
        }
    }
    None
}
