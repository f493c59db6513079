//! `qkv_rope`: the dense formats, hidden widths at the tiles' edges, head dims 2 to 64, 1 to 4
//! query heads per kv head, bf16 and f32 caches, 1 to 5 tokens at positions up to 1000 (large
//! angles). The caches start poisoned, so a slot written wrongly, or not at all, shows.

use gptoss_engine::{Backend, DType, DeviceBuffer, KvCache, KvLayerSpec, QkvRopeArgs, Rope, WeightFormat};
use proptest::prelude::*;

use crate::budgets::budget;
use crate::io::{bytes_as, f32s, poisoned, read_f32, read_widened, u32s};
use crate::metric::check;
use crate::rng::Rng;
use crate::shapes::cols_for;
use crate::weights::Spec;

#[derive(Clone, Debug)]
pub struct Case {
    pub format: WeightFormat,
    pub hidden: usize,
    pub head_dim: usize,
    pub kv_heads: usize,
    pub group: usize,
    pub bf16_cache: bool,
    pub n: usize,
    pub start: usize,
    pub seed: u64,
}

/// The concentration RoPE multiplies cos and sin by in these cases (YaRN's for gpt-oss).
pub const CONCENTRATION: f32 = 1.3466;
/// Slots of the caches the cases write into.
const CAPACITY: usize = 2048;

/// Cases over `formats` with head dims from `head_dims`, 1 to 5 tokens.
pub fn cases(formats: &'static [WeightFormat], head_dims: Vec<usize>) -> impl Strategy<Value = Case> {
    cases_of(formats, head_dims, (1..6).collect(), cols_for)
}

/// Cases over `formats` with head dims from `head_dims`, token counts from `tokens` and the
/// `k`-th hidden width `width(format, k)`.
pub fn cases_of(
    formats: &'static [WeightFormat],
    head_dims: Vec<usize>,
    tokens: Vec<usize>,
    width: fn(WeightFormat, usize) -> usize,
) -> impl Strategy<Value = Case> {
    (
        0..formats.len(),
        0..12usize,
        prop::sample::select(head_dims),
        1..3usize,
        1..5usize,
        any::<bool>(),
        prop::sample::select(tokens),
        0..1000usize,
        any::<u64>(),
    )
        .prop_map(move |(f, k, head_dim, kv_heads, group, bf16_cache, n, start, seed)| Case {
            format: formats[f],
            hidden: width(formats[f], k),
            head_dim,
            kv_heads,
            group,
            bf16_cache,
            n,
            start,
            seed,
        })
}

/// The inputs: q, k and v weights, and `n` rows of activations.
pub struct Inputs {
    pub w: [Spec; 3],
    pub x: Vec<f32>,
}

impl Case {
    pub fn inputs(&self) -> Inputs {
        let mut rng = Rng::new(self.seed);
        let (d, kvh) = (self.head_dim, self.kv_heads);
        let w = [
            Spec::random(self.format, 1, kvh * self.group * d, self.hidden, true, &mut rng),
            Spec::random(self.format, 1, kvh * d, self.hidden, true, &mut rng),
            Spec::random(self.format, 1, kvh * d, self.hidden, false, &mut rng),
        ];
        Inputs { w, x: rng.floats(self.n * self.hidden, 2.0) }
    }

    /// q, and the whole k and v caches widened to f32.
    pub fn run<B: Backend>(&self, inputs: &Inputs, b: &mut B) -> [Vec<f32>; 3] {
        let (d, n) = (self.head_dim, self.n);
        let inv: Vec<f32> = (0..d / 2).map(|i| 150000f32.powf(-((2 * i) as f32) / d as f32)).collect();
        let positions: Vec<u32> = (self.start..self.start + n).map(|p| p as u32).collect();
        let dtype = if self.bf16_cache { DType::Bf16 } else { DType::F32 };
        let [q, k, v] = [0, 1, 2].map(|i| inputs.w[i].load(b));
        let rope = Rope { inv_freq: f32s(b, &inv), concentration: CONCENTRATION };
        let mut kv =
            KvCache::new(b, &[KvLayerSpec { kv_heads: self.kv_heads, head_dim: d, window: None }], dtype, CAPACITY, 12).expect("kv");
        let nan = bytes_as(dtype, &vec![f32::NAN; kv.layers[0].k.len()]);
        b.write(&mut kv.layers[0].k, 0, &nan).expect("poison the cache");
        b.write(&mut kv.layers[0].v, 0, &nan).expect("poison the cache");
        let (xb, pb) = (f32s(b, &inputs.x), u32s(b, &positions));
        let mut qo = poisoned(b, n * inputs.w[0].rows);
        let args = QkvRopeArgs { wq: &q, wk: &k, wv: &v, x: &xb, n, positions: &pb, rope: &rope, kv: &mut kv.layers[0], q_out: &mut qo };
        b.qkv_rope(args).expect("qkv_rope");
        [read_f32(b, &qo), read_widened(b, &kv.layers[0].k), read_widened(b, &kv.layers[0].v)]
    }
}

/// `b` against `reference`: q within `budget`, the caches within it too (f32) or within the
/// bf16 budget (one rounding of each stored value, which may fall either side of a boundary).
pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget_of_q: f64, on: &str) {
    let inputs = case.inputs();
    let (got, want) = (case.run(&inputs, b), case.run(&inputs, reference));
    let what = format!("qkv_rope {case:?} on {on}");
    check(&format!("{what}: q"), &got[0], &want[0], None, budget_of_q);
    let cache = if case.bf16_cache { budget("qkv_rope", "bf16_cache").max(budget_of_q) } else { budget_of_q };
    check(&format!("{what}: k cache"), &got[1], &want[1], None, cache);
    check(&format!("{what}: v cache"), &got[2], &want[2], None, cache);
}
