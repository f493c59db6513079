//! Known answers for the reference ops, through the Backend API: the properties that pin down
//! gpt-oss's semantics (sinks, window edge, RoPE at position 0, router ties, SwiGLU clamps).

use gptoss_engine::{
    Backend, DType, DeviceBuffer, KvCache, KvLayerSpec, ModelPlan, OpCase, OpKind, Rope, SamplingParams, Swiglu, Weight, WeightFormat,
};
use gptoss_kernels_cpu::{CpuBackend, CpuBuffer};

fn backend() -> CpuBackend {
    let mut b = CpuBackend::new(Some(2)).unwrap();
    let cases = OpKind::ALL
        .iter()
        .flat_map(|&op| {
            [None, Some(WeightFormat::F32), Some(WeightFormat::Bf16), Some(WeightFormat::Mxfp4)].map(move |format| OpCase { op, format })
        })
        .collect();
    let plan = ModelPlan {
        max_tokens: 8,
        hidden: 64,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 4,
        experts: 4,
        top_k: 2,
        intermediate: 32,
        vocab: 16,
        cases,
    };
    b.prepare(&plan).unwrap();
    b
}

fn f32_buf(b: &mut CpuBackend, v: &[f32]) -> CpuBuffer {
    let mut buf = b.alloc(DType::F32, v.len()).unwrap();
    b.write(&mut buf, 0, bytemuck::cast_slice(v)).unwrap();
    buf
}

fn u32_buf(b: &mut CpuBackend, v: &[u32]) -> CpuBuffer {
    let mut buf = b.alloc(DType::U32, v.len()).unwrap();
    b.write(&mut buf, 0, bytemuck::cast_slice(v)).unwrap();
    buf
}

fn read_f32(b: &mut CpuBackend, buf: &CpuBuffer) -> Vec<f32> {
    let mut out = vec![0f32; buf.len()];
    b.read(buf, 0, bytemuck::cast_slice_mut(&mut out)).unwrap();
    out
}

fn dense(b: &mut CpuBackend, rows: usize, cols: usize, v: &[f32], bias: Option<&[f32]>) -> Weight<CpuBuffer> {
    Weight { format: WeightFormat::F32, experts: 1, rows, cols, data: f32_buf(b, v), scales: None, bias: bias.map(|x| f32_buf(b, x)) }
}

/// One kv head of dimension 4, two query heads, an f32 cache; keys/values written directly.
fn cache_with(b: &mut CpuBackend, window: Option<usize>, keys: &[[f32; 4]], values: &[[f32; 4]]) -> KvCache<CpuBuffer> {
    let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads: 1, head_dim: 4, window }], DType::F32, 512, 8).unwrap();
    let layer = &mut kv.layers[0];
    for (p, (k, v)) in keys.iter().zip(values).enumerate() {
        let slot = p % layer.capacity;
        b.write(&mut layer.k, slot * 4, bytemuck::cast_slice(k)).unwrap();
        b.write(&mut layer.v, slot * 4, bytemuck::cast_slice(v)).unwrap();
    }
    kv
}

#[test]
fn a_single_key_is_damped_by_the_sink() {
    // Spec §8: with one key, out = v / (1 + exp(S − z)).
    let mut b = backend();
    let kv = cache_with(&mut b, None, &[[1.0, 0.0, 0.0, 0.0]], &[[2.0, -1.0, 0.5, 4.0]]);
    let q = f32_buf(&mut b, &[3.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0]);
    let sinks = f32_buf(&mut b, &[0.5, 2.0]);
    let pos = u32_buf(&mut b, &[0]);
    let mut out = b.alloc(DType::F32, 8).unwrap();
    b.attention(&q, &kv.layers[0], 1, &pos, &sinks, 0.5, &mut out).unwrap();
    let out = read_f32(&mut b, &out);
    for (h, (z, s)) in [(1.5f64, 0.5f64), (-0.5, 2.0)].into_iter().enumerate() {
        let damp = 1.0 / (1.0 + (s - z).exp());
        for (j, v) in [2.0, -1.0, 0.5, 4.0].iter().enumerate() {
            assert!((out[h * 4 + j] as f64 - v * damp).abs() < 1e-6, "head {h} dim {j}");
        }
    }
}

