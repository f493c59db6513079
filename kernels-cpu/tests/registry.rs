//! The CPU registry: kernel names state the format, the op and the path; int8 activations put
//! the q8 kernels first for integer weights only; every kernel stays selectable by name.

use gptoss_engine::kernels::KernelOverrides;
use gptoss_engine::{Backend, KernelChoice, ModelPlan, OpCase, OpKind, WeightFormat};
use gptoss_kernels_cpu::compiled::names_for;
use gptoss_kernels_cpu::registry::{Chosen, bf16_dot_overrides};
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuOptions, Isa};

const FORMATS: [WeightFormat; 5] =
    [WeightFormat::F32, WeightFormat::Bf16, WeightFormat::Int8, WeightFormat::Int4 { group: 64 }, WeightFormat::Mxfp4];

fn plan() -> ModelPlan {
    let cases = OpKind::ALL.iter().flat_map(|&op| std::iter::once(None).chain(FORMATS.map(Some)).map(move |format| OpCase { op, format }));
    ModelPlan {
        max_tokens: 4,
        hidden: 64,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 16,
        experts: 4,
        top_k: 2,
        intermediate: 64,
        vocab: 16,
        cases: cases.collect(),
    }
}

fn choices(isa: Isa, activations: Activations) -> (CpuBackend, Vec<KernelChoice>) {
    choices_of(isa, None, activations)
}

fn choices_of(isa: Isa, set: Option<&'static str>, activations: Activations) -> (CpuBackend, Vec<KernelChoice>) {
    let mut b = CpuBackend::with_options(CpuOptions { threads: Some(1), isa, set, activations }).unwrap();
    let choices = b.prepare(&plan()).unwrap();
    (b, choices)
}

fn name(choices: &[KernelChoice], op: OpKind, format: Option<WeightFormat>) -> &str {
    &choices.iter().find(|c| c.case.op == op && c.case.format == format).unwrap().kernel
}

/// The suffix of the q8 kernels on `isa` here: `avx2`, `avx512_vnni`, `neon_dotprod`, …
fn q8_suffix(isa: Isa) -> String {
    isa.q8_extension().map_or_else(|| isa.name().to_string(), |e| format!("{}_{e}", isa.name()))
}

fn simd_isas() -> Vec<Isa> {
    Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar).collect()
}

#[test]
fn kernel_names_state_the_format_op_and_isa() {
    for isa in simd_isas() {
        let (b, c) = choices(isa, Activations::F32);
        let isa = isa.name();
        assert_eq!(name(&c, OpKind::Matmul, Some(WeightFormat::Bf16)), format!("f32_bf16w_matmul_{isa}"));
        assert_eq!(name(&c, OpKind::MoeExperts, Some(WeightFormat::Mxfp4)), format!("f32_mf4w_moe_experts_swiglu_{isa}"));
        assert_eq!(name(&c, OpKind::QkvRope, Some(WeightFormat::Int4 { group: 64 })), format!("f32_i4w_qkv_rope_{isa}"));
        assert_eq!(name(&c, OpKind::Attention, None), format!("f32_sdpa_sinks_{isa}"));
        assert_eq!(b.info().device.split([' ', '+']).next().unwrap(), isa);
    }
    let (_, c) = choices(Isa::Scalar, Activations::F32);
    assert!(c.iter().all(|c| c.kernel.ends_with("_ref") && !c.kernel.contains("q8")), "the scalar path runs the exact references");
}

#[test]
fn int8_activations_choose_the_q8_kernels_for_integer_weights_only() {
    for isa in simd_isas() {
        let (b, c) = choices(isa, Activations::Int8);
        let (name_of_isa, q8) = (isa.name(), q8_suffix(isa));
        assert_eq!(name(&c, OpKind::Matmul, Some(WeightFormat::Int8)), format!("f32_i8w_matmul_q8_{q8}"));
        assert_eq!(name(&c, OpKind::QkvRope, Some(WeightFormat::Int4 { group: 64 })), format!("f32_i4w_qkv_rope_q8_{q8}"));
        assert_eq!(name(&c, OpKind::MoeExperts, Some(WeightFormat::Mxfp4)), format!("f32_mf4w_moe_experts_swiglu_q8_{q8}"));
        // bf16 weights, the router and everything without weights stay exact.
        assert_eq!(name(&c, OpKind::Matmul, Some(WeightFormat::Bf16)), format!("f32_bf16w_matmul_{name_of_isa}"));
        assert_eq!(name(&c, OpKind::MoeRoute, Some(WeightFormat::Mxfp4)), format!("f32_mf4w_moe_route_{name_of_isa}"));
        assert_eq!(name(&c, OpKind::Attention, None), format!("f32_sdpa_sinks_{name_of_isa}"));
        assert!(b.info().device.ends_with(", int8 activations"), "{}", b.info().device);
    }
    // The scalar path with int8 activations runs the q8 definition's references.
    let (_, c) = choices(Isa::Scalar, Activations::Int8);
    assert_eq!(name(&c, OpKind::Matmul, Some(WeightFormat::Mxfp4)), "f32_matmul_q8_ref");
    assert_eq!(name(&c, OpKind::Matmul, Some(WeightFormat::Bf16)), "f32_matmul_ref");
}

