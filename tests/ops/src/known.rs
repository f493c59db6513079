//! Known answers that pin down gpt-oss's semantics, for any backend: the sink's damping, the
//! window's edge, RoPE at positions 0 and 1, the router's tie order, the clamped SwiGLU with
//! its +1, sampling's row and range, the errors every backend gives for wrong buffers, and the
//! sliding-window ring's rollback limit.
//! Head dimension 16 (every backend's smallest), the first 4 dimensions carrying the values.

use gptoss_engine::{
    AttentionArgs, Backend, DType, EmbedArgs, KvCache, KvLayerSpec, MatmulArgs, MoeExpertsArgs, MoeRouteArgs, QkvRopeArgs, Rope,
    SampleArgs, SamplingParams, Swiglu, Weight, WeightFormat,
};

use crate::io::{f32s, poisoned, read_f32, read_u32, u32s, upload};

const D: usize = 16;

/// A known answer's check, on one backend.
pub type Answer<B> = fn(&mut B);

/// Every known answer, by name.
pub fn all<B: Backend>() -> Vec<(&'static str, Answer<B>)> {
    vec![
        ("a single key is damped by the sink", sink_damps_a_single_key::<B>),
        ("the window holds exactly its length in keys", window_holds_its_length::<B>),
        ("rope at position 0 only scales by the concentration", rope_at_zero_scales::<B>),
        ("the router takes the top-k, lowest id first", router_ties_go_to_the_lower_id::<B>),
        ("the experts apply the clamped SwiGLU with its +1", swiglu_is_clamped_with_plus_one::<B>),
        ("sampling reads its row", sampling_reads_its_row::<B>),
        ("ops reject wrong buffers", ops_reject_wrong_buffers::<B>),
        ("the ring keeps what a rollback needs", ring_keeps_what_a_rollback_needs::<B>),
        ("bad ids and positions are errors", bad_ids_and_positions_are_errors::<B>),
    ]
}

fn dense<B: Backend>(b: &mut B, rows: usize, cols: usize, v: &[f32], bias: Option<&[f32]>) -> Weight<B::Buffer> {
    Weight { format: WeightFormat::F32, experts: 1, rows, cols, data: f32s(b, v), scales: None, bias: bias.map(|x| f32s(b, x)) }
}

/// A row of `D` with `v` in its first dimensions.
fn head(v: &[f32]) -> Vec<f32> {
    let mut h = vec![0f32; D];
    h[..v.len()].copy_from_slice(v);
    h
}

/// One kv head, an f32 cache; keys and values written at their slots.
fn cache_with<B: Backend>(b: &mut B, window: Option<usize>, keys: &[Vec<f32>], values: &[Vec<f32>]) -> KvCache<B::Buffer> {
    let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads: 1, head_dim: D, window }], DType::F32, 512, 8).unwrap();
    let layer = &mut kv.layers[0];
    for (p, (k, v)) in keys.iter().zip(values).enumerate() {
        let slot = p % layer.capacity;
        b.write(&mut layer.k, slot * D, bytemuck::cast_slice(k)).unwrap();
        b.write(&mut layer.v, slot * D, bytemuck::cast_slice(v)).unwrap();
    }
    kv
}

/// With one key, `out = v / (1 + exp(S − z))` (the sink joins the denominator only).
fn sink_damps_a_single_key<B: Backend>(b: &mut B) {
    let v = [2.0, -1.0, 0.5, 4.0];
    let kv = cache_with(b, None, &[head(&[1.0])], &[head(&v)]);
    let q = f32s(b, &[head(&[3.0]), head(&[-1.0])].concat());
    let (sinks, pos) = (f32s(b, &[0.5, 2.0]), u32s(b, &[0]));
    let mut out = poisoned(b, 2 * D);
    b.attention(AttentionArgs { q: &q, kv: &kv.layers[0], n: 1, positions: &pos, sinks: &sinks, scale: 0.5, out: &mut out }).unwrap();
    let out = read_f32(b, &out);
    for (h, (z, s)) in [(1.5f64, 0.5f64), (-0.5, 2.0)].into_iter().enumerate() {
        let damp = 1.0 / (1.0 + (s - z).exp());
        for (j, &v) in v.iter().enumerate() {
            let want = v as f64 * damp;
            assert!((out[h * D + j] as f64 - want).abs() < 1e-6, "head {h} dim {j}: {} vs {want}", out[h * D + j]);
        }
    }
}

