//! Every SIMD kernel against the scalar reference, through the Backend API, on every ISA this
//! CPU has (ISAs it lacks are named and skipped; AVX-512 on a CPU without it, NEON off
//! aarch64). Shapes are drawn to hit the edges: 0 and 1 tokens, primes, a tile's row and
//! token groups ± 1, inputs that are not a multiple of the vector width where the format
//! allows. Budgets are in `BUDGETS`; a failure prints the first mismatches.

use gptoss_engine::{
    Backend, DType, DeviceBuffer, KvCache, KvLayerSpec, ModelPlan, OpCase, OpKind, Rope, SamplingParams, Swiglu, Weight, WeightFormat,
};
use gptoss_kernels_cpu::{CpuBackend, CpuBuffer, Isa};
use half::bf16;
use proptest::prelude::*;

/// Error budgets: `|fast − reference| ≤ tol · scale` per element, with the scale named.
/// Products are exact on every path; the budgets cover f32 accumulation (K ≤ 320 terms),
/// f32 exp/sin/cos and, for bf16 caches, one rounding step of the written value.
const BUDGETS: &[(&str, f64, &str)] = &[
    ("matmul", 1e-6, "Σ_c |W[r,c]·x[c]| + |b[r]| + |out₀[r]|"),
    ("qkv_rope", 1e-6, "max |reference| of the tensor (q, or the f32 cache)"),
    ("qkv_rope_bf16_cache", 1.0 / 128.0, "|reference| of the element (one bf16 rounding step)"),
    ("attention", 2e-6, "max |v| in the cache"),
    ("rms_norm", 1e-6, "|reference| of the element"),
    ("moe_route", 1e-6, "1 (the routing weights; ids must match exactly)"),
    ("moe_experts", 1e-5, "max |reference − residual₀| of the token"),
];

fn budget(op: &str) -> f64 {
    BUDGETS.iter().find(|b| b.0 == op).map(|b| b.1).unwrap()
}

/// Fails with the first mismatches: index, expected, actual, tolerance.
fn check(what: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let bad: Vec<String> = (0..got.len())
        // Written so that a NaN on either side fails.
        .filter(|&i| {
            !matches!(
                (got[i] as f64 - want[i] as f64).abs().partial_cmp(&tol(i)),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            )
        })
        .take(5)
        .map(|i| {
            format!("  [{i}] expected {} actual {} (|Δ| {:.3e} > tolerance {:.3e})", want[i], got[i], (got[i] - want[i]).abs(), tol(i))
        })
        .collect();
    assert!(bad.is_empty(), "{what}: mismatches\n{}", bad.join("\n"));
}

/// Deterministic values from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [−1, 1), scaled by a random power of two in 2^−3..2^3 per call site.
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

const FORMATS: [WeightFormat; 7] = [
    WeightFormat::F32,
    WeightFormat::Bf16,
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
    WeightFormat::Mxfp4,
];

fn plan() -> ModelPlan {
    let cases = OpKind::ALL.iter().flat_map(|&op| std::iter::once(None).chain(FORMATS.map(Some)).map(move |format| OpCase { op, format }));
    ModelPlan {
        max_tokens: 12,
        hidden: 512,
        q_heads: 40,
        kv_heads: 8,
        head_dim: 64,
        experts: 8,
        top_k: 4,
        intermediate: 512,
        vocab: 64,
        cases: cases.collect(),
    }
}

fn prepared(isa: Isa) -> CpuBackend {
    let mut b = CpuBackend::with_isa(Some(2), isa).unwrap();
    b.prepare(&plan()).unwrap();
    b
}

/// (SIMD backend, reference backend) for every SIMD ISA this CPU has.
fn pairs() -> Vec<(CpuBackend, CpuBackend)> {
    let simd: Vec<Isa> = Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar).collect();
    for isa in Isa::ALL.into_iter().filter(|i| !i.available()) {
        eprintln!("note: this CPU has no {isa}; its kernels are compiled but not run here");
    }
    simd.into_iter().map(|isa| (prepared(isa), prepared(Isa::Scalar))).collect()
}

fn buf<T: bytemuck::Pod>(b: &mut CpuBackend, dtype: DType, v: &[T]) -> CpuBuffer {
    let bytes: &[u8] = bytemuck::cast_slice(v);
    let mut out = b.alloc(dtype, bytes.len() / dtype.size()).unwrap();
    b.write(&mut out, 0, bytes).unwrap();
    out
}

fn read(b: &mut CpuBackend, x: &CpuBuffer) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    b.read(x, 0, bytemuck::cast_slice_mut(&mut out)).unwrap();
    out
}

