//! Every CUDA op against the CPU backend (the scalar references) on fresh random inputs with
//! poisoned outputs and awkward shapes. Skips, saying why, on machines without a GPU.

#![cfg(feature = "cuda")]

mod common;

use common::*;
use gptoss_engine::{Backend, DType, KvCache, KvLayerSpec, Rope, SamplingParams, Swiglu, SynthFill, SynthTensor, Weight, WeightFormat};
use half::bf16;

/// Random bytes of a weight of `format` (data, scales) for `experts × rows × cols`.
fn weight_bytes(rng: &mut Rng, format: WeightFormat, experts: usize, rows: usize, cols: usize) -> (Vec<u8>, Option<Vec<u8>>) {
    let n = experts * rows * cols;
    let scale = 1.0 / (cols as f32).sqrt();
    match format {
        WeightFormat::F32 => (f32_bytes(&rng.f32s(n, scale)), None),
        WeightFormat::Bf16 => (rng.f32s(n, scale).iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(), None),
        WeightFormat::Int8 => (rng.bytes(n), Some(f32_bytes(&rng.f32s(experts * rows, scale / 64.0)))),
        WeightFormat::Int4 { group } => {
            let s: Vec<u8> =
                rng.f32s(experts * rows * cols / group, scale / 4.0).iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
            (rng.bytes(n / 2), Some(s))
        }
        WeightFormat::Mxfp4 => {
            // Scales around 2^-5 keep products of FP4 values (≤ 6) and unit activations tame.
            let s = (0..experts * rows * cols / 32).map(|_| 119 + rng.below(5) as u8).collect();
            (rng.bytes(n / 2), Some(s))
        }
    }
}

/// The same random weight on both backends.
#[allow(clippy::too_many_arguments)]
fn weights<G: Backend, C: Backend>(
    g: &mut G,
    c: &mut C,
    rng: &mut Rng,
    format: WeightFormat,
    experts: usize,
    rows: usize,
    cols: usize,
    bias: bool,
) -> (Weight<G::Buffer>, Weight<C::Buffer>) {
    let (data, scales) = weight_bytes(rng, format, experts, rows, cols);
    let (dt, _) = format.data_layout(rows, cols);
    let (gd, cd) = both(g, c, dt, &data);
    let (gs, cs) = match (scales, format.scales_layout(rows, cols)) {
        (Some(s), Some((st, _))) => {
            let (a, b) = both(g, c, st, &s);
            (Some(a), Some(b))
        }
        _ => (None, None),
    };
    let (gb, cb) = if bias {
        let (a, b) = both(g, c, DType::F32, &f32_bytes(&rng.f32s(experts * rows, 0.5)));
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    (
        Weight { format, experts, rows, cols, data: gd, scales: gs, bias: gb },
        Weight { format, experts, rows, cols, data: cd, scales: cs, bias: cb },
    )
}

#[test]
fn synth_is_bit_identical_to_the_cpu() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let fills = [
        (DType::Bf16, SynthFill::Uniform { center: 0.25, half_width: 0.75 }),
        (DType::F32, SynthFill::Uniform { center: 1.0, half_width: 0.125 }),
        (DType::U8, SynthFill::Bytes),
        (DType::U8, SynthFill::ByteRange { lo: 118, hi: 121 }),
        (DType::U8, SynthFill::ByteRange { lo: 0, hi: 255 }),
    ];
    for (dtype, fill) in fills {
        for len in [1usize, 7, 8, 9, 1001, 1 << 20] {
            let t = SynthTensor { seed: 42, name: format!("layers.{len}.weight"), fill };
            let gb = g.load_synth(dtype, len, &t).unwrap();
            let cb = c.load_synth(dtype, len, &t).unwrap();
            assert_eq!(read_bytes(&mut g, &gb), read_bytes(&mut c, &cb), "{dtype} {fill:?} × {len}");
        }
    }
}

#[test]
fn embed_matches() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let mut rng = Rng::new("embed");
    for format in [WeightFormat::Bf16, WeightFormat::F32] {
        for (vocab, cols) in [(1, 1), (37, 45), (1000, 2880)] {
            let (gw, cw) = weights(&mut g, &mut c, &mut rng, format, 1, vocab, cols, false);
            let ids: Vec<u32> = (0..5).map(|_| rng.below(vocab as u64) as u32).collect();
            let (gt, ct) = both(&mut g, &mut c, DType::U32, &ids.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<_>>());
            let (mut go, mut co) = poisoned(&mut g, &mut c, 5 * cols);
            g.embed(&gw, &gt, 5, &mut go).unwrap();
            c.embed(&cw, &ct, 5, &mut co).unwrap();
            compare("embed", &format!("embed {format} {vocab}×{cols}"), &read_f32(&mut g, &go), &read_f32(&mut c, &co));
        }
    }
}