#[test]
fn the_window_holds_exactly_its_length_in_keys() {
    // Keys 0..=9 with values = position; equal logits (q = 0) make the output the mean of the
    // visible positions, weighted against a sink at −∞-ish.
    let mut b = backend();
    let keys = [[0.0f32; 4]; 10];
    let values: Vec<[f32; 4]> = (0..10).map(|p| [p as f32; 4]).collect();
    for (window, want_first) in [(Some(4), 6.0), (Some(1), 9.0), (Some(10), 0.0), (None, 0.0)] {
        let kv = cache_with(&mut b, window, &keys, &values);
        let q = f32_buf(&mut b, &[0.0; 8]);
        let sinks = f32_buf(&mut b, &[-1e30, -1e30]);
        let pos = u32_buf(&mut b, &[9]);
        let mut out = b.alloc(DType::F32, 8).unwrap();
        b.attention(&q, &kv.layers[0], 1, &pos, &sinks, 1.0, &mut out).unwrap();
        let mean = (want_first + 9.0) / 2.0;
        assert!((read_f32(&mut b, &out)[0] - mean).abs() < 1e-5, "window {window:?}");
    }
}

#[test]
fn rope_at_position_zero_only_scales_by_the_concentration() {
    let mut b = backend();
    let x = f32_buf(&mut b, &[1.0, -2.0, 0.5, 3.0]);
    let eye = |b: &mut CpuBackend, rows| {
        let mut m = vec![0f32; rows * 4];
        for r in 0..rows {
            m[r * 4 + r % 4] = 1.0;
        }
        dense(b, rows, 4, &m, None)
    };
    let (wq, wk, wv) = (eye(&mut b, 8), eye(&mut b, 4), eye(&mut b, 4));
    let inv = f32_buf(&mut b, &[1.0, 0.01]);
    let rope = Rope { inv_freq: inv, concentration: 1.5 };
    let mut kv = KvCache::new(&mut b, &[KvLayerSpec { kv_heads: 1, head_dim: 4, window: None }], DType::F32, 16, 4).unwrap();
    let pos = u32_buf(&mut b, &[0]);
    let mut q = b.alloc(DType::F32, 8).unwrap();
    b.qkv_rope(&wq, &wk, &wv, &x, 1, &pos, &rope, &mut kv.layers[0], &mut q).unwrap();
    assert_eq!(read_f32(&mut b, &q), vec![1.5, -3.0, 0.75, 4.5, 1.5, -3.0, 0.75, 4.5]);
    assert_eq!(read_f32(&mut b, &kv.layers[0].k)[..4], [1.5, -3.0, 0.75, 4.5]);
    assert_eq!(read_f32(&mut b, &kv.layers[0].v)[..4], [1.0, -2.0, 0.5, 3.0]);
    // At position 1 the first pair turns by 1 radian: (a, b) → (a cos − b sin, b cos + a sin).
    let pos = u32_buf(&mut b, &[1]);
    b.qkv_rope(&wq, &wk, &wv, &x, 1, &pos, &rope, &mut kv.layers[0], &mut q).unwrap();
    let q = read_f32(&mut b, &q);
    let (c, s) = (1f64.cos() * 1.5, 1f64.sin() * 1.5);
    assert!((q[0] as f64 - (1.0 * c - 0.5 * s)).abs() < 1e-6);
    assert!((q[2] as f64 - (0.5 * c + 1.0 * s)).abs() < 1e-6);
}

#[test]
fn router_takes_the_top_k_lowest_id_first_and_softmaxes_them() {
    let mut b = backend();
    let x = f32_buf(&mut b, &[1.0]);
    // Logits = bias: experts 1 and 3 tie at 2.0, expert 0 at 1.0.
    let router = dense(&mut b, 4, 1, &[0.0; 4], Some(&[1.0, 2.0, -5.0, 2.0]));
    let mut ids = b.alloc(DType::U32, 2).unwrap();
    let mut w = b.alloc(DType::F32, 2).unwrap();
    b.moe_route(&router, &x, 1, 2, &mut ids, &mut w).unwrap();
    let mut got = [0u32; 2];
    b.read(&ids, 0, bytemuck::cast_slice_mut(&mut got)).unwrap();
    assert_eq!(got, [1, 3]);
    assert_eq!(read_f32(&mut b, &w), vec![0.5, 0.5]);
}

