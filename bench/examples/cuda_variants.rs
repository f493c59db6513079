//! Every registered CUDA kernel variant of the prefill ops (matmul, qkv_rope, attention,
//! moe_experts), on the
//! same inputs, side by side: time per call, TFLOP/s and the share of the device's dense bf16
//! tensor-core rate, at gpt-oss-20b's prefill shapes; then the batch size from which the
//! tensor-core GEMM beats the GEMV kernels (the crossover `GPTOSS_MMA_FROM` should be set to on
//! this GPU).
//!
//! cargo run --release -p gptoss-bench --features cuda --example cuda_variants -- [--tokens 2048] [--reps 20]
//! cargo run --release -p gptoss-bench --features cuda-sim --example cuda_variants -- --small
//!
//! On the emulated device (`cuda-sim`) the times are the emulator's, meaningless as speed:
//! `--small` shrinks the shapes so the run is a quick check that every variant launches and
//! agrees with the default one.

#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod variants {
    use std::time::Instant;

    use gptoss_engine::kernels::KernelOverrides;
    use gptoss_engine::synth::{SynthFill, SynthTensor};
    use gptoss_engine::{
        AttentionArgs, Backend, DType, KvCache, KvLayerSpec, MatmulArgs, ModelPlan, MoeExpertsArgs, OpCase, OpKind, QkvRopeArgs, Rope,
        Swiglu, Weight, WeightFormat,
    };
    use gptoss_kernels_cuda::device::Device;
    use gptoss_kernels_cuda::{CudaBackend, CudaBuffer, variants};

    /// gpt-oss-20b's attention shapes, or small ones for the emulator.
    #[derive(Clone, Copy)]
    pub struct Shapes {
        pub hidden: usize,
        pub q_heads: usize,
        pub kv_heads: usize,
        pub head_dim: usize,
        pub experts: usize,
        pub top_k: usize,
        pub tokens: usize,
        pub reps: usize,
    }

    const FORMATS: [WeightFormat; 4] = [WeightFormat::Bf16, WeightFormat::Int8, WeightFormat::Int4 { group: 32 }, WeightFormat::Mxfp4];

    fn plan(s: &Shapes, cases: Vec<OpCase>) -> ModelPlan {
        ModelPlan {
            max_tokens: s.tokens,
            hidden: s.hidden,
            q_heads: s.q_heads,
            kv_heads: s.kv_heads,
            head_dim: s.head_dim,
            experts: s.experts,
            top_k: s.top_k,
            intermediate: s.hidden,
            vocab: 1,
            cases,
        }
    }

    fn synth<D: Device>(b: &mut CudaBackend<D>, name: &str, dtype: DType, len: usize, fill: SynthFill) -> CudaBuffer<D> {
        b.load_synth(dtype, len, &SynthTensor { seed: 11, name: name.into(), fill }).expect("a synthetic tensor")
    }

    /// A synthetic `rows × cols` weight in `format`, with a bias.
    fn weight<D: Device>(b: &mut CudaBackend<D>, name: &str, format: WeightFormat, rows: usize, cols: usize) -> Weight<CudaBuffer<D>> {
        experts(b, name, format, 1, rows, cols)
    }

    /// `experts` stacked synthetic `rows × cols` matrices in `format`, with biases.
    fn experts<D: Device>(
        b: &mut CudaBackend<D>,
        name: &str,
        format: WeightFormat,
        experts: usize,
        rows: usize,
        cols: usize,
    ) -> Weight<CudaBuffer<D>> {
        let small = SynthFill::Uniform { center: 0.0, half_width: 0.05 };
        let (dtype, len) = format.data_layout(rows, cols);
        let len = len * experts;
        let data = match format {
            WeightFormat::Bf16 | WeightFormat::F32 => synth(b, name, dtype, len, small),
            _ => synth(b, name, dtype, len, SynthFill::Bytes),
        };
        let scales = format.scales_layout(rows, cols).map(|(dtype, len)| {
            let len = len * experts;
            let fill = match format {
                WeightFormat::Mxfp4 => SynthFill::ByteRange { lo: 118, hi: 124 },
                _ => SynthFill::Uniform { center: 0.01, half_width: 0.005 },
            };
            synth(b, &format!("{name}.scales"), dtype, len, fill)
        });
        let bias = Some(synth(b, &format!("{name}.bias"), DType::F32, experts * rows, small));
        Weight { format, experts, rows, cols, data, scales, bias }
    }

    /// `len` f32 activations in [-1, 1) with all 24 bits of significand used (synthetic tensors
    /// are bf16 values, which would hide what the one-plane variants round away).
    fn activations<D: Device>(b: &mut CudaBackend<D>, len: usize) -> CudaBuffer<D> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let bytes: Vec<u8> = (0..len)
            .flat_map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 23) as f32 - 1.0).to_le_bytes()
            })
            .collect();
        let mut x = b.alloc(DType::F32, len).expect("alloc");
        b.write(&mut x, 0, &bytes).expect("write");
        x
    }

    /// Seconds per call of `f` (the median of `reps` timed calls after two unmeasured ones).
    fn time<D: Device>(b: &mut CudaBackend<D>, reps: usize, mut f: impl FnMut(&mut CudaBackend<D>)) -> f64 {
        for _ in 0..2 {
            f(b);
        }
        b.synchronize().expect("synchronize");
        let mut t: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                f(b);
                b.synchronize().expect("synchronize");
                start.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    }

    /// One row of the table: a kernel's time on `n` tokens of an op doing `flops`.
    struct Row<'a> {
        op: &'a str,
        format: WeightFormat,
        kernel: &'a str,
        n: usize,
        seconds: f64,
        flops: f64,
        /// Largest difference from the default variant's output, relative to its largest value.
        diff: f64,
    }

    impl Row<'_> {
        fn print(&self, peak: Option<f64>) {
            let tflops = self.flops / self.seconds / 1e12;
            let share = peak.map_or("-".to_string(), |p| format!("{:.1} %", 100.0 * tflops / p));
            let Row { op, format, kernel, n, seconds, diff, .. } = self;
            println!("| {op} | {format} | {kernel} | {n} | {:.3} | {tflops:.2} | {share} | {diff:.1e} |", seconds * 1e3);
        }
    }

    /// Largest |a − b| relative to the largest |a|.
    fn relative_diff(a: &[f32], b: &[f32]) -> f64 {
        let scale = a.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(f64::MIN_POSITIVE);
        a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
    }

    fn floats<D: Device>(b: &mut CudaBackend<D>, buf: &CudaBuffer<D>, len: usize) -> Vec<f32> {
        let mut bytes = vec![0u8; len * 4];
        b.read(buf, 0, &mut bytes).expect("read");
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// o_proj's shape (hidden × q_heads · d) as `matmul`, every variant of each format.
    pub fn matmul<D: Device>(make: &dyn Fn() -> CudaBackend<D>, s: &Shapes, n: usize, print: bool) -> Vec<(String, f64)> {
        let (rows, cols) = (s.hidden, s.q_heads * s.head_dim);
        let mut times = Vec::new();
        for format in FORMATS {
            let case = OpCase { op: OpKind::Matmul, format: Some(format) };
            let mut first: Option<Vec<f32>> = None;
            for kernel in variants(&case) {
                let ov = KernelOverrides::parse(&format!("matmul={kernel}")).expect("overrides");
                let mut b = make().with_kernels(ov);
                b.prepare(&plan(s, vec![case])).expect("prepare");
                let peak = b.device().tensor_peak_tflops();
                let w = weight(&mut b, "o_proj", format, rows, cols);
                let x = activations(&mut b, n * cols);
                let mut out = b.alloc(DType::F32, n * rows).expect("alloc");
                let seconds = time(&mut b, s.reps, |b| {
                    b.matmul(MatmulArgs { w: &w, x: &x, n, out: &mut out, accumulate: false }).expect("matmul");
                });
                let got = floats(&mut b, &out, n * rows);
                let diff = first.as_ref().map_or(0.0, |f| relative_diff(f, &got));
                first.get_or_insert(got);
                if print {
                    let flops = 2.0 * (n * rows * cols) as f64;
                    Row { op: "matmul (o_proj)", format, kernel: &kernel, n, seconds, flops, diff }.print(peak);
                }
                times.push((kernel, seconds));
            }
        }
        times
    }

    /// q, k and v with RoPE and the cache write, every variant of each dense format.
    pub fn qkv_rope<D: Device>(make: &dyn Fn() -> CudaBackend<D>, s: &Shapes) {
        let (d, hidden) = (s.head_dim, s.hidden);
        let n = s.tokens;
        for format in FORMATS.into_iter().filter(|f| *f != WeightFormat::Mxfp4) {
            let case = OpCase { op: OpKind::QkvRope, format: Some(format) };
            let mut first: Option<Vec<f32>> = None;
            for kernel in variants(&case) {
                let ov = KernelOverrides::parse(&format!("qkv_rope={kernel}")).expect("overrides");
                let mut b = make().with_kernels(ov);
                b.prepare(&plan(s, vec![case])).expect("prepare");
                let peak = b.device().tensor_peak_tflops();
                let wq = weight(&mut b, "q", format, s.q_heads * d, hidden);
                let wk = weight(&mut b, "k", format, s.kv_heads * d, hidden);
                let wv = weight(&mut b, "v", format, s.kv_heads * d, hidden);
                let x = activations(&mut b, n * hidden);
                let inv: Vec<u8> = (0..d / 2).flat_map(|i| 150000f32.powf(-((2 * i) as f32) / d as f32).to_le_bytes()).collect();
                let mut inv_freq = b.alloc(DType::F32, d / 2).expect("alloc");
                b.write(&mut inv_freq, 0, &inv).expect("write");
                let rope = Rope { inv_freq, concentration: 1.3466 };
                let pos: Vec<u8> = (0..n as u32).flat_map(u32::to_le_bytes).collect();
                let mut positions = b.alloc(DType::U32, n).expect("alloc");
                b.write(&mut positions, 0, &pos).expect("write");
                let spec = KvLayerSpec { kv_heads: s.kv_heads, head_dim: d, window: None };
                let mut kv = KvCache::new(&mut b, &[spec], DType::Bf16, n, n).expect("kv cache");
                let mut q = b.alloc(DType::F32, n * s.q_heads * d).expect("alloc");
                let seconds = time(&mut b, s.reps, |b| {
                    let a = QkvRopeArgs {
                        wq: &wq,
                        wk: &wk,
                        wv: &wv,
                        x: &x,
                        n,
                        positions: &positions,
                        rope: &rope,
                        kv: &mut kv.layers[0],
                        q_out: &mut q,
                    };
                    b.qkv_rope(a).expect("qkv_rope");
                });
                let got = floats(&mut b, &q, n * s.q_heads * d);
                let diff = first.as_ref().map_or(0.0, |f| relative_diff(f, &got));
                first.get_or_insert(got);
                let flops = 2.0 * (n * (s.q_heads + 2 * s.kv_heads) * d * hidden) as f64;
                Row { op: "qkv_rope", format, kernel: &kernel, n, seconds, flops, diff }.print(peak);
            }
        }
    }

    /// Attention of a prompt of `tokens` tokens from position 0 (a bf16 cache already holding
    /// them), on a full layer and on a 128-token sliding one, every variant.
    pub fn attention<D: Device>(make: &dyn Fn() -> CudaBackend<D>, s: &Shapes) {
        let (d, n) = (s.head_dim, s.tokens);
        let case = OpCase { op: OpKind::Attention, format: None };
        for window in [None, Some(128)] {
            let mut first: Option<Vec<f32>> = None;
            for kernel in variants(&case) {
                let ov = KernelOverrides::parse(&format!("attention={kernel}")).expect("overrides");
                let mut b = make().with_kernels(ov);
                b.prepare(&plan(s, vec![case])).expect("prepare");
                let peak = b.device().tensor_peak_tflops();
                let spec = KvLayerSpec { kv_heads: s.kv_heads, head_dim: d, window };
                let mut kv = KvCache::new(&mut b, &[spec], DType::Bf16, n, n).expect("kv cache");
                let fill = SynthFill::Uniform { center: 0.0, half_width: 1.0 };
                let layer = &mut kv.layers[0];
                layer.k = synth(&mut b, "k", DType::Bf16, layer.capacity * layer.row(), fill);
                layer.v = synth(&mut b, "v", DType::Bf16, layer.capacity * layer.row(), fill);
                let q = activations(&mut b, n * s.q_heads * d);
                let sinks = synth(&mut b, "sinks", DType::F32, s.q_heads, fill);
                let pos: Vec<u8> = (0..n as u32).flat_map(u32::to_le_bytes).collect();
                let mut positions = b.alloc(DType::U32, n).expect("alloc");
                b.write(&mut positions, 0, &pos).expect("write");
                let mut out = b.alloc(DType::F32, n * s.q_heads * d).expect("alloc");
                let scale = 1.0 / (d as f32).sqrt();
                let seconds = time(&mut b, s.reps, |b| {
                    let a = AttentionArgs { q: &q, kv: &kv.layers[0], n, positions: &positions, sinks: &sinks, scale, out: &mut out };
                    b.attention(a).expect("attention");
                });
                let got = floats(&mut b, &out, n * s.q_heads * d);
                let diff = first.as_ref().map_or(0.0, |f| relative_diff(f, &got));
                first.get_or_insert(got);
                // 4·d FLOPs (QKᵀ and PV) per query, head and key it attends.
                let pairs: usize = (0..n).map(|p| window.map_or(p + 1, |w| (p + 1).min(w))).sum();
                let flops = 4.0 * (d * s.q_heads * pairs) as f64;
                let op = if window.is_some() { "attention (sliding 128, bf16 cache)" } else { "attention (full, bf16 cache)" };
                Row { op, format: WeightFormat::Bf16, kernel: &kernel, n, seconds, flops, diff }.print(peak);
            }
        }
    }

    /// The routed experts (gate_up + SwiGLU + down + the weighted sum) of `tokens` tokens, each
    /// routed to `top_k` experts spread evenly over all of them, every variant of each format.
    pub fn moe_experts<D: Device>(make: &dyn Fn() -> CudaBackend<D>, s: &Shapes) {
        let (n, hidden, inter, k) = (s.tokens, s.hidden, s.hidden, s.top_k);
        for format in FORMATS {
            let case = OpCase { op: OpKind::MoeExperts, format: Some(format) };
            let mut first: Option<Vec<f32>> = None;
            for kernel in variants(&case) {
                let ov = KernelOverrides::parse(&format!("moe_experts={kernel}")).expect("overrides");
                let mut b = make().with_kernels(ov);
                b.prepare(&plan(s, vec![case])).expect("prepare");
                let peak = b.device().tensor_peak_tflops();
                let gate_up = experts(&mut b, "gate_up", format, s.experts, 2 * inter, hidden);
                let down = experts(&mut b, "down", format, s.experts, hidden, inter);
                let x = activations(&mut b, n * hidden);
                // Token t's j-th expert: (t · top_k + j) mod experts — every expert equally busy.
                let ids: Vec<u8> = (0..n * k).flat_map(|i| ((i % s.experts) as u32).to_le_bytes()).collect();
                let weights: Vec<u8> = (0..n * k).flat_map(|_| (1.0f32 / k as f32).to_le_bytes()).collect();
                let mut id_buf = b.alloc(DType::U32, n * k).expect("alloc");
                b.write(&mut id_buf, 0, &ids).expect("write");
                let mut w_buf = b.alloc(DType::F32, n * k).expect("alloc");
                b.write(&mut w_buf, 0, &weights).expect("write");
                let mut residual = b.alloc(DType::F32, n * hidden).expect("alloc");
                let swiglu = Swiglu { alpha: 1.702, limit: 7.0 };
                let call = |b: &mut CudaBackend<D>, residual: &mut CudaBuffer<D>| {
                    let a = MoeExpertsArgs {
                        gate_up: &gate_up,
                        down: &down,
                        x: &x,
                        n,
                        ids: &id_buf,
                        weights: &w_buf,
                        top_k: k,
                        swiglu,
                        residual,
                    };
                    b.moe_experts(a).expect("moe_experts");
                };
                let seconds = time(&mut b, s.reps, |b| call(b, &mut residual));
                // The residual accumulates over the timed calls: compare one call from zero.
                b.write(&mut residual, 0, &vec![0u8; n * hidden * 4]).expect("write");
                call(&mut b, &mut residual);
                let got = floats(&mut b, &residual, n * hidden);
                let diff = first.as_ref().map_or(0.0, |f| relative_diff(f, &got));
                first.get_or_insert(got);
                let flops = 2.0 * (n * k * (2 * inter * hidden + hidden * inter)) as f64;
                Row { op: "moe_experts", format, kernel: &kernel, n, seconds, flops, diff }.print(peak);
            }
        }
    }

    /// The smallest batch from which the bf16 tensor-core GEMM is faster than the GEMV kernel.
    pub fn crossover<D: Device>(make: &dyn Fn() -> CudaBackend<D>, s: &Shapes) {
        println!("\n| tokens | gemv ms | mma_x2 ms |\n|---|---|---|");
        let mut from = None;
        for n in [1, 2, 4, 8, 12, 16, 24, 32, 48, 64] {
            let sized = Shapes { tokens: n, ..*s };
            let t = matmul(make, &sized, n, false);
            let of = |v: &str| t.iter().find(|(k, _)| k == &format!("f32_bf16w_matmul_{v}")).map(|x| x.1).expect("variant");
            let (gemv, mma) = (of("gemv"), of("mma_x2"));
            println!("| {n} | {:.4} | {:.4} |", gemv * 1e3, mma * 1e3);
            if mma < gemv && from.is_none() {
                from = Some(n);
            }
        }
        match from {
            Some(n) => println!("\nthe tensor-core GEMM wins from {n} tokens: GPTOSS_MMA_FROM={n} on this device"),
            None => println!("\nthe GEMV kernels won at every batch up to 64 tokens"),
        }
    }
}

