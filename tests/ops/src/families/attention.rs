//! `attention`: head dims 2 to 64 (64 is gpt-oss's), 1 to 20 query heads per kv head, with and
//! without a sliding window (1 to 8 tokens, so the ring wraps), bf16 and f32 caches, 1 to 5
//! tokens at positions up to 45.

use gptoss_engine::{AttentionArgs, Backend, DType, KvCache, KvLayerSpec};
use proptest::prelude::*;

use crate::budgets::budget;
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
    pub n: usize,
    /// The first token's position.
    pub start: usize,
    pub seed: u64,
}

/// Cases with head dims from `head_dims` and up to `max_group` query heads per kv head.
pub fn cases(head_dims: Vec<usize>, max_group: usize) -> impl Strategy<Value = Case> {
    let groups: Vec<usize> = [1usize, 2, 8, 20].into_iter().filter(|&g| g <= max_group).collect();
    (
        prop::sample::select(head_dims),
        1..3usize,
        prop::sample::select(groups),
        prop::option::of(1..9usize),
        any::<bool>(),
        1..6usize,
        0..40usize,
        any::<u64>(),
    )
        .prop_map(|(head_dim, kv_heads, group, window, bf16_cache, n, start, seed)| Case {
            head_dim,
            kv_heads,
            group,
            window,
            bf16_cache,
            n,
            start,
            seed,
        })
}

impl Case {
    /// The output on `b`: keys and values of positions `0 .. start + n` written at their ring
    /// slots (later ones overwrite earlier, as in use), then the `n` queries.
    pub fn run<B: Backend>(&self, b: &mut B) -> Vec<f32> {
        let (d, kvh, q_heads) = (self.head_dim, self.kv_heads, self.kv_heads * self.group);
        let len = self.start + self.n;
        let mut rng = Rng::new(self.seed);
        let (keys, values) = (rng.floats(len * kvh * d, 2.0), rng.floats(len * kvh * d, 3.0));
        let (q, sinks) = (rng.floats(self.n * q_heads * d, 2.0), rng.floats(q_heads, 2.0));
        let dtype = if self.bf16_cache { DType::Bf16 } else { DType::F32 };
        let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads: kvh, head_dim: d, window: self.window }], dtype, 64, 12).expect("kv cache");
        let layer = &mut kv.layers[0];
        let row = kvh * d;
        for p in 0..len {
            let slot = (p % layer.capacity) * row;
            b.write(&mut layer.k, slot, &bytes_as(dtype, &keys[p * row..(p + 1) * row])).expect("write keys");
            b.write(&mut layer.v, slot, &bytes_as(dtype, &values[p * row..(p + 1) * row])).expect("write values");
        }
        let positions: Vec<u32> = (self.start..len).map(|p| p as u32).collect();
        let (qb, sb, pb) = (f32s(b, &q), f32s(b, &sinks), u32s(b, &positions));
        let mut out = poisoned(b, self.n * q_heads * d);
        b.attention(AttentionArgs { q: &qb, kv: &kv.layers[0], n: self.n, positions: &pb, sinks: &sb, scale: 0.3, out: &mut out })
            .expect("attention");
        read_f32(b, &out)
    }
}

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, on: &str) {
    check(&format!("attention {case:?} on {on}"), &case.run(b), &case.run(reference), None, budget("attention", "exact"));
}
