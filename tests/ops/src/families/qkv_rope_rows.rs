//! `qkv_rope_rows`: rows of 1 to 6 sequences, each writing its own cache at its own position
//! (0 to 1000: large angles), over the dense formats, hidden widths at the tiles' edges, head
//! dims 2 to 64 (16 to 128 on CUDA), 1 to 4 query heads per kv head, bf16 and f32 caches. The
//! caches start poisoned, so a slot written wrongly, or into the wrong row's cache, shows.
//! Compared with the scalar reference, and row by row with the single-sequence `qkv_rope` of
//! that row alone, bit for bit.

use gptoss_engine::{Backend, DType, DeviceBuffer, KvCache, KvLayerSpec, QkvRopeArgs, QkvRopeRowsArgs, Rope, WeightFormat};
use proptest::prelude::*;

use crate::budgets::budget;
use crate::families::qkv_rope::{self, CONCENTRATION};
use crate::io::{bytes_as, f32s, poisoned, read_f32, read_widened, u32s};
use crate::metric::check;
use crate::shapes::cols_for;

#[derive(Clone, Debug)]
pub struct Case {
    /// The weights, shapes and seed (its `n` and `start` unused).
    pub shape: qkv_rope::Case,
    /// Each row's position in its own sequence.
    pub positions: Vec<usize>,
}

/// Cases over `formats` with head dims from `head_dims`.
pub fn cases(formats: &'static [WeightFormat], head_dims: Vec<usize>) -> impl Strategy<Value = Case> {
    cases_with_rows(formats, head_dims, 1..7)
}

/// Cases with a number of rows from `rows` (a backend's launch limits are crossed by many).
pub fn cases_with_rows(
    formats: &'static [WeightFormat],
    head_dims: Vec<usize>,
    rows: std::ops::Range<usize>,
) -> impl Strategy<Value = Case> {
    (qkv_rope::cases_of(formats, head_dims, vec![1], cols_for), prop::collection::vec(0..1000usize, rows))
        .prop_map(|(shape, positions)| Case { shape: qkv_rope::Case { n: positions.len(), ..shape }, positions })
}

/// Slots of each row's cache.
const CAPACITY: usize = 1024;

impl Case {
    fn cache<B: Backend>(&self, b: &mut B) -> KvCache<B::Buffer> {
        let s = &self.shape;
        let dtype = if s.bf16_cache { DType::Bf16 } else { DType::F32 };
        let spec = [KvLayerSpec { kv_heads: s.kv_heads, head_dim: s.head_dim, window: None }];
        let mut kv = KvCache::new(b, &spec, dtype, CAPACITY, 1).expect("kv");
        let nan = bytes_as(dtype, &vec![f32::NAN; kv.layers[0].k.len()]);
        b.write(&mut kv.layers[0].k, 0, &nan).expect("poison the cache");
        b.write(&mut kv.layers[0].v, 0, &nan).expect("poison the cache");
        kv
    }

    fn rope<B: Backend>(&self, b: &mut B) -> Rope<B::Buffer> {
        let d = self.shape.head_dim;
        let inv: Vec<f32> = (0..d / 2).map(|i| 150000f32.powf(-((2 * i) as f32) / d as f32)).collect();
        Rope { inv_freq: f32s(b, &inv), concentration: CONCENTRATION }
    }

    /// q of every row, then every row's k and v caches widened to f32, from one call.
    pub fn run<B: Backend>(&self, b: &mut B) -> [Vec<f32>; 3] {
        let inputs = self.shape.inputs();
        let n = self.positions.len();
        let [q, k, v] = [0, 1, 2].map(|i| inputs.w[i].load(b));
        let rope = self.rope(b);
        let mut caches: Vec<_> = (0..n).map(|_| self.cache(b)).collect();
        let positions: Vec<u32> = self.positions.iter().map(|&p| p as u32).collect();
        let (xb, pb) = (f32s(b, &inputs.x), u32s(b, &positions));
        let mut qo = poisoned(b, n * inputs.w[0].rows);
        let mut kv: Vec<_> = caches.iter_mut().map(|c| &mut c.layers[0]).collect();
        let args = QkvRopeRowsArgs { wq: &q, wk: &k, wv: &v, x: &xb, n, positions: &pb, rope: &rope, kv: &mut kv[..], q_out: &mut qo };
        b.qkv_rope_rows(args).expect("qkv_rope_rows");
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        for c in &caches {
            ks.extend(read_widened(b, &c.layers[0].k));
            vs.extend(read_widened(b, &c.layers[0].v));
        }
        [read_f32(b, &qo), ks, vs]
    }

    /// As `run`, each row through the single-sequence `qkv_rope` alone.
    pub fn run_alone<B: Backend>(&self, b: &mut B) -> [Vec<f32>; 3] {
        let inputs = self.shape.inputs();
        let [q, k, v] = [0, 1, 2].map(|i| inputs.w[i].load(b));
        let rope = self.rope(b);
        let (hidden, q_row) = (self.shape.hidden, inputs.w[0].rows);
        let mut all = [Vec::new(), Vec::new(), Vec::new()];
        for (t, &p) in self.positions.iter().enumerate() {
            let mut cache = self.cache(b);
            let (xb, pb) = (f32s(b, &inputs.x[t * hidden..(t + 1) * hidden]), u32s(b, &[p as u32]));
            let mut qo = poisoned(b, q_row);
            let layer = &mut cache.layers[0];
            let args = QkvRopeArgs { wq: &q, wk: &k, wv: &v, x: &xb, n: 1, positions: &pb, rope: &rope, kv: layer, q_out: &mut qo };
            b.qkv_rope(args).expect("qkv_rope");
            all[0].extend(read_f32(b, &qo));
            all[1].extend(read_widened(b, &cache.layers[0].k));
            all[2].extend(read_widened(b, &cache.layers[0].v));
        }
        all
    }
}

/// `b` against `reference`: q within `budget_of_q`, the caches within it too (f32) or within
/// the bf16 budget (one rounding of each stored value).
pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget_of_q: f64, on: &str) {
    let (got, want) = (case.run(b), case.run(reference));
    let what = format!("qkv_rope_rows {case:?} on {on}");
    check(&format!("{what}: q"), &got[0], &want[0], None, budget_of_q);
    let cache = if case.shape.bf16_cache { budget("qkv_rope", "bf16_cache").max(budget_of_q) } else { budget_of_q };
    check(&format!("{what}: k caches"), &got[1], &want[1], None, cache);
    check(&format!("{what}: v caches"), &got[2], &want[2], None, cache);
}

/// Where `qkv_rope_rows` on `b` differs from each row alone on `b` (q, or any element of any
/// row's caches), if anywhere.
pub fn differs_from_alone<B: Backend>(case: &Case, b: &mut B) -> Option<String> {
    let (rows, alone) = (case.run(b), case.run_alone(b));
    ["q", "k caches", "v caches"].iter().zip(rows.iter().zip(&alone)).find_map(|(what, (r, a))| {
        // NaN poison where neither wrote compares equal by bits.
        let at = r.iter().zip(a).position(|(x, y)| x.to_bits() != y.to_bits())?;
        Some(format!("qkv_rope_rows {case:?}: {what} differ from the rows alone at element {at}: {} vs {}", r[at], a[at]))
    })
}