#[test]
fn an_out_of_range_token_is_an_error() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let mut rng = Rng::new("token range");
    let (gw, _) = weights(&mut g, &mut c, &mut rng, WeightFormat::Bf16, 1, 10, 8, false);
    let (gt, _) = both(&mut g, &mut c, DType::U32, &10u32.to_le_bytes());
    let mut out = g.alloc(DType::F32, 8).unwrap();
    g.embed(&gw, &gt, 1, &mut out).unwrap();
    let err = g.synchronize().unwrap_err().to_string();
    assert!(err.contains("token id"), "{err}");
    g.synchronize().unwrap();
}

#[test]
fn rms_norm_matches() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let mut rng = Rng::new("rms_norm");
    for (n, d) in [(1, 1), (3, 45), (5, 2880)] {
        let (gx, cx) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(n * d, 3.0)));
        let (gg, cg) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(d, 1.0)));
        let (mut go, mut co) = poisoned(&mut g, &mut c, n * d);
        g.rms_norm(&gx, &gg, n, 1e-5, &mut go).unwrap();
        c.rms_norm(&cx, &cg, n, 1e-5, &mut co).unwrap();
        compare("rms_norm", &format!("rms_norm {n}×{d}"), &read_f32(&mut g, &go), &read_f32(&mut c, &co));
    }
}

#[test]
fn matmul_matches_for_every_format() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let mut rng = Rng::new("matmul");
    let dense = [(1, 1), (7, 45), (33, 96), (130, 2880), (9, 4096)];
    let blocked = [(1, 32), (7, 96), (33, 128), (130, 2880)];
    let mut cases: Vec<(WeightFormat, usize, usize)> = Vec::new();
    for f in [WeightFormat::F32, WeightFormat::Bf16, WeightFormat::Int8] {
        cases.extend(dense.iter().map(|&(r, k)| (f, r, k)));
    }
    cases.extend(blocked.iter().map(|&(r, k)| (WeightFormat::Mxfp4, r, k)));
    for group in [32, 64, 128] {
        cases.extend(blocked.iter().filter(|(_, k)| k % group == 0).map(|&(r, k)| (WeightFormat::Int4 { group }, r, k)));
    }
    for (format, rows, cols) in cases {
        for n in [1, 2, 5] {
            for accumulate in [false, true] {
                let (gw, cw) = weights(&mut g, &mut c, &mut rng, format, 1, rows, cols, rows % 2 == 1);
                let (gx, cx) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(n * cols, 1.0)));
                let start = if accumulate { rng.f32s(n * rows, 1.0) } else { vec![f32::NAN; n * rows] };
                let (mut go, mut co) = both(&mut g, &mut c, DType::F32, &f32_bytes(&start));
                g.matmul(&gw, &gx, n, &mut go, accumulate).unwrap();
                c.matmul(&cw, &cx, n, &mut co, accumulate).unwrap();
                let what = format!("matmul {format} {rows}×{cols} n={n} acc={accumulate}");
                compare("matmul", &what, &read_f32(&mut g, &go), &read_f32(&mut c, &co));
            }
        }
    }
}

