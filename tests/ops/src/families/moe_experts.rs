//! `moe_experts`: every weight format, 1 to 8 experts, top-1 to top-4 distinct experts per
//! token with softmax-like weights, 0 to 9 tokens (so some experts get none and others several),
//! hidden and intermediate widths of one to a few blocks or groups. Measured on what the op
//! adds to the residual. The tensor-core cases (`mma_cases`) take batches at the grouped
//! GEMM's 64-pair tiles' edges, widths either side of its k steps and 128-row tiles, and
//! skewed routings.

use gptoss_engine::{Backend, DType, DeviceBuffer, MatmulArgs, MoeExpertsArgs, Result, Swiglu, Weight, WeightFormat};
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
        self.try_run_on(inputs, b, &g, &d)
    }

    /// The residual after the experts of the stacks `g` and `d`, on `b`.
    fn try_run_on<B: Backend>(&self, inputs: &Inputs, b: &mut B, g: &Weight<B::Buffer>, d: &Weight<B::Buffer>) -> Result<Vec<f32>> {
        let (x, ids, weights) = (f32s(b, &inputs.x), u32s(b, &inputs.ids), f32s(b, &inputs.weights));
        let mut res = f32s(b, &inputs.residual);
        let args = MoeExpertsArgs {
            gate_up: g,
            down: d,
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

/// A stack's copy, matrix `order[m]` of `w` into matrix `m` (`home`: in host memory the device
/// reads in place), without biases.
fn reordered<B: Backend>(b: &mut B, w: &Weight<B::Buffer>, order: &[usize], home: bool) -> Weight<B::Buffer> {
    let (dt, n) = w.format.data_layout(w.rows, w.cols);
    let scales = w.format.scales_layout(w.rows, w.cols);
    let alloc = |b: &mut B, dt, len| match home {
        true => b.expert_tables().expect("expert tables").alloc_mapped(dt, len).expect("mapped memory"),
        false => b.alloc(dt, len).expect("device memory"),
    };
    let data = alloc(b, dt, n * w.experts);
    let scale_buf = scales.map(|(st, sn)| alloc(b, st, sn * w.experts));
    let mut out = Weight { format: w.format, experts: w.experts, rows: w.rows, cols: w.cols, data, scales: scale_buf, bias: None };
    for (m, &from) in order.iter().enumerate() {
        b.copy(&w.data, from * n, &mut out.data, m * n, n).expect("copy a matrix");
        if let (Some(src), Some(dst), Some((_, sn))) = (&w.scales, &mut out.scales, scales) {
            b.copy(src, from * sn, dst, m * sn, sn).expect("copy a matrix's scales");
        }
    }
    out
}

/// The stacks as a backend with expert tables reads them in the `host` mode: every expert at
/// first in mapped host memory (in reverse order, so the table is no identity), then the even
/// experts copied beside the step into device slots in another order and pointed at there.
/// The op must give the plain stacks' result bit for bit (the same bytes, the same kernels).
pub fn through_tables<B: Backend>(case: &Case, b: &mut B) {
    let inputs = case.inputs();
    let (g, d) = (inputs.gate_up.load(b), inputs.down.load(b));
    let want = case.try_run_on(&inputs, b, &g, &d).expect("moe_experts on the plain stacks");
    let experts = case.experts;
    let reversed: Vec<usize> = (0..experts).rev().collect();
    let mut tables = Vec::new();
    for w in [&g, &d] {
        let home = reordered(b, w, &reversed, true);
        let mut bias = b.alloc(DType::F32, experts * w.rows).expect("bias");
        b.copy(w.bias.as_ref().expect("expert biases"), 0, &mut bias, 0, experts * w.rows).expect("copy the biases");
        // The table starts pointing at home's matrix e for expert e: re-point each at its own.
        let t = b.expert_tables().expect("expert tables");
        let mut table = t.table_stack(&home, bias).expect("a table stack");
        for e in 0..experts {
            t.point(&mut table, e, &home, experts - 1 - e).expect("point at host memory");
        }
        // Slots for the even experts, filled beside the step, in reverse order of expert.
        let evens: Vec<usize> = (0..experts).step_by(2).collect();
        let mut slots = reordered(b, w, &vec![0; evens.len()], false);
        let t = b.expert_tables().expect("expert tables");
        let mut ticket = 0;
        for (slot, &e) in evens.iter().rev().enumerate() {
            ticket = t.copy_beside(&home, experts - 1 - e, &mut slots, slot).expect("a copy beside the step");
        }
        while !t.copied(ticket).expect("copies beside the step") {}
        for (slot, &e) in evens.iter().rev().enumerate() {
            t.point(&mut table, e, &slots, slot).expect("point at a slot");
        }
        tables.push((home, slots, table));
    }
    let got = case.try_run_on(&inputs, b, &tables[0].2, &tables[1].2).expect("moe_experts through tables");
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(bits(&got) == bits(&want), "moe_experts {case:?}: through tables differs from the plain stacks");
}

/// A stack reached through a table is read by `moe_experts` alone: every other use is an error
/// naming it, as is a table entry or a copy out of range.
pub fn table_misuse<B: Backend>(b: &mut B) {
    let case =
        Case { format: WeightFormat::Mxfp4, experts: 2, top_k: 1, n: 1, hidden: 32, intermediate: 32, routing: Routing::Spread, seed: 3 };
    let inputs = case.inputs();
    let g = inputs.gate_up.load(b);
    let bias = b.alloc(DType::F32, g.experts * g.rows).expect("bias");
    let t = b.expert_tables().expect("expert tables");
    let mut table = t.table_stack(&g, bias).expect("a table stack");
    let e = t.point(&mut table, 2, &g, 0).expect_err("expert 2 of 2").to_string();
    assert!(e.contains("expert 2"), "{e}");
    let e = t.point(&mut table, 0, &g, 2).expect_err("matrix 2 of 2").to_string();
    assert!(e.contains("matrix 2"), "{e}");
    // A stack of one matrix passes matmul's shape checks: the table is what it refuses.
    let one = Case { experts: 1, ..case }.inputs().gate_up.load(b);
    let bias = b.alloc(DType::F32, one.rows).expect("bias");
    let single = b.expert_tables().expect("expert tables").table_stack(&one, bias).expect("a table stack of one");
    let (x, mut out) = (f32s(b, &inputs.x), f32s(b, &vec![0.0; one.rows]));
    let e = b
        .matmul(MatmulArgs { w: &single, x: &x, n: 1, out: &mut out, accumulate: false })
        .expect_err("a table stack in matmul")
        .to_string();
    assert!(e.contains("table"), "{e}");
    let e = b.write(&mut table.data, 0, &[0; 16]).expect_err("writing a table stack's data").to_string();
    assert!(e.contains("table"), "{e}");
    assert_eq!(table.data.len(), g.data.len(), "a table stack stands for the stack's bytes");
}
