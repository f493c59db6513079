//! The decode GEMVs of each weight format, hot and cold: how fast a kernel's arithmetic can go
//! on one core (weights in L2), how fast it goes from DRAM on every thread, and the read
//! ceiling measured just before each cold measurement. The gap between "cold" and
//! min(ceiling, hot × threads) is what prefetching, row streams and task splitting lose.
//!
//! cargo run --release -p gptoss-bench --example cpu_gemv -- [--threads N] [--reps N] [--only TEXT] [--tokens 1,8,64]
//!
//! `GPTOSS_CPU_ISA` picks the instruction set and `GPTOSS_KERNELS` a kernel, as everywhere
//! (`GPTOSS_KERNELS=matmul=f32_bf16w_matmul_dpbf16_avx512`: bf16 weights by `vdpbf16ps`, where
//! the CPU has AVX512-BF16).
//! Each cold row also says how long our threads waited for a CPU (from
//! `/proc/self/task/*/schedstat`): on a shared machine a kernel that waited is not measured.
//!
//! Cases (n = 1 token): dense matmuls of 2880 inputs in bf16, int8 and MXFP4 with f32 (exact)
//! or int8 activations, and the routed experts (MXFP4, gate_up 5760 × 2880 and down
//! 2880 × 2880, 4 of 32 drawn at random per call, three layers' experts rotated). With
//! `--tokens`, the dense matmuls also run for n tokens at once (batched decode, prefill tiles):
//! hot on the same 0.5 MB of weights, cold on `COLD_ROWS / n` rows (at least 5760), and the
//! GFLOP/s of the hot run (2 · rows · cols · n per call) next to its GB/s.

use std::time::Instant;

use gptoss_bench::peak::{DEFAULT_BYTES, cpu_read_gb_s};
use gptoss_engine::synth::{SynthFill, SynthTensor, mix};
use gptoss_engine::{Backend, DType, MatmulArgs, ModelPlan, MoeExpertsArgs, OpCase, OpKind, Swiglu, Weight, WeightFormat};
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuBuffer, CpuOptions, Isa};

const COLS: usize = 2880;
const INTER: usize = 2880;
const EXPERTS: usize = 32;
const TOP_K: usize = 4;
/// Rows of the cold dense matrices: the unembedding's.
const COLD_ROWS: usize = 201_088;
/// Bytes of weights a hot measurement keeps in L2.
const HOT_BYTES: usize = 512 << 10;

struct Args {
    threads: usize,
    reps: usize,
    only: Option<String>,
    /// Token counts of the dense cases.
    tokens: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args { threads: std::thread::available_parallelism().map_or(1, |n| n.get()), reps: 5, only: None, tokens: vec![1] };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).unwrap_or_else(|| panic!("{}: expected a value", pair[0]));
        let num = || v.parse().unwrap_or_else(|_| panic!("{}: expected a number", pair[0]));
        match pair[0].as_str() {
            "--threads" => a.threads = num(),
            "--reps" => a.reps = num(),
            "--only" => a.only = Some(v.clone()),
            "--tokens" => {
                a.tokens =
                    v.split(',').map(|t| t.trim().parse().unwrap_or_else(|_| panic!("--tokens: expected numbers, got {v}"))).collect()
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Nanoseconds our threads ran and waited for a CPU, summed over the process's threads.
fn sched() -> (u64, u64) {
    let mut sum = (0, 0);
    for t in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            let v: Vec<u64> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if v.len() >= 2 {
                sum = (sum.0 + v[0], sum.1 + v[1]);
            }
        }
    }
    sum
}

fn backend(isa: Isa, act: Activations, threads: usize, format: WeightFormat, rows: usize, tokens: usize) -> CpuBackend {
    let mut b = CpuBackend::with_options(CpuOptions { threads: Some(threads), isa, set: None, activations: act }).unwrap();
    let cases = [OpKind::Matmul, OpKind::MoeExperts].map(|op| OpCase { op, format: Some(format) });
    let plan = ModelPlan {
        max_tokens: tokens,
        hidden: COLS,
        q_heads: 64,
        kv_heads: 8,
        head_dim: 64,
        experts: EXPERTS,
        top_k: TOP_K,
        intermediate: INTER,
        vocab: rows,
        cases: cases.to_vec(),
    };
    let chosen = b.prepare(&plan).unwrap();
    for c in chosen {
        eprintln!("  {}: {}", c.case.op.name(), c.kernel);
    }
    b
}

