//! Every SIMD kernel against the scalar reference, through the Backend API, on every ISA this
//! CPU has (ISAs it lacks are named and skipped; AVX-512 on a CPU without it, NEON off
//! aarch64). Shapes are drawn to hit the edges: 0 and 1 tokens, primes, a tile's row and
//! token groups ± 1, inputs that are not a multiple of the vector width where the format
//! allows. Budgets are in `common::BUDGETS`; a failure prints the first mismatches.

mod common;

use common::*;
use gptoss_engine::{Backend, DType, KvCache, KvLayerSpec, OpKind, SamplingParams, WeightFormat};
use gptoss_kernels_cpu::{Activations, CpuBackend, Isa};
use half::bf16;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matmul_matches_the_reference(f in 0..FORMATS.len(), r in 0..ROWS.len(), k in 0..12usize, t in 0..TOKENS.len(),
                                    accumulate: bool, bias: bool, seed in 1..u64::MAX) {
        let (format, rows, n) = (FORMATS[f], ROWS[r], TOKENS[t]);
        let cols = cols_for(format, k);
        let mut rng = Rng(seed);
        let spec = Spec::random(format, 1, rows, cols, bias, &mut rng);
        let x = rng.floats(n * cols, 4.0);
        let out0 = rng.floats(n * rows, 2.0);
        for (mut fast, mut reference) in pairs(Activations::F32) {
            let outs = [&mut fast, &mut reference].map(|b| run_matmul(b, &spec, &x, n, &out0, accumulate));
            let tol = |i: usize| {
                let (tok, row) = (i / rows, i % rows);
                let m = spec.magnitude(row, &x[tok * cols..(tok + 1) * cols]);
                budget("matmul") * (m + spec.bias.as_ref().map_or(0.0, |b| b[row].abs() as f64) + out0[i].abs() as f64) + 1e-30
            };
            check(&format!("matmul {format} {rows}×{cols}, {n} tokens on {}", fast.isa()), &outs[0], &outs[1], tol);
        }
    }

    #[test]
    fn rms_norm_matches_the_reference(d in prop::sample::select(vec![1usize, 7, 8, 9, 16, 31, 64, 100, 2880]), n in 0..5usize, seed in 1..u64::MAX) {
        let mut rng = Rng(seed);
        let (x, g) = (rng.floats(n * d, 3.0), rng.floats(d, 1.5));
        for (mut fast, mut reference) in pairs(Activations::F32) {
            let mut outs = vec![];
            for b in [&mut fast, &mut reference] {
                let (xb, gb) = (buf(b, DType::F32, &x), buf(b, DType::F32, &g));
                let mut out = b.alloc(DType::F32, n * d).unwrap();
                b.rms_norm(&xb, &gb, n, 1e-5, &mut out).unwrap();
                outs.push(read(b, &out));
            }
            let want = &outs[1];
            check(&format!("rms_norm d {d} on {}", fast.isa()), &outs[0], want, |i| budget("rms_norm") * want[i].abs() as f64 + 1e-30);
        }
    }

    #[test]
    fn attention_matches_the_reference(d in prop::sample::select(vec![2usize, 6, 16, 64]), kv_heads in 1..3usize,
                                       group in prop::sample::select(vec![1usize, 2, 8, 20]), window in prop::option::of(1..9usize),
                                       bf16_cache: bool, n in 1..6usize, start in 0..40usize, seed in 1..u64::MAX) {
        let mut rng = Rng(seed);
        let q_heads = kv_heads * group;
        let len = start + n;
        let (keys, values) = (rng.floats(len * kv_heads * d, 2.0), rng.floats(len * kv_heads * d, 3.0));
        let q = rng.floats(n * q_heads * d, 2.0);
        let sinks = rng.floats(q_heads, 2.0);
        let positions: Vec<u32> = (start..len).map(|p| p as u32).collect();
        let dtype = if bf16_cache { DType::Bf16 } else { DType::F32 };
        for (mut fast, mut reference) in pairs(Activations::F32) {
            let mut outs = vec![];
            for b in [&mut fast, &mut reference] {
                let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads, head_dim: d, window }], dtype, 64, 12).unwrap();
                let cap = kv.layers[0].capacity;
                // Positions 0..len written at their ring slots (later ones overwrite, as in use).
                for p in 0..len {
                    let row = kv_heads * d;
                    let (k, v) = (&keys[p * row..(p + 1) * row], &values[p * row..(p + 1) * row]);
                    let (kb, vb): (Vec<u8>, Vec<u8>) = if bf16_cache {
                        (k.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect(), v.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect())
                    } else {
                        (bytemuck::cast_slice(k).to_vec(), bytemuck::cast_slice(v).to_vec())
                    };
                    let layer = &mut kv.layers[0];
                    b.write(&mut layer.k, (p % cap) * row, &kb).unwrap();
                    b.write(&mut layer.v, (p % cap) * row, &vb).unwrap();
                }
                let (qb, sb, pb) = (buf(b, DType::F32, &q), buf(b, DType::F32, &sinks), buf(b, DType::U32, &positions));
                let mut out = b.alloc(DType::F32, n * q_heads * d).unwrap();
                match b.attention(&qb, &kv.layers[0], n, &pb, &sb, 0.3, &mut out) {
                    Ok(()) => outs.push(read(b, &out)),
                    // A query needing more keys than the ring holds is refused by both alike.
                    Err(e) => { prop_assert!(e.to_string().contains("cache slots")); return Ok(()); }
                }
            }
            let vmax = values.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
            check(&format!("attention d {d}, {q_heads}/{kv_heads} heads, window {window:?} on {}", fast.isa()), &outs[0], &outs[1], |_| budget("attention") * vmax);
        }
    }

    #[test]
    fn qkv_rope_matches_the_reference(f in 0..3usize, k in 0..12usize, d in prop::sample::select(vec![2usize, 16, 64]), kv_heads in 1..3usize,
                                      group in 1..5usize, bf16_cache: bool, n in 1..6usize, start in 0..1000usize, seed in 1..u64::MAX) {
        let format = FORMATS[f];
        let hidden = cols_for(format, k);
        let case = QkvCase::random(format, hidden, d, kv_heads, group, bf16_cache, n, start, &mut Rng(seed));
        for (mut fast, mut reference) in pairs(Activations::F32) {
            let outs = [&mut fast, &mut reference].map(|b| case.run(b));
            let what = format!("qkv_rope {format}, hidden {hidden}, d {d} on {}", fast.isa());
            let qmax = outs[1][0].iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
            check(&format!("{what}: q"), &outs[0][0], &outs[1][0], |_| budget("qkv_rope") * qmax);
            for (name, got, want) in [("k cache", &outs[0][1], &outs[1][1]), ("v cache", &outs[0][2], &outs[1][2])] {
                let m = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
                if bf16_cache {
                    check(&format!("{what}: {name}"), got, want, |i| budget("qkv_rope_bf16_cache") * want[i].abs() as f64 + budget("qkv_rope") * m);
                } else {
                    check(&format!("{what}: {name}"), got, want, |_| budget("qkv_rope") * m);
                }
            }
        }
    }

    #[test]
    fn moe_route_matches_the_reference(f in 0..2usize, experts in 1..9usize, top in 1..5usize, n in 0..6usize, seed in 1..u64::MAX) {
        let (format, hidden, top_k) = (FORMATS[f], 40, top.min(experts));
        let mut rng = Rng(seed);
        // Small weights under well-separated biases: the order is decided by the biases, so an
        // f32 sum and an f64 sum must agree on it.
        let mut spec = Spec::random(format, 1, experts, hidden, false, &mut rng);
        if format == WeightFormat::F32 {
            let w: Vec<f32> = bytemuck::cast_slice::<u8, f32>(&spec.data).iter().map(|v| v * 1e-3).collect();
            spec.data = bytemuck::cast_slice(&w).to_vec();
        } else {
            let w: Vec<u8> = spec.data.chunks(2).flat_map(|c| bf16::from_f32(bf16::from_le_bytes([c[0], c[1]]).to_f32() * 1e-3).to_le_bytes()).collect();
            spec.data = w;
        }
        let mut order: Vec<usize> = (0..experts).collect();
        order.sort_by_key(|_| rng.next());
        spec.bias = Some(order.iter().map(|&o| o as f32 * 0.5).collect());
        let x = rng.floats(n * hidden, 1.0);
        for (mut fast, mut reference) in pairs(Activations::F32) {
            let mut outs = vec![];
            for b in [&mut fast, &mut reference] {
                let (w, xb) = (spec.load(b), buf(b, DType::F32, &x));
                let (mut ids, mut ws) = (b.alloc(DType::U32, n * top_k).unwrap(), b.alloc(DType::F32, n * top_k).unwrap());
                b.moe_route(&w, &xb, n, top_k, &mut ids, &mut ws).unwrap();
                let mut got = vec![0u32; n * top_k];
                b.read(&ids, 0, bytemuck::cast_slice_mut(&mut got)).unwrap();
                outs.push((got, read(b, &ws)));
            }
            prop_assert_eq!(&outs[0].0, &outs[1].0, "router ids on {}", fast.isa());
            check(&format!("moe_route {format} on {}", fast.isa()), &outs[0].1, &outs[1].1, |_| budget("moe_route"));
        }
    }

    #[test]
    fn moe_experts_match_the_reference(f in 0..FORMATS.len(), experts in 1..9usize, top in 1..5usize, n in 0..10usize,
                                       hidden in prop::sample::select(vec![32usize, 128]), inter in prop::sample::select(vec![32usize, 64, 128]),
                                       seed in 1..u64::MAX) {
        let (format, top_k) = (FORMATS[f], top.min(experts));
        let group = if let WeightFormat::Int4 { group } = format { group } else { 32 };
        let (hidden, inter) = (hidden.next_multiple_of(group), inter.next_multiple_of(group));
        let case = MoeCase::random(format, experts, top_k, n, hidden, inter, &mut Rng(seed));
        for (mut fast, mut reference) in pairs(Activations::F32) {
            let outs = [&mut fast, &mut reference].map(|b| case.run(b));
            let want = &outs[1];
            let scale: Vec<f64> = (0..n).map(|t| (0..hidden).map(|c| (want[t * hidden + c] - case.res0[t * hidden + c]).abs() as f64).fold(0.0, f64::max)).collect();
            check(&format!("moe_experts {format}, {experts} experts top-{top_k}, {hidden}/{inter} on {}", fast.isa()), &outs[0], want,
                  |i| budget("moe_experts") * scale[i / hidden] + 1e-30);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A token's result does not depend on the batch it came in: a batch of n equals n single
    /// tokens bit for bit (prefill then rollback and decode must replay exactly).
    #[test]
    fn results_do_not_depend_on_the_batch(f in 0..FORMATS.len(), k in 0..12usize, n in 1..13usize, seed in 1..u64::MAX) {
        let differs = batch_dependence(FORMATS[f], k, n, seed, Activations::F32);
        prop_assert!(differs.is_none(), "{:?}", differs);
    }
}

#[test]
fn kernel_names_state_the_isa_and_format() {
    for (mut fast, _) in pairs(Activations::F32) {
        let isa = fast.isa().name();
        let choices = fast.prepare(&plan()).unwrap();
        let name =
            |op: OpKind, format: Option<WeightFormat>| choices.iter().find(|c| c.case.op == op && c.case.format == format).unwrap().kernel;
        assert_eq!(name(OpKind::Matmul, Some(WeightFormat::Bf16)), format!("f32_bf16w_matmul_{isa}"));
        assert_eq!(name(OpKind::MoeExperts, Some(WeightFormat::Mxfp4)), format!("f32_mf4w_moe_experts_swiglu_{isa}"));
        assert_eq!(name(OpKind::Attention, None), format!("f32_sdpa_sinks_{isa}"));
        assert_eq!(fast.info().device.split(' ').next().unwrap().split('+').next().unwrap(), isa);
    }
    let mut scalar = CpuBackend::with_isa(Some(1), Isa::Scalar).unwrap();
    let choices = scalar.prepare(&plan()).unwrap();
    assert!(choices.iter().all(|c| c.kernel.ends_with("_ref")), "the scalar path runs the references");
}

#[test]
fn sampling_is_the_same_kernel_everywhere() {
    for (mut fast, _) in pairs(Activations::F32) {
        let logits = buf(&mut fast, DType::F32, &[0.0f32, 3.0, 1.0, 3.0]);
        assert_eq!(fast.sample(&logits, 0, 4, &SamplingParams::GREEDY, 0.5).unwrap(), 1);
    }
}

/// The SIMD SwiGLU (its exponential is `Simd::exp`) against the f64 reference, over gates and
/// ups from deep in the sigmoid's tails through the clamp, at lengths that leave partial
/// vectors.
#[test]
fn swiglu_matches_the_reference() {
    use gptoss_kernels_cpu::reference::moe_experts::swiglu;
    use gptoss_kernels_cpu::simd::Kernels;
    let p = gptoss_engine::Swiglu { alpha: 1.702, limit: 7.0 };
    let mut rng = Rng(7);
    for isa in Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar) {
        let k = Kernels::for_isa(isa).unwrap();
        for len in [0usize, 1, 3, 8, 17, 33, 2880] {
            let mut pairs = rng.floats(2 * len, 12.0);
            // The tails and the clamps: e^{−α g} past the exponential's range and back.
            for (pair, g) in pairs.chunks_exact_mut(2).zip([-80.0f32, -51.3, -30.0, 7.0, 7.5, 60.0]) {
                pair[0] = g;
            }
            let want: Vec<f32> = pairs.chunks_exact(2).map(|c| swiglu(c[0] as f64, c[1] as f64, p) as f32).collect();
            let mut got = vec![f32::NAN; len];
            // SAFETY: the table is this CPU's; the lengths match.
            unsafe { (k.swiglu)(&pairs, p, &mut got) };
            check(&format!("swiglu × {len} on {}", isa.name()), &got, &want, |i| budget("swiglu") * want[i].abs() as f64 + 1e-30);
        }
    }
}
