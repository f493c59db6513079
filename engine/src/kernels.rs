//! Kernel choice: every (op, weight format) a model uses resolves to one named kernel, picked
//! once at load by a small registry per backend. The default is the first candidate (backends
//! list their fastest first) that supports the case; `GPTOSS_KERNELS=op=name,…` overrides a
//! choice. An unsupported case is an error, never a silent fallback.

use std::collections::HashMap;
use std::fmt;

use crate::error::{EngineError, Result};
use crate::weight::WeightFormat;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    Embed,
    RmsNorm,
    Matmul,
    QkvRope,
    Attention,
    MoeRoute,
    MoeExperts,
    Sample,
}

impl OpKind {
    pub const ALL: [OpKind; 8] = [
        OpKind::Embed,
        OpKind::RmsNorm,
        OpKind::Matmul,
        OpKind::QkvRope,
        OpKind::Attention,
        OpKind::MoeRoute,
        OpKind::MoeExperts,
        OpKind::Sample,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Embed => "embed",
            OpKind::RmsNorm => "rms_norm",
            OpKind::Matmul => "matmul",
            OpKind::QkvRope => "qkv_rope",
            OpKind::Attention => "attention",
            OpKind::MoeRoute => "moe_route",
            OpKind::MoeExperts => "moe_experts",
            OpKind::Sample => "sample",
        }
    }

    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One case a model needs a kernel for: an op and, for ops that read a weight, its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpCase {
    pub op: OpKind,
    pub format: Option<WeightFormat>,
}

/// Everything a backend needs to know before the first op: sizes for its scratch buffers and
/// the cases it must have kernels for.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPlan {
    /// The most tokens one forward call processes.
    pub max_tokens: usize,
    pub hidden: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub experts: usize,
    pub top_k: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub cases: Vec<OpCase>,
}

/// The kernel chosen for one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelChoice {
    pub case: OpCase,
    pub kernel: String,
    /// True when `GPTOSS_KERNELS` chose it.
    pub overridden: bool,
}

impl fmt::Display for KernelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.case.format {
            Some(fmt_) => write!(f, "{}[{}] = {}", self.case.op, fmt_, self.kernel)?,
            None => write!(f, "{} = {}", self.case.op, self.kernel)?,
        }
        if self.overridden {
            f.write_str(" (GPTOSS_KERNELS)")?;
        }
        Ok(())
    }
}

/// A kernel's name, built in this one place: `f32_<tag>w_<family>_<variant>` for ops that read
/// a weight (`tag` is [`WeightFormat::kernel_tag`]: `f32_mf4w_moe_experts_swiglu_avx2`),
/// `f32_<family>_<variant>` for the others (`f32_rms_norm_avx2`); no variant, no suffix.
pub fn kernel_name(family: &str, format: Option<WeightFormat>, variant: &str) -> String {
    let weight = format.map(|f| format!("{}w_", f.kernel_tag())).unwrap_or_default();
    let variant = if variant.is_empty() { String::new() } else { format!("_{variant}") };
    format!("f32_{weight}{family}{variant}")
}

/// A backend's candidate kernel for one op.
pub struct Candidate<F> {
    pub name: String,
    pub supports: fn(&OpCase) -> bool,
    pub kernel: F,
}

/// Parsed `GPTOSS_KERNELS`: op → kernel name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelOverrides(HashMap<OpKind, String>);

impl KernelOverrides {
    pub const ENV: &'static str = "GPTOSS_KERNELS";

    /// Parses `op=name,op=name`. Unknown ops are errors.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut map = HashMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (op, name) = item
                .split_once('=')
                .ok_or_else(|| EngineError::invalid(format!("{}: '{item}' is not of the form op=kernel", Self::ENV)))?;
            let kind = OpKind::from_name(op.trim()).ok_or_else(|| {
                let ops: Vec<_> = OpKind::ALL.iter().map(|o| o.name()).collect();
                EngineError::invalid(format!("{}: unknown op '{op}' (ops: {})", Self::ENV, ops.join(", ")))
            })?;
            map.insert(kind, name.trim().to_string());
        }
        Ok(KernelOverrides(map))
    }

    /// Reads the environment variable (empty when unset).
    pub fn from_env() -> Result<Self> {
        match std::env::var(Self::ENV) {
            Ok(s) => Self::parse(&s),
            Err(_) => Ok(Self::default()),
        }
    }

    pub fn get(&self, op: OpKind) -> Option<&str> {
        self.0.get(&op).map(String::as_str)
    }
}