fn synth(b: &mut CpuBackend, seed: u64, dtype: DType, len: usize, fill: SynthFill) -> CpuBuffer {
    b.load_synth(dtype, len, &SynthTensor { seed, name: format!("w{seed}"), fill }).unwrap()
}

/// A `rows × cols` matrix (`experts` of them) in `format`, bias included.
fn weight(b: &mut CpuBackend, seed: u64, format: WeightFormat, experts: usize, rows: usize, cols: usize) -> Weight<CpuBuffer> {
    let small = SynthFill::Uniform { center: 0.0, half_width: 0.05 };
    let bias = Some(synth(b, seed ^ 1, DType::F32, experts * rows, small));
    if format == WeightFormat::Mxfp4 {
        let data = synth(b, seed, DType::U8, experts * rows * cols / 2, SynthFill::Bytes);
        let scales = Some(synth(b, seed ^ 2, DType::U8, experts * rows * cols / 32, SynthFill::ByteRange { lo: 118, hi: 124 }));
        return Weight { format, experts, rows, cols, data, scales, bias };
    }
    let data = synth(b, seed, DType::Bf16, experts * rows * cols, small);
    let w = Weight { format: WeightFormat::Bf16, experts, rows, cols, data, scales: None, bias };
    if format == WeightFormat::Bf16 { w } else { b.convert_weight(&w, format).unwrap() }
}

