//! The harness shared by the kernel comparisons: the budget table, the mismatch report,
//! deterministic values, random weights of every format, and backends for every ISA.
#![allow(dead_code)]

use gptoss_engine::{Backend, DType, DeviceBuffer, KvCache, KvLayerSpec, ModelPlan, OpCase, OpKind, Rope, Swiglu, Weight, WeightFormat};
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuBuffer, CpuOptions, Isa};
use half::bf16;

/// Error budgets: `|fast − reference| ≤ tol · scale` per element, with the scale named, or an
/// NMSE bound (`*_nmse`: Σ(fast − reference)² / Σ reference², over the products' part).
/// The exact products cover f32 accumulation (K ≤ 320 terms), f32 exp/sin/cos and, for bf16
/// caches, one rounding step of the written value.
///
/// The q8 kernels round each activation to `d · round(x / d)`, `d = max|x| / 127` over its
/// block of 32, which moves it by ≤ d/2: a dot product moves by ≤ ½ Σ_c |W[r,c]|·d_b(c) from
/// the exact one (RoPE: `conc · (row + partner row)`). For blocks of uniform values that is an
/// NMSE of (d²/12)/E[x²] ≈ 1.5e-5 (measured: median 1.4e-5 over 2,000 draws, max 5e-5 for
/// MXFP4, whose block scales spanning 2^11 let one block of 32 errors dominate a row). Against
/// the q8 definition itself (the same roundings, then f64), the kernels differ by f32 rounding
/// only, but for SwiGLU outputs that f32 puts within reach of a rounding boundary.
pub const BUDGETS: &[(&str, f64, &str)] = &[
    ("matmul", 1e-6, "Σ_c |W[r,c]·x[c]| + |b[r]| + |out₀[r]|"),
    ("qkv_rope", 1e-6, "max |reference| of the tensor (q, or the f32 cache)"),
    ("qkv_rope_bf16_cache", 1.0 / 128.0, "|reference| of the element (one bf16 rounding step)"),
    ("attention", 2e-6, "max |v| in the cache"),
    ("rms_norm", 1e-6, "|reference| of the element"),
    ("moe_route", 1e-6, "1 (the routing weights; ids must match exactly)"),
    ("moe_experts", 1e-5, "max |reference − residual₀| of the token"),
    ("swiglu", 2e-6, "|reference| of the element (the exponential's 2 ulp, its argument's rounding × |α g| ≤ 12, a division)"),
    ("matmul_q8", 1.0, "½ Σ_c |W[r,c]|·d_b(c) + the matmul budget of Σ_c (|W[r,c]| + unsigned offset)·|x[c]| + |b[r]|"),
    ("matmul_q8_nmse", 2e-4, "over the products, K ≥ 64 and ≥ 64 outputs: 13× the uniform blocks' 1.5e-5"),
    ("qkv_rope_q8", 1.0, "conc · (matmul_q8 bound of the row + of its RoPE partner) + the qkv_rope budgets"),
    (
        "q8_definition",
        1e-6,
        "against the same roundings in f64: of Σ_c (|W|+offset)·|x̂_c| + |b| per product (× SwiGLU gain ≤ 9 into down), plus one step d_c·|W2[r,c]| for each SwiGLU output within 1e-3 step of a rounding boundary",
    ),
];

pub fn budget(op: &str) -> f64 {
    BUDGETS.iter().find(|b| b.0 == op).map(|b| b.1).unwrap()
}