/// Keys 0..=9 with values = position; equal logits (q = 0) make the output the mean of the
/// visible positions (the sinks near −∞ take nothing).
fn window_holds_its_length<B: Backend>(b: &mut B) {
    let keys = vec![head(&[]); 10];
    let values: Vec<Vec<f32>> = (0..10).map(|p| vec![p as f32; D]).collect();
    for (window, first) in [(Some(4), 6.0), (Some(1), 9.0), (Some(10), 0.0), (None, 0.0)] {
        let kv = cache_with(b, window, &keys, &values);
        let (q, sinks, pos) = (f32s(b, &[0.0; 2 * D]), f32s(b, &[-1e30, -1e30]), u32s(b, &[9]));
        let mut out = poisoned(b, 2 * D);
        b.attention(AttentionArgs { q: &q, kv: &kv.layers[0], n: 1, positions: &pos, sinks: &sinks, scale: 1.0, out: &mut out }).unwrap();
        let mean = (first + 9.0) / 2.0;
        assert!((read_f32(b, &out)[0] - mean).abs() < 1e-5, "window {window:?}");
    }
}

/// At position 0 the rotation is the identity and q, k come out scaled by the concentration;
/// at position 1 the first pair (dims 0 and D/2) turns by 1 radian.
fn rope_at_zero_scales<B: Backend>(b: &mut B) {
    let xv = head(&[1.0, -2.0, 0.5, 3.0]);
    let x = f32s(b, &xv);
    let eye = |b: &mut B, rows: usize| {
        let mut m = vec![0f32; rows * D];
        for r in 0..rows {
            m[r * D + r % D] = 1.0;
        }
        dense(b, rows, D, &m, None)
    };
    let (wq, wk, wv) = (eye(b, 2 * D), eye(b, D), eye(b, D));
    let mut inv = vec![0.001f32; D / 2];
    inv[0] = 1.0;
    let rope = Rope { inv_freq: f32s(b, &inv), concentration: 1.5 };
    let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads: 1, head_dim: D, window: None }], DType::F32, 16, 4).unwrap();
    let mut q = poisoned(b, 2 * D);
    let pos = u32s(b, &[0]);
    b.qkv_rope(QkvRopeArgs { wq: &wq, wk: &wk, wv: &wv, x: &x, n: 1, positions: &pos, rope: &rope, kv: &mut kv.layers[0], q_out: &mut q })
        .unwrap();
    let scaled: Vec<f32> = xv.iter().map(|v| v * 1.5).collect();
    assert_eq!(read_f32(b, &q), [scaled.clone(), scaled.clone()].concat());
    assert_eq!(read_f32(b, &kv.layers[0].k)[..D], scaled[..]);
    assert_eq!(read_f32(b, &kv.layers[0].v)[..D], xv[..]);
    let pos = u32s(b, &[1]);
    b.qkv_rope(QkvRopeArgs { wq: &wq, wk: &wk, wv: &wv, x: &x, n: 1, positions: &pos, rope: &rope, kv: &mut kv.layers[0], q_out: &mut q })
        .unwrap();
    let q = read_f32(b, &q);
    let (c, s) = (1f64.cos() * 1.5, 1f64.sin() * 1.5);
    // (u[0], u[D/2]) = (1, 0) turns to (cos, sin).
    assert!((q[0] as f64 - c).abs() < 1e-6 && (q[D / 2] as f64 - s).abs() < 1e-6, "{:?}", &q[..D]);
}

/// Logits = bias: experts 1 and 3 tie at 2.0 above expert 0; top-2 is [1, 3], weights ½, ½.
fn router_ties_go_to_the_lower_id<B: Backend>(b: &mut B) {
    let x = f32s(b, &[1.0; D]);
    let router = dense(b, 4, D, &[0.0; 4 * D], Some(&[1.0, 2.0, -5.0, 2.0]));
    let (mut ids, mut w) = (upload(b, DType::U32, &[u32::MAX; 2]), poisoned(b, 2));
    b.moe_route(MoeRouteArgs { router: &router, x: &x, n: 1, top_k: 2, ids: &mut ids, weights: &mut w }).unwrap();
    assert_eq!(read_u32(b, &ids), vec![1, 3]);
    assert_eq!(read_f32(b, &w), vec![0.5, 0.5]);
}

