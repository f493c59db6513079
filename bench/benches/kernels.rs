//! Criterion benchmarks per kernel family at gpt-oss-20b's shapes, through the `Backend` API,
//! on the CPU backend and — built with `--features cuda` on a machine with a GPU — the CUDA
//! backend (so they time whichever kernel the registry picks; `GPTOSS_KERNELS` and
//! `GPTOSS_CPU_ISA` choose others). Each case states the bytes it must read; criterion reports
//! GB/s from them, and a line per case gives the fraction of the device's bandwidth measured at
//! start-up (host read bandwidth on the CPU, device-to-device copy on a GPU). Every iteration
//! ends with `synchronize`, so a GPU case is timed to completion. Weights rotate among copies
//! that together exceed any cache (L2 included), so no case is served from one.
//!
//! Run: `cargo bench -p gptoss-bench --bench kernels [--features cuda]`

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gptoss_bench::peak::cpu_read_gb_s;
use gptoss_engine::{
    AttentionArgs, Backend, DType, DeviceBuffer, KvCache, KvLayerSpec, MatmulArgs, ModelPlan, MoeExpertsArgs, OpCase, OpKind, Swiglu,
    SynthFill, SynthTensor, Weight, WeightFormat,
};
use gptoss_kernels_cpu::CpuBackend;

const HIDDEN: usize = 2880;
const Q_DIM: usize = 4096;
const EXPERTS: usize = 32;
const TOP_K: usize = 4;

/// Prepares `b` for the ops and formats the cases use.
fn prepare<B: Backend>(b: &mut B) {
    let formats =
        [None, Some(WeightFormat::Bf16), Some(WeightFormat::Int8), Some(WeightFormat::Int4 { group: 32 }), Some(WeightFormat::Mxfp4)];
    let cases = OpKind::ALL.iter().flat_map(|&op| formats.map(move |format| OpCase { op, format })).collect();
    let plan = ModelPlan {
        max_tokens: 1,
        hidden: HIDDEN,
        q_heads: 64,
        kv_heads: 8,
        head_dim: 64,
        experts: EXPERTS,
        top_k: TOP_K,
        intermediate: HIDDEN,
        vocab: 201_088,
        cases,
    };
    b.prepare(&plan).expect("plan");
}

fn synth<B: Backend>(b: &mut B, name: &str, dtype: DType, len: usize, fill: SynthFill) -> B::Buffer {
    b.load_synth(dtype, len, &SynthTensor { seed: 1, name: name.into(), fill }).expect("synthetic tensor")
}

fn uniform(scale: f32) -> SynthFill {
    SynthFill::Uniform { center: 0.0, half_width: scale }
}

fn bf16_matrix<B: Backend>(b: &mut B, name: &str, rows: usize, cols: usize) -> Weight<B::Buffer> {
    let data = synth(b, name, DType::Bf16, rows * cols, uniform((3.0 / cols as f32).sqrt()));
    let bias = synth(b, &format!("{name}.bias"), DType::F32, rows, uniform(0.1));
    Weight { format: WeightFormat::Bf16, experts: 1, rows, cols, data, scales: None, bias: Some(bias) }
}

fn mxfp4_experts<B: Backend>(b: &mut B, name: &str, rows: usize, cols: usize) -> Weight<B::Buffer> {
    let data = synth(b, name, DType::U8, EXPERTS * rows * cols / 2, SynthFill::Bytes);
    let scales = synth(b, &format!("{name}.scales"), DType::U8, EXPERTS * rows * cols / 32, SynthFill::ByteRange { lo: 119, hi: 120 });
    let bias = synth(b, &format!("{name}.bias"), DType::F32, EXPERTS * rows, uniform(0.1));
    Weight { format: WeightFormat::Mxfp4, experts: EXPERTS, rows, cols, data, scales: Some(scales), bias: Some(bias) }
}

/// Prints the case's rate as a fraction of the measured peak (median of a few plain timings).
fn report(name: &str, bytes: usize, peak: f64, mut f: impl FnMut()) {
    let mut t: Vec<f64> = (0..7)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let gb_s = bytes as f64 / t[3] / 1e9;
    println!("{name}: {:.2} MB read, {gb_s:.1} GB/s = {:.0}% of the measured {peak:.1} GB/s", bytes as f64 / 1e6, 100.0 * gb_s / peak);
}

fn kernels(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = cpu_read_gb_s(threads, 1 << 30, 5);
    println!("cpu: measured read bandwidth {peak:.1} GB/s ({threads} threads)");
    families(c, "cpu", &mut CpuBackend::new(None).expect("cpu backend"), peak);
    #[cfg(feature = "cuda")]
    match gptoss_kernels_cuda::CudaBackend::gpu(0) {
        Ok(mut gpu) => {
            let peak = gpu.measure_peak_gb_s().expect("copy bandwidth").expect("a GPU measures its bandwidth");
            println!("cuda: measured device-to-device copy bandwidth {peak:.1} GB/s");
            families(c, "cuda", &mut gpu, peak);
        }
        Err(e) => println!("cuda: skipped ({e})"),
    }
}