/// Fails with the first mismatches: index, expected, actual, tolerance.
pub fn check(what: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64) {
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
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [−1, 1), scaled by a random power of two in 2^−3..2^3 per call site.
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

pub const FORMATS: [WeightFormat; 7] = [
    WeightFormat::F32,
    WeightFormat::Bf16,
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
    WeightFormat::Mxfp4,
];

pub fn plan() -> ModelPlan {
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

pub fn prepared(isa: Isa, activations: Activations) -> CpuBackend {
    let mut b = CpuBackend::with_options(CpuOptions { threads: Some(2), isa, activations }).unwrap();
    b.prepare(&plan()).unwrap();
    b
}

/// (SIMD backend with `activations`, reference backend) for every SIMD ISA this CPU has.
pub fn pairs(activations: Activations) -> Vec<(CpuBackend, CpuBackend)> {
    let simd: Vec<Isa> = Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar).collect();
    for isa in Isa::ALL.into_iter().filter(|i| !i.available()) {
        eprintln!("note: this CPU has no {isa}; its kernels are compiled but not run here");
    }
    simd.into_iter().map(|isa| (prepared(isa, activations), prepared(Isa::Scalar, Activations::F32))).collect()
}

pub fn buf<T: bytemuck::Pod>(b: &mut CpuBackend, dtype: DType, v: &[T]) -> CpuBuffer {
    let bytes: &[u8] = bytemuck::cast_slice(v);
    let mut out = b.alloc(dtype, bytes.len() / dtype.size()).unwrap();
    b.write(&mut out, 0, bytes).unwrap();
    out
}

pub fn read(b: &mut CpuBackend, x: &CpuBuffer) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    b.read(x, 0, bytemuck::cast_slice_mut(&mut out)).unwrap();
    out
}

/// A weight's bytes, to be loaded into any backend.
#[derive(Clone, Debug)]
pub struct Spec {
    pub format: WeightFormat,
    pub experts: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
    pub scales: Vec<u8>,
    pub bias: Option<Vec<f32>>,
}

impl Spec {
    pub fn random(format: WeightFormat, experts: usize, rows: usize, cols: usize, bias: bool, rng: &mut Rng) -> Spec {
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

    pub fn load(&self, b: &mut CpuBackend) -> Weight<CpuBuffer> {
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

    /// `f` of the weight as the reference sees it.
    fn with_view<R>(&self, f: impl FnOnce(&gptoss_kernels_cpu::view::WeightView) -> R) -> R {
        let mut cpu = CpuBackend::with_isa(Some(1), Isa::Scalar).unwrap();
        let w = self.load(&mut cpu);
        f(&gptoss_kernels_cpu::view::WeightView::new(&w, "test").unwrap())
    }

    /// Every row of every matrix decoded by the reference (expert-major).
    pub fn decoded(&self) -> Vec<Vec<f64>> {
        let row = |v: &gptoss_kernels_cpu::view::WeightView, g: usize| {
            (0..self.cols).map(|c| v.expert(g / self.rows).element(g % self.rows, c)).collect()
        };
        self.with_view(|v| (0..self.experts * self.rows).map(|g| row(v, g)).collect())
    }

    /// `Σ_c |W[r, c] · x[c]|` from the reference decode.
    pub fn magnitude(&self, r: usize, x: &[f32]) -> f64 {
        self.with_view(|v| (0..self.cols).map(|c| (v.element(r, c) * x[c] as f64).abs()).sum())
    }

    /// What the q8 kernels may move the product of row `r` (expert-major), decoded as `w`,
    /// with `x` by: the int8 rounding of `x` (½ Σ_c |W[r,c]|·d_b(c)) and f32 rounding.
    pub fn q8_bound(&self, r: usize, w: &[f64], x: &[f32]) -> f64 {
        let d: Vec<f64> = x.chunks(32).map(|b| b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)) / 127.0).collect();
        let rounding: f64 = (0..self.cols).map(|c| w[c].abs() * d[c / 32] / 2.0).sum();
        budget("matmul_q8") * rounding * 1.0001 + budget("matmul") * self.q8_slack(r, w, |c| x[c].abs() as f64)
    }

    /// What f32 rounding in a q8 kernel is relative to for row `r` and activations of
    /// magnitudes `x`: Σ_c (|W[r,c]| + offset_c)·x_c + |b[r]|, the 4-bit codes' unsigned
    /// offset (12 half-scales for MXFP4, 8 scales for int4) counted as weight.
    pub fn q8_slack(&self, r: usize, w: &[f64], x: impl Fn(usize) -> f64) -> f64 {
        let offset = |c: usize| match self.format {
            WeightFormat::Mxfp4 => 6.0 * 2f64.powi(self.scales[r * self.cols / 32 + c / 32] as i32 - 127),
            WeightFormat::Int4 { group } => {
                let i = r * self.cols / group + c / group;
                8.0 * bf16::from_le_bytes([self.scales[2 * i], self.scales[2 * i + 1]]).to_f64().abs()
            }
            _ => 0.0,
        };
        let bias = self.bias.as_ref().map_or(0.0, |b| b[r].abs() as f64);
        (0..self.cols).map(|c| (w[c].abs() + offset(c)) * x(c)).sum::<f64>() + bias
    }
}

