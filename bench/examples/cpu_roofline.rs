//! The CPU backend against this machine's limits, at gpt-oss-20b's shapes: the threads' read
//! bandwidth, then every op of one decoded token (and of a prefill batch) timed alone, with
//! the bytes it must read, the FLOPs it must do, and the fraction of the measured bandwidth.
//! It adds up a token from one layer × 24 + the unembedding, for each ISA this CPU has, with
//! f32 and with int8 activations.
//!
//! cargo run --release -p gptoss-bench --example cpu_roofline -- [--threads N] [--prefill N] [--context N] [--reps N]
//!
//! The ceiling is the one `gptoss bench` measures (`gptoss_bench::peak`), before and after.
//!
//! Weights are synthetic (the shapes and formats of the checkpoint: bf16 attention, router
//! and unembedding; MXFP4 experts). Each repetition routes to 4 other experts of 32, and one
//! layer's attention (53 MB) and the unembedding (1.16 GB) exceed the L3, so the weights come
//! from DRAM as in a real decode.

use std::time::Instant;

use gptoss_bench::peak::{DEFAULT_BYTES, cpu_read_gb_s};
use gptoss_engine::synth::{SynthFill, SynthTensor};
use gptoss_engine::{
    AttentionArgs, Backend, DType, KvCache, KvLayerSpec, MatmulArgs, ModelPlan, MoeExpertsArgs, MoeRouteArgs, OpCase, OpKind, QkvRopeArgs,
    RmsNormArgs, Rope, SampleArgs, SamplingParams, Swiglu, Weight, WeightFormat,
};
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuBuffer, CpuOptions, Isa};

const HIDDEN: usize = 2880;
const Q_HEADS: usize = 64;
const KV_HEADS: usize = 8;
const HEAD_DIM: usize = 64;
const EXPERTS: usize = 32;
const TOP_K: usize = 4;
const INTER: usize = 2880;
const VOCAB: usize = 201_088;
const LAYERS: usize = 24;
/// Copies of one layer's attention weights that the timing loops rotate through.
const COPIES: usize = 4;

struct Args {
    threads: usize,
    prefill: usize,
    context: usize,
    reps: usize,
}

