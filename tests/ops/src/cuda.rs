//! The CUDA backend's tests, one set of bodies for both devices: the emulated one (feature
//! `cuda-sim`, every test run) and a real GPU (feature `cuda`, skipped without one). The
//! `cuda_tests!` macro writes the same `#[test]` functions for a device; each compares every op
//! family with the scalar reference under the CPU's budgets.

use gptoss_engine::{Backend, ModelPlan, OpKind, WeightFormat};
use gptoss_kernels_cpu::{Activations, CpuBackend};
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

/// The `#[test]` functions of every op family on the device `$make(head_dim)` returns
/// (`Option`: `None` skips, after saying why), `$cases` cases each.
#[macro_export]
macro_rules! cuda_tests {
    ($make:expr, $cases:expr) => {
        use gptoss_op_tests::budgets::budget;
        use gptoss_op_tests::cuda::{DENSE, prepared};
        use gptoss_op_tests::each_case;
        use gptoss_op_tests::families::*;
        use gptoss_op_tests::shapes::FORMATS;

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
                each_case(attention::cases(vec![d], 8), $cases, |c| attention::compare(&c, &mut g, &mut r, "cuda"));
            }
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
