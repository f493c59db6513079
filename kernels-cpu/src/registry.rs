//! The CPU kernels for each op, fastest first, and the table of choices made at load.

use gptoss_engine::kernels::{Candidate, check_overrides, choose};
use gptoss_engine::{EngineError, KernelChoice, KernelOverrides, OpCase, OpKind, Result, SamplingParams, Swiglu, WeightFormat};

use crate::reference;
use crate::reference::qkv_rope::RopeView;
use crate::view::{KvView, KvViewMut, WeightView};

pub type EmbedFn = fn(&WeightView, &[u32], &mut [f32]) -> Result<()>;
pub type RmsNormFn = fn(&[f32], &[f32], f32, &mut [f32]);
pub type MatmulFn = fn(&WeightView, &[f32], usize, &mut [f32], bool);
pub type QkvRopeFn =
    fn(&WeightView, &WeightView, &WeightView, &[f32], usize, &[u32], &RopeView, &mut KvViewMut, &mut [f32], &mut [f32], &mut [f32]);
pub type AttentionFn = fn(&[f32], &KvView, usize, &[u32], &[f32], f32, &mut [f32]);
pub type MoeRouteFn = fn(&WeightView, &[f32], usize, usize, &mut [u32], &mut [f32], &mut [f32]);
pub type MoeExpertsFn = fn(&WeightView, &WeightView, &[f32], usize, &[u32], &[f32], usize, Swiglu, &mut [f32], &mut [f32]);
pub type SampleFn = fn(&[f32], &SamplingParams, f32, &mut Vec<(f32, u32)>) -> u32;

fn any_case(_: &OpCase) -> bool {
    true
}

/// The reference kernels read every weight format through `WeightView::row_dot`.
pub fn embed_candidates() -> Vec<Candidate<EmbedFn>> {
    vec![Candidate { name: "f32_embed_ref", supports: any_case, kernel: reference::embed::f32_embed }]
}
pub fn rms_norm_candidates() -> Vec<Candidate<RmsNormFn>> {
    vec![Candidate { name: "f32_rms_norm_ref", supports: any_case, kernel: reference::rms_norm::f32_rms_norm }]
}
pub fn matmul_candidates() -> Vec<Candidate<MatmulFn>> {
    vec![Candidate { name: "f32_matmul_ref", supports: any_case, kernel: reference::matmul::f32_matmul }]
}
pub fn qkv_rope_candidates() -> Vec<Candidate<QkvRopeFn>> {
    vec![Candidate { name: "f32_qkv_rope_ref", supports: any_case, kernel: reference::qkv_rope::f32_qkv_rope }]
}
pub fn attention_candidates() -> Vec<Candidate<AttentionFn>> {
    vec![Candidate { name: "f32_sdpa_sinks_ref", supports: any_case, kernel: reference::attention::f32_attention }]
}
pub fn moe_route_candidates() -> Vec<Candidate<MoeRouteFn>> {
    vec![Candidate { name: "f32_moe_route_ref", supports: any_case, kernel: reference::moe_route::f32_moe_route }]
}
pub fn moe_experts_candidates() -> Vec<Candidate<MoeExpertsFn>> {
    vec![Candidate { name: "f32_moe_experts_swiglu_ref", supports: any_case, kernel: reference::moe_experts::f32_moe_experts }]
}
pub fn sample_candidates() -> Vec<Candidate<SampleFn>> {
    vec![Candidate { name: "f32_sample_ref", supports: any_case, kernel: reference::sample::f32_sample }]
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
    pub fn new(cases: &[OpCase], ov: &KernelOverrides) -> Result<Self> {
        let mut k = Chosen::default();
        let r = &mut k.report;
        for case in cases {
            match case.op {
                OpKind::Embed => pick(case, &embed_candidates(), ov, &mut k.embed, r)?,
                OpKind::RmsNorm => pick(case, &rms_norm_candidates(), ov, &mut k.rms_norm, r)?,
                OpKind::Matmul => pick(case, &matmul_candidates(), ov, &mut k.matmul, r)?,
                OpKind::QkvRope => pick(case, &qkv_rope_candidates(), ov, &mut k.qkv_rope, r)?,
                OpKind::Attention => pick(case, &attention_candidates(), ov, &mut k.attention, r)?,
                OpKind::MoeRoute => pick(case, &moe_route_candidates(), ov, &mut k.moe_route, r)?,
                OpKind::MoeExperts => pick(case, &moe_experts_candidates(), ov, &mut k.moe_experts, r)?,
                OpKind::Sample => pick(case, &sample_candidates(), ov, &mut k.sample, r)?,
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