#[test]
fn qkv_rope_matches() {
    for (head_dim, cache) in [(64, DType::F32), (64, DType::Bf16), (128, DType::F32)] {
        let Some((mut g, mut c)) = prepared(head_dim) else { return };
        let mut rng = Rng::new("qkv_rope");
        let (q_heads, kv_heads, cols, n) = (16, 2, 96, 3);
        let specs = [KvLayerSpec { kv_heads, head_dim, window: None }];
        let mut gkv = KvCache::new(&mut g, &specs, cache, 200_000, 8).unwrap();
        let mut ckv = KvCache::new(&mut c, &specs, cache, 200_000, 8).unwrap();
        let (gq, cq) = weights(&mut g, &mut c, &mut rng, WeightFormat::Bf16, 1, q_heads * head_dim, cols, true);
        let (gk, ck) = weights(&mut g, &mut c, &mut rng, WeightFormat::Bf16, 1, kv_heads * head_dim, cols, true);
        let (gv, cv) = weights(&mut g, &mut c, &mut rng, WeightFormat::Bf16, 1, kv_heads * head_dim, cols, true);
        let (gx, cx) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(n * cols, 1.0)));
        // Positions up to gpt-oss's 131072-token context, where the angles are largest.
        let pos: Vec<u32> = vec![0, 4097, 131_071];
        let (gp, cp) = both(&mut g, &mut c, DType::U32, &pos.iter().flat_map(|p| p.to_le_bytes()).collect::<Vec<_>>());
        let inv: Vec<f32> = (0..head_dim / 2).map(|i| 150_000f32.powf(-((2 * i) as f32) / head_dim as f32)).collect();
        let (gi, ci) = both(&mut g, &mut c, DType::F32, &f32_bytes(&inv));
        let (grope, crope) = (Rope { inv_freq: gi, concentration: 1.3466 }, Rope { inv_freq: ci, concentration: 1.3466 });
        let (mut go, mut co) = poisoned(&mut g, &mut c, n * q_heads * head_dim);
        g.qkv_rope(&gq, &gk, &gv, &gx, n, &gp, &grope, &mut gkv.layers[0], &mut go).unwrap();
        c.qkv_rope(&cq, &ck, &cv, &cx, n, &cp, &crope, &mut ckv.layers[0], &mut co).unwrap();
        let what = format!("qkv_rope d={head_dim} cache={cache}");
        compare("qkv_rope", &format!("{what} q"), &read_f32(&mut g, &go), &read_f32(&mut c, &co));
        let budget = if cache == DType::Bf16 { "qkv_rope_bf16_cache" } else { "qkv_rope" };
        let row = kv_heads * head_dim;
        for (name, gb, cb) in [("k", &gkv.layers[0].k, &ckv.layers[0].k), ("v", &gkv.layers[0].v, &ckv.layers[0].v)] {
            let (gc, cc) = (cache_f32(&mut g, gb, cache), cache_f32(&mut c, cb, cache));
            for &p in &pos {
                let s = p as usize * row;
                compare(budget, &format!("{what} {name} slot {p}"), &gc[s..s + row], &cc[s..s + row]);
            }
        }
    }
}

/// A cache buffer widened to f32.
fn cache_f32<B: Backend>(b: &mut B, buf: &B::Buffer, dtype: DType) -> Vec<f32> {
    let bytes = read_bytes(b, buf);
    match dtype {
        DType::Bf16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        _ => bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
    }
}

#[test]
fn attention_matches_with_sinks_windows_and_rings() {
    for (head_dim, group, cache, window) in [
        (64, 8, DType::Bf16, Some(128)),
        (64, 8, DType::F32, None),
        (64, 1, DType::F32, Some(5)),
        (128, 4, DType::Bf16, None),
        (64, 3, DType::F32, Some(1)),
    ] {
        let Some((mut g, mut c)) = prepared(head_dim) else { return };
        let mut rng = Rng::new("attention");
        let kv_heads = 2;
        let q_heads = kv_heads * group;
        let specs = [KvLayerSpec { kv_heads, head_dim, window }];
        let mut gkv = KvCache::new(&mut g, &specs, cache, 3000, 8).unwrap();
        let mut ckv = KvCache::new(&mut c, &specs, cache, 3000, 8).unwrap();
        // Fill the whole cache (ring included) with the same random keys and values.
        let elems = gkv.layers[0].capacity * kv_heads * head_dim;
        let mut fill = || -> Vec<u8> {
            let v = rng.f32s(elems, 1.0);
            match cache {
                DType::Bf16 => v.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect(),
                _ => f32_bytes(&v),
            }
        };
        let (kb, vb) = (fill(), fill());
        g.write(&mut gkv.layers[0].k, 0, &kb).unwrap();
        g.write(&mut gkv.layers[0].v, 0, &vb).unwrap();
        c.write(&mut ckv.layers[0].k, 0, &kb).unwrap();
        c.write(&mut ckv.layers[0].v, 0, &vb).unwrap();
        // Positions: the first token, the window's edge, deep in the ring, the last slot.
        let pos = [0u32, 1, 127, 128, 129, 2999];
        let n = pos.len();
        let (gp, cp) = both(&mut g, &mut c, DType::U32, &pos.iter().flat_map(|p| p.to_le_bytes()).collect::<Vec<_>>());
        let (gq, cq) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(n * q_heads * head_dim, 2.0)));
        let (gs, cs) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(q_heads, 3.0)));
        let (mut go, mut co) = poisoned(&mut g, &mut c, n * q_heads * head_dim);
        let scale = 1.0 / (head_dim as f32).sqrt();
        g.attention(&gq, &gkv.layers[0], n, &gp, &gs, scale, &mut go).unwrap();
        c.attention(&cq, &ckv.layers[0], n, &cp, &cs, scale, &mut co).unwrap();
        let what = format!("attention d={head_dim} group={group} cache={cache} window={window:?}");
        compare("attention", &what, &read_f32(&mut g, &go), &read_f32(&mut c, &co));
    }
}

