//! The CUDA backend's tests, one set of bodies for both devices: the emulated one (feature
//! `cuda-sim`, every test run) and a real GPU (feature `cuda`, skipped without one). The
//! `cuda_tests!` macro writes the same `#[test]` functions for a device; each compares every op
//! family with the scalar reference under the CPU's budgets.

use gptoss_engine::kernels::kernel_name;
use gptoss_engine::{Backend, KernelOverrides, ModelPlan, OpKind, WeightFormat};
use gptoss_kernels_cpu::{Activations, CpuBackend, Isa};
use gptoss_kernels_cuda::CudaBackend;
use gptoss_kernels_cuda::device::Device;

use crate::cpu;

/// The formats the CUDA kernels take for qkv_rope (MXFP4 stays with the experts).
pub const DENSE: [WeightFormat; 6] = [
    WeightFormat::F32,
    WeightFormat::Bf16,
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
];

/// The cases the CUDA kernels serve, for a head dimension of `head_dim`.
pub fn plan(head_dim: usize) -> ModelPlan {
    let mut p = cpu::plan();
    p.head_dim = head_dim;
    p.cases.retain(|c| match (c.op, c.format) {
        (OpKind::Embed, f) => matches!(f, Some(WeightFormat::F32 | WeightFormat::Bf16)),
        (OpKind::QkvRope | OpKind::MoeRoute, Some(WeightFormat::Mxfp4)) => false,
        (OpKind::RmsNorm | OpKind::Attention | OpKind::Sample, f) => f.is_none(),
        (_, f) => f.is_some(),
    });
    p
}

/// `backend` prepared for `head_dim`, and the scalar reference.
pub fn prepared<D: Device>(mut backend: CudaBackend<D>, head_dim: usize) -> (CudaBackend<D>, CpuBackend) {
    backend.prepare(&plan(head_dim)).expect("prepare the CUDA backend");
    (backend, cpu::reference(Activations::F32))
}

/// As [`prepared`], both backends for batches (or rows of a step) of up to `max_tokens`.
pub fn prepared_for_tokens<D: Device>(mut backend: CudaBackend<D>, head_dim: usize, max_tokens: usize) -> (CudaBackend<D>, CpuBackend) {
    let mut p = plan(head_dim);
    p.max_tokens = max_tokens;
    backend.prepare(&p).expect("prepare the CUDA backend");
    (backend, cpu::prepared_for(Isa::Scalar, Activations::F32, &p))
}

/// The tokens of the largest tensor-core case.
pub const MMA_MAX_TOKENS: usize = 2048;

/// `backend` prepared for the tensor-core cases (up to [`MMA_MAX_TOKENS`] tokens, head dim
/// `head_dim`) with `kernels` as its `GPTOSS_KERNELS`, every batch on the tensor cores where
/// the shapes suit them; and the scalar reference prepared alike.
pub fn prepared_mma<D: Device>(backend: CudaBackend<D>, head_dim: usize, kernels: &str) -> (CudaBackend<D>, CpuBackend) {
    let mut p = plan(head_dim);
    p.max_tokens = MMA_MAX_TOKENS;
    let overrides = KernelOverrides::parse(kernels).expect("kernel overrides");
    let mut backend = backend.with_kernels(overrides).with_mma_from(1);
    backend.prepare(&p).expect("prepare the CUDA backend");
    (backend, cpu::prepared_for(Isa::Scalar, Activations::F32, &p))
}

/// `GPTOSS_KERNELS` forcing `variant` of `op` for `format`.
pub fn forcing(op: &str, format: WeightFormat, variant: &str) -> String {
    format!("{op}={}", kernel_name(op, Some(format), variant))
}