#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
fn main() {
    use variants::Shapes;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let small = argv.iter().any(|a| a == "--small");
    let number = |flag: &str, default: usize| -> usize {
        argv.iter().position(|a| a == flag).map_or(default, |i| {
            argv.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{flag}: expected a number");
                std::process::exit(2)
            })
        })
    };
    let shapes = if small {
        let tokens = number("--tokens", 80);
        Shapes { hidden: 256, q_heads: 4, kv_heads: 1, head_dim: 64, experts: 4, top_k: 2, tokens, reps: number("--reps", 1) }
    } else {
        let tokens = number("--tokens", 2048);
        Shapes { hidden: 2880, q_heads: 64, kv_heads: 8, head_dim: 64, experts: 32, top_k: 4, tokens, reps: number("--reps", 20) }
    };
    #[cfg(feature = "cuda")]
    let make = || gptoss_kernels_cuda::CudaBackend::gpu(0).unwrap_or_else(|e| panic!("no GPU: {e}"));
    #[cfg(not(feature = "cuda"))]
    let make = || gptoss_kernels_cuda::CudaBackend::sim().expect("the emulated device");
    println!("device: {}", gptoss_kernels_cuda::device::Device::name(make().device()));
    println!(
        "\n| op | weights | kernel | tokens | ms | TFLOP/s | of tensor peak | max rel. diff vs default |\n|---|---|---|---|---|---|---|---|"
    );
    variants::matmul(&make, &shapes, shapes.tokens, true);
    variants::qkv_rope(&make, &shapes);
    variants::attention(&make, &shapes);
    variants::moe_experts(&make, &shapes);
    if !small {
        variants::crossover(&make, &shapes);
    }
}

#[cfg(not(any(feature = "cuda", feature = "cuda-sim")))]
fn main() {
    eprintln!("cuda_variants needs the CUDA kernels: --features cuda (a GPU) or --features cuda-sim (the emulator)");
    std::process::exit(2);
}