#[test]
fn moe_route_matches_including_ties() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let mut rng = Rng::new("moe_route");
    for (experts, cols, top_k) in [(32, 2880, 4), (128, 2880, 4), (5, 45, 5), (200, 96, 1)] {
        let n = 3;
        let (gw, cw) = weights(&mut g, &mut c, &mut rng, WeightFormat::Bf16, 1, experts, cols, true);
        let (gx, cx) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(n * cols, 1.0)));
        let (mut gi, mut ci) = both(&mut g, &mut c, DType::U32, &vec![0xffu8; n * top_k * 4]);
        let (mut gwt, mut cwt) = poisoned(&mut g, &mut c, n * top_k);
        g.moe_route(&gw, &gx, n, top_k, &mut gi, &mut gwt).unwrap();
        c.moe_route(&cw, &cx, n, top_k, &mut ci, &mut cwt).unwrap();
        assert_eq!(read_bytes(&mut g, &gi), read_bytes(&mut c, &ci), "ids, {experts} experts top-{top_k}");
        compare("moe_route_weights", &format!("route weights {experts}×{cols}"), &read_f32(&mut g, &gwt), &read_f32(&mut c, &cwt));
    }
    // Ties: a zero router and zero bias make every logit equal; the lowest ids must win.
    let zero = Weight {
        format: WeightFormat::F32,
        experts: 1,
        rows: 8,
        cols: 4,
        data: g.alloc(DType::F32, 32).unwrap(),
        scales: None,
        bias: None,
    };
    let (gx, _) = both(&mut g, &mut c, DType::F32, &f32_bytes(&[1.0; 4]));
    let mut ids = g.alloc(DType::U32, 4).unwrap();
    let mut w = g.alloc(DType::F32, 4).unwrap();
    g.moe_route(&zero, &gx, 1, 4, &mut ids, &mut w).unwrap();
    let got: Vec<u32> = read_bytes(&mut g, &ids).chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(got, vec![0, 1, 2, 3]);
    assert_eq!(read_f32(&mut g, &w), vec![0.25; 4]);
}

#[test]
fn moe_experts_match() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let mut rng = Rng::new("moe_experts");
    for (format, experts, inter, hidden, top_k) in [
        (WeightFormat::Mxfp4, 8, 2880, 2880, 4),
        (WeightFormat::Mxfp4, 3, 64, 96, 3),
        (WeightFormat::Bf16, 4, 45, 37, 2),
        (WeightFormat::Int8, 4, 64, 96, 4),
        (WeightFormat::Int4 { group: 32 }, 4, 64, 96, 1),
    ] {
        let n = 3;
        let (gu, cu) = weights(&mut g, &mut c, &mut rng, format, experts, 2 * inter, hidden, true);
        let (gd, cd) = weights(&mut g, &mut c, &mut rng, format, experts, hidden, inter, true);
        let (gx, cx) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(n * hidden, 1.0)));
        // Distinct experts per token, weights summing to 1.
        let mut ids = Vec::new();
        for _ in 0..n {
            let mut chosen: Vec<u32> = Vec::new();
            while chosen.len() < top_k {
                let e = rng.below(experts as u64) as u32;
                if !chosen.contains(&e) {
                    chosen.push(e);
                }
            }
            ids.extend(chosen);
        }
        let (gi, ci) = both(&mut g, &mut c, DType::U32, &ids.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<_>>());
        let w: Vec<f32> = (0..n * top_k).map(|_| rng.unit().abs() / top_k as f32).collect();
        let (gw, cw) = both(&mut g, &mut c, DType::F32, &f32_bytes(&w));
        let (mut gr, mut cr) = both(&mut g, &mut c, DType::F32, &f32_bytes(&rng.f32s(n * hidden, 1.0)));
        let sw = Swiglu { alpha: 1.702, limit: 7.0 };
        g.moe_experts(&gu, &gd, &gx, n, &gi, &gw, top_k, sw, &mut gr).unwrap();
        c.moe_experts(&cu, &cd, &cx, n, &ci, &cw, top_k, sw, &mut cr).unwrap();
        let what = format!("moe_experts {format} {experts} experts {inter}→{hidden} top-{top_k}");
        compare("moe_experts", &what, &read_f32(&mut g, &gr), &read_f32(&mut c, &cr));
    }
}