fn args() -> Args {
    let mut a = Args { threads: std::thread::available_parallelism().map_or(1, |n| n.get()), prefill: 128, context: 128, reps: 9 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{}: expected a number", pair[0]));
        match pair[0].as_str() {
            "--threads" => a.threads = v,
            "--prefill" => a.prefill = v,
            "--context" => a.context = v,
            "--reps" => a.reps = v,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn synth(b: &mut CpuBackend, name: &str, dtype: DType, len: usize, fill: SynthFill) -> CpuBuffer {
    b.load_synth(dtype, len, &SynthTensor { seed: 7, name: name.into(), fill }).unwrap()
}

fn small() -> SynthFill {
    SynthFill::Uniform { center: 0.0, half_width: 0.05 }
}

fn dense(b: &mut CpuBackend, name: &str, rows: usize, cols: usize) -> Weight<CpuBuffer> {
    let data = synth(b, name, DType::Bf16, rows * cols, small());
    let bias = Some(synth(b, &format!("{name}.bias"), DType::F32, rows, small()));
    Weight { format: WeightFormat::Bf16, experts: 1, rows, cols, data, scales: None, bias }
}

fn mxfp4(b: &mut CpuBackend, name: &str, rows: usize, cols: usize) -> Weight<CpuBuffer> {
    let data = synth(b, name, DType::U8, EXPERTS * rows * cols / 2, SynthFill::Bytes);
    let scales =
        Some(synth(b, &format!("{name}.scales"), DType::U8, EXPERTS * rows * cols / 32, SynthFill::ByteRange { lo: 118, hi: 124 }));
    let bias = Some(synth(b, &format!("{name}.bias"), DType::F32, EXPERTS * rows, small()));
    Weight { format: WeightFormat::Mxfp4, experts: EXPERTS, rows, cols, data, scales, bias }
}

/// One row of the report.
struct Op {
    name: &'static str,
    /// Times per token (decode) or per batch (prefill).
    per_token: usize,
    secs: f64,
    bytes: f64,
    flops: f64,
}

/// Median seconds of `reps` runs of `f(rep)`.
fn time(reps: usize, mut f: impl FnMut(usize)) -> f64 {
    f(0);
    let mut t: Vec<f64> = (0..reps)
        .map(|r| {
            let s = Instant::now();
            f(r + 1);
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

/// Times every op of one layer (and the unembedding) for `n` tokens on `isa`.
fn measure(isa: Isa, activations: Activations, a: &Args, n: usize) -> Vec<Op> {
    let mut b = CpuBackend::with_options(CpuOptions { threads: Some(a.threads), isa, set: None, activations }).unwrap();
    let cases = OpKind::ALL
        .iter()
        .flat_map(|&op| [None, Some(WeightFormat::Bf16), Some(WeightFormat::Mxfp4)].map(move |format| OpCase { op, format }));
    let plan = ModelPlan {
        max_tokens: n,
        hidden: HIDDEN,
        q_heads: Q_HEADS,
        kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
        experts: EXPERTS,
        top_k: TOP_K,
        intermediate: INTER,
        vocab: VOCAB,
        cases: cases.collect(),
    };
    b.prepare(&plan).unwrap();
    // Four layers' attention weights (212 MB), used in turn, so that none is in the L3.
    let mut attn_w = vec![];
    for l in 0..COPIES {
        let q = dense(&mut b, &format!("{l}.q"), Q_HEADS * HEAD_DIM, HIDDEN);
        let k = dense(&mut b, &format!("{l}.k"), KV_HEADS * HEAD_DIM, HIDDEN);
        let v = dense(&mut b, &format!("{l}.v"), KV_HEADS * HEAD_DIM, HIDDEN);
        let o = dense(&mut b, &format!("{l}.o"), HIDDEN, Q_HEADS * HEAD_DIM);
        attn_w.push((q, k, v, o));
    }
    let (wq, wk, wv, _) = &attn_w[0];
    let router = dense(&mut b, "router", EXPERTS, HIDDEN);
    let (gate_up, down) = (mxfp4(&mut b, "gate_up", 2 * INTER, HIDDEN), mxfp4(&mut b, "down", HIDDEN, INTER));
    let gain = synth(&mut b, "gain", DType::F32, HIDDEN, SynthFill::Uniform { center: 1.0, half_width: 0.1 });
    let sinks = synth(&mut b, "sinks", DType::F32, Q_HEADS, small());
    let inv: Vec<f32> = (0..HEAD_DIM / 2).map(|i| 150000f32.powf(-((2 * i) as f32) / HEAD_DIM as f32)).collect();
    let mut inv_buf = b.alloc(DType::F32, inv.len()).unwrap();
    b.write(&mut inv_buf, 0, bytemuck::cast_slice(&inv)).unwrap();
    let rope = Rope { inv_freq: inv_buf, concentration: 1.3466 };
    let mut kv =
        KvCache::new(&mut b, &[KvLayerSpec { kv_heads: KV_HEADS, head_dim: HEAD_DIM, window: None }], DType::Bf16, a.context + n, n)
            .unwrap();
    let x = synth(&mut b, "x", DType::F32, n * HIDDEN, SynthFill::Uniform { center: 0.0, half_width: 1.0 });
    let mut h = b.alloc(DType::F32, n * HIDDEN).unwrap();
    let mut res = synth(&mut b, "res", DType::F32, n * HIDDEN, SynthFill::Uniform { center: 0.0, half_width: 1.0 });
    let mut q = b.alloc(DType::F32, n * Q_HEADS * HEAD_DIM).unwrap();
    let mut attn = b.alloc(DType::F32, n * Q_HEADS * HEAD_DIM).unwrap();
    let (mut ids, mut wts) = (b.alloc(DType::U32, n * TOP_K).unwrap(), b.alloc(DType::F32, n * TOP_K).unwrap());
    let pos: Vec<u32> = (a.context as u32..(a.context + n) as u32).collect();
    let mut positions = b.alloc(DType::U32, n).unwrap();
    b.write(&mut positions, 0, bytemuck::cast_slice(&pos)).unwrap();
    // Fill the cache up to the context with plausible keys and values.
    for p in (0..a.context + n).step_by(n) {
        let ps: Vec<u32> = (p as u32..(p + n) as u32).collect();
        let mut pb = b.alloc(DType::U32, n).unwrap();
        b.write(&mut pb, 0, bytemuck::cast_slice(&ps)).unwrap();
        b.qkv_rope(QkvRopeArgs { wq, wk, wv, x: &x, n, positions: &pb, rope: &rope, kv: &mut kv.layers[0], q_out: &mut q }).unwrap();
    }
    let reps = a.reps;
    let bf = |rows: usize, cols: usize| (rows * cols * 2) as f64;
    let fl = |rows: usize, cols: usize| (2 * rows * cols * n) as f64;
    let expert_bytes = (WeightFormat::Mxfp4.matrix_bytes(2 * INTER, HIDDEN) + WeightFormat::Mxfp4.matrix_bytes(HIDDEN, INTER)) as f64;
    let qd = Q_HEADS * HEAD_DIM;
    let kvd = KV_HEADS * HEAD_DIM;
    let mut ops = vec![];
    ops.push(Op {
        name: "rms_norm",
        per_token: 2,
        secs: time(reps, |_| b.rms_norm(RmsNormArgs { x: &x, gain: &gain, n, eps: 1e-5, out: &mut h }).unwrap()),
        bytes: 0.0,
        flops: (3 * HIDDEN * n) as f64,
    });
    let secs = time(reps, |r| {
        let (wq, wk, wv, _) = &attn_w[r % COPIES];
        b.qkv_rope(QkvRopeArgs { wq, wk, wv, x: &h, n, positions: &positions, rope: &rope, kv: &mut kv.layers[0], q_out: &mut q }).unwrap()
    });
    ops.push(Op { name: "qkv_rope (bf16)", per_token: 1, secs, bytes: bf(qd + 2 * kvd, HIDDEN), flops: fl(qd + 2 * kvd, HIDDEN) });
    let secs = time(reps, |_| {
        b.attention(AttentionArgs { q: &q, kv: &kv.layers[0], n, positions: &positions, sinks: &sinks, scale: 0.125, out: &mut attn })
            .unwrap()
    });
    let keys = (a.context + n / 2) as f64;
    ops.push(Op { name: "attention", per_token: 1, secs, bytes: keys * (2 * kvd * 2) as f64, flops: 4.0 * keys * (qd * n) as f64 });
    let secs = time(reps, |r| b.matmul(MatmulArgs { w: &attn_w[r % COPIES].3, x: &attn, n, out: &mut res, accumulate: true }).unwrap());
    ops.push(Op { name: "matmul o (bf16)", per_token: 1, secs, bytes: bf(HIDDEN, qd), flops: fl(HIDDEN, qd) });
    let secs =
        time(reps, |_| b.moe_route(MoeRouteArgs { router: &router, x: &h, n, top_k: TOP_K, ids: &mut ids, weights: &mut wts }).unwrap());
    ops.push(Op { name: "moe_route (bf16)", per_token: 1, secs, bytes: bf(EXPERTS, HIDDEN), flops: fl(EXPERTS, HIDDEN) });
    // Other experts on every repetition (random routing for a batch), so none come from cache.
    let w_eq: Vec<f32> = vec![0.25; n * TOP_K];
    let mut wb = b.alloc(DType::F32, n * TOP_K).unwrap();
    b.write(&mut wb, 0, bytemuck::cast_slice(&w_eq)).unwrap();
    let mut seed = 1u64;
    let mut active = 0.0;
    let secs = time(reps, |_| {
        let mut sel = vec![];
        let mut used = [false; EXPERTS];
        for _ in 0..n {
            let mut e: Vec<u32> = (0..EXPERTS as u32).collect();
            for i in (1..EXPERTS).rev() {
                seed = gptoss_engine::synth::mix(seed);
                e.swap(i, seed as usize % (i + 1));
            }
            e[..TOP_K].iter().for_each(|&x| used[x as usize] = true);
            sel.extend_from_slice(&e[..TOP_K]);
        }
        active = used.iter().filter(|&&u| u).count() as f64;
        b.write(&mut ids, 0, bytemuck::cast_slice(&sel)).unwrap();
        let swiglu = Swiglu { alpha: 1.702, limit: 7.0 };
        let args =
            MoeExpertsArgs { gate_up: &gate_up, down: &down, x: &h, n, ids: &ids, weights: &wb, top_k: TOP_K, swiglu, residual: &mut res };
        b.moe_experts(args).unwrap()
    });
    let expert_flops = (2 * n * TOP_K * (2 * INTER * HIDDEN + HIDDEN * INTER)) as f64;
    ops.push(Op { name: "moe_experts (mxfp4)", per_token: 1, secs, bytes: active * expert_bytes, flops: expert_flops });
    drop((attn_w, gate_up, down));
    // The unembedding: one row of logits per decode step (the last row only in prefill).
    let unembed = dense(&mut b, "unembed", VOCAB, HIDDEN);
    let mut logits = b.alloc(DType::F32, VOCAB).unwrap();
    let secs = time(reps.min(5), |_| b.matmul(MatmulArgs { w: &unembed, x: &h, n: 1, out: &mut logits, accumulate: false }).unwrap());
    ops.push(Op { name: "unembed (bf16)", per_token: 0, secs, bytes: bf(VOCAB, HIDDEN), flops: (2 * VOCAB * HIDDEN) as f64 });
    let secs = time(reps, |_| {
        let args = SampleArgs { logits: &logits, row: 0, vocab: VOCAB, params: &SamplingParams::GREEDY, u: 0.5 };
        std::hint::black_box(b.sample(args).unwrap());
    });
    ops.push(Op { name: "sample (greedy)", per_token: 0, secs, bytes: 0.0, flops: 0.0 });
    ops
}

fn report(isa: Isa, activations: Activations, n: usize, ops: &[Op], bw: f64) -> f64 {
    let total: f64 = ops.iter().map(|o| if o.per_token == 0 { o.secs } else { o.secs * (o.per_token * LAYERS) as f64 }).sum();
    let what = if n == 1 { "decode, 1 token".to_string() } else { format!("prefill, {n} tokens") };
    println!("\n{}, {activations} activations ({what}):", isa.describe());
    println!("  {:22} {:>10} {:>7} {:>10} {:>8} {:>9} {:>8}", "op", "time", "× step", "MB read", "GB/s", "% of bw", "GFLOP/s");
    for o in ops {
        let times = if o.per_token == 0 { 1 } else { o.per_token * LAYERS };
        let gbs = o.bytes / o.secs / 1e9;
        println!(
            "  {:22} {:>8.1}µs {:>7} {:>10.1} {:>8.1} {:>8.0}% {:>8.1}   {:>4.1}% of the step",
            o.name,
            o.secs * 1e6,
            times,
            o.bytes / 1e6,
            gbs,
            100.0 * gbs / bw,
            o.flops / o.secs / 1e9,
            100.0 * o.secs * times as f64 / total
        );
    }
    let bytes: f64 = ops.iter().map(|o| o.bytes * if o.per_token == 0 { 1.0 } else { (o.per_token * LAYERS) as f64 }).sum();
    let rate = n as f64 / total;
    println!(
        "  step {:.1} ms: {:.2} tok/s; {:.3} GB read → {:.1} GB/s = {:.0}% of the measured {:.1} GB/s",
        total * 1e3,
        rate,
        bytes / 1e9,
        bytes / total / 1e9,
        100.0 * bytes / total / 1e9 / bw,
        bw
    );
    rate
}

fn main() {
    let a = args();
    let bw = cpu_read_gb_s(a.threads, DEFAULT_BYTES, a.reps);
    println!("read bandwidth, {} threads: {bw:.1} GB/s (best of {} passes per stream count)", a.threads, a.reps);
    for isa in Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar) {
        for act in Activations::ALL {
            report(isa, act, 1, &measure(isa, act, &a, 1), bw);
            if a.prefill > 1 {
                report(isa, act, a.prefill, &measure(isa, act, &a, a.prefill), bw);
            }
        }
    }
    println!("\nread bandwidth again: {:.1} GB/s", cpu_read_gb_s(a.threads, DEFAULT_BYTES, a.reps));
}