/// A weight's bytes, to be loaded into any backend.
#[derive(Clone, Debug)]
struct Spec {
    format: WeightFormat,
    experts: usize,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    scales: Vec<u8>,
    bias: Option<Vec<f32>>,
}

impl Spec {
    fn random(format: WeightFormat, experts: usize, rows: usize, cols: usize, bias: bool, rng: &mut Rng) -> Spec {
        let n = experts * rows * cols;
        let (data, scales) = match format {
            WeightFormat::F32 => (bytemuck::cast_slice(&rng.floats(n, 1.0)).to_vec(), vec![]),
            WeightFormat::Bf16 => (rng.floats(n, 1.0).iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(), vec![]),
            WeightFormat::Int8 => (rng.bytes(n), (0..experts * rows).flat_map(|_| (0.01 + 0.02 * rng.f().abs()).to_le_bytes()).collect()),
            WeightFormat::Int4 { group } => {
                (rng.bytes(n / 2), (0..n / group).flat_map(|_| bf16::from_f32(0.05 * rng.f()).to_le_bytes()).collect())
            }
            // Scales around 2^0 (the checkpoint's range); every code appears.
            WeightFormat::Mxfp4 => (rng.bytes(n / 2), (0..n / 32).map(|_| 120 + (rng.next() % 12) as u8).collect()),
        };
        let bias = bias.then(|| rng.floats(experts * rows, 0.5));
        Spec { format, experts, rows, cols, data, scales, bias }
    }

    fn load(&self, b: &mut CpuBackend) -> Weight<CpuBuffer> {
        let (dt, _) = self.format.data_layout(self.rows, self.cols);
        let scales = self.format.scales_layout(self.rows, self.cols).map(|(st, _)| buf(b, st, &self.scales));
        Weight {
            format: self.format,
            experts: self.experts,
            rows: self.rows,
            cols: self.cols,
            data: buf(b, dt, &self.data),
            scales,
            bias: self.bias.as_ref().map(|v| buf(b, DType::F32, v)),
        }
    }

    /// `Σ_c |W[r, c] · x[c]|` from the reference decode.
    fn magnitude(&self, r: usize, x: &[f32]) -> f64 {
        let mut cpu = CpuBackend::with_isa(Some(1), Isa::Scalar).unwrap();
        let w = self.load(&mut cpu);
        let v = gptoss_kernels_cpu::view::WeightView::new(&w, "test").unwrap();
        (0..self.cols).map(|c| (v.element(r, c) * x[c] as f64).abs()).sum()
    }
}

fn cols_for(format: WeightFormat, k: usize) -> usize {
    match format {
        WeightFormat::Int4 { group } => group * (1 + k % 3),
        WeightFormat::Mxfp4 => 32 * (1 + k % 5),
        _ => [1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 129][k % 12],
    }
}