#[test]
fn experts_apply_the_clamped_swiglu_with_the_plus_one() {
    let mut b = backend();
    // One expert, hidden 32, intermediate 32 in MXFP4 with all-zero codes: the outputs are the
    // biases alone, which isolates the activation.
    let (h, i) = (32usize, 32usize);
    let zeros = |b: &mut CpuBackend, n| b.alloc(DType::U8, n).unwrap();
    let scales = |b: &mut CpuBackend, n| {
        let mut s = b.alloc(DType::U8, n).unwrap();
        b.write(&mut s, 0, &vec![127u8; n]).unwrap();
        s
    };
    let gates = [-3.0f32, 0.5, 9.0, 2.0];
    let ups = [1.0f32, -9.0, 8.0, -0.5];
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
        data: zeros(&mut b, 2 * i * h / 2),
        scales: Some(scales(&mut b, 2 * i * h / 32)),
        bias: Some(f32_buf(&mut b, &b1)),
    };
    // down = identity on the first 4 activations: code 2 (= 1.0) at (r, r), scale 2^0.
    let mut down_codes = vec![0u8; h * i / 2];
    for r in 0..4 {
        let byte = r * (i / 2) + r / 2;
        down_codes[byte] |= if r % 2 == 0 { 2 } else { 2 << 4 };
    }
    let mut dd = b.alloc(DType::U8, down_codes.len()).unwrap();
    b.write(&mut dd, 0, &down_codes).unwrap();
    let down = Weight {
        format: WeightFormat::Mxfp4,
        experts: 1,
        rows: h,
        cols: i,
        data: dd,
        scales: Some(scales(&mut b, h * i / 32)),
        bias: None,
    };
    let x = f32_buf(&mut b, &[0.0; 32]);
    let ids = u32_buf(&mut b, &[0]);
    let w = f32_buf(&mut b, &[1.0]);
    let mut res = f32_buf(&mut b, &[10.0; 32]);
    b.moe_experts(&gate_up, &down, &x, 1, &ids, &w, 1, Swiglu { alpha: 1.702, limit: 7.0 }, &mut res).unwrap();
    let out = read_f32(&mut b, &res);
    for k in 0..4 {
        let g = (gates[k] as f64).min(7.0);
        let u = (ups[k] as f64).clamp(-7.0, 7.0);
        let want = 10.0 + g / (1.0 + (-1.702 * g).exp()) * (u + 1.0);
        assert!((out[k] as f64 - want).abs() < 1e-5, "activation {k}: {} vs {want}", out[k]);
    }
    assert!(out[4..].iter().all(|&v| v == 10.0));
}

#[test]
fn sampling_goes_through_the_backend() {
    let mut b = backend();
    let logits = f32_buf(
        &mut b,
        &[
            0.0, 1.0, 5.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ],
    );
    assert_eq!(b.sample(&logits, 0, 16, &SamplingParams::GREEDY, 0.5).unwrap(), 2);
    assert_eq!(b.sample(&logits, 1, 16, &SamplingParams::GREEDY, 0.5).unwrap(), 0);
    assert!(b.sample(&logits, 2, 16, &SamplingParams::GREEDY, 0.5).is_err());
}

#[test]
fn ops_reject_wrong_buffers() {
    let mut b = backend();
    let w = dense(&mut b, 4, 8, &[0.0; 32], None);
    let x = f32_buf(&mut b, &[0.0; 8]);
    let mut small = b.alloc(DType::F32, 3).unwrap();
    assert!(b.matmul(&w, &x, 1, &mut small, false).unwrap_err().to_string().contains("out must be f32 with ≥ 4 elements"));
    let mut wrong = b.alloc(DType::U32, 4).unwrap();
    assert!(b.matmul(&w, &x, 1, &mut wrong, false).is_err());
    let bad = Weight { format: WeightFormat::Bf16, ..dense(&mut b, 4, 8, &[0.0; 32], None) };
    let mut out = b.alloc(DType::F32, 4).unwrap();
    assert!(b.matmul(&bad, &x, 1, &mut out, false).unwrap_err().to_string().contains("data must be"));
    let tokens = u32_buf(&mut b, &[7]);
    let mut emb = b.alloc(DType::F32, 8).unwrap();
    assert!(b.embed(&w, &tokens, 1, &mut emb).unwrap_err().to_string().contains("token id 7"));
}

#[test]
fn the_ring_keeps_what_a_rollback_needs() {
    let mut b = backend();
    let mut kv = KvCache::new(&mut b, &[KvLayerSpec { kv_heads: 1, head_dim: 4, window: Some(4) }], DType::Bf16, 100, 3).unwrap();
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
