//! Contexts are independent: two interleaved conversations on one model give the same logits
//! as each alone, and a rollback replays exactly.

use gptoss_engine::{CausalLm, DType};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_model_gpt_oss::memory::context_bytes;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource};

fn model() -> GptOss<CpuBackend> {
    let m = ModelSource::Dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/reference/fixture").into()).open().unwrap();
    GptOss::load(CpuBackend::new(Some(2)).unwrap(), &m, LoadOptions { max_batch: 4, ..LoadOptions::default() }).unwrap()
}

const OPTS: ContextOptions = ContextOptions { max_context: 64, kv_dtype: DType::F32 };

/// Logits after each token of `tokens`, fed one at a time.
fn alone(tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut m = model();
    let mut ctx = m.new_context(OPTS).unwrap();
    let mut lm = m.session(&mut ctx);
    tokens
        .iter()
        .map(|&t| {
            lm.forward(&[t], 1).unwrap();
            let mut row = vec![0f32; 512];
            lm.logits(0, &mut row).unwrap();
            row
        })
        .collect()
}

#[test]
fn interleaved_contexts_do_not_interfere() {
    let a: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % 512).collect();
    let b: Vec<u32> = (0..20).map(|i| (i * 101 + 9) % 512).collect();
    let (want_a, want_b) = (alone(&a), alone(&b));
    let mut m = model();
    let mut ca = m.new_context(OPTS).unwrap();
    let mut cb = m.new_context(OPTS).unwrap();
    let mut row = vec![0f32; 512];
    for i in 0..20 {
        m.forward(&mut ca, &[a[i]], 1).unwrap();
        m.forward(&mut cb, &[b[i]], 1).unwrap();
        m.logits(&ca, 0, &mut row).unwrap();
        assert_eq!(row, want_a[i], "context a, token {i}");
        m.logits(&cb, 0, &mut row).unwrap();
        assert_eq!(row, want_b[i], "context b, token {i}");
    }
}

#[test]
fn rollback_replays_exactly() {
    let t: Vec<u32> = (0..24).map(|i| (i * 53 + 1) % 512).collect();
    let want = alone(&t);
    let mut m = model();
    let mut ctx = m.new_context(OPTS).unwrap();
    let mut lm = m.session(&mut ctx);
    for chunk in t[..16].chunks(4) {
        lm.forward(chunk, 0).unwrap();
    }
    // The sliding layers keep window 8 + batch 4 slots: 4 tokens can be taken back, not 5.
    assert!(lm.rollback(11).is_err());
    lm.rollback(12).unwrap();
    assert_eq!(lm.position(), 12);
    let mut row = vec![0f32; 512];
    for (i, &tok) in t.iter().enumerate().skip(12) {
        lm.forward(&[tok], 1).unwrap();
        lm.logits(0, &mut row).unwrap();
        assert_eq!(row, want[i], "token {i} after the rollback");
    }
    assert!(lm.logits(1, &mut row).is_err());
    // Emptying the cache always works, however far the rings have turned: a context is reused
    // for a new sequence this way.
    lm.rollback(0).unwrap();
    for (i, &tok) in t.iter().enumerate() {
        lm.forward(&[tok], 1).unwrap();
        lm.logits(0, &mut row).unwrap();
        assert_eq!(row, want[i], "token {i} after emptying the cache");
    }
}

#[test]
fn emptying_a_context_works_after_its_rings_wrapped() {
    let t: Vec<u32> = (0..24).map(|i| (i * 53 + 1) % 512).collect();
    let want = alone(&t[..4]);
    let mut m = model();
    let mut ctx = m.new_context(OPTS).unwrap();
    let mut lm = m.session(&mut ctx);
    // 24 tokens through rings of window 8 + batch 4 slots: position 0 is long overwritten,
    // but an empty cache needs none of it.
    for chunk in t.chunks(4) {
        lm.forward(chunk, 0).unwrap();
    }
    lm.rollback(0).unwrap();
    let mut row = vec![0f32; 512];
    for (i, &tok) in t[..4].iter().enumerate() {
        lm.forward(&[tok], 1).unwrap();
        lm.logits(0, &mut row).unwrap();
        assert_eq!(row, want[i], "token {i} after emptying");
    }
}

#[test]
fn the_context_footprint_is_known_before_allocation() {
    let mut m = model();
    for (max_context, kv_dtype) in [(64, DType::F32), (5, DType::Bf16), (4096, DType::Bf16)] {
        let ctx = m.new_context(ContextOptions { max_context, kv_dtype }).unwrap();
        let (kv, _) = context_bytes(m.config(), max_context, m.max_batch(), kv_dtype).unwrap();
        assert_eq!(kv, ctx.kv_cache_bytes() as u64, "context {max_context}");
    }
    assert_eq!(context_bytes(m.config(), usize::MAX, usize::MAX, DType::F32), None, "overflow is not a size");
}
