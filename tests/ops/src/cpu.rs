//! The CPU backends: the scalar reference every test compares with, and the SIMD backends of
//! every instruction set this CPU has, prepared for a plan that lists every op and format.

use gptoss_engine::{Backend, ModelPlan, OpCase, OpKind};
use gptoss_kernels_cpu::compiled::names_for;
use gptoss_kernels_cpu::registry::bf16_dot_overrides;
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuOptions, Isa};

use crate::shapes::FORMATS;

/// A plan listing every op with every weight format, sized for the cases the families draw.
pub fn plan() -> ModelPlan {
    let cases = OpKind::ALL.iter().flat_map(|&op| std::iter::once(None).chain(FORMATS.map(Some)).map(move |format| OpCase { op, format }));
    ModelPlan {
        max_tokens: 16,
        hidden: 640,
        q_heads: 40,
        kv_heads: 8,
        head_dim: 64,
        experts: 8,
        top_k: 4,
        intermediate: 640,
        vocab: 5000,
        cases: cases.collect(),
    }
}

/// A CPU backend on `isa` (its widest compiled set) with `activations`, prepared for [`plan`].
pub fn prepared(isa: Isa, activations: Activations) -> CpuBackend {
    prepared_for(isa, activations, &plan())
}

/// A CPU backend on `isa` (its widest compiled set) with `activations`, prepared for `plan`.
pub fn prepared_for(isa: Isa, activations: Activations, plan: &ModelPlan) -> CpuBackend {
    prepared_set(isa, None, activations, plan)
}

/// A CPU backend on `isa`'s compiled set `set` (the widest when `None`) with `activations`,
/// prepared for `plan`.
pub fn prepared_set(isa: Isa, set: Option<&'static str>, activations: Activations, plan: &ModelPlan) -> CpuBackend {
    let mut b = CpuBackend::with_options(CpuOptions { threads: Some(2), isa, set, activations }).expect("a CPU backend");
    b.prepare(plan).expect("prepare the CPU backend");
    b
}

/// The scalar reference: the exact kernels, or with `Activations::Int8` the q8 definition's for
/// the integer formats.
pub fn reference(activations: Activations) -> CpuBackend {
    prepared(Isa::Scalar, activations)
}

/// A SIMD backend for every instruction set this CPU has (those it lacks are named on stderr:
/// their kernels are compiled but not run here). With int8 activations, one for every compiled
/// set of each (`avx512_vnni_vbmi`, `avx512_vnni`, `avx512`: their q8 products and lookups
/// differ); the exact kernels are the same in every set of an ISA, so with f32 one per ISA, and
/// one more where its widest set has bf16 dot products (AVX512-BF16), which run by name only
/// ([`with_bf16_dot`]).
pub fn simd(activations: Activations) -> Vec<CpuBackend> {
    for isa in Isa::ALL.into_iter().filter(|i| !i.available()) {
        eprintln!("note: this CPU has no {isa}; its kernels are compiled but not run here");
    }
    let isas = Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar);
    match activations {
        Activations::F32 => isas.flat_map(|isa| [Some(prepared(isa, activations)), with_bf16_dot(isa, &plan())]).flatten().collect(),
        Activations::Int8 => {
            isas.flat_map(|isa| names_for(isa).into_iter().map(move |set| prepared_set(isa, Some(set), activations, &plan()))).collect()
        }
    }
}

/// A backend on `isa`'s widest set running its bf16 dot products (`*_dpbf16_<isa>`) for every
/// op with bf16 weights, prepared for `plan`; `None` where this CPU has none.
pub fn with_bf16_dot(isa: Isa, plan: &ModelPlan) -> Option<CpuBackend> {
    let overrides = bf16_dot_overrides(isa, None)?;
    let mut b =
        CpuBackend::with_options(CpuOptions { threads: Some(2), isa, set: None, activations: Activations::F32 }).expect("a CPU backend");
    b.prepare_with(plan, &overrides).expect("prepare the CPU backend");
    Some(b)
}

/// What a SIMD backend runs, for messages: its compiled set, and `dpbf16` when its bf16 weights
/// take bf16 dot products.
pub fn label(b: &CpuBackend) -> String {
    let set = b.set().unwrap_or(b.isa().name());
    if b.chosen().iter().any(|c| c.kernel.contains("_dpbf16_")) { format!("{set} (dpbf16)") } else { set.to_string() }
}
