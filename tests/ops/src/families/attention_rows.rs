//! `attention_rows`: rows of 1 to 6 sequences, each its own cache (a decode step of several
//! contexts), every row at its own position (0 to 60, so a sliding window's ring wraps), head
//! dims 2 to 64 (16, 64, 128 on CUDA), 1 to 20 query heads per kv head, with and without a
//! window, bf16 and f32 caches. Compared with the scalar reference, and row by row with the
//! single-sequence `attention` of that row alone, bit for bit.

use gptoss_engine::{AttentionArgs, AttentionRowsArgs, Backend, DType, KvCache, KvLayerSpec};
use proptest::prelude::*;

use crate::io::{bytes_as, f32s, poisoned, read_f32, u32s};
use crate::metric::check;
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Case {
    pub head_dim: usize,
    pub kv_heads: usize,
    /// Query heads per kv head.
    pub group: usize,
    pub window: Option<usize>,
    pub bf16_cache: bool,
    /// Each row's position: its sequence holds keys `0 ..= position`.
    pub positions: Vec<usize>,
    pub seed: u64,
}

/// Cases with head dims from `head_dims` and up to `max_group` query heads per kv head.
pub fn cases(head_dims: Vec<usize>, max_group: usize) -> impl Strategy<Value = Case> {
    cases_with_rows(head_dims, max_group, 1..7)
}

/// Cases with a number of rows from `rows` (a backend's launch limits are crossed by many).
pub fn cases_with_rows(head_dims: Vec<usize>, max_group: usize, rows: std::ops::Range<usize>) -> impl Strategy<Value = Case> {
    let groups: Vec<usize> = [1usize, 2, 8, 20].into_iter().filter(|&g| g <= max_group).collect();
    (
        prop::sample::select(head_dims),
        1..3usize,
        prop::sample::select(groups),
        prop::option::of(1..9usize),
        any::<bool>(),
        prop::collection::vec(0..60usize, rows),
        any::<u64>(),
    )
        .prop_map(|(head_dim, kv_heads, group, window, bf16_cache, positions, seed)| Case {
            head_dim,
            kv_heads,
            group,
            window,
            bf16_cache,
            positions,
            seed,
        })
}

/// A case's sequences on one backend: a cache per row holding its keys and values, the rows'
/// queries, positions and the sinks.
struct Sequences<Buf> {
    caches: Vec<KvCache<Buf>>,
    q: Vec<f32>,
    positions: Vec<u32>,
    sinks: Buf,
}

impl Case {
    fn q_row(&self) -> usize {
        self.kv_heads * self.group * self.head_dim
    }

    fn sequences<B: Backend>(&self, b: &mut B) -> Sequences<B::Buffer> {
        let (d, kvh, q_heads) = (self.head_dim, self.kv_heads, self.kv_heads * self.group);
        let mut rng = Rng::new(self.seed);
        let dtype = if self.bf16_cache { DType::Bf16 } else { DType::F32 };
        let spec = KvLayerSpec { kv_heads: kvh, head_dim: d, window: self.window };
        let mut caches = Vec::new();
        for &p in &self.positions {
            // A ring of the window and a decode step on sliding layers, as a context has.
            let mut kv = KvCache::new(b, &[spec], dtype, 64, 1).expect("kv cache");
            let layer = &mut kv.layers[0];
            let row = kvh * d;
            for s in 0..=p {
                let slot = (s % layer.capacity) * row;
                let (k, v) = (rng.floats(row, 2.0), rng.floats(row, 3.0));
                b.write(&mut layer.k, slot, &bytes_as(dtype, &k)).expect("write keys");
                b.write(&mut layer.v, slot, &bytes_as(dtype, &v)).expect("write values");
            }
            caches.push(kv);
        }
        let q = rng.floats(self.positions.len() * q_heads * d, 2.0);
        let sinks = f32s(b, &rng.floats(q_heads, 2.0));
        Sequences { caches, q, positions: self.positions.iter().map(|&p| p as u32).collect(), sinks }
    }

    /// The output of `attention_rows` on `b`, all rows in one call.
    pub fn run<B: Backend>(&self, b: &mut B) -> Vec<f32> {
        let s = self.sequences(b);
        let n = self.positions.len();
        let (qb, pb) = (f32s(b, &s.q), u32s(b, &s.positions));
        let mut out = poisoned(b, n * self.q_row());
        let kv: Vec<_> = s.caches.iter().map(|c| &c.layers[0]).collect();
        b.attention_rows(AttentionRowsArgs { q: &qb, kv: &kv[..], n, positions: &pb, sinks: &s.sinks, scale: 0.3, out: &mut out })
            .expect("attention_rows");
        read_f32(b, &out)
    }

    /// Each row through the single-sequence `attention` alone (one token on its cache).
    pub fn run_alone<B: Backend>(&self, b: &mut B) -> Vec<f32> {
        let s = self.sequences(b);
        let row = self.q_row();
        let mut all = Vec::new();
        for (t, cache) in s.caches.iter().enumerate() {
            let (qb, pb) = (f32s(b, &s.q[t * row..(t + 1) * row]), u32s(b, &s.positions[t..t + 1]));
            let mut out = poisoned(b, row);
            let args = AttentionArgs { q: &qb, kv: &cache.layers[0], n: 1, positions: &pb, sinks: &s.sinks, scale: 0.3, out: &mut out };
            b.attention(args).expect("attention");
            all.extend(read_f32(b, &out));
        }
        all
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget: f64, on: &str) {
    check(&format!("attention_rows {case:?} on {on}"), &case.run(b), &case.run(reference), None, budget);
}

/// Where a row of `attention_rows` on `b` differs from the same row alone on `b`, if anywhere.
pub fn differs_from_alone<B: Backend>(case: &Case, b: &mut B) -> Option<String> {
    let (rows, alone) = (case.run(b), case.run_alone(b));
    let row = case.q_row();
    (0..case.positions.len())
        .find(|&t| rows[t * row..(t + 1) * row].iter().zip(&alone[t * row..(t + 1) * row]).any(|(a, b)| a.to_bits() != b.to_bits()))
        .map(|t| format!("attention_rows {case:?}: row {t} differs from the row alone"))
}

/// A row whose sequence is past what its cache's 8 slots hold (the other row is fine): an error
/// naming the position (at the op or the next synchronize), reported once.
pub fn overrun_is_reported<B: Backend>(b: &mut B) {
    const D: usize = 16;
    let spec = [KvLayerSpec { kv_heads: 1, head_dim: D, window: None }];
    let caches = [0, 1].map(|_| KvCache::new(b, &spec, DType::F32, 8, 1).expect("kv cache"));
    let (q, sinks, pos) = (f32s(b, &[0.0; 2 * D]), f32s(b, &[0.0]), u32s(b, &[3, 20]));
    let mut out = poisoned(b, 2 * D);
    let kv = [&caches[0].layers[0], &caches[1].layers[0]];
    let r = b.attention_rows(AttentionRowsArgs { q: &q, kv: &kv[..], n: 2, positions: &pos, sinks: &sinks, scale: 1.0, out: &mut out });
    let err = r.and_then(|_| b.synchronize()).expect_err("a ring overrun").to_string();
    assert!(err.contains("position"), "{err}");
    b.synchronize().expect("the error is reported once");
}