/// The `#[test]` functions of every op family on the device `$make(head_dim)` returns
/// (`Option`: `None` skips, after saying why), `$cases` cases each.
#[macro_export]
macro_rules! cuda_tests {
    ($make:expr, $cases:expr) => {
        use gptoss_engine::WeightFormat;
        use gptoss_op_tests::budgets::budget;
        use gptoss_op_tests::cuda::{DENSE, MMA_MAX_TOKENS, forcing, prepared, prepared_for_tokens, prepared_mma};
        use gptoss_op_tests::each_case;
        use gptoss_op_tests::families::*;
        use gptoss_op_tests::shapes::{FORMATS, MMA_FORMATS, MMA_TOKENS, mma_cols_for};

        #[test]
        fn synth() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            synth::compare(&mut g, &mut r, "cuda");
        }

        #[test]
        fn embed() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            each_case(embed::cases(), $cases, |c| embed::compare(&c, &mut g, &mut r, "cuda"));
        }

        #[test]
        fn rms_norm() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            each_case(rms_norm::cases(), $cases, |c| rms_norm::compare(&c, &mut g, &mut r, "cuda"));
        }

        #[test]
        fn matmul() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            each_case(matmul::cases(&FORMATS), $cases, |c| matmul::compare(&c, &mut g, &mut r, budget("matmul", "exact"), "cuda"));
        }

        #[test]
        fn matmul_results_do_not_depend_on_the_batch() {
            let Some((mut g, _)) = $make(64).map(|b| prepared(b, 64)) else { return };
            each_case(matmul::cases(&FORMATS), $cases, |c| {
                if let Some(d) = matmul::batch_dependence(&c, &mut g) {
                    panic!("{d}");
                }
            });
        }

        /// The default variant with every batch on the tensor cores (activations in two bf16
        /// planes): the exact budget; widths the GEMM cannot stream go to the GEMV kernels.
        #[test]
        fn matmul_on_tensor_cores() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, "")) else { return };
            each_case(matmul::mma_cases(&FORMATS), $cases, |c| {
                matmul::compare(&c, &mut g, &mut r, budget("matmul", "exact"), "cuda mma_x2")
            });
        }

        /// The variant on one bf16 plane, forced per format: its own budget.
        #[test]
        fn matmul_on_tensor_cores_with_bf16_activations() {
            for f in MMA_FORMATS {
                let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, &forcing("matmul", f, "mma_x1"))) else { return };
                let cases = matmul::mma_cases(&MMA_FORMATS);
                each_case(cases, $cases / 2, |c| {
                    let c = matmul::Case { format: f, cols: mma_cols_for(f, c.cols % 5), ..c };
                    matmul::compare(&c, &mut g, &mut r, budget("matmul", "mma_x1"), "cuda mma_x1");
                });
            }
        }

        /// The tensor-core path: a token's result is the same whatever its batch-mates (n = 1
        /// runs on the tensor cores too here), and the same on every run (no atomics: the
        /// emulator shuffles the block order per launch).
        #[test]
        fn matmul_on_tensor_cores_is_batch_independent_and_repeatable() {
            let Some((mut g, _)) = $make(64).map(|b| prepared_mma(b, 64, "")) else { return };
            each_case(matmul::mma_cases(&MMA_FORMATS), $cases / 4, |c| {
                if let Some(d) = matmul::batch_dependence(&c, &mut g) {
                    panic!("{d}");
                }
                let inputs = c.inputs();
                assert_eq!(c.run(&inputs, &mut g), c.run(&inputs, &mut g), "matmul {c:?}: two runs differ");
            });
        }

        /// Ragged edges at prefill size: 2048 tokens, rows and widths off the tiles.
        #[test]
        fn matmul_of_a_long_prompt_on_tensor_cores() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, "")) else { return };
            for format in [WeightFormat::Bf16, WeightFormat::Mxfp4] {
                let c = matmul::Case { format, rows: 129, cols: 96, n: MMA_MAX_TOKENS, bias: true, accumulate: true, seed: 7 };
                matmul::compare(&c, &mut g, &mut r, budget("matmul", "exact"), "cuda mma_x2");
            }
        }

        #[test]
        fn qkv_rope_on_tensor_cores() {
            for d in [16, 64, 128] {
                let Some((mut g, mut r)) = $make(d).map(|b| prepared_mma(b, d, "")) else { return };
                let cases = qkv_rope::cases_of(&DENSE, vec![d], MMA_TOKENS.to_vec(), mma_cols_for);
                each_case(cases, $cases / 3, |c| qkv_rope::compare(&c, &mut g, &mut r, budget("qkv_rope", "exact"), "cuda mma_x2"));
            }
        }

        /// Every tensor-core form of the projection: each format that has one, both cache
        /// types, on two activation planes (the default: the exact budget) and on one (forced:
        /// its own budget), a single token and batches off the tiles.
        #[test]
        fn qkv_rope_on_tensor_cores_in_every_form() {
            for format in [WeightFormat::Bf16, WeightFormat::Int8, WeightFormat::Int4 { group: 32 }] {
                let forms = [("mma_x2", String::new(), "exact"), ("mma_x1", forcing("qkv_rope", format, "mma_x1"), "mma_x1")];
                for (form, kernels, variant) in forms {
                    let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, &kernels)) else { return };
                    for (i, (bf16_cache, n)) in [false, true].into_iter().flat_map(|c| [1, 17, 70].map(|n| (c, n))).enumerate() {
                        let hidden = mma_cols_for(format, i);
                        let c =
                            qkv_rope::Case { format, hidden, head_dim: 64, kv_heads: 2, group: 2, bf16_cache, n, start: 5, seed: i as u64 };
                        qkv_rope::compare(&c, &mut g, &mut r, budget("qkv_rope", variant), &format!("cuda {form}"));
                    }
                }
            }
        }

        #[test]
        fn qkv_rope() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            let cases = qkv_rope::cases(&DENSE, vec![16, 64, 128]);
            each_case(cases, $cases, |c| qkv_rope::compare(&c, &mut g, &mut r, budget("qkv_rope", "exact"), "cuda"));
        }

        #[test]
        fn attention() {
            for d in [16, 64, 128] {
                let Some((mut g, mut r)) = $make(d).map(|b| prepared(b, d)) else { return };
                each_case(attention::cases(vec![d], 8), $cases, |c| {
                    attention::compare(&c, &mut g, &mut r, budget("attention", "exact"), "cuda")
                });
            }
        }

        /// The default variant with every batch on the tensor cores: prompts either side of its
        /// tiles, after earlier chunks, every head dim, group size 1 to 8, both cache types,
        /// windows shorter and longer than the prompt.
        #[test]
        fn attention_on_tensor_cores() {
            let mut on = Vec::new();
            for d in [16, 64, 128] {
                let Some(backends) = $make(d).map(|b| prepared_mma(b, d, "")) else { return };
                on.push((d, backends));
            }
            each_case(attention::mma_cases(vec![16, 64, 128]), $cases, |c| {
                let (_, (g, r)) = on.iter_mut().find(|(d, _)| *d == c.head_dim).expect("a backend per head dim");
                attention::compare(&c, g, r, budget("attention", "mma"), "cuda mma")
            });
        }

        /// A long prompt after an earlier chunk, gpt-oss's shape (head dim 64, 8 query heads per
        /// kv head), on a full layer and on a sliding one whose cache still holds the keys before
        /// the window (NaN: the kernel must skip them).
        #[test]
        fn attention_of_a_long_prompt_on_tensor_cores() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, "")) else { return };
            let full = attention::Case { head_dim: 64, kv_heads: 1, group: 8, window: None, bf16_cache: true, n: 520, start: 40, seed: 3 };
            attention::compare(&full, &mut g, &mut r, budget("attention", "mma"), "cuda mma");
            let sliding = attention::Case { window: Some(128), bf16_cache: false, start: 300, ..full };
            attention::compare_skipping_keys_before_the_window(&sliding, &mut g, &mut r, budget("attention", "mma"), "cuda mma");
        }

        /// The tensor-core kernel gives the same bits on every run (no atomics: the emulator
        /// shuffles the block order per launch), and reports a ring overrun as an error.
        #[test]
        fn attention_on_tensor_cores_is_repeatable_and_reports_overruns() {
            let Some((mut g, _)) = $make(16).map(|b| prepared_mma(b, 16, "")) else { return };
            each_case(attention::mma_cases(vec![16]), $cases / 8, |c| {
                assert_eq!(c.run(&mut g), c.run(&mut g), "attention {c:?}: two runs differ")
            });
            for n in [1, 17] {
                attention::overrun_is_reported(&mut g, n);
            }
        }

        /// Each form forced by name: the split kernels on prompts, the tensor-core kernel on
        /// decode-sized batches (below the default crossover).
        #[test]
        fn attention_with_either_form_forced() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, "attention=f32_sdpa_sinks_split")) else { return };
            each_case(attention::mma_cases(vec![64]), $cases / 8, |c| {
                attention::compare(&c, &mut g, &mut r, budget("attention", "exact"), "cuda split")
            });
            let forced = gptoss_engine::KernelOverrides::parse("attention=f32_sdpa_sinks_mma").expect("kernel overrides");
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b.with_kernels(forced), 64)) else { return };
            each_case(attention::cases(vec![64], 8), $cases / 4, |c| {
                attention::compare(&c, &mut g, &mut r, budget("attention", "mma"), "cuda mma")
            });
        }

        #[test]
        fn qkv_rope_rows() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            let cases = qkv_rope_rows::cases(&DENSE, vec![16, 64, 128]);
            each_case(cases, $cases / 4, |c| qkv_rope_rows::compare(&c, &mut g, &mut r, budget("qkv_rope", "exact"), "cuda"));
        }

        #[test]
        fn attention_rows() {
            for d in [16, 64, 128] {
                let Some((mut g, mut r)) = $make(d).map(|b| prepared(b, d)) else { return };
                each_case(attention_rows::cases(vec![d], 8), $cases / 4, |c| {
                    attention_rows::compare(&c, &mut g, &mut r, budget("attention", "exact"), "cuda")
                });
            }
        }

        /// A step over more sequences than one launch's table of cache addresses (128) runs
        /// as several launches: every row still matches the reference.
        #[test]
        fn rows_beyond_one_launch() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared_for_tokens(b, 64, 140)) else { return };
            each_case(qkv_rope_rows::cases_with_rows(&DENSE[..2], vec![64], 129..140), 2, |c| {
                qkv_rope_rows::compare(&c, &mut g, &mut r, budget("qkv_rope", "exact"), "cuda")
            });
            each_case(attention_rows::cases_with_rows(vec![64], 2, 129..140), 2, |c| {
                attention_rows::compare(&c, &mut g, &mut r, budget("attention", "exact"), "cuda")
            });
        }

        /// A row of a step over several sequences computes exactly what it computes alone (the
        /// GEMV projection and the split attention of a lone decode token), and a row past what
        /// its cache holds is reported.
        #[test]
        fn rows_of_several_sequences_equal_each_alone() {
            let Some((mut g, _)) = $make(64).map(|b| prepared(b, 64)) else { return };
            each_case(qkv_rope_rows::cases(&DENSE, vec![64]), $cases / 8, |c| {
                if let Some(d) = qkv_rope_rows::differs_from_alone(&c, &mut g) {
                    panic!("{d}");
                }
            });
            each_case(attention_rows::cases(vec![64], 8), $cases / 8, |c| {
                if let Some(d) = attention_rows::differs_from_alone(&c, &mut g) {
                    panic!("{d}");
                }
            });
            let Some((mut g, _)) = $make(16).map(|b| prepared(b, 16)) else { return };
            attention_rows::overrun_is_reported(&mut g);
        }

        #[test]
        fn moe_route() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            each_case(moe_route::cases(), $cases, |c| moe_route::compare(&c, &mut g, &mut r, "cuda"));
        }

        #[test]
        fn moe_experts() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            let cases = moe_experts::cases(&FORMATS, vec![32, 128], vec![32, 64, 128]);
            each_case(cases, $cases, |c| moe_experts::compare(&c, &mut g, &mut r, budget("moe_experts", "exact"), "cuda"));
        }

        /// Experts reached through tables (host memory read in place, slots filled beside the
        /// step), in the GEMV and the tensor-core forms: the plain stacks' results bit for bit.
        #[test]
        fn moe_experts_through_tables() {
            let Some((mut g, _)) = $make(64).map(|b| prepared_mma(b, 64, "")) else { return };
            each_case(moe_experts::mma_cases(&FORMATS), $cases / 4, |c| moe_experts::through_tables(&c, &mut g));
            let Some((mut g, _)) = $make(64).map(|b| prepared(b, 64)) else { return };
            let cases = moe_experts::cases(&FORMATS, vec![32, 128], vec![32, 64, 128]);
            each_case(cases, $cases / 2, |c| moe_experts::through_tables(&c, &mut g));
            moe_experts::table_misuse(&mut g);
        }

        /// The grouped MoE GEMM, every batch on the tensor cores (two bf16 planes), routings
        /// spread, crowded onto one expert or onto top_k experts with the rest idle; widths the
        /// GEMM cannot stream, and f32 weights, go to the GEMV kernels.
        #[test]
        fn moe_experts_on_tensor_cores() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, "")) else { return };
            each_case(moe_experts::mma_cases(&FORMATS), $cases / 2, |c| {
                moe_experts::compare(&c, &mut g, &mut r, budget("moe_experts", "mma_x2"), "cuda mma_x2")
            });
        }

        /// The variant on one bf16 plane, forced per format: its own budget.
        #[test]
        fn moe_experts_on_tensor_cores_with_bf16_activations() {
            for f in MMA_FORMATS {
                let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, &forcing("moe_experts", f, "mma_x1"))) else { return };
                each_case(moe_experts::mma_cases(&MMA_FORMATS), $cases / 12, |c| {
                    let (hidden, intermediate) = (moe_experts::mma_width(f, c.hidden % 4), moe_experts::mma_width(f, c.intermediate % 4));
                    let c = moe_experts::Case { format: f, hidden, intermediate, ..c };
                    moe_experts::compare(&c, &mut g, &mut r, budget("moe_experts", "mma_x1"), "cuda mma_x1");
                });
            }
        }

        /// Skewed routings at a prompt's size (every token to one expert with top-1; top-4 on
        /// 4 of 8 experts), bit-identical on a second run; an expert id beyond the experts is
        /// an error, and so is a batch beyond the prepared plan.
        #[test]
        fn moe_experts_of_a_long_prompt_on_tensor_cores() {
            use moe_experts::{Case, Routing};
            let Some((mut g, mut r)) = $make(64).map(|b| prepared_mma(b, 64, "")) else { return };
            let prompt = |format, top_k, routing| Case {
                format,
                experts: 8,
                top_k,
                n: MMA_MAX_TOKENS,
                hidden: 64,
                intermediate: 32,
                routing,
                seed: 11,
            };
            for c in [prompt(WeightFormat::Mxfp4, 1, Routing::OneExpert), prompt(WeightFormat::Bf16, 4, Routing::Crowded)] {
                moe_experts::compare(&c, &mut g, &mut r, budget("moe_experts", "mma_x2"), "cuda mma_x2");
                moe_experts::repeatable(&c, &mut g);
            }
            moe_experts::bad_expert_id(&Case { n: 65, ..prompt(WeightFormat::Int8, 2, Routing::Spread) }, &mut g);
            let beyond = Case { n: MMA_MAX_TOKENS + 1, ..prompt(WeightFormat::Mxfp4, 4, Routing::Spread) };
            let err = beyond.try_run(&beyond.inputs(), &mut g).expect_err("a batch beyond the plan").to_string();
            assert!(err.contains("prepared for"), "{err}");
        }

        #[test]
        fn sample() {
            let Some((mut g, mut r)) = $make(64).map(|b| prepared(b, 64)) else { return };
            each_case(sample::cases(), $cases, |c| sample::compare(&c, &mut g, &mut r, "cuda"));
        }

        #[test]
        fn known_answers() {
            let Some((mut g, _)) = $make(16).map(|b| prepared(b, 16)) else { return };
            for (name, answer) in gptoss_op_tests::known::all() {
                eprintln!("cuda: {name}");
                answer(&mut g);
            }
        }
    };
}