const ROWS: [usize; 10] = [1, 2, 3, 4, 5, 7, 13, 16, 17, 67];
const TOKENS: [usize; 8] = [0, 1, 2, 3, 4, 5, 7, 12];

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
        for (mut fast, mut reference) in pairs() {
            let mut outs = vec![];
            for b in [&mut fast, &mut reference] {
                let (w, xb) = (spec.load(b), buf(b, DType::F32, &x));
                let mut out = buf(b, DType::F32, &out0);
                b.matmul(&w, &xb, n, &mut out, accumulate).unwrap();
                outs.push(read(b, &out));
            }
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
        for (mut fast, mut reference) in pairs() {
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
        for (mut fast, mut reference) in pairs() {
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
        let mut rng = Rng(seed);
        let (wq, wk, wv) = (
            Spec::random(format, 1, kv_heads * group * d, hidden, true, &mut rng),
            Spec::random(format, 1, kv_heads * d, hidden, true, &mut rng),
            Spec::random(format, 1, kv_heads * d, hidden, false, &mut rng),
        );
        let x = rng.floats(n * hidden, 2.0);
        let inv: Vec<f32> = (0..d / 2).map(|i| 150000f32.powf(-((2 * i) as f32) / d as f32)).collect();
        let positions: Vec<u32> = (start..start + n).map(|p| p as u32).collect();
        let dtype = if bf16_cache { DType::Bf16 } else { DType::F32 };
        for (mut fast, mut reference) in pairs() {
            let mut outs = vec![];
            for b in [&mut fast, &mut reference] {
                let (q, kk, v) = (wq.load(b), wk.load(b), wv.load(b));
                let rope = Rope { inv_freq: buf(b, DType::F32, &inv), concentration: 1.3466 };
                let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads, head_dim: d, window: None }], dtype, 2048, 12).unwrap();
                let (xb, pb) = (buf(b, DType::F32, &x), buf(b, DType::U32, &positions));
                let mut qo = b.alloc(DType::F32, n * kv_heads * group * d).unwrap();
                b.qkv_rope(&q, &kk, &v, &xb, n, &pb, &rope, &mut kv.layers[0], &mut qo).unwrap();
                let widen = |b: &mut CpuBackend, c: &CpuBuffer| -> Vec<f32> {
                    if bf16_cache {
                        let mut raw = vec![0u16; c.len()];
                        b.read(c, 0, bytemuck::cast_slice_mut(&mut raw)).unwrap();
                        raw.iter().map(|&h| bf16::from_bits(h).to_f32()).collect()
                    } else {
                        read(b, c)
                    }
                };
                let (kc, vc) = (widen(b, &kv.layers[0].k), widen(b, &kv.layers[0].v));
                outs.push((read(b, &qo), kc, vc));
            }
            let what = format!("qkv_rope {format}, hidden {hidden}, d {d} on {}", fast.isa());
            let qmax = outs[1].0.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
            check(&format!("{what}: q"), &outs[0].0, &outs[1].0, |_| budget("qkv_rope") * qmax);
            for (name, got, want) in [("k cache", &outs[0].1, &outs[1].1), ("v cache", &outs[0].2, &outs[1].2)] {
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
        for (mut fast, mut reference) in pairs() {
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
        let mut rng = Rng(seed);
        let gate_up = Spec::random(format, experts, 2 * inter, hidden, true, &mut rng);
        let down = Spec::random(format, experts, hidden, inter, true, &mut rng);
        let x = rng.floats(n * hidden, 1.0);
        let res0 = rng.floats(n * hidden, 4.0);
        // Distinct experts per token, with softmax-like weights.
        let mut ids = vec![];
        let mut weights = vec![];
        for _ in 0..n {
            let mut e: Vec<u32> = (0..experts as u32).collect();
            e.sort_by_key(|_| rng.next());
            ids.extend_from_slice(&e[..top_k]);
            let w: Vec<f32> = (0..top_k).map(|_| 0.1 + rng.f().abs()).collect();
            let s: f32 = w.iter().sum();
            weights.extend(w.iter().map(|v| v / s));
        }
        let p = Swiglu { alpha: 1.702, limit: 7.0 };
        for (mut fast, mut reference) in pairs() {
            let mut outs = vec![];
            for b in [&mut fast, &mut reference] {
                let (g, dn) = (gate_up.load(b), down.load(b));
                let (xb, ib, wb) = (buf(b, DType::F32, &x), buf(b, DType::U32, &ids), buf(b, DType::F32, &weights));
                let mut res = buf(b, DType::F32, &res0);
                b.moe_experts(&g, &dn, &xb, n, &ib, &wb, top_k, p, &mut res).unwrap();
                outs.push(read(b, &res));
            }
            let want = &outs[1];
            let scale: Vec<f64> = (0..n).map(|t| (0..hidden).map(|c| (want[t * hidden + c] - res0[t * hidden + c]).abs() as f64).fold(0.0, f64::max)).collect();
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
        let format = FORMATS[f];
        let (cols, rows) = (cols_for(format, k), 37);
        let mut rng = Rng(seed);
        let spec = Spec::random(format, 1, rows, cols, true, &mut rng);
        let x = rng.floats(n * cols, 4.0);
        for (mut b, _) in pairs() {
            let w = spec.load(&mut b);
            let xb = buf(&mut b, DType::F32, &x);
            let mut all = b.alloc(DType::F32, n * rows).unwrap();
            b.matmul(&w, &xb, n, &mut all, false).unwrap();
            let all = read(&mut b, &all);
            for t in 0..n {
                let xt = buf(&mut b, DType::F32, &x[t * cols..(t + 1) * cols]);
                let mut one = b.alloc(DType::F32, rows).unwrap();
                b.matmul(&w, &xt, 1, &mut one, false).unwrap();
                prop_assert_eq!(read(&mut b, &one), all[t * rows..(t + 1) * rows].to_vec(), "{} token {} of {} on {}", format, t, n, b.isa());
            }
        }
    }
}

#[test]
fn kernel_names_state_the_isa_and_format() {
    for (mut fast, _) in pairs() {
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
    for (mut fast, _) in pairs() {
        let logits = buf(&mut fast, DType::F32, &[0.0f32, 3.0, 1.0, 3.0]);
        assert_eq!(fast.sample(&logits, 0, 4, &SamplingParams::GREEDY, 0.5).unwrap(), 1);
    }
}
