//! Kernel choice: every (op, weight format) of a model resolves, once at load, to a named kernel
//! of the embedded modules, fastest first; `GPTOSS_KERNELS` overrides a choice. An unsupported
//! case is an error at load, never a silent fallback.

use cudarc::driver::CudaFunction;
use gptoss_engine::kernels::{Candidate, check_overrides, choose};
use gptoss_engine::{EngineError, KernelChoice, KernelOverrides, ModelPlan, OpCase, OpKind, Result, WeightFormat};

use crate::device::Device;

fn any(_: &OpCase) -> bool {
    true
}
fn f32w(c: &OpCase) -> bool {
    c.format == Some(WeightFormat::F32)
}
fn bf16w(c: &OpCase) -> bool {
    c.format == Some(WeightFormat::Bf16)
}
fn i8w(c: &OpCase) -> bool {
    c.format == Some(WeightFormat::Int8)
}
fn i4w(c: &OpCase) -> bool {
    matches!(c.format, Some(WeightFormat::Int4 { .. }))
}
fn mf4w(c: &OpCase) -> bool {
    c.format == Some(WeightFormat::Mxfp4)
}

/// `(module, [(kernel name, supports)])` per op. Names of families whose variants depend on
/// more than the weight format (KV element type, head dim) are completed in `resolve`.
fn candidates(op: OpKind) -> (&'static str, Vec<Candidate<()>>) {
    let c = |name, supports| Candidate { name, supports, kernel: () };
    match op {
        OpKind::Embed => ("embed", vec![c("f32_bf16w_embed", bf16w), c("f32_f32w_embed", f32w)]),
        OpKind::RmsNorm => ("rms_norm", vec![c("f32_rms_norm", any)]),
        OpKind::Matmul => (
            "matmul",
            vec![
                c("f32_bf16w_matmul", bf16w),
                c("f32_mf4w_matmul", mf4w),
                c("f32_i8w_matmul", i8w),
                c("f32_i4w_matmul", i4w),
                c("f32_f32w_matmul", f32w),
            ],
        ),
        OpKind::QkvRope => (
            "qkv_rope",
            vec![c("f32_bf16w_qkv_rope", bf16w), c("f32_i8w_qkv_rope", i8w), c("f32_i4w_qkv_rope", i4w), c("f32_f32w_qkv_rope", f32w)],
        ),
        OpKind::Attention => ("attention", vec![c("f32_sdpa_sinks_split", any)]),
        OpKind::MoeRoute => (
            "moe_route",
            vec![c("f32_bf16w_moe_route", bf16w), c("f32_i8w_moe_route", i8w), c("f32_i4w_moe_route", i4w), c("f32_f32w_moe_route", f32w)],
        ),
        OpKind::MoeExperts => (
            "moe_experts",
            vec![c("f32_mf4w_moe", mf4w), c("f32_bf16w_moe", bf16w), c("f32_i8w_moe", i8w), c("f32_i4w_moe", i4w), c("f32_f32w_moe", f32w)],
        ),
        OpKind::Sample => ("sample", vec![c("f32_sample", any)]),
    }
}

/// The kernels behind one chosen case.
pub enum Resolved {
    One(CudaFunction),
    /// qkv_rope: the bf16-cache and f32-cache variants.
    ByKv {
        bf16: CudaFunction,
        f32: CudaFunction,
    },
    /// attention: split pass per KV type, then the combine pass.
    Attention {
        bf16: CudaFunction,
        f32: CudaFunction,
        combine: CudaFunction,
    },
    /// moe_experts: gate_up + SwiGLU, then down + combine.
    Moe {
        gate_up: CudaFunction,
        down: CudaFunction,
    },
    /// sample: arg-max, then the temperature pass or the top-k / top-p one.
    Sample {
        argmax: CudaFunction,
        temperature: CudaFunction,
        cut: CudaFunction,
    },
}

