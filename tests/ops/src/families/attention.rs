//! `attention`: head dims 2 to 64 (64 is gpt-oss's), 1 to 20 query heads per kv head, with and
//! without a sliding window (1 to 8 tokens, so the ring wraps), bf16 and f32 caches, 1 to 5
//! tokens at positions up to 45; and prompts for the tensor-core kernel: 1 to 129 tokens
//! either side of its 64-row tiles, after up to 200 earlier tokens, windows shorter and longer
//! than the prompt.

use gptoss_engine::{AttentionArgs, Backend, DType, KvCache, KvLayerSpec};
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

/// Tokens either side of the tensor-core kernel's 64-row tiles (a row is a token's head).
pub const MMA_TOKENS: [usize; 5] = [1, 2, 17, 128, 129];

/// Prompts with head dims from `head_dims` for the tensor-core kernel: the tokens of
/// [`MMA_TOKENS`] after 0 to 200 earlier ones (a chunk after a chunk), 1 to 8 query heads per
/// kv head, no window or one of 1 to 160 tokens (shorter and longer than the prompt).
pub fn mma_cases(head_dims: Vec<usize>) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(head_dims),
        1..3usize,
        1..9usize,
        prop::option::of(1..161usize),
        any::<bool>(),
        prop::sample::select(MMA_TOKENS.to_vec()),
        prop_oneof![Just(0usize), 1..201usize],
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
        // A ring of the window plus the batch on sliding layers (12 tokens at least, as the
        // small cases have always had).
        self.output(b, self.n.max(12), 0)
    }

    /// The output on `b` with a ring that holds every position (on sliding layers too), and
    /// NaN keys and values at the positions before the first query's window, which no query
    /// may see: a kernel that multiplied them, even by a zero weight, would return NaN.
    pub fn run_with_nan_before_the_window<B: Backend>(&self, b: &mut B) -> Vec<f32> {
        let first = self.window.map_or(0, |w| (self.start + 1).saturating_sub(w));
        self.output(b, self.start + self.n, first)
    }

    /// The output on `b`, the cache's ring sized for batches of `ring_batch`, keys and values of
    /// positions below `nan_below` NaN.
    fn output<B: Backend>(&self, b: &mut B, ring_batch: usize, nan_below: usize) -> Vec<f32> {
        let (d, kvh, q_heads) = (self.head_dim, self.kv_heads, self.kv_heads * self.group);
        let len = self.start + self.n;
        let mut rng = Rng::new(self.seed);
        let (mut keys, mut values) = (rng.floats(len * kvh * d, 2.0), rng.floats(len * kvh * d, 3.0));
        keys[..nan_below * kvh * d].fill(f32::NAN);
        values[..nan_below * kvh * d].fill(f32::NAN);
        let (q, sinks) = (rng.floats(self.n * q_heads * d, 2.0), rng.floats(q_heads, 2.0));
        let dtype = if self.bf16_cache { DType::Bf16 } else { DType::F32 };
        let spec = KvLayerSpec { kv_heads: kvh, head_dim: d, window: self.window };
        let mut kv = KvCache::new(b, &[spec], dtype, len.max(64), ring_batch).expect("kv cache");
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

pub fn compare<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget: f64, on: &str) {
    check(&format!("attention {case:?} on {on}"), &case.run(b), &case.run(reference), None, budget);
}

/// As `compare`, with the keys before every query's window NaN (`run_with_nan_before_the_window`):
/// the kernel must not touch them.
pub fn compare_skipping_keys_before_the_window<B: Backend, R: Backend>(case: &Case, b: &mut B, reference: &mut R, budget: f64, on: &str) {
    let (got, want) = (case.run_with_nan_before_the_window(b), case.run_with_nan_before_the_window(reference));
    check(&format!("attention {case:?} on {on}, NaN keys before the window"), &got, &want, None, budget);
}

/// A full layer of 8 slots asked for `n` tokens from position 20 on: keys it no longer holds,
/// an error naming the position (at the op or the next synchronize), reported once.
pub fn overrun_is_reported<B: Backend>(b: &mut B, n: usize) {
    const D: usize = 16;
    let kv = KvCache::new(b, &[KvLayerSpec { kv_heads: 1, head_dim: D, window: None }], DType::F32, 8, n).expect("kv cache");
    let positions: Vec<u32> = (20..20 + n as u32).collect();
    let (q, sinks, pos) = (f32s(b, &vec![0.0; n * D]), f32s(b, &[0.0]), u32s(b, &positions));
    let mut out = poisoned(b, n * D);
    let r = b.attention(AttentionArgs { q: &q, kv: &kv.layers[0], n, positions: &pos, sinks: &sinks, scale: 1.0, out: &mut out });
    let err = r.and_then(|_| b.synchronize()).expect_err("a ring overrun").to_string();
    assert!(err.contains("position"), "{n} tokens: {err}");
    b.synchronize().expect("the error is reported once");
}