#[test]
fn f32_activations_keep_the_exact_kernels_and_can_name_a_q8_one() {
    for isa in simd_isas() {
        let q8 = format!("f32_mf4w_matmul_q8_{}", q8_suffix(isa));
        let cases = plan().cases;
        let pick = |c: &Chosen| {
            c.report.iter().find(|k| k.case.op == OpKind::Matmul && k.case.format == Some(WeightFormat::Mxfp4)).unwrap().kernel.clone()
        };
        let default = Chosen::new(isa, None, Activations::F32, &cases, &KernelOverrides::default()).unwrap();
        assert_eq!(pick(&default), format!("f32_mf4w_matmul_{}", isa.name()));
        let forced = Chosen::new(isa, None, Activations::F32, &cases, &KernelOverrides::parse(&format!("matmul={q8}")).unwrap()).unwrap();
        assert_eq!(pick(&forced), q8);
    }
}

#[test]
fn every_compiled_set_of_an_isa_can_be_forced() {
    for isa in simd_isas() {
        let sets = names_for(isa);
        assert_eq!(sets[0], q8_suffix(isa), "the widest set runs by default");
        // One set per q8 extension this CPU has, and the set without one.
        let extensions = ["vnni", "vnni_vbmi", "vnni_vbmi_bf16", "dotprod"].into_iter().filter(|e| isa.has_extension(e)).count();
        assert_eq!(sets.len(), 1 + extensions, "{sets:?}");
        for set in sets {
            let (b, c) = choices_of(isa, Some(set), Activations::Int8);
            assert_eq!(b.set(), Some(set));
            assert_eq!(name(&c, OpKind::MoeExperts, Some(WeightFormat::Mxfp4)), format!("f32_mf4w_moe_experts_swiglu_q8_{set}"));
            assert_eq!(name(&c, OpKind::Matmul, Some(WeightFormat::Bf16)), format!("f32_bf16w_matmul_{}", isa.name()));
        }
    }
    let err = |isa, set| CpuBackend::with_options(CpuOptions { threads: Some(1), isa, set: Some(set), activations: Activations::Int8 });
    let msg = err(Isa::Scalar, "avx2").err().unwrap().to_string();
    assert!(msg.contains("cannot run the avx2 kernels of scalar (it runs: none)"), "{msg}");
    if let Some(&isa) = simd_isas().first() {
        let msg = err(isa, "avx512_nope").err().unwrap().to_string();
        assert!(msg.contains("cannot run the avx512_nope kernels"), "{msg}");
    }
}

#[test]
fn bf16_dot_products_come_after_the_exact_bf16_kernels_and_run_by_name() {
    for isa in simd_isas() {
        let Some(ov) = bf16_dot_overrides(isa, None) else {
            assert!(!isa.has_extension("vnni_vbmi_bf16"), "{isa} has AVX512-BF16 but no bf16 dot products");
            continue;
        };
        assert!(bf16_dot_overrides(isa, Some("avx512_vnni_vbmi")).is_none(), "only the set named for BF16 has them");
        let cases = plan().cases;
        let pick =
            |c: &Chosen, op| c.report.iter().find(|k| k.case.op == op && k.case.format == Some(WeightFormat::Bf16)).unwrap().kernel.clone();
        let forced = Chosen::new(isa, None, Activations::F32, &cases, &ov).unwrap();
        for (op, family) in [
            (OpKind::Matmul, "matmul"),
            (OpKind::QkvRope, "qkv_rope"),
            (OpKind::MoeRoute, "moe_route"),
            (OpKind::MoeExperts, "moe_experts_swiglu"),
        ] {
            assert_eq!(pick(&forced, op), format!("f32_bf16w_{family}_dpbf16_{}", isa.name()));
        }
        // Other formats keep their kernels.
        let mf4 = forced.report.iter().find(|k| k.case.op == OpKind::Matmul && k.case.format == Some(WeightFormat::Mxfp4)).unwrap();
        assert_eq!(mf4.kernel, format!("f32_mf4w_matmul_{}", isa.name()));
    }
}
