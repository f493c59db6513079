//! Kernel choice: every (op, weight format) of a model resolves, once at load, to a named kernel
//! of the embedded modules, fastest first; `GPTOSS_KERNELS` overrides a choice. An unsupported
//! case is an error at load, never a silent fallback. Each candidate lists the kernels it
//! launches by their names in the PTX, spelled out (`grep` finds them in `cuda/*.cu`); the
//! registry name of a weighted op is `kernel_name(op, format, "")` (a test checks it).

use gptoss_engine::kernels::{Candidate, check_overrides, choose};
use gptoss_engine::{DType, EngineError, KernelChoice, KernelOverrides, ModelPlan, OpCase, OpKind, Result, WeightFormat};

use crate::device::Device;
use crate::ops::attention;

fn any(_: &OpCase) -> bool {
    true
}

/// Whether a case's weights have the format tag `tag` (int4: any group).
fn tagged(c: &OpCase, tag: &str) -> bool {
    c.format.is_some_and(|f| f.kernel_tag() == tag)
}
fn f32w(c: &OpCase) -> bool {
    tagged(c, "f32")
}
fn bf16w(c: &OpCase) -> bool {
    tagged(c, "bf16")
}
fn i8w(c: &OpCase) -> bool {
    tagged(c, "i8")
}
fn i4w(c: &OpCase) -> bool {
    tagged(c, "i4")
}
fn mf4w(c: &OpCase) -> bool {
    tagged(c, "mf4")
}

