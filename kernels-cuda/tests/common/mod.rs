//! Shared by the CUDA-vs-CPU tests: device discovery (a test without a GPU prints why it skips),
//! fresh random inputs, poisoned outputs, the error metric and the budgets table.

#![allow(dead_code)]

use gptoss_engine::{Backend, DType, DeviceBuffer, ModelPlan, OpCase, OpKind, WeightFormat};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_kernels_cuda::CudaBackend;

/// Error budgets, one table: ‖gpu − cpu‖₂ / ‖cpu‖₂ per op (0 = bit-exact). The CPU reference
/// accumulates in f64, the kernels in f32: long dot products (K ≤ 5760) land near 1e-7..1e-6.
pub const BUDGETS: &[(&str, f64)] = &[
    ("synth", 0.0),
    ("embed", 0.0),
    ("rms_norm", 1e-6),
    ("matmul", 1e-5),
    ("qkv_rope", 1e-5),
    // bf16 caches round each stored k/v once (2^-9 relative), identically on both sides, but a
    // one-ulp difference before rounding can flip a bf16 value.
    ("qkv_rope_bf16_cache", 4e-3),
    ("attention", 1e-5),
    ("moe_route_weights", 1e-6),
    ("moe_experts", 1e-5),
];

pub fn budget(name: &str) -> f64 {
    BUDGETS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no budget for {name}")).1
}

/// The first GPU, or `None` (after printing why) on machines without one.
pub fn gpu() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            None
        }
    }
}

/// A plan listing every op with every weight format, sized generously for the tests.
pub fn plan(head_dim: usize) -> ModelPlan {
    let formats = [None, Some(WeightFormat::F32), Some(WeightFormat::Bf16), Some(WeightFormat::Int8), Some(WeightFormat::Mxfp4)]
        .into_iter()
        .chain([32, 64, 128].map(|group| Some(WeightFormat::Int4 { group })));
    let mut cases = Vec::new();
    for format in formats {
        for op in OpKind::ALL {
            let weighted = matches!(op, OpKind::Embed | OpKind::Matmul | OpKind::QkvRope | OpKind::MoeRoute | OpKind::MoeExperts);
            let supported = match (op, format) {
                (OpKind::Embed, Some(WeightFormat::F32 | WeightFormat::Bf16)) => true,
                (OpKind::QkvRope | OpKind::MoeRoute, Some(WeightFormat::Mxfp4)) => false,
                (_, Some(_)) => weighted && op != OpKind::Embed,
                (_, None) => !weighted,
            };
            if supported {
                cases.push(OpCase { op, format });
            }
        }
    }
    ModelPlan {
        max_tokens: 8,
        hidden: 2880,
        q_heads: 16,
        kv_heads: 2,
        head_dim,
        experts: 128,
        top_k: 4,
        intermediate: 2880,
        vocab: 201_088,
        cases,
    }
}

pub fn prepared(head_dim: usize) -> Option<(CudaBackend, CpuBackend)> {
    let mut gpu = gpu()?;
    gpu.prepare(&plan(head_dim)).expect("prepare the CUDA backend");
    let mut cpu = CpuBackend::new(Some(4)).unwrap();
    cpu.prepare(&plan(head_dim)).expect("prepare the CPU backend");
    Some((gpu, cpu))
}

/// SplitMix64 seeded per test run (printed, so a failure can be replayed with GPTOSS_TEST_SEED).
pub struct Rng(u64);

impl Rng {
    pub fn new(test: &str) -> Self {
        let seed = std::env::var("GPTOSS_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
        eprintln!("{test}: GPTOSS_TEST_SEED={seed}");
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        gptoss_engine::synth::mix(self.0)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn f32s(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The same bytes as a buffer on both backends.
pub fn both<G: Backend, C: Backend>(g: &mut G, c: &mut C, dtype: DType, bytes: &[u8]) -> (G::Buffer, C::Buffer) {
    let len = bytes.len() / dtype.size();
    let mut gb = g.alloc(dtype, len).unwrap();
    g.write(&mut gb, 0, bytes).unwrap();
    let mut cb = c.alloc(dtype, len).unwrap();
    c.write(&mut cb, 0, bytes).unwrap();
    (gb, cb)
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An output buffer on both backends, poisoned with NaN so unwritten elements show.
pub fn poisoned<G: Backend, C: Backend>(g: &mut G, c: &mut C, len: usize) -> (G::Buffer, C::Buffer) {
    both(g, c, DType::F32, &f32_bytes(&vec![f32::NAN; len]))
}

pub fn read_f32<B: Backend>(b: &mut B, buf: &B::Buffer) -> Vec<f32> {
    let mut bytes = vec![0u8; buf.len() * 4];
    b.read(buf, 0, &mut bytes).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

pub fn read_bytes<B: Backend>(b: &mut B, buf: &B::Buffer) -> Vec<u8> {
    let mut bytes = vec![0u8; buf.len() * buf.dtype().size()];
    b.read(buf, 0, &mut bytes).unwrap();
    bytes
}

/// Checks ‖gpu − cpu‖ / ‖cpu‖ against `budget(name)`; prints the first mismatches on failure.
/// NaN anywhere fails (an unwritten, poisoned element).
pub fn compare(name: &str, what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let tol = budget(name);
    let (mut num, mut den) = (0f64, 0f64);
    for (&g, &c) in gpu.iter().zip(cpu) {
        num += (g as f64 - c as f64).powi(2);
        den += (c as f64).powi(2);
    }
    let err = if den == 0.0 { num.sqrt() } else { (num / den).sqrt() };
    let nan = gpu.iter().any(|v| v.is_nan()) && !cpu.iter().any(|v| v.is_nan());
    if err > tol || nan || err.is_nan() {
        let bad: Vec<String> = gpu
            .iter()
            .zip(cpu)
            .enumerate()
            .filter(|(_, (g, c))| g.is_nan() || (**g as f64 - **c as f64).abs() > tol * c.abs().max(1e-6) as f64)
            .take(8)
            .map(|(i, (g, c))| format!("[{i}] gpu {g} cpu {c}"))
            .collect();
        panic!("{what}: relative L2 error {err:.3e} > budget {tol:e} ({name}); first mismatches: {}", bad.join(", "));
    }
    eprintln!("{what}: relative L2 error {err:.2e} (budget {tol:e})");
}