fn resolve(dev: &Device, op: OpKind, module: &str, name: &str, plan: &ModelPlan) -> Result<Resolved> {
    let f = |n: &str| dev.function(module, n);
    Ok(match op {
        OpKind::QkvRope => Resolved::ByKv { bf16: f(&format!("{name}_kvbf16"))?, f32: f(&format!("{name}_kvf32"))? },
        OpKind::Attention => {
            let d = plan.head_dim;
            if !matches!(d, 16 | 64 | 128) {
                return Err(EngineError::unsupported("attention", format!("head_dim {d} (the CUDA kernels take 16, 64 or 128)")));
            }
            Resolved::Attention {
                bf16: f(&format!("{name}_d{d}_kvbf16"))?,
                f32: f(&format!("{name}_d{d}_kvf32"))?,
                combine: f("f32_sdpa_sinks_combine")?,
            }
        }
        OpKind::MoeExperts => Resolved::Moe { gate_up: f(&format!("{name}_gate_up_swiglu"))?, down: f(&format!("{name}_down_combine"))? },
        OpKind::Sample => Resolved::Sample {
            argmax: f(&format!("{name}_argmax"))?,
            temperature: f(&format!("{name}_temperature"))?,
            cut: f(&format!("{name}_cut"))?,
        },
        _ => Resolved::One(f(name)?),
    })
}

/// The chosen kernels, by case.
#[derive(Default)]
pub struct Chosen {
    kernels: Vec<(OpCase, Resolved)>,
    pub report: Vec<KernelChoice>,
}

impl Chosen {
    pub fn new(dev: &Device, plan: &ModelPlan, ov: &KernelOverrides) -> Result<Self> {
        let mut chosen = Chosen::default();
        for case in &plan.cases {
            let (module, list) = candidates(case.op);
            let (c, overridden) = choose(case, &list, ov)?;
            chosen.kernels.push((*case, resolve(dev, case.op, module, c.name, plan)?));
            chosen.report.push(KernelChoice { case: *case, kernel: c.name, overridden });
        }
        check_overrides(&chosen.report, ov)?;
        Ok(chosen)
    }

    /// The kernels chosen for `op` with weights of `format` (None for ops without weights).
    pub fn get(&self, op: OpKind, format: Option<WeightFormat>) -> Result<&Resolved> {
        self.kernels.iter().find(|(c, _)| c.op == op && c.format == format).map(|(_, k)| k).ok_or_else(|| {
            let what = format.map(|f| format!(" with {f} weights")).unwrap_or_default();
            EngineError::unsupported(op.name(), format!("no kernel was prepared for this op{what}; the model plan did not list it"))
        })
    }
}

/// The single kernel of a case that has one.
pub fn one<'a>(r: &'a Resolved, op: &'static str) -> Result<&'a CudaFunction> {
    match r {
        Resolved::One(f) => Ok(f),
        _ => Err(EngineError::Backend { backend: "cuda", detail: format!("{op}: kernel table mismatch") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_a_kernel_for_every_weighted_op() {
        let formats = [WeightFormat::F32, WeightFormat::Bf16, WeightFormat::Int8, WeightFormat::Int4 { group: 32 }, WeightFormat::Mxfp4];
        for op in [OpKind::Matmul, OpKind::MoeExperts] {
            for f in formats {
                let case = OpCase { op, format: Some(f) };
                assert!(choose(&case, &candidates(op).1, &KernelOverrides::default()).is_ok(), "{op} {f}");
            }
        }
        let mf4 = OpCase { op: OpKind::QkvRope, format: Some(WeightFormat::Mxfp4) };
        assert!(choose(&mf4, &candidates(OpKind::QkvRope).1, &KernelOverrides::default()).is_err());
    }

    #[test]
    fn names_follow_the_act_weight_op_convention() {
        for op in OpKind::ALL {
            for c in candidates(op).1 {
                assert!(c.name.starts_with("f32_"), "{}", c.name);
            }
        }
    }
}
