//! The q8 kernels (int8 activations) of every compiled set this CPU runs (every SIMD
//! instruction set, with and without the q8 extensions it has: VNNI, VBMI, dotprod), two ways:
//! against the scalar reference of the q8 definition (`Isa::Scalar` with int8 activations: the
//! same roundings, then f64), within f32 rounding; and against the exact scalar reference,
//! within what rounding activations to int8 costs, on cases with enough values for the NMSE to
//! settle (widths ≥ 64, ≥ 64 outputs).

use gptoss_kernels_cpu::{Activations, CpuBackend};
use gptoss_op_tests::budgets::budget;
use gptoss_op_tests::cpu;
use gptoss_op_tests::families::*;
use gptoss_op_tests::shapes::Q8_FORMATS;
use proptest::prelude::*;

fn each(f: impl Fn(&mut CpuBackend, &mut CpuBackend, &mut CpuBackend, &str)) {
    let (mut q8, mut exact) = (cpu::reference(Activations::Int8), cpu::reference(Activations::F32));
    for mut b in cpu::simd(Activations::Int8) {
        let on = b.set().unwrap_or_default();
        f(&mut b, &mut q8, &mut exact, on);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matmul(case in matmul::cases(&Q8_FORMATS)) {
        each(|b, q8, exact, on| {
            matmul::compare(&case, b, q8, budget("matmul", "q8"), on);
            if case.cols >= 64 && case.n * case.rows >= 64 {
                matmul::compare(&case, b, exact, budget("matmul", "q8_vs_exact"), on);
            }
        });
    }

    #[test]
    fn qkv_rope(case in qkv_rope::cases(&Q8_FORMATS, vec![2, 16, 64])) {
        each(|b, q8, _, on| qkv_rope::compare(&case, b, q8, budget("qkv_rope", "q8"), on));
    }

    #[test]
    fn qkv_rope_rows(case in qkv_rope_rows::cases(&Q8_FORMATS, vec![2, 16, 64])) {
        each(|b, q8, _, on| qkv_rope_rows::compare(&case, b, q8, budget("qkv_rope", "q8"), on));
    }

    #[test]
    fn moe_experts(case in moe_experts::cases(&Q8_FORMATS, vec![32, 128, 288], vec![32, 64, 128, 544])) {
        each(|b, q8, exact, on| {
            moe_experts::compare(&case, b, q8, budget("moe_experts", "q8"), on);
            if case.hidden >= 64 && case.intermediate >= 64 && case.n > 0 {
                moe_experts::compare(&case, b, exact, budget("moe_experts", "q8_vs_exact"), on);
            }
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// As for the exact kernels: a batch of n equals n single tokens bit for bit.
    #[test]
    fn matmul_results_do_not_depend_on_the_batch(case in matmul::cases(&Q8_FORMATS)) {
        for mut b in cpu::simd(Activations::Int8) {
            let differs = matmul::batch_dependence(&case, &mut b);
            prop_assert!(differs.is_none(), "{} on {}", differs.unwrap_or_default(), b.set().unwrap_or_default());
        }
    }

    /// As for the exact kernels: a row of several sequences equals the row alone bit for bit.
    #[test]
    fn qkv_rope_rows_equal_each_alone(case in qkv_rope_rows::cases(&Q8_FORMATS, vec![2, 16, 64])) {
        for mut b in cpu::simd(Activations::Int8).into_iter().chain([cpu::reference(Activations::Int8)]) {
            let differs = qkv_rope_rows::differs_from_alone(&case, &mut b);
            prop_assert!(differs.is_none(), "{} on {}", differs.unwrap_or_default(), b.isa());
        }
    }
}
