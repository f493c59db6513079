//! `moe_experts`: every weight format, 1 to 8 experts, top-1 to top-4 distinct experts per
//! token with softmax-like weights, 0 to 9 tokens (so some experts get none and others several),
//! hidden and intermediate widths of one to a few blocks or groups. Measured on what the op
//! adds to the residual. The tensor-core cases (`mma_cases`) take batches at the grouped
//! GEMM's 64-pair tiles' edges, widths either side of its k steps and 128-row tiles, and
//! skewed routings.

use gptoss_engine::{Backend, MoeExpertsArgs, Result, Swiglu, WeightFormat};
use proptest::prelude::*;

use crate::io::{f32s, read_f32, u32s};
use crate::metric::check;
use crate::rng::Rng;
use crate::shapes::MMA_TOKENS;
use crate::weights::Spec;

/// gpt-oss's SwiGLU constants.
pub const SWIGLU: Swiglu = Swiglu { alpha: 1.702, limit: 7.0 };

/// How the tokens choose their experts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// top_k distinct experts at random per token.
    Spread,
    /// Every token's first choice is the last expert (with top-1, every token goes to it and
    /// every other expert gets none).
    OneExpert,
    /// Every token chooses the last top_k experts, in its own order: the others get none.
    Crowded,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub format: WeightFormat,
    pub experts: usize,
    pub top_k: usize,
    pub n: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub routing: Routing,
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
                routing: Routing::Spread,
                seed,
            }
        })
}

/// The `k`-th width of the tensor-core cases for `format`: whole and partial 32-value k steps
/// and 128-row tiles (hidden is down's rows), small enough to emulate quickly; one bf16 width
/// (100) is not whole 16-byte chunks, which the GEMV kernels take.
pub fn mma_width(format: WeightFormat, k: usize) -> usize {
    match format {
        WeightFormat::Bf16 => [8, 40, 96, 136, 100][k % 5],
        WeightFormat::Int8 => [16, 48, 144][k % 3],
        WeightFormat::Int4 { group } => group * (1 + k % 2),
        WeightFormat::Mxfp4 => 32 * [1, 3, 5][k % 3],
        WeightFormat::F32 => [7, 33, 100][k % 3],
    }
}

/// Cases for the grouped GEMM over `formats`: batches of `shapes::MMA_TOKENS`, 1 to 8 experts,
/// top-1 to top-4, every routing.
pub fn mma_cases(formats: &'static [WeightFormat]) -> impl Strategy<Value = Case> {
    let routings = [Routing::Spread, Routing::OneExpert, Routing::Crowded];
    (0..formats.len(), 1..9usize, 1..5usize, prop::sample::select(MMA_TOKENS.to_vec()), 0..30usize, 0..30usize, 0..3usize, any::<u64>())
        .prop_map(move |(f, experts, top, n, h, i, r, seed)| {
            let format = formats[f];
            Case {
                format,
                experts,
                top_k: top.min(experts),
                n,
                hidden: mma_width(format, h),
                intermediate: mma_width(format, i),
                routing: routings[r],
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
        let last = self.experts as u32 - 1;
        for _ in 0..self.n {
            let mut e: Vec<u32> = match self.routing {
                Routing::Crowded => (self.experts - self.top_k) as u32..=last,
                _ => 0..=last,
            }
            .collect();
            e.sort_by_key(|_| rng.word());
            if self.routing == Routing::OneExpert {
                e.retain(|&x| x != last);
                e.insert(0, last);
            }
            ids.extend_from_slice(&e[..self.top_k]);
            let w: Vec<f32> = (0..self.top_k).map(|_| 0.1 + rng.f().abs()).collect();
            let s: f32 = w.iter().sum();
            weights.extend(w.iter().map(|v| v / s));
        }
        Inputs { gate_up, down, x, residual, ids, weights }
    }

    /// The residual after the experts, on `b`.
    pub fn run<B: Backend>(&self, inputs: &Inputs, b: &mut B) -> Vec<f32> {
        self.try_run(inputs, b).expect("moe_experts")
    }

    /// The same, or the error the op reported (at the call or at the next synchronize).
    pub fn try_run<B: Backend>(&self, inputs: &Inputs, b: &mut B) -> Result<Vec<f32>> {
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
        b.moe_experts(args)?;
        b.synchronize()?;
        Ok(read_f32(b, &res))
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget: f64, on: &str) {
    let inputs = case.inputs();
    let (got, want) = (case.run(&inputs, b), case.run(&inputs, reference));
    check(&format!("moe_experts {case:?} on {on}"), &got, &want, Some(&inputs.residual), budget);
}

/// `case` on `b` twice: bit-identical results (the emulator shuffles the block order per launch).
pub fn repeatable<B: Backend>(case: &Case, b: &mut B) {
    let inputs = case.inputs();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert!(bits(case.run(&inputs, b)) == bits(case.run(&inputs, b)), "moe_experts {case:?}: two runs differ");
}

/// `case` with its last pair routed to an expert that does not exist: an error naming the
/// expert id, reported once.
pub fn bad_expert_id<B: Backend>(case: &Case, b: &mut B) {
    let mut inputs = case.inputs();
    *inputs.ids.last_mut().expect("a case with tokens") = case.experts as u32;
    let err = case.try_run(&inputs, b).expect_err("an expert id beyond the experts").to_string();
    assert!(err.contains("expert id"), "moe_experts {case:?}: {err}");
    b.synchronize().expect("the error is reported once");
}