/// One MXFP4 expert whose codes are all zero, so the outputs are the biases alone: gates and ups
/// set by the bias go through the SwiGLU, and an identity down projection adds the activations
/// to a residual of 10.
fn swiglu_is_clamped_with_plus_one<B: Backend>(b: &mut B) {
    let (h, i) = (32usize, 32usize);
    let scales = |b: &mut B, n: usize| upload(b, DType::U8, &vec![127u8; n]);
    let (gates, ups) = ([-3.0f32, 0.5, 9.0, 2.0], [1.0f32, -9.0, 8.0, -0.5]);
    let mut b1 = vec![0f32; 2 * i];
    for k in 0..4 {
        b1[2 * k] = gates[k];
        b1[2 * k + 1] = ups[k];
    }
    let gate_up = Weight {
        format: WeightFormat::Mxfp4,
        experts: 1,
        rows: 2 * i,
        cols: h,
        data: upload(b, DType::U8, &vec![0u8; 2 * i * h / 2]),
        scales: Some(scales(b, 2 * i * h / 32)),
        bias: Some(f32s(b, &b1)),
    };
    // down = identity on the first 4 activations: code 2 (= 1.0) at (r, r), scale 2^0.
    let mut codes = vec![0u8; h * i / 2];
    for r in 0..4 {
        codes[r * (i / 2) + r / 2] |= if r % 2 == 0 { 2 } else { 2 << 4 };
    }
    let down = Weight {
        format: WeightFormat::Mxfp4,
        experts: 1,
        rows: h,
        cols: i,
        data: upload(b, DType::U8, &codes),
        scales: Some(scales(b, h * i / 32)),
        bias: None,
    };
    let (x, ids, w) = (f32s(b, &[0.0; 32]), u32s(b, &[0]), f32s(b, &[1.0]));
    let mut res = f32s(b, &[10.0; 32]);
    let swiglu = Swiglu { alpha: 1.702, limit: 7.0 };
    b.moe_experts(MoeExpertsArgs {
        gate_up: &gate_up,
        down: &down,
        x: &x,
        n: 1,
        ids: &ids,
        weights: &w,
        top_k: 1,
        swiglu,
        residual: &mut res,
    })
    .unwrap();
    let out = read_f32(b, &res);
    for k in 0..4 {
        let g = (gates[k] as f64).min(7.0);
        let u = (ups[k] as f64).clamp(-7.0, 7.0);
        let want = 10.0 + g / (1.0 + (-1.702 * g).exp()) * (u + 1.0);
        assert!((out[k] as f64 - want).abs() < 1e-5, "activation {k}: {} vs {want}", out[k]);
    }
    assert!(out[4..].iter().all(|&v| v == 10.0));
}

/// Greedy sampling takes the arg-max of the row it is given; a row past the buffer is an error.
fn sampling_reads_its_row<B: Backend>(b: &mut B) {
    let mut l = vec![0f32; 32];
    (l[2], l[16]) = (5.0, 9.0);
    let logits = f32s(b, &l);
    let greedy = SamplingParams::GREEDY;
    let sample = |b: &mut B, row| b.sample(SampleArgs { logits: &logits, row, vocab: 16, params: &greedy, u: 0.5 });
    assert_eq!(sample(b, 0).unwrap(), 2);
    assert_eq!(sample(b, 1).unwrap(), 0);
    assert!(sample(b, 2).is_err());
}

/// Every backend checks the same contracts (`checks`) and says what is wrong.
fn ops_reject_wrong_buffers<B: Backend>(b: &mut B) {
    let w = dense(b, 4, 8, &[0.0; 32], None);
    let x = f32s(b, &[0.0; 8]);
    let mut small = b.alloc(DType::F32, 3).unwrap();
    let err = b.matmul(MatmulArgs { w: &w, x: &x, n: 1, out: &mut small, accumulate: false }).unwrap_err().to_string();
    assert!(err.contains("out must be f32 with ≥ 4 elements"), "{err}");
    let mut wrong = b.alloc(DType::U32, 4).unwrap();
    assert!(b.matmul(MatmulArgs { w: &w, x: &x, n: 1, out: &mut wrong, accumulate: false }).is_err());
    let bad = Weight { format: WeightFormat::Bf16, ..dense(b, 4, 8, &[0.0; 32], None) };
    let mut out = b.alloc(DType::F32, 4).unwrap();
    let err = b.matmul(MatmulArgs { w: &bad, x: &x, n: 1, out: &mut out, accumulate: false }).unwrap_err().to_string();
    assert!(err.contains("data must be"), "{err}");
    let tokens = u32s(b, &[0]);
    let mut emb = b.alloc(DType::F32, 7).unwrap();
    let err = b.embed(EmbedArgs { table: &w, tokens: &tokens, n: 1, out: &mut emb }).unwrap_err().to_string();
    assert!(err.contains("out must be f32 with ≥ 8 elements"), "{err}");
}