/// Where `id` ends in the rule's order of candidates (engine/src/sampling.rs), as the fraction
/// of the candidates' mass up to and including it, in f64 (None: not a candidate).
fn cumulative_share(logits: &[f32], p: &SamplingParams, id: u32) -> Option<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l)) as f64;
    let w = |l: f32| ((l as f64 - max) / p.temperature as f64).exp();
    let mut ranked: Vec<(f32, u32)> = logits.iter().enumerate().map(|(i, &l)| (l, i as u32)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    if p.top_k != 0 {
        ranked.truncate(p.top_k);
    }
    let total: f64 = ranked.iter().map(|c| w(c.0)).sum();
    let mut cum = 0.0;
    let keep = ranked.iter().position(|c| {
        cum += w(c.0);
        cum >= p.top_p as f64 * total
    });
    ranked.truncate(keep.map_or(ranked.len(), |i| i + 1));
    let mass: f64 = ranked.iter().map(|c| w(c.0)).sum();
    let mut cum = 0.0;
    ranked.iter().find_map(|c| {
        cum += w(c.0);
        (c.1 == id).then_some(cum / mass)
    })
}

#[test]
fn sampling_picks_the_same_token() {
    let Some((mut g, mut c)) = prepared(64) else { return };
    let mut rng = Rng::new("sample");
    for vocab in [1usize, 1000, 201_088] {
        let mut logits = rng.f32s(2 * vocab, 4.0);
        // A tie for the maximum: the lower id must win.
        if vocab > 10 {
            logits[vocab + 3] = 100.0;
            logits[vocab + 7] = 100.0;
        }
        // A second row of few distinct values: ties everywhere, broken by id.
        let coarse: Vec<f32> = logits[vocab..].iter().map(|l| (l * 2.0).round() / 2.0).collect();
        logits[..vocab].copy_from_slice(&coarse);
        let (gl, cl) = both(&mut g, &mut c, DType::F32, &f32_bytes(&logits));
        let plain = [SamplingParams::GREEDY, SamplingParams::default(), SamplingParams { temperature: 0.7, ..Default::default() }];
        let cuts = [
            SamplingParams { top_k: 40, ..Default::default() },
            SamplingParams { top_k: 2, temperature: 0.5, ..Default::default() },
            SamplingParams { top_p: 0.9, ..Default::default() },
            SamplingParams { top_p: 0.3, temperature: 2.0, ..Default::default() },
            SamplingParams { top_k: 500, top_p: 0.95, temperature: 0.8 },
            SamplingParams { top_k: vocab + 1, top_p: 0.999, ..Default::default() },
        ];
        for row in 0..2 {
            let host = &logits[row * vocab..(row + 1) * vocab];
            for params in plain.iter().chain(&cuts) {
                for u in [0.0f32, 0.3, 0.75, 0.999_999] {
                    let want = c.sample(&cl, row, vocab, params, u).unwrap();
                    let got = g.sample(&gl, row, vocab, params, u).unwrap();
                    if got == want {
                        continue;
                    }
                    // Fixed-point masses on the device: a different token is allowed only where
                    // u lies within 1e-6 of the boundary between the two.
                    let what = format!("vocab {vocab} row {row} {params:?} u {u}: cuda {got}, cpu {want}");
                    let (Some(a), Some(b)) = (cumulative_share(host, params, got), cumulative_share(host, params, want)) else {
                        panic!("{what}: not both candidates");
                    };
                    let boundary = a.min(b);
                    assert!((boundary - u as f64).abs() < 1e-6, "{what}: u is {:.3e} from the boundary", (boundary - u as f64).abs());
                }
            }
        }
    }
    // The same seed gives the same tokens run after run (integer sums on the device).
    let logits = rng.f32s(201_088, 4.0);
    let (gl, _) = both(&mut g, &mut c, DType::F32, &f32_bytes(&logits));
    let p = SamplingParams { top_p: 0.9, ..Default::default() };
    let first: Vec<u32> = (0..16).map(|i| g.sample(&gl, 0, 201_088, &p, i as f32 / 16.0).unwrap()).collect();
    let again: Vec<u32> = (0..16).map(|i| g.sample(&gl, 0, 201_088, &p, i as f32 / 16.0).unwrap()).collect();
    assert_eq!(first, again);
}
