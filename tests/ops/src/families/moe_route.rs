//! `moe_route`: f32 and bf16 routers (the formats checkpoints hold) and int8 and int4 ones (a
//! weight-only quantized router) of 1 to 8 experts, top-1 to top-4, 0 to 5 tokens. The weights are small next to well-separated biases, so the order of
//! the experts is decided by the biases and an f32 sum must agree with the f64 one on it; the
//! ids must then match exactly and the routing weights within budget.

use gptoss_engine::{Backend, DType, MoeRouteArgs, WeightFormat};
use half::bf16;
use proptest::prelude::*;

use crate::budgets::budget;
use crate::io::{f32s, poisoned, read_f32, read_u32, upload};
use crate::metric::{check, check_exact};
use crate::rng::Rng;
use crate::weights::Spec;

#[derive(Clone, Debug)]
pub struct Case {
    pub format: WeightFormat,
    pub experts: usize,
    pub top_k: usize,
    pub n: usize,
    pub seed: u64,
}

pub fn cases() -> impl Strategy<Value = Case> {
    let formats = vec![WeightFormat::F32, WeightFormat::Bf16, WeightFormat::Int8, WeightFormat::Int4 { group: 32 }];
    (prop::sample::select(formats), 1..9usize, 1..5usize, 0..6usize, any::<u64>()).prop_map(|(format, experts, top, n, seed)| Case {
        format,
        experts,
        top_k: top.min(experts),
        n,
        seed,
    })
}

/// Two int4 groups of 32.
const HIDDEN: usize = 64;

impl Case {
    /// The router: random weights scaled by 1e-3 under biases 0, 0.5, 1, … in random order.
    fn router(&self, rng: &mut Rng) -> Spec {
        let mut spec = Spec::random(self.format, 1, self.experts, HIDDEN, false, rng);
        let f32s_scaled =
            |b: &[u8]| -> Vec<u8> { bytemuck::cast_slice::<u8, f32>(b).iter().flat_map(|v| (v * 1e-3).to_le_bytes()).collect() };
        let bf16s_scaled = |b: &[u8]| -> Vec<u8> {
            b.chunks(2).flat_map(|c| bf16::from_f32(bf16::from_le_bytes([c[0], c[1]]).to_f32() * 1e-3).to_le_bytes()).collect()
        };
        // Quantized routers get small weights through their scales (f32 per row for int8,
        // bf16 per group for int4).
        match self.format {
            WeightFormat::F32 => spec.data = f32s_scaled(&spec.data),
            WeightFormat::Bf16 => spec.data = bf16s_scaled(&spec.data),
            WeightFormat::Int8 => spec.scales = f32s_scaled(&spec.scales),
            _ => spec.scales = bf16s_scaled(&spec.scales),
        }
        let mut order: Vec<usize> = (0..self.experts).collect();
        order.sort_by_key(|_| rng.word());
        spec.bias = Some(order.iter().map(|&o| o as f32 * 0.5).collect());
        spec
    }

    /// The ids and the routing weights on `b` (both poisoned first).
    pub fn run<B: Backend>(&self, b: &mut B) -> (Vec<u32>, Vec<f32>) {
        let mut rng = Rng::new(self.seed);
        let w = self.router(&mut rng).load(b);
        let x = f32s(b, &rng.floats(self.n * HIDDEN, 1.0));
        let slots = self.n * self.top_k;
        let (mut ids, mut weights) = (upload(b, DType::U32, &vec![u32::MAX; slots]), poisoned(b, slots));
        b.moe_route(MoeRouteArgs { router: &w, x: &x, n: self.n, top_k: self.top_k, ids: &mut ids, weights: &mut weights })
            .expect("moe_route");
        (read_u32(b, &ids), read_f32(b, &weights))
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, on: &str) {
    let (got, want) = (case.run(b), case.run(reference));
    let what = format!("moe_route {case:?} on {on}");
    check_exact(&format!("{what}: ids"), &got.0, &want.0);
    check(&format!("{what}: weights"), &got.1, &want.1, None, budget("moe_route", "exact"));
}
