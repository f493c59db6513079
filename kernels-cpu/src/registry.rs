//! The CPU kernels for each op, fastest first, and the table of choices made at load.
//!
//! Every op has the scalar reference (`*_ref`) last: the oracle, and the path of
//! `GPTOSS_CPU_ISA=scalar`. Before it come the SIMD kernels of the backend's ISA, one name per
//! weight format (`f32_bf16w_matmul_avx2`, `f32_mf4w_moe_experts_swiglu_neon`, …). Embedding
//! lookups and sampling touch one row and one vector per token; their references are fast
//! enough and serve every ISA.

use gptoss_engine::kernels::{Candidate, check_overrides, choose};
use gptoss_engine::{EngineError, KernelChoice, KernelOverrides, OpCase, OpKind, Result, SamplingParams, Swiglu, WeightFormat};

use crate::fast::entry;
use crate::isa::Isa;
use crate::reference;
use crate::reference::qkv_rope::RopeView;
use crate::view::{KvView, KvViewMut, WeightView};
use crate::workspace::Workspace;

pub type EmbedFn = fn(&WeightView, &[u32], &mut [f32]) -> Result<()>;
pub type RmsNormFn = fn(&[f32], &[f32], f32, &mut [f32]);
pub type MatmulFn = fn(&WeightView, &[f32], usize, &mut [f32], bool, &mut Workspace);
pub type QkvRopeFn =
    fn(&WeightView, &WeightView, &WeightView, &[f32], usize, &[u32], &RopeView, &mut KvViewMut, &mut [f32], &mut Workspace);
pub type AttentionFn = fn(&[f32], &KvView, usize, &[u32], &[f32], f32, &mut [f32]);
pub type MoeRouteFn = fn(&WeightView, &[f32], usize, usize, &mut [u32], &mut [f32], &mut Workspace);
pub type MoeExpertsFn = fn(&WeightView, &WeightView, &[f32], usize, &[u32], &[f32], usize, Swiglu, &mut [f32], &mut Workspace);
pub type SampleFn = fn(&[f32], &SamplingParams, f32, &mut Vec<(f32, u32)>) -> u32;

fn any_case(_: &OpCase) -> bool {
    true
}

/// One candidate per weight format, named `f32_<tag>w_<op>_<isa>`.
macro_rules! by_format {
    ($op:literal, $isa:literal, $kernel:expr) => {
        vec![
            Candidate { name: concat!("f32_f32w_", $op, "_", $isa), supports: |c| c.format == Some(WeightFormat::F32), kernel: $kernel },
            Candidate { name: concat!("f32_bf16w_", $op, "_", $isa), supports: |c| c.format == Some(WeightFormat::Bf16), kernel: $kernel },
            Candidate { name: concat!("f32_i8w_", $op, "_", $isa), supports: |c| c.format == Some(WeightFormat::Int8), kernel: $kernel },
            Candidate {
                name: concat!("f32_i4w_", $op, "_", $isa),
                supports: |c| matches!(c.format, Some(WeightFormat::Int4 { .. })),
                kernel: $kernel,
            },
            Candidate { name: concat!("f32_mf4w_", $op, "_", $isa), supports: |c| c.format == Some(WeightFormat::Mxfp4), kernel: $kernel },
        ]
    };
}

/// One candidate for every case, named `<op>_<isa>`.
macro_rules! any_format {
    ($op:literal, $isa:literal, $kernel:expr) => {
        vec![Candidate { name: concat!($op, "_", $isa), supports: any_case, kernel: $kernel }]
    };
}

/// The SIMD candidates of `isa` for one entry point of `fast::entry`.
macro_rules! simd {
    ($isa:expr, $naming:ident!($op:literal), $entry:ident) => {
        match $isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => $naming!($op, "avx512", entry::$entry::<crate::simd::avx512::Avx512>),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => $naming!($op, "avx2", entry::$entry::<crate::simd::avx2::Avx2>),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => $naming!($op, "neon", entry::$entry::<crate::simd::neon::Neon>),
            _ => Vec::new(),
        }
    };
}

/// `list` followed by the reference.
fn then<F>(mut list: Vec<Candidate<F>>, name: &'static str, kernel: F) -> Vec<Candidate<F>> {
    list.push(Candidate { name, supports: any_case, kernel });
    list
}

