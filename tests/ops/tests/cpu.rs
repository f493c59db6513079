//! Every op family on every SIMD instruction set this CPU has (f32 activations: the exact
//! kernels, and the bf16 dot products where the CPU has them) against the scalar reference,
//! under the budgets of `budgets.rs`.

use gptoss_kernels_cpu::{Activations, CpuBackend};
use gptoss_op_tests::budgets::budget;
use gptoss_op_tests::cpu;
use gptoss_op_tests::families::*;
use gptoss_op_tests::shapes::FORMATS;
use proptest::prelude::*;

fn each(f: impl Fn(&mut CpuBackend, &mut CpuBackend, &str)) {
    let mut reference = cpu::reference(Activations::F32);
    for mut b in cpu::simd(Activations::F32) {
        let on = cpu::label(&b);
        f(&mut b, &mut reference, &on);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn embed(case in embed::cases()) {
        each(|b, r, on| embed::compare(&case, b, r, on));
    }

    #[test]
    fn rms_norm(case in rms_norm::cases()) {
        each(|b, r, on| rms_norm::compare(&case, b, r, on));
    }

    #[test]
    fn matmul(case in matmul::cases(&FORMATS)) {
        each(|b, r, on| matmul::compare(&case, b, r, budget("matmul", "exact"), on));
    }

    #[test]
    fn qkv_rope(case in qkv_rope::cases(&FORMATS, vec![2, 16, 64])) {
        each(|b, r, on| qkv_rope::compare(&case, b, r, budget("qkv_rope", "exact"), on));
    }

    #[test]
    fn attention(case in attention::cases(vec![2, 6, 16, 64], 20)) {
        each(|b, r, on| attention::compare(&case, b, r, budget("attention", "exact"), on));
    }

    #[test]
    fn qkv_rope_rows(case in qkv_rope_rows::cases(&FORMATS, vec![2, 16, 64])) {
        each(|b, r, on| qkv_rope_rows::compare(&case, b, r, budget("qkv_rope", "exact"), on));
    }

    #[test]
    fn attention_rows(case in attention_rows::cases(vec![2, 6, 16, 64], 20)) {
        each(|b, r, on| attention_rows::compare(&case, b, r, budget("attention", "exact"), on));
    }

    #[test]
    fn moe_route(case in moe_route::cases()) {
        each(|b, r, on| moe_route::compare(&case, b, r, on));
    }

    #[test]
    fn moe_experts(case in moe_experts::cases(&FORMATS, vec![32, 128], vec![32, 64, 128])) {
        each(|b, r, on| moe_experts::compare(&case, b, r, budget("moe_experts", "exact"), on));
    }

    #[test]
    fn sample(case in sample::cases()) {
        each(|b, r, on| sample::compare(&case, b, r, on));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A token's result does not depend on the batch it came in: a batch of n equals n single
    /// tokens bit for bit.
    #[test]
    fn matmul_results_do_not_depend_on_the_batch(case in matmul::cases(&FORMATS)) {
        for mut b in cpu::simd(Activations::F32) {
            let differs = matmul::batch_dependence(&case, &mut b);
            prop_assert!(differs.is_none(), "{} on {}", differs.unwrap_or_default(), cpu::label(&b));
        }
    }

    /// A row of a step over several sequences computes exactly what it computes alone: a
    /// request's output does not depend on its batch-mates (on the SIMD kernels and the
    /// reference alike).
    #[test]
    fn rows_of_several_sequences_equal_each_alone(
        qkv in qkv_rope_rows::cases(&FORMATS, vec![2, 16, 64]),
        att in attention_rows::cases(vec![2, 6, 16, 64], 20),
    ) {
        for mut b in cpu::simd(Activations::F32).into_iter().chain([cpu::reference(Activations::F32)]) {
            let differs = qkv_rope_rows::differs_from_alone(&qkv, &mut b).or_else(|| attention_rows::differs_from_alone(&att, &mut b));
            prop_assert!(differs.is_none(), "{} on {}", differs.unwrap_or_default(), cpu::label(&b));
        }
    }
}

/// A row past what its own cache holds is an error naming its position, on every backend.
#[test]
fn attention_rows_report_a_ring_overrun() {
    for mut b in cpu::simd(Activations::F32).into_iter().chain([cpu::reference(Activations::F32)]) {
        attention_rows::overrun_is_reported(&mut b);
    }
}