/// Median seconds of `reps` calls of `f(rep)` after one untimed call.
fn time(reps: usize, mut f: impl FnMut(usize)) -> f64 {
    f(0);
    let mut t: Vec<f64> = (1..=reps)
        .map(|r| {
            let s = Instant::now();
            f(r);
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

struct Case {
    name: &'static str,
    format: WeightFormat,
    act: Activations,
    experts: bool,
}

/// `n` tokens through a dense matrix of `rows` rows, `reps` times over `copies` copies.
fn dense(b: &mut CpuBackend, c: &Case, rows: usize, n: usize, copies: usize, reps: usize) -> (f64, f64) {
    let ws: Vec<_> = (0..copies).map(|i| weight(b, 11 + 16 * i as u64, c.format, 1, rows, COLS)).collect();
    let x = synth(b, 3, DType::F32, n * COLS, SynthFill::Uniform { center: 0.0, half_width: 1.0 });
    let mut out = b.alloc(DType::F32, n * rows).unwrap();
    let bytes = ws[0].matrix_bytes() as f64;
    let secs = time(reps, |r| b.matmul(MatmulArgs { w: &ws[r % copies], x: &x, n, out: &mut out, accumulate: false }).unwrap());
    (bytes, secs)
}

/// One token through 4 random experts of 32, three layers' experts rotated.
fn experts(b: &mut CpuBackend, c: &Case, reps: usize) -> (f64, f64) {
    let layers: Vec<_> = (0..3)
        .map(|l| (weight(b, 100 + 8 * l, c.format, EXPERTS, 2 * INTER, COLS), weight(b, 104 + 8 * l, c.format, EXPERTS, COLS, INTER)))
        .collect();
    let x = synth(b, 3, DType::F32, COLS, SynthFill::Uniform { center: 0.0, half_width: 1.0 });
    let mut res = synth(b, 4, DType::F32, COLS, SynthFill::Uniform { center: 0.0, half_width: 1.0 });
    let mut ids = b.alloc(DType::U32, TOP_K).unwrap();
    let mut wts = b.alloc(DType::F32, TOP_K).unwrap();
    b.write(&mut wts, 0, bytemuck::cast_slice(&[0.25f32; TOP_K])).unwrap();
    let bytes = TOP_K as f64 * (c.format.matrix_bytes(2 * INTER, COLS) + c.format.matrix_bytes(COLS, INTER)) as f64;
    let mut seed = 1u64;
    let secs = time(reps, |r| {
        let mut e: Vec<u32> = (0..EXPERTS as u32).collect();
        for i in (1..EXPERTS).rev() {
            seed = mix(seed);
            e.swap(i, seed as usize % (i + 1));
        }
        b.write(&mut ids, 0, bytemuck::cast_slice(&e[..TOP_K])).unwrap();
        let (gate_up, down) = &layers[r % layers.len()];
        let swiglu = Swiglu { alpha: 1.702, limit: 7.0 };
        let args = MoeExpertsArgs { gate_up, down, x: &x, n: 1, ids: &ids, weights: &wts, top_k: TOP_K, swiglu, residual: &mut res };
        b.moe_experts(args).unwrap()
    });
    (bytes, secs)
}

fn main() {
    let a = args();
    let isa = Isa::from_env().unwrap();
    let cases = [
        Case { name: "bf16 matmul", format: WeightFormat::Bf16, act: Activations::F32, experts: false },
        Case { name: "int8 matmul q8", format: WeightFormat::Int8, act: Activations::Int8, experts: false },
        Case { name: "int8 matmul exact", format: WeightFormat::Int8, act: Activations::F32, experts: false },
        Case { name: "mxfp4 matmul q8", format: WeightFormat::Mxfp4, act: Activations::Int8, experts: false },
        Case { name: "mxfp4 matmul exact", format: WeightFormat::Mxfp4, act: Activations::F32, experts: false },
        Case { name: "mxfp4 experts q8", format: WeightFormat::Mxfp4, act: Activations::Int8, experts: true },
        Case { name: "mxfp4 experts exact", format: WeightFormat::Mxfp4, act: Activations::F32, experts: true },
    ];
    println!("{} ({} threads); GB/s = 1e9 bytes of weights per second", isa.describe(), a.threads);
    println!(
        "{:26} {:>12} {:>14} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "case", "hot 1 thread", "hot × threads", "hot GFLOP/s", "ceiling", "cold", "% ceil", "waited"
    );
    for c in cases.iter().filter(|c| a.only.as_ref().is_none_or(|o| c.name.contains(o.as_str()))) {
        // The experts run one token; the dense matrices every count asked for.
        let counts = if c.experts { vec![1] } else { a.tokens.clone() };
        for n in counts {
            let name = if n == 1 { c.name.to_string() } else { format!("{} ×{n}", c.name) };
            eprintln!("{name}:");
            let hot = if c.experts {
                None
            } else {
                let mut b = backend(isa, c.act, 1, c.format, COLD_ROWS, n);
                let rows = (HOT_BYTES / c.format.matrix_bytes(1, COLS)).next_multiple_of(16);
                let (bytes, secs) = dense(&mut b, c, rows, n, 1, 20 * a.reps);
                Some((bytes / secs / 1e9, 2.0 * (rows * COLS * n) as f64 / secs / 1e9))
            };
            let cold_rows = if n == 1 { COLD_ROWS } else { (COLD_ROWS / n).next_multiple_of(16).max(5760) };
            let mut b = backend(isa, c.act, a.threads, c.format, COLD_ROWS, n);
            let ceiling = cpu_read_gb_s(a.threads, DEFAULT_BYTES, 2);
            let before = sched();
            let start = Instant::now();
            let (bytes, secs) = if c.experts {
                experts(&mut b, c, 4 * a.reps)
            } else {
                // Copies so that ≥ 1 GB passes between two reads of one matrix.
                let copies = (1usize << 30).div_ceil(c.format.matrix_bytes(cold_rows, COLS)).max(1);
                dense(&mut b, c, cold_rows, n, copies, a.reps)
            };
            let after = sched();
            let wall = start.elapsed().as_secs_f64();
            let waited = (after.1 - before.1) as f64 / 1e9 / (wall * a.threads as f64);
            let cold = bytes / secs / 1e9;
            let hot_s = hot.map_or("-".into(), |h| format!("{:.1}", h.0));
            let hot_t = hot.map_or("-".into(), |h| format!("{:.1}", h.0 * a.threads as f64));
            let hot_f = hot.map_or("-".into(), |h| format!("{:.1}", h.1));
            println!(
                "{:26} {:>12} {:>14} {:>10} {:>10.1} {:>10.1} {:>7.0}% {:>7.0}%",
                name,
                hot_s,
                hot_t,
                hot_f,
                ceiling,
                cold,
                100.0 * cold / ceiling,
                100.0 * waited
            );
        }
    }
}