pub fn embed_candidates(_: Isa) -> Vec<Candidate<EmbedFn>> {
    then(Vec::new(), "f32_embed_ref", reference::embed::f32_embed)
}
pub fn rms_norm_candidates(isa: Isa) -> Vec<Candidate<RmsNormFn>> {
    then(simd!(isa, any_format!("f32_rms_norm"), rms_norm), "f32_rms_norm_ref", reference::rms_norm::f32_rms_norm)
}
pub fn matmul_candidates(isa: Isa) -> Vec<Candidate<MatmulFn>> {
    then(simd!(isa, by_format!("matmul"), matmul), "f32_matmul_ref", |w, x, n, out, acc, _| {
        reference::matmul::f32_matmul(w, x, n, out, acc)
    })
}
pub fn qkv_rope_candidates(isa: Isa) -> Vec<Candidate<QkvRopeFn>> {
    then(simd!(isa, by_format!("qkv_rope"), qkv_rope), "f32_qkv_rope_ref", |q, k, v, x, n, pos, rope, kv, out, ws| {
        reference::qkv_rope::f32_qkv_rope(q, k, v, x, n, pos, rope, kv, out, &mut ws.k, &mut ws.v)
    })
}
pub fn attention_candidates(isa: Isa) -> Vec<Candidate<AttentionFn>> {
    then(simd!(isa, any_format!("f32_sdpa_sinks"), attention), "f32_sdpa_sinks_ref", reference::attention::f32_attention)
}
pub fn moe_route_candidates(isa: Isa) -> Vec<Candidate<MoeRouteFn>> {
    then(simd!(isa, by_format!("moe_route"), moe_route), "f32_moe_route_ref", |r, x, n, k, ids, w, ws| {
        reference::moe_route::f32_moe_route(r, x, n, k, ids, w, &mut ws.router_logits)
    })
}
pub fn moe_experts_candidates(isa: Isa) -> Vec<Candidate<MoeExpertsFn>> {
    then(simd!(isa, by_format!("moe_experts_swiglu"), moe_experts), "f32_moe_experts_swiglu_ref", |g, d, x, n, ids, w, k, p, res, ws| {
        reference::moe_experts::f32_moe_experts(g, d, x, n, ids, w, k, p, res, &mut ws.moe.a)
    })
}
pub fn sample_candidates(_: Isa) -> Vec<Candidate<SampleFn>> {
    then(Vec::new(), "f32_sample_ref", reference::sample::f32_sample)
}

/// Chosen kernels, one list per op keyed by weight format.
#[derive(Default)]
pub struct Chosen {
    pub embed: Vec<(Option<WeightFormat>, EmbedFn)>,
    pub rms_norm: Vec<(Option<WeightFormat>, RmsNormFn)>,
    pub matmul: Vec<(Option<WeightFormat>, MatmulFn)>,
    pub qkv_rope: Vec<(Option<WeightFormat>, QkvRopeFn)>,
    pub attention: Vec<(Option<WeightFormat>, AttentionFn)>,
    pub moe_route: Vec<(Option<WeightFormat>, MoeRouteFn)>,
    pub moe_experts: Vec<(Option<WeightFormat>, MoeExpertsFn)>,
    pub sample: Vec<(Option<WeightFormat>, SampleFn)>,
    pub report: Vec<KernelChoice>,
}

fn pick<F: Copy>(
    case: &OpCase,
    candidates: &[Candidate<F>],
    ov: &KernelOverrides,
    list: &mut Vec<(Option<WeightFormat>, F)>,
    report: &mut Vec<KernelChoice>,
) -> Result<()> {
    let (c, overridden) = choose(case, candidates, ov)?;
    list.push((case.format, c.kernel));
    report.push(KernelChoice { case: *case, kernel: c.name, overridden });
    Ok(())
}

impl Chosen {
    /// The kernels of `isa` (which the caller checked this CPU has) for every case.
    pub fn new(isa: Isa, cases: &[OpCase], ov: &KernelOverrides) -> Result<Self> {
        let mut k = Chosen::default();
        let r = &mut k.report;
        for case in cases {
            match case.op {
                OpKind::Embed => pick(case, &embed_candidates(isa), ov, &mut k.embed, r)?,
                OpKind::RmsNorm => pick(case, &rms_norm_candidates(isa), ov, &mut k.rms_norm, r)?,
                OpKind::Matmul => pick(case, &matmul_candidates(isa), ov, &mut k.matmul, r)?,
                OpKind::QkvRope => pick(case, &qkv_rope_candidates(isa), ov, &mut k.qkv_rope, r)?,
                OpKind::Attention => pick(case, &attention_candidates(isa), ov, &mut k.attention, r)?,
                OpKind::MoeRoute => pick(case, &moe_route_candidates(isa), ov, &mut k.moe_route, r)?,
                OpKind::MoeExperts => pick(case, &moe_experts_candidates(isa), ov, &mut k.moe_experts, r)?,
                OpKind::Sample => pick(case, &sample_candidates(isa), ov, &mut k.sample, r)?,
            }
        }
        check_overrides(&k.report, ov)?;
        Ok(k)
    }
}

/// The kernel chosen for `format` in `list`, or an error naming the unprepared case.
pub fn lookup<F: Copy>(list: &[(Option<WeightFormat>, F)], op: OpKind, format: Option<WeightFormat>) -> Result<F> {
    list.iter().find(|(f, _)| *f == format).map(|(_, k)| *k).ok_or_else(|| {
        let what = format.map(|f| format!(" with {f} weights")).unwrap_or_default();
        EngineError::unsupported(op.name(), format!("no kernel was prepared for this op{what}; the model plan did not list it"))
    })
}
