//! `moe_experts`: every weight format, 1 to 8 experts, top-1 to top-4 distinct experts per
//! token with softmax-like weights, 0 to 9 tokens (so some experts get none and others several),
//! hidden and intermediate widths of one to a few blocks or groups. Measured on what the op
//! adds to the residual.

use gptoss_engine::{Backend, MoeExpertsArgs, Swiglu, WeightFormat};
use proptest::prelude::*;

use crate::io::{f32s, read_f32, u32s};
use crate::metric::check;
use crate::rng::Rng;
use crate::weights::Spec;

/// gpt-oss's SwiGLU constants.
pub const SWIGLU: Swiglu = Swiglu { alpha: 1.702, limit: 7.0 };

#[derive(Clone, Debug)]
pub struct Case {
    pub format: WeightFormat,
    pub experts: usize,
    pub top_k: usize,
    pub n: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub seed: u64,
}

/// Cases over `formats` with widths from `hidden` and `intermediate` (rounded up to whole
/// int4 groups).
pub fn cases(formats: &'static [WeightFormat], hidden: Vec<usize>, intermediate: Vec<usize>) -> impl Strategy<Value = Case> {
    (0..formats.len(), 1..9usize, 1..5usize, 0..10usize, prop::sample::select(hidden), prop::sample::select(intermediate), any::<u64>())
        .prop_map(move |(f, experts, top, n, h, i, seed)| {
            let format = formats[f];
            let group = if let WeightFormat::Int4 { group } = format { group } else { 32 };
            Case {
                format,
                experts,
                top_k: top.min(experts),
                n,
                hidden: h.next_multiple_of(group),
                intermediate: i.next_multiple_of(group),
                seed,
            }
        })
}

pub struct Inputs {
    pub gate_up: Spec,
    pub down: Spec,
    pub x: Vec<f32>,
    pub residual: Vec<f32>,
    pub ids: Vec<u32>,
    pub weights: Vec<f32>,
}

impl Case {
    pub fn inputs(&self) -> Inputs {
        let mut rng = Rng::new(self.seed);
        let (h, i) = (self.hidden, self.intermediate);
        let gate_up = Spec::random(self.format, self.experts, 2 * i, h, true, &mut rng);
        let down = Spec::random(self.format, self.experts, h, i, true, &mut rng);
        let (x, residual) = (rng.floats(self.n * h, 1.0), rng.floats(self.n * h, 4.0));
        let (mut ids, mut weights) = (vec![], vec![]);
        for _ in 0..self.n {
            let mut e: Vec<u32> = (0..self.experts as u32).collect();
            e.sort_by_key(|_| rng.word());
            ids.extend_from_slice(&e[..self.top_k]);
            let w: Vec<f32> = (0..self.top_k).map(|_| 0.1 + rng.f().abs()).collect();
            let s: f32 = w.iter().sum();
            weights.extend(w.iter().map(|v| v / s));
        }
        Inputs { gate_up, down, x, residual, ids, weights }
    }

    /// The residual after the experts, on `b`.
    pub fn run<B: Backend>(&self, inputs: &Inputs, b: &mut B) -> Vec<f32> {
        let (g, d) = (inputs.gate_up.load(b), inputs.down.load(b));
        let (x, ids, weights) = (f32s(b, &inputs.x), u32s(b, &inputs.ids), f32s(b, &inputs.weights));
        let mut res = f32s(b, &inputs.residual);
        let args = MoeExpertsArgs {
            gate_up: &g,
            down: &d,
            x: &x,
            n: self.n,
            ids: &ids,
            weights: &weights,
            top_k: self.top_k,
            swiglu: SWIGLU,
            residual: &mut res,
        };
        b.moe_experts(args).expect("moe_experts");
        read_f32(b, &res)
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget: f64, on: &str) {
    let inputs = case.inputs();
    let (got, want) = (case.run(&inputs, b), case.run(&inputs, reference));
    check(&format!("moe_experts {case:?} on {on}"), &got, &want, Some(&inputs.residual), budget);
}