pub fn cols_for(format: WeightFormat, k: usize) -> usize {
    match format {
        WeightFormat::Int4 { group } => group * (1 + k % 3),
        // Up to 20 blocks: whole and partial runs of the q8 tiles' groups of scales (8 blocks on
        // AVX2, 16 on AVX-512, 4 on NEON).
        WeightFormat::Mxfp4 => 32 * [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 19, 20][k % 12],
        _ => [1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 129][k % 12],
    }
}

pub const ROWS: [usize; 10] = [1, 2, 3, 4, 5, 7, 13, 16, 17, 67];
pub const TOKENS: [usize; 8] = [0, 1, 2, 3, 4, 5, 7, 12];

/// Σ(got − want)² / Σ want², over the elements where `part` gives the part of `want` the
/// products made (the rest, bias or earlier contents, excluded from both).
pub fn nmse(got: &[f32], want: &[f32], part: impl Fn(usize) -> f64) -> f64 {
    let (mut err, mut sig) = (0f64, 0f64);
    for i in 0..got.len() {
        err += (got[i] as f64 - want[i] as f64).powi(2);
        sig += part(i).powi(2);
    }
    if sig > 0.0 { err / sig } else { err }
}

/// `matmul` of `spec` over `n` rows of `x` into a copy of `out0` on `b`.
pub fn run_matmul(b: &mut CpuBackend, spec: &Spec, x: &[f32], n: usize, out0: &[f32], accumulate: bool) -> Vec<f32> {
    let (w, xb) = (spec.load(b), buf(b, DType::F32, x));
    let mut out = buf(b, DType::F32, out0);
    b.matmul(&w, &xb, n, &mut out, accumulate).unwrap();
    read(b, &out)
}

/// The concentration RoPE multiplies cos and sin by in these tests: it bounds how much a
/// rotation can grow an error.
pub const CONCENTRATION: f32 = 1.3466;

/// The inputs of a `qkv_rope` call: q, k, v weights (k, v with `kv_heads` heads of `d`), `n`
/// tokens at positions `start..`, into an f32 or bf16 cache.
pub struct QkvCase {
    pub w: [Spec; 3],
    pub x: Vec<f32>,
    pub n: usize,
    pub d: usize,
    pub kv_heads: usize,
    pub start: usize,
    pub bf16_cache: bool,
}

impl QkvCase {
    #[allow(clippy::too_many_arguments)]
    pub fn random(
        format: WeightFormat,
        hidden: usize,
        d: usize,
        kv_heads: usize,
        group: usize,
        bf16_cache: bool,
        n: usize,
        start: usize,
        rng: &mut Rng,
    ) -> Self {
        let w = [
            Spec::random(format, 1, kv_heads * group * d, hidden, true, rng),
            Spec::random(format, 1, kv_heads * d, hidden, true, rng),
            Spec::random(format, 1, kv_heads * d, hidden, false, rng),
        ];
        QkvCase { w, x: rng.floats(n * hidden, 2.0), n, d, kv_heads, start, bf16_cache }
    }