/// A sliding-window layer's ring holds the window plus a batch: 3 tokens may be rolled back,
/// not 4; the context's end is an overflow naming both numbers.
fn ring_keeps_what_a_rollback_needs<B: Backend>(b: &mut B) {
    let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads: 1, head_dim: D, window: Some(4) }], DType::Bf16, 100, 3).unwrap();
    assert_eq!(kv.layers[0].capacity, 7);
    kv.check_append(3).unwrap();
    assert!(kv.check_append(4).is_err());
    for _ in 0..10 {
        kv.advance(3);
    }
    assert!(kv.rollback(27).is_ok());
    assert!(kv.rollback(23).is_err(), "4 tokens back exceed the ring's 3 spare slots");
    assert!(kv.rollback(99).is_err());
    kv.advance(73);
    assert!(matches!(kv.check_append(1), Err(gptoss_engine::EngineError::ContextOverflow { needed: 101, capacity: 100 })));
}

/// Token ids, expert ids and positions may live in device memory, where only the kernels can
/// check them: every backend still reports each, at the op or at the next synchronize (the CUDA
/// kernels through their status word), naming what was wrong.
fn bad_ids_and_positions_are_errors<B: Backend>(b: &mut B) {
    let expect = |b: &mut B, what: &str, r: gptoss_engine::Result<()>| {
        let err = r.and_then(|_| b.synchronize()).expect_err(what).to_string();
        assert!(err.contains(what), "{what}: {err}");
        b.synchronize().expect("the error is reported once");
    };
    let table = dense(b, 10, D, &[0.5; 10 * D], None);
    let tokens = u32s(b, &[10]);
    let mut out = poisoned(b, D);
    let r = b.embed(EmbedArgs { table: &table, tokens: &tokens, n: 1, out: &mut out });
    expect(b, "token id", r);

    let (h, i, experts) = (32usize, 32usize, 2usize);
    let mxfp4 = |b: &mut B, rows: usize, cols: usize| Weight {
        format: WeightFormat::Mxfp4,
        experts,
        rows,
        cols,
        data: upload(b, DType::U8, &vec![0u8; experts * rows * cols / 2]),
        scales: Some(upload(b, DType::U8, &vec![127u8; experts * rows * cols / 32])),
        bias: None,
    };
    let (gate_up, down) = (mxfp4(b, 2 * i, h), mxfp4(b, h, i));
    let (x, ids, w) = (f32s(b, &[0.0; 32]), u32s(b, &[2]), f32s(b, &[1.0]));
    let mut res = f32s(b, &[0.0; 32]);
    let swiglu = Swiglu { alpha: 1.702, limit: 7.0 };
    let r = b.moe_experts(MoeExpertsArgs {
        gate_up: &gate_up,
        down: &down,
        x: &x,
        n: 1,
        ids: &ids,
        weights: &w,
        top_k: 1,
        swiglu,
        residual: &mut res,
    });
    expect(b, "expert id", r);

    // A full layer of 8 slots asked for position 20: 21 keys it does not hold.
    let kv = KvCache::new(b, &[KvLayerSpec { kv_heads: 1, head_dim: D, window: None }], DType::F32, 8, 1).unwrap();
    let (q, sinks, pos) = (f32s(b, &[0.0; D]), f32s(b, &[0.0]), u32s(b, &[20]));
    let mut out = poisoned(b, D);
    let r = b.attention(AttentionArgs { q: &q, kv: &kv.layers[0], n: 1, positions: &pos, sinks: &sinks, scale: 1.0, out: &mut out });
    expect(b, "position", r);
}