/// Every kernel family on one backend; criterion groups are named `<backend>/<family>`.
fn families<B: Backend>(c: &mut Criterion, backend: &str, b: &mut B, peak: f64) {
    prepare(b);
    // A copy set larger than the largest L2 (60 MB on an H200) or CPU last-level cache.
    const COPIES: usize = 8;

    // Decode GEMV, bf16: the o-projection (2880 × 4096).
    let ws: Vec<_> = (0..COPIES).map(|i| bf16_matrix(b, &format!("o{i}"), HIDDEN, Q_DIM)).collect();
    let x = synth(b, "x", DType::F32, Q_DIM, uniform(1.0));
    let mut y = b.alloc(DType::F32, HIDDEN).expect("out");
    let bytes = ws[0].matrix_bytes();
    let mut i = 0;
    let mut gemv = || {
        i = (i + 1) % ws.len();
        b.matmul(MatmulArgs { w: &ws[i], x: &x, n: 1, out: &mut y, accumulate: false }).expect("matmul");
        b.synchronize().expect("synchronize");
    };
    report(&format!("{backend} matmul bf16 2880x4096"), bytes, peak, &mut gemv);
    let mut g = c.benchmark_group(format!("{backend}/matmul"));
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("bf16 2880x4096 decode", |bn| bn.iter(&mut gemv));
    g.finish();

    // The same matrices quantized as `--weights int8|int4` would: fewer bytes for the same work.
    for to in [WeightFormat::Int8, WeightFormat::Int4 { group: 32 }] {
        let qs = match ws.iter().map(|w| b.convert_weight(w, to)).collect::<Result<Vec<_>, _>>() {
            Ok(qs) => qs,
            Err(e) => {
                println!("{backend} matmul {to}: skipped ({e})");
                continue;
            }
        };
        let bytes = qs[0].matrix_bytes();
        let mut i = 0;
        let mut gemv = || {
            i = (i + 1) % qs.len();
            b.matmul(MatmulArgs { w: &qs[i], x: &x, n: 1, out: &mut y, accumulate: false }).expect("matmul");
            b.synchronize().expect("synchronize");
        };
        let name = format!("{to} 2880x4096 decode");
        report(&format!("{backend} matmul {name}"), bytes, peak, &mut gemv);
        let mut g = c.benchmark_group(format!("{backend}/matmul"));
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |bn| bn.iter(&mut gemv));
        g.finish();
    }

    // MoE decode: 4 routed experts of one layer (gate_up + SwiGLU + down + combine).
    // The 32 experts of a layer hold 280 MB; eight disjoint routings rotate through all of them.
    let gate_up = mxfp4_experts(b, "gate_up", 2 * HIDDEN, HIDDEN);
    let down = mxfp4_experts(b, "down", HIDDEN, HIDDEN);
    let h = synth(b, "h", DType::F32, HIDDEN, uniform(1.0));
    let weights = synth(b, "w", DType::F32, TOP_K, SynthFill::Uniform { center: 0.25, half_width: 0.0 });
    let id_sets: Vec<B::Buffer> = (0..COPIES as u32)
        .map(|s| {
            let mut ids = b.alloc(DType::U32, TOP_K).expect("ids");
            let v: Vec<u32> = (0..TOP_K as u32).map(|k| (s * 4 + k) % EXPERTS as u32).collect();
            b.write(&mut ids, 0, bytemuck::cast_slice(&v)).expect("ids");
            ids
        })
        .collect();
    let mut residual = b.alloc(DType::F32, HIDDEN).expect("residual");
    let bytes = TOP_K * (gate_up.matrix_bytes() + down.matrix_bytes());
    let mut s = 0;
    let swiglu = Swiglu { alpha: 1.702, limit: 7.0 };
    let mut moe = || {
        s = (s + 1) % id_sets.len();
        let args = MoeExpertsArgs {
            gate_up: &gate_up,
            down: &down,
            x: &h,
            n: 1,
            ids: &id_sets[s],
            weights: &weights,
            top_k: TOP_K,
            swiglu,
            residual: &mut residual,
        };
        b.moe_experts(args).expect("experts");
        b.synchronize().expect("synchronize");
    };
    report(&format!("{backend} moe_experts mxfp4 top-4"), bytes, peak, &mut moe);
    let mut g = c.benchmark_group(format!("{backend}/moe_experts"));
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("mxfp4 top-4 of 32 decode", |bn| bn.iter(&mut moe));
    g.finish();

    // Attention decode on a full layer at a depth of 4096 tokens (bf16 cache).
    let depth = 4096;
    let mut kv = KvCache::new(b, &[KvLayerSpec { kv_heads: 8, head_dim: 64, window: None }], DType::Bf16, depth + 1, 1).expect("kv");
    let layer = &mut kv.layers[0];
    layer.k = synth(b, "k", DType::Bf16, layer.k.len(), uniform(1.0));
    layer.v = synth(b, "v", DType::Bf16, layer.v.len(), uniform(1.0));
    let q = synth(b, "q", DType::F32, Q_DIM, uniform(1.0));
    let sinks = synth(b, "sinks", DType::F32, 64, uniform(1.0));
    let mut pos = b.alloc(DType::U32, 1).expect("pos");
    b.write(&mut pos, 0, &(depth as u32).to_le_bytes()).expect("pos");
    let mut out = b.alloc(DType::F32, Q_DIM).expect("out");
    let bytes = (depth + 1) * 8 * 64 * 2 * 2;
    let mut attn = || {
        b.attention(AttentionArgs { q: &q, kv: &kv.layers[0], n: 1, positions: &pos, sinks: &sinks, scale: 0.125, out: &mut out })
            .expect("attention");
        b.synchronize().expect("synchronize");
    };
    report(&format!("{backend} attention bf16 cache @4096"), bytes, peak, &mut attn);
    let mut g = c.benchmark_group(format!("{backend}/attention"));
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("decode, 64 q / 8 kv heads, depth 4096", |bn| bn.iter(&mut attn));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = kernels
}
criterion_main!(benches);
