//! Every op family on the CUDA backend against the scalar reference: the same bodies and
//! budgets as the CPU's. Each test skips, saying why, on a machine without a GPU;
//! `GPTOSS_REQUIRE_GPU=1` makes a skip a failure (`kernels-cuda/scripts/gpu-check.sh` sets it).

#![cfg(feature = "cuda")]

use gptoss_engine::{Backend, EmbedArgs, ModelPlan, OpKind, WeightFormat};
use gptoss_kernels_cpu::{Activations, CpuBackend};
use gptoss_kernels_cuda::CudaBackend;
use gptoss_op_tests::budgets::budget;
use gptoss_op_tests::families::*;
use gptoss_op_tests::io::{poisoned, u32s};
use gptoss_op_tests::weights::Spec;
use gptoss_op_tests::{cpu, each_case, rng::Rng};

/// The formats the CUDA kernels take for qkv_rope (MXFP4 stays with the experts).
const DENSE: [WeightFormat; 6] = [
    WeightFormat::F32,
    WeightFormat::Bf16,
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
];
const CASES: u32 = 48;

/// The cases the CUDA kernels serve, for a head dimension of `head_dim`.
fn plan(head_dim: usize) -> ModelPlan {
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

/// The GPU prepared for `head_dim`, and the scalar reference; `None` (said why) without a GPU.
fn gpu(head_dim: usize) -> Option<(CudaBackend, CpuBackend)> {
    match CudaBackend::new(0) {
        Ok(mut g) => {
            g.prepare(&plan(head_dim)).expect("prepare the CUDA backend");
            Some((g, cpu::reference(Activations::F32)))
        }
        Err(e) if std::env::var("GPTOSS_REQUIRE_GPU").is_ok_and(|v| v == "1") => panic!("GPTOSS_REQUIRE_GPU=1 but no GPU: {e}"),
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            None
        }
    }
}

#[test]
fn synth() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    synth::compare(&mut g, &mut r, "cuda");
}

#[test]
fn embed() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    each_case(embed::cases(), CASES, |c| embed::compare(&c, &mut g, &mut r, "cuda"));
}

#[test]
fn rms_norm() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    each_case(rms_norm::cases(), CASES, |c| rms_norm::compare(&c, &mut g, &mut r, "cuda"));
}

#[test]
fn matmul() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    each_case(matmul::cases(&gptoss_op_tests::shapes::FORMATS), CASES, |c| {
        matmul::compare(&c, &mut g, &mut r, budget("matmul", "exact"), "cuda")
    });
}

#[test]
fn qkv_rope() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    each_case(qkv_rope::cases(&DENSE, vec![16, 64, 128]), CASES, |c| {
        qkv_rope::compare(&c, &mut g, &mut r, budget("qkv_rope", "exact"), "cuda")
    });
}

#[test]
fn attention() {
    for d in [16, 64, 128] {
        let Some((mut g, mut r)) = gpu(d) else { return };
        each_case(attention::cases(vec![d], 8), CASES, |c| attention::compare(&c, &mut g, &mut r, "cuda"));
    }
}

#[test]
fn moe_route() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    each_case(moe_route::cases(), CASES, |c| moe_route::compare(&c, &mut g, &mut r, "cuda"));
}

#[test]
fn moe_experts() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    let cases = moe_experts::cases(&gptoss_op_tests::shapes::FORMATS, vec![32, 128], vec![32, 64, 128]);
    each_case(cases, CASES, |c| moe_experts::compare(&c, &mut g, &mut r, budget("moe_experts", "exact"), "cuda"));
}

#[test]
fn sample() {
    let Some((mut g, mut r)) = gpu(64) else { return };
    each_case(sample::cases(), CASES, |c| sample::compare(&c, &mut g, &mut r, "cuda"));
}

/// Token ids live in device memory: the kernel flags one beyond the table in the status word,
/// which the next synchronize reports (and clears).
#[test]
fn an_out_of_range_token_is_reported() {
    let Some((mut g, _)) = gpu(64) else { return };
    let table = Spec::random(WeightFormat::Bf16, 1, 10, 8, false, &mut Rng::new(1)).load(&mut g);
    let tokens = u32s(&mut g, &[10]);
    let mut out = poisoned(&mut g, 8);
    g.embed(EmbedArgs { table: &table, tokens: &tokens, n: 1, out: &mut out }).unwrap();
    let err = g.synchronize().unwrap_err().to_string();
    assert!(err.contains("token id"), "{err}");
    g.synchronize().unwrap();
}