/// Picks the kernel for `case` among `candidates`, honouring an override. An override names a
/// kernel for an op; it applies to those of the op's cases the kernel supports, and is an
/// error if the kernel does not exist or supports none of them (checked by [`check_overrides`]).
pub fn choose<'a, F>(case: &OpCase, candidates: &'a [Candidate<F>], overrides: &KernelOverrides) -> Result<(&'a Candidate<F>, bool)> {
    if let Some(name) = overrides.get(case.op)
        && let Some(c) = candidates.iter().find(|c| c.name == name && (c.supports)(case))
    {
        return Ok((c, true));
    }
    candidates.iter().find(|c| (c.supports)(case)).map(|c| (c, false)).ok_or_else(|| {
        let what = case.format.map(|f| format!(" with {f} weights")).unwrap_or_default();
        let names: Vec<_> = candidates.iter().map(|c| c.name.as_str()).collect();
        EngineError::unsupported(case.op.name(), format!("no kernel supports it{what} (candidates: {})", names.join(", ")))
    })
}

/// Fails if an override names a kernel that was not chosen for any case of its op.
pub fn check_overrides(choices: &[KernelChoice], overrides: &KernelOverrides) -> Result<()> {
    for op in OpKind::ALL {
        if let Some(name) = overrides.get(op)
            && !choices.iter().any(|c| c.case.op == op && c.kernel == *name)
        {
            return Err(EngineError::invalid(format!(
                "{}: kernel '{name}' does not exist for op {op} or supports none of its cases in this model",
                KernelOverrides::ENV
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_only(c: &OpCase) -> bool {
        c.format == Some(WeightFormat::Bf16)
    }
    fn any(_: &OpCase) -> bool {
        true
    }

    fn candidates() -> Vec<Candidate<u8>> {
        vec![
            Candidate { name: "fast_bf16".into(), supports: bf16_only, kernel: 1 },
            Candidate { name: "generic".into(), supports: any, kernel: 2 },
        ]
    }

    #[test]
    fn first_supporting_candidate_wins() {
        let c = candidates();
        let none = KernelOverrides::default();
        let bf16 = OpCase { op: OpKind::Matmul, format: Some(WeightFormat::Bf16) };
        let int8 = OpCase { op: OpKind::Matmul, format: Some(WeightFormat::Int8) };
        assert_eq!(choose(&bf16, &c, &none).unwrap().0.kernel, 1);
        assert_eq!(choose(&int8, &c, &none).unwrap().0.kernel, 2);
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let c = candidates();
        let ov = KernelOverrides::parse("matmul=generic").unwrap();
        let bf16 = OpCase { op: OpKind::Matmul, format: Some(WeightFormat::Bf16) };
        let (k, overridden) = choose(&bf16, &c, &ov).unwrap();
        assert_eq!((k.kernel, overridden), (2, true));
        let choice = KernelChoice { case: bf16, kernel: "generic".into(), overridden: true };
        assert!(check_overrides(std::slice::from_ref(&choice), &ov).is_ok());
        let bad = KernelOverrides::parse("matmul=nope").unwrap();
        assert!(check_overrides(&[choice], &bad).unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert!(KernelOverrides::parse("warp=x").unwrap_err().to_string().contains("unknown op 'warp'"));
        assert!(KernelOverrides::parse("matmul").unwrap_err().to_string().contains("op=kernel"));
        assert_eq!(KernelOverrides::parse(" , ").unwrap(), KernelOverrides::default());
    }

    #[test]
    fn names_are_built_from_the_format_tag() {
        assert_eq!(kernel_name("matmul", Some(WeightFormat::Int4 { group: 32 }), "avx2"), "f32_i4w_matmul_avx2");
        assert_eq!(kernel_name("rms_norm", None, ""), "f32_rms_norm");
    }

    #[test]
    fn unsupported_case_is_an_error() {
        let c = vec![Candidate { name: "fast_bf16".into(), supports: bf16_only, kernel: 1u8 }];
        let case = OpCase { op: OpKind::Matmul, format: Some(WeightFormat::Mxfp4) };
        let err = choose(&case, &c, &KernelOverrides::default()).err().unwrap().to_string();
        assert!(err.contains("mxfp4") && err.contains("fast_bf16"), "{err}");
    }
}