    /// q, and the whole k and v caches widened to f32.
    pub fn run(&self, b: &mut CpuBackend) -> [Vec<f32>; 3] {
        let (d, n) = (self.d, self.n);
        let inv: Vec<f32> = (0..d / 2).map(|i| 150000f32.powf(-((2 * i) as f32) / d as f32)).collect();
        let positions: Vec<u32> = (self.start..self.start + n).map(|p| p as u32).collect();
        let dtype = if self.bf16_cache { DType::Bf16 } else { DType::F32 };
        let [q, k, v] = [0, 1, 2].map(|i| self.w[i].load(b));
        let rope = Rope { inv_freq: buf(b, DType::F32, &inv), concentration: CONCENTRATION };
        let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads: self.kv_heads, head_dim: d, window: None }], dtype, 2048, 12).unwrap();
        let (xb, pb) = (buf(b, DType::F32, &self.x), buf(b, DType::U32, &positions));
        let mut qo = b.alloc(DType::F32, n * self.w[0].rows).unwrap();
        b.qkv_rope(&q, &k, &v, &xb, n, &pb, &rope, &mut kv.layers[0], &mut qo).unwrap();
        let widen = |b: &mut CpuBackend, c: &CpuBuffer| -> Vec<f32> {
            if self.bf16_cache {
                let mut raw = vec![0u16; c.len()];
                b.read(c, 0, bytemuck::cast_slice_mut(&mut raw)).unwrap();
                raw.iter().map(|&h| bf16::from_bits(h).to_f32()).collect()
            } else {
                read(b, c)
            }
        };
        [read(b, &qo), widen(b, &kv.layers[0].k), widen(b, &kv.layers[0].v)]
    }
}

/// The inputs of a `moe_experts` call: `n` tokens routed to `top_k` distinct experts each,
/// with softmax-like weights.
pub struct MoeCase {
    pub gate_up: Spec,
    pub down: Spec,
    pub x: Vec<f32>,
    pub res0: Vec<f32>,
    pub ids: Vec<u32>,
    pub weights: Vec<f32>,
    pub n: usize,
    pub top_k: usize,
}

pub const SWIGLU: Swiglu = Swiglu { alpha: 1.702, limit: 7.0 };

impl MoeCase {
    #[allow(clippy::too_many_arguments)]
    pub fn random(format: WeightFormat, experts: usize, top_k: usize, n: usize, hidden: usize, inter: usize, rng: &mut Rng) -> Self {
        let gate_up = Spec::random(format, experts, 2 * inter, hidden, true, rng);
        let down = Spec::random(format, experts, hidden, inter, true, rng);
        let x = rng.floats(n * hidden, 1.0);
        let res0 = rng.floats(n * hidden, 4.0);
        let (mut ids, mut weights) = (vec![], vec![]);
        for _ in 0..n {
            let mut e: Vec<u32> = (0..experts as u32).collect();
            e.sort_by_key(|_| rng.next());
            ids.extend_from_slice(&e[..top_k]);
            let w: Vec<f32> = (0..top_k).map(|_| 0.1 + rng.f().abs()).collect();
            let s: f32 = w.iter().sum();
            weights.extend(w.iter().map(|v| v / s));
        }
        MoeCase { gate_up, down, x, res0, ids, weights, n, top_k }
    }

    /// The residual after the experts.
    pub fn run(&self, b: &mut CpuBackend) -> Vec<f32> {
        let (g, dn) = (self.gate_up.load(b), self.down.load(b));
        let (xb, ib, wb) = (buf(b, DType::F32, &self.x), buf(b, DType::U32, &self.ids), buf(b, DType::F32, &self.weights));
        let mut res = buf(b, DType::F32, &self.res0);
        b.moe_experts(&g, &dn, &xb, self.n, &ib, &wb, self.top_k, SWIGLU, &mut res).unwrap();
        read(b, &res)
    }
}

/// Where a batch of `n` tokens through a random `format` matmul differs from the same tokens
/// one at a time on `activations`' kernels, if anywhere (it must not: a rollback replays).
pub fn batch_dependence(format: WeightFormat, k: usize, n: usize, seed: u64, activations: Activations) -> Option<String> {
    let (cols, rows) = (cols_for(format, k), 37);
    let mut rng = Rng(seed);
    let spec = Spec::random(format, 1, rows, cols, true, &mut rng);
    let x = rng.floats(n * cols, 4.0);
    for (mut b, _) in pairs(activations) {
        let all = run_matmul(&mut b, &spec, &x, n, &vec![0.0; n * rows], false);
        for t in 0..n {
            let one = run_matmul(&mut b, &spec, &x[t * cols..(t + 1) * cols], 1, &vec![0.0; rows], false);
            if one != all[t * rows..(t + 1) * rows] {
                return Some(format!("{format} token {t} of {n} on {}", b.isa()));
            }
        }
    }
    None
}