/// One kernel, one per KV-cache element type, or moe_experts' pair (by PTX name).
#[derive(Clone, Copy, Debug)]
pub enum Names {
    One(&'static str),
    ByKv {
        bf16: &'static str,
        f32: &'static str,
    },
    /// gate_up + SwiGLU, then down (the grouped GEMM's routing sort and combine are shared by
    /// every format: `ops::moe_experts::Grouping`).
    Moe {
        gate_up: &'static str,
        down: &'static str,
    },
}

/// An attention kernel per head dim (16, 64, 128), each per KV type.
pub type ByHeadDim = [(usize, Names); 3];

/// The split pass of decode attention per head dim (then `f32_sdpa_sinks_combine`).
const ATTENTION_SPLIT: ByHeadDim = [
    (16, Names::ByKv { bf16: "f32_sdpa_sinks_split_d16_kvbf16", f32: "f32_sdpa_sinks_split_d16_kvf32" }),
    (64, Names::ByKv { bf16: "f32_sdpa_sinks_split_d64_kvbf16", f32: "f32_sdpa_sinks_split_d64_kvf32" }),
    (128, Names::ByKv { bf16: "f32_sdpa_sinks_split_d128_kvbf16", f32: "f32_sdpa_sinks_split_d128_kvf32" }),
];
/// The FlashAttention-2-style prefill kernel per head dim.
const ATTENTION_MMA: ByHeadDim = [
    (16, Names::ByKv { bf16: "f32_sdpa_sinks_mma_d16_kvbf16", f32: "f32_sdpa_sinks_mma_d16_kvf32" }),
    (64, Names::ByKv { bf16: "f32_sdpa_sinks_mma_d64_kvbf16", f32: "f32_sdpa_sinks_mma_d64_kvf32" }),
    (128, Names::ByKv { bf16: "f32_sdpa_sinks_mma_d128_kvbf16", f32: "f32_sdpa_sinks_mma_d128_kvf32" }),
];

/// The split pass of attention over rows of several sequences (a cache each) per head dim
/// (then the same combine pass).
const ATTENTION_ROWS_SPLIT: ByHeadDim = [
    (16, Names::ByKv { bf16: "f32_sdpa_sinks_rows_split_d16_kvbf16", f32: "f32_sdpa_sinks_rows_split_d16_kvf32" }),
    (64, Names::ByKv { bf16: "f32_sdpa_sinks_rows_split_d64_kvbf16", f32: "f32_sdpa_sinks_rows_split_d64_kvf32" }),
    (128, Names::ByKv { bf16: "f32_sdpa_sinks_rows_split_d128_kvbf16", f32: "f32_sdpa_sinks_rows_split_d128_kvf32" }),
];

/// The kernels one candidate launches, by PTX name.
#[derive(Clone, Copy, Debug)]
pub enum Ptx {
    One(&'static str),
    /// An op with a decode form and a prefill form: `gemv` (warp per row, weights streamed per
    /// few tokens) for batches below the tensor-core crossover, `mma` (the tiled tensor-core
    /// GEMM on `terms` bf16 planes of the activations) from it on. A variant that forces one
    /// form has the other absent.
    Batched {
        gemv: Option<Names>,
        mma: Option<(Names, u32)>,
        /// qkv_rope's form for rows of several sequences (a cache each): a GEMV kernel, in
        /// every variant (rows run it at every size).
        rows: Option<Names>,
    },
    /// attention, with a decode form and a prefill form as `Batched`: `split` (the split pass
    /// per head dim, then the combine pass) below the tensor-core crossover, `mma` (the
    /// FlashAttention-2-style kernel per head dim) from it on; a variant that forces one form
    /// has the other absent.
    Attention {
        split: Option<(&'static ByHeadDim, &'static str)>,
        mma: Option<&'static ByHeadDim>,
        /// The split pass for rows of several sequences (a cache each), then the same combine
        /// pass: in every variant.
        rows: (&'static ByHeadDim, &'static str),
    },
    /// sample: arg-max, then the temperature pass or the top-k / top-p one.
    Sample {
        argmax: &'static str,
        temperature: &'static str,
        cut: &'static str,
    },
}

/// The four variants of a batched op for one weight format, fastest first: the default
/// (`name`: GEMV below the crossover, the split-activation GEMM from it), then each form forced;
/// each with the op's form for rows of several sequences, if it has one.
fn batched(name: &str, supports: fn(&OpCase) -> bool, gemv: Names, x2: Names, x1: Names, rows: Option<Names>) -> Vec<Candidate<Ptx>> {
    let c = |suffix: &str, gemv, mma| Candidate { name: format!("{name}{suffix}"), supports, kernel: Ptx::Batched { gemv, mma, rows } };
    vec![
        c("", Some(gemv), Some((x2, 2))),
        c("_gemv", Some(gemv), None),
        c("_mma_x2", None, Some((x2, 2))),
        c("_mma_x1", None, Some((x1, 1))),
    ]
}

/// `(module, candidates)` of an op, fastest first.
fn candidates(op: OpKind) -> (&'static str, Vec<Candidate<Ptx>>) {
    use Names::{ByKv, Moe, One};
    let c = |name: &str, supports, kernel| Candidate { name: name.to_string(), supports, kernel };
    let one = |name: &'static str, supports| c(name, supports, Ptx::One(name));
    match op {
        OpKind::Embed => ("embed", vec![one("f32_bf16w_embed", bf16w), one("f32_f32w_embed", f32w)]),
        OpKind::RmsNorm => ("rms_norm", vec![one("f32_rms_norm", any)]),
        OpKind::Matmul => (
            "matmul",
            [
                batched(
                    "f32_bf16w_matmul",
                    bf16w,
                    One("f32_bf16w_matmul_gemv"),
                    One("f32_bf16w_matmul_mma_x2"),
                    One("f32_bf16w_matmul_mma_x1"),
                    None,
                ),
                batched(
                    "f32_mf4w_matmul",
                    mf4w,
                    One("f32_mf4w_matmul_gemv"),
                    One("f32_mf4w_matmul_mma_x2"),
                    One("f32_mf4w_matmul_mma_x1"),
                    None,
                ),
                batched(
                    "f32_i8w_matmul",
                    i8w,
                    One("f32_i8w_matmul_gemv"),
                    One("f32_i8w_matmul_mma_x2"),
                    One("f32_i8w_matmul_mma_x1"),
                    None,
                ),
                batched(
                    "f32_i4w_matmul",
                    i4w,
                    One("f32_i4w_matmul_gemv"),
                    One("f32_i4w_matmul_mma_x2"),
                    One("f32_i4w_matmul_mma_x1"),
                    None,
                ),
                // f32 weights have no tensor-core form (bf16 would round them).
                vec![c("f32_f32w_matmul", f32w, Ptx::Batched { gemv: Some(One("f32_f32w_matmul_gemv")), mma: None, rows: None })],
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
        OpKind::QkvRope => (
            "qkv_rope",
            [
                batched(
                    "f32_bf16w_qkv_rope",
                    bf16w,
                    ByKv { bf16: "f32_bf16w_qkv_rope_gemv_kvbf16", f32: "f32_bf16w_qkv_rope_gemv_kvf32" },
                    ByKv { bf16: "f32_bf16w_qkv_rope_mma_x2_kvbf16", f32: "f32_bf16w_qkv_rope_mma_x2_kvf32" },
                    ByKv { bf16: "f32_bf16w_qkv_rope_mma_x1_kvbf16", f32: "f32_bf16w_qkv_rope_mma_x1_kvf32" },
                    Some(ByKv { bf16: "f32_bf16w_qkv_rope_rows_gemv_kvbf16", f32: "f32_bf16w_qkv_rope_rows_gemv_kvf32" }),
                ),
                batched(
                    "f32_i8w_qkv_rope",
                    i8w,
                    ByKv { bf16: "f32_i8w_qkv_rope_gemv_kvbf16", f32: "f32_i8w_qkv_rope_gemv_kvf32" },
                    ByKv { bf16: "f32_i8w_qkv_rope_mma_x2_kvbf16", f32: "f32_i8w_qkv_rope_mma_x2_kvf32" },
                    ByKv { bf16: "f32_i8w_qkv_rope_mma_x1_kvbf16", f32: "f32_i8w_qkv_rope_mma_x1_kvf32" },
                    Some(ByKv { bf16: "f32_i8w_qkv_rope_rows_gemv_kvbf16", f32: "f32_i8w_qkv_rope_rows_gemv_kvf32" }),
                ),
                batched(
                    "f32_i4w_qkv_rope",
                    i4w,
                    ByKv { bf16: "f32_i4w_qkv_rope_gemv_kvbf16", f32: "f32_i4w_qkv_rope_gemv_kvf32" },
                    ByKv { bf16: "f32_i4w_qkv_rope_mma_x2_kvbf16", f32: "f32_i4w_qkv_rope_mma_x2_kvf32" },
                    ByKv { bf16: "f32_i4w_qkv_rope_mma_x1_kvbf16", f32: "f32_i4w_qkv_rope_mma_x1_kvf32" },
                    Some(ByKv { bf16: "f32_i4w_qkv_rope_rows_gemv_kvbf16", f32: "f32_i4w_qkv_rope_rows_gemv_kvf32" }),
                ),
                vec![c(
                    "f32_f32w_qkv_rope",
                    f32w,
                    Ptx::Batched {
                        gemv: Some(ByKv { bf16: "f32_f32w_qkv_rope_gemv_kvbf16", f32: "f32_f32w_qkv_rope_gemv_kvf32" }),
                        mma: None,
                        rows: Some(ByKv { bf16: "f32_f32w_qkv_rope_rows_gemv_kvbf16", f32: "f32_f32w_qkv_rope_rows_gemv_kvf32" }),
                    },
                )],
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
        OpKind::Attention => {
            let split = (&ATTENTION_SPLIT, "f32_sdpa_sinks_combine");
            let mma = &ATTENTION_MMA;
            let rows = (&ATTENTION_ROWS_SPLIT, "f32_sdpa_sinks_combine");
            // The default (split below the crossover, tensor cores from it), then each form forced.
            let att = |suffix: &str, split, mma| c(&format!("f32_sdpa_sinks{suffix}"), any, Ptx::Attention { split, mma, rows });
            ("attention", vec![att("", Some(split), Some(mma)), att("_split", Some(split), None), att("_mma", None, Some(mma))])
        }
        OpKind::MoeRoute => (
            "moe_route",
            vec![
                one("f32_bf16w_moe_route", bf16w),
                one("f32_i8w_moe_route", i8w),
                one("f32_i4w_moe_route", i4w),
                one("f32_f32w_moe_route", f32w),
            ],
        ),
        OpKind::MoeExperts => {
            let moe = |gate_up, down| Moe { gate_up, down };
            (
                "moe_experts",
                [
                    batched(
                        "f32_mf4w_moe_experts",
                        mf4w,
                        moe("f32_mf4w_moe_gate_up_swiglu", "f32_mf4w_moe_down_combine"),
                        moe("f32_mf4w_moe_gate_up_swiglu_mma_x2", "f32_mf4w_moe_down_mma_x2"),
                        moe("f32_mf4w_moe_gate_up_swiglu_mma_x1", "f32_mf4w_moe_down_mma_x1"),
                        None,
                    ),
                    batched(
                        "f32_bf16w_moe_experts",
                        bf16w,
                        moe("f32_bf16w_moe_gate_up_swiglu", "f32_bf16w_moe_down_combine"),
                        moe("f32_bf16w_moe_gate_up_swiglu_mma_x2", "f32_bf16w_moe_down_mma_x2"),
                        moe("f32_bf16w_moe_gate_up_swiglu_mma_x1", "f32_bf16w_moe_down_mma_x1"),
                        None,
                    ),
                    batched(
                        "f32_i8w_moe_experts",
                        i8w,
                        moe("f32_i8w_moe_gate_up_swiglu", "f32_i8w_moe_down_combine"),
                        moe("f32_i8w_moe_gate_up_swiglu_mma_x2", "f32_i8w_moe_down_mma_x2"),
                        moe("f32_i8w_moe_gate_up_swiglu_mma_x1", "f32_i8w_moe_down_mma_x1"),
                        None,
                    ),
                    batched(
                        "f32_i4w_moe_experts",
                        i4w,
                        moe("f32_i4w_moe_gate_up_swiglu", "f32_i4w_moe_down_combine"),
                        moe("f32_i4w_moe_gate_up_swiglu_mma_x2", "f32_i4w_moe_down_mma_x2"),
                        moe("f32_i4w_moe_gate_up_swiglu_mma_x1", "f32_i4w_moe_down_mma_x1"),
                        None,
                    ),
                    // f32 weights have no tensor-core form.
                    vec![c(
                        "f32_f32w_moe_experts",
                        f32w,
                        Ptx::Batched { gemv: Some(moe("f32_f32w_moe_gate_up_swiglu", "f32_f32w_moe_down_combine")), mma: None, rows: None },
                    )],
                ]
                .into_iter()
                .flatten()
                .collect(),
            )
        }
        OpKind::Sample => (
            "sample",
            vec![c(
                "f32_sample",
                any,
                Ptx::Sample { argmax: "f32_sample_argmax", temperature: "f32_sample_temperature", cut: "f32_sample_cut" },
            )],
        ),
    }
}

/// One kernel, one per KV-cache element type, or moe_experts' pair, loaded.
pub enum Loaded<D: Device> {
    One(D::Function),
    ByKv { bf16: D::Function, f32: D::Function },
    Moe { gate_up: D::Function, down: D::Function },
}

impl<D: Device> Loaded<D> {
    /// The single kernel of an op without a KV cache.
    pub fn one(&self, op: &'static str) -> Result<&D::Function> {
        match self {
            Loaded::One(f) => Ok(f),
            _ => Err(mismatch::<D>(op)),
        }
    }

    /// moe_experts' gate_up and down kernels.
    pub fn moe(&self, op: &'static str) -> Result<(&D::Function, &D::Function)> {
        match self {
            Loaded::Moe { gate_up, down } => Ok((gate_up, down)),
            _ => Err(mismatch::<D>(op)),
        }
    }

    /// The kernel for a KV cache of `kv` elements (the one kernel when there is one).
    pub fn for_kv(&self, kv: DType, op: &'static str) -> Result<&D::Function> {
        match (self, kv) {
            (Loaded::One(f), _) => Ok(f),
            (Loaded::ByKv { bf16, .. }, DType::Bf16) => Ok(bf16),
            (Loaded::ByKv { f32, .. }, DType::F32) => Ok(f32),
            (Loaded::ByKv { .. }, other) => Err(EngineError::shape(op, format!("kv cache of {other} (the kernels take bf16 or f32)"))),
            (Loaded::Moe { .. }, _) => Err(mismatch::<D>(op)),
        }
    }
}

/// The names of the kernels registered for `case`, default first: what `GPTOSS_KERNELS` can
/// force (the bench runs each on the same inputs).
pub fn variants(case: &OpCase) -> Vec<String> {
    candidates(case.op).1.into_iter().filter(|c| (c.supports)(case)).map(|c| c.name).collect()
}

fn mismatch<D: Device>(op: &str) -> EngineError {
    EngineError::Backend { backend: D::BACKEND, detail: format!("{op}: kernel table mismatch") }
}

/// The kernels behind one chosen case, loaded.
pub enum Resolved<D: Device> {
    One(D::Function),
    Batched { gemv: Option<Loaded<D>>, mma: Option<(Loaded<D>, u32)>, rows: Option<Loaded<D>> },
    Attention { split: Option<(Loaded<D>, D::Function)>, mma: Option<Loaded<D>>, rows: (Loaded<D>, D::Function) },
    Sample { argmax: D::Function, temperature: D::Function, cut: D::Function },
}

fn resolve<D: Device>(dev: &D, module: &str, ptx: Ptx, plan: &ModelPlan) -> Result<Resolved<D>> {
    let f = |n: &str| dev.function(module, n);
    let load = |names: Names| -> Result<Loaded<D>> {
        Ok(match names {
            Names::One(n) => Loaded::One(f(n)?),
            Names::ByKv { bf16, f32 } => Loaded::ByKv { bf16: f(bf16)?, f32: f(f32)? },
            Names::Moe { gate_up, down } => Loaded::Moe { gate_up: f(gate_up)?, down: f(down)? },
        })
    };
    Ok(match ptx {
        Ptx::One(name) => Resolved::One(f(name)?),
        Ptx::Batched { gemv, mma, rows } => Resolved::Batched {
            gemv: gemv.map(load).transpose()?,
            mma: mma.map(|(names, terms)| Ok::<_, EngineError>((load(names)?, terms))).transpose()?,
            rows: rows.map(load).transpose()?,
        },
        Ptx::Attention { split, mma, rows } => {
            let d = plan.head_dim;
            let of_d = |table: &ByHeadDim| {
                let found = table.iter().find(|s| s.0 == d).map(|s| s.1);
                found.ok_or_else(|| EngineError::unsupported("attention", format!("head_dim {d} (the CUDA kernels take 16, 64 or 128)")))
            };
            let mma = match mma {
                Some(table) => {
                    let k = load(of_d(table)?)?;
                    // Its tiles may exceed the 48 KiB a kernel gets without asking.
                    for kv in [DType::Bf16, DType::F32] {
                        let bytes = attention::mma_shared_bytes(d, kv)
                            .ok_or_else(|| EngineError::unsupported("attention", format!("head_dim {d}")))?;
                        dev.allow_shared(k.for_kv(kv, "attention")?, bytes)?;
                    }
                    Some(k)
                }
                None => None,
            };
            Resolved::Attention {
                split: split.map(|(table, combine)| Ok::<_, EngineError>((load(of_d(table)?)?, f(combine)?))).transpose()?,
                mma,
                rows: (load(of_d(rows.0)?)?, f(rows.1)?),
            }
        }
        Ptx::Sample { argmax, temperature, cut } => Resolved::Sample { argmax: f(argmax)?, temperature: f(temperature)?, cut: f(cut)? },
    })
}

/// The chosen kernels, by case.
pub struct Chosen<D: Device> {
    kernels: Vec<(OpCase, Resolved<D>)>,
    pub report: Vec<KernelChoice>,
}

impl<D: Device> Default for Chosen<D> {
    fn default() -> Self {
        Chosen { kernels: Vec::new(), report: Vec::new() }
    }
}

impl<D: Device> Chosen<D> {
    pub fn new(dev: &D, plan: &ModelPlan, ov: &KernelOverrides) -> Result<Self> {
        let mut chosen = Chosen::default();
        for case in &plan.cases {
            let (module, list) = candidates(case.op);
            let (c, overridden) = choose(case, &list, ov)?;
            chosen.kernels.push((*case, resolve(dev, module, c.kernel, plan)?));
            chosen.report.push(KernelChoice { case: *case, kernel: c.name.clone(), overridden });
        }
        check_overrides(&chosen.report, ov)?;
        Ok(chosen)
    }

    /// The kernels chosen for `op` with weights of `format` (None for ops without weights).
    pub fn get(&self, op: OpKind, format: Option<WeightFormat>) -> Result<&Resolved<D>> {
        self.kernels.iter().find(|(c, _)| c.op == op && c.format == format).map(|(_, k)| k).ok_or_else(|| {
            let what = format.map(|f| format!(" with {f} weights")).unwrap_or_default();
            EngineError::unsupported(op.name(), format!("no kernel was prepared for this op{what}; the model plan did not list it"))
        })
    }
}

/// The single kernel of a case that has one.
pub fn one<'a, D: Device>(r: &'a Resolved<D>, op: &'static str) -> Result<&'a D::Function> {
    match r {
        Resolved::One(f) => Ok(f),
        _ => Err(EngineError::Backend { backend: D::BACKEND, detail: format!("{op}: kernel table mismatch") }),
    }
}

#[cfg(test)]
mod tests {
    use gptoss_engine::kernels::kernel_name;

    use super::*;

    const FORMATS: [WeightFormat; 5] =
        [WeightFormat::F32, WeightFormat::Bf16, WeightFormat::Int8, WeightFormat::Int4 { group: 32 }, WeightFormat::Mxfp4];

    #[test]
    fn every_format_has_a_kernel_for_every_weighted_op() {
        for op in [OpKind::Matmul, OpKind::MoeExperts] {
            for f in FORMATS {
                let case = OpCase { op, format: Some(f) };
                assert!(choose(&case, &candidates(op).1, &KernelOverrides::default()).is_ok(), "{op} {f}");
            }
        }
        let mf4 = OpCase { op: OpKind::QkvRope, format: Some(WeightFormat::Mxfp4) };
        assert!(choose(&mf4, &candidates(OpKind::QkvRope).1, &KernelOverrides::default()).is_err());
    }

    /// Attention's default has both forms (split below the crossover, tensor cores from it);
    /// `_split` and `_mma`, named in `GPTOSS_KERNELS`, force one.
    #[test]
    fn attention_has_a_default_and_each_form_forced() {
        let case = OpCase { op: OpKind::Attention, format: None };
        let list = candidates(OpKind::Attention).1;
        let forms = |spec: &str| {
            let (c, _) = choose(&case, &list, &KernelOverrides::parse(spec).unwrap()).unwrap();
            match c.kernel {
                Ptx::Attention { split, mma, .. } => (split.is_some(), mma.is_some()),
                other => panic!("attention chose {other:?}"),
            }
        };
        assert_eq!(forms(""), (true, true));
        assert_eq!(forms("attention=f32_sdpa_sinks_split"), (true, false));
        assert_eq!(forms("attention=f32_sdpa_sinks_mma"), (false, true));
    }

    /// A weighted op's kernel for format f is named `kernel_name(op, f, variant)` and serves f
    /// alone; every PTX name it launches starts with the name's stem.
    #[test]
    fn names_are_the_engine_s_and_the_ptx_names_spell_them_out() {
        for op in OpKind::ALL {
            for c in candidates(op).1 {
                let served: Vec<WeightFormat> = FORMATS.into_iter().filter(|&f| (c.supports)(&OpCase { op, format: Some(f) })).collect();
                if served.len() == 1 {
                    let variants = ["", "gemv", "mma_x2", "mma_x1"].map(|v| kernel_name(op.name(), Some(served[0]), v));
                    assert!(variants.contains(&c.name), "{op}: {}", c.name);
                }
                let first_of = |n: Names| match n {
                    Names::One(n) | Names::ByKv { bf16: n, .. } | Names::Moe { gate_up: n, .. } => n,
                };
                let launched: Vec<&str> = match c.kernel {
                    Ptx::One(n) | Ptx::Sample { argmax: n, .. } => vec![n],
                    Ptx::Batched { gemv, mma, rows } => gemv.into_iter().chain(mma.map(|m| m.0)).chain(rows).map(first_of).collect(),
                    Ptx::Attention { split, mma, rows } => {
                        split.map(|s| s.0[0].1).into_iter().chain(mma.map(|m| m[0].1)).chain([rows.0[0].1]).map(first_of).collect()
                    }
                };
                let stem = c
                    .name
                    .trim_end_matches("_gemv")
                    .trim_end_matches("_mma_x2")
                    .trim_end_matches("_mma_x1")
                    .trim_end_matches("_split")
                    .trim_end_matches("_mma")
                    .trim_end_matches("_experts");
                for first in launched {
                    assert!(first.starts_with(stem), "{} launches {first}", c.name);
                }
            }
        }
    }
}
