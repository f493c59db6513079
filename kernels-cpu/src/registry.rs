//! The CPU kernels for each op, fastest first, and the table of choices made at load.
//!
//! Every op has the scalar reference (`*_ref`) last: the oracle, and the path of
//! `GPTOSS_CPU_ISA=scalar`. Before it come the SIMD kernels of the backend's ISA, one per weight
//! format (`f32_bf16w_matmul_avx2`, `f32_mf4w_moe_experts_swiglu_neon`, …): the exact ones, and
//! for the integer formats the q8 ones on int8 activations (`f32_mf4w_moe_experts_swiglu_q8_avx2`,
//! `f32_i8w_matmul_q8_avx512_vnni`, …), the exact first unless the backend runs with int8
//! activations. Where the set has bf16 dot products (AVX512-BF16), those for bf16 weights
//! (`f32_bf16w_matmul_dpbf16_avx512`) come after the exact bf16 kernels: on the Xeon measured
//! they are slower at every token count (`bench/NOTES.md`, "bf16 weights with `vdpbf16ps`"),
//! so they run by name only ([`bf16_dot_overrides`], `GPTOSS_KERNELS`). Each candidate is one monomorphic driver (`drivers::matmul::matmul::<H, F, P>`),
//! so the kernel chosen here is the function that runs. Names come from
//! `gptoss_engine::kernels::kernel_name`. Embedding lookups and sampling touch one row and one
//! vector per token; their references are fast enough and serve every ISA. A qkv_rope or
//! attention kernel comes with its form for rows of several sequences ([`WithRows`]): one
//! choice for both, so a row batched with other sequences runs the code it would run alone.

use gptoss_engine::kernels::{Candidate, check_overrides, choose, kernel_name};
use gptoss_engine::{
    AttentionArgs, AttentionRowsArgs, EmbedArgs, EngineError, KernelChoice, KernelOverrides, MatmulArgs, MoeExpertsArgs, MoeRouteArgs,
    OpCase, OpKind, QkvRopeArgs, QkvRopeRowsArgs, Result, RmsNormArgs, SampleArgs, WeightFormat,
};

use crate::compiled::{self, Compiled, Visit};
use crate::drivers;
use crate::drivers::matmul::{Bf16Dot, Exact, Products, Quantized};
use crate::fast::matmul::block_row::{I4Row, I8Row, Mf4Row};
use crate::fast::matmul::format::{Format, IntFormat};
use crate::fast::matmul::tile::{Bf16Row, F32Row};
use crate::host::Host;
use crate::isa::Isa;
use crate::options::Activations;
use crate::reference;
use crate::workspace::Workspace;

pub type EmbedKernel = fn(EmbedArgs<Host>, &mut Workspace);
pub type RmsNormKernel = fn(RmsNormArgs<Host>, &mut Workspace);
pub type MatmulKernel = fn(MatmulArgs<Host>, &mut Workspace);
pub type QkvRopeKernel = WithRows<fn(QkvRopeArgs<Host>, &mut Workspace), fn(QkvRopeRowsArgs<Host>, &mut Workspace)>;
pub type AttentionKernel = WithRows<fn(AttentionArgs<Host>, &mut Workspace), fn(AttentionRowsArgs<Host>, &mut Workspace)>;

/// A kernel over the rows of one sequence (`one`) and its form over rows of several sequences
/// (`rows`, one cache each), built on the same code.
#[derive(Clone, Copy)]
pub struct WithRows<One, Rows> {
    pub one: One,
    pub rows: Rows,
}
pub type MoeRouteKernel = fn(MoeRouteArgs<Host>, &mut Workspace);
pub type MoeExpertsKernel = fn(MoeExpertsArgs<Host>, &mut Workspace);
pub type SampleKernel = fn(SampleArgs<Host>, &mut Workspace) -> u32;

/// A list per op: candidates while choosing, chosen kernels (keyed by weight format) after.
pub struct PerOp<E, R, M, Q, A, MR, ME, S> {
    pub embed: Vec<E>,
    pub rms_norm: Vec<R>,
    pub matmul: Vec<M>,
    pub qkv_rope: Vec<Q>,
    pub attention: Vec<A>,
    pub moe_route: Vec<MR>,
    pub moe_experts: Vec<ME>,
    pub sample: Vec<S>,
}

impl<E, R, M, Q, A, MR, ME, S> Default for PerOp<E, R, M, Q, A, MR, ME, S> {
    fn default() -> Self {
        PerOp {
            embed: Vec::new(),
            rms_norm: Vec::new(),
            matmul: Vec::new(),
            qkv_rope: Vec::new(),
            attention: Vec::new(),
            moe_route: Vec::new(),
            moe_experts: Vec::new(),
            sample: Vec::new(),
        }
    }
}

impl<E, R, M, Q, A, MR, ME, S> PerOp<E, R, M, Q, A, MR, ME, S> {
    /// Every list of `self` followed by the same list of `other`.
    fn then(mut self, other: Self) -> Self {
        self.embed.extend(other.embed);
        self.rms_norm.extend(other.rms_norm);
        self.matmul.extend(other.matmul);
        self.qkv_rope.extend(other.qkv_rope);
        self.attention.extend(other.attention);
        self.moe_route.extend(other.moe_route);
        self.moe_experts.extend(other.moe_experts);
        self.sample.extend(other.sample);
        self
    }
}

/// Every kernel for every op on one path, fastest first.
pub type Candidates = PerOp<
    Candidate<EmbedKernel>,
    Candidate<RmsNormKernel>,
    Candidate<MatmulKernel>,
    Candidate<QkvRopeKernel>,
    Candidate<AttentionKernel>,
    Candidate<MoeRouteKernel>,
    Candidate<MoeExpertsKernel>,
    Candidate<SampleKernel>,
>;

type Keyed<K> = (Option<WeightFormat>, K);

/// The kernels chosen for a model, per op, by weight format.
pub type ChosenKernels = PerOp<
    Keyed<EmbedKernel>,
    Keyed<RmsNormKernel>,
    Keyed<MatmulKernel>,
    Keyed<QkvRopeKernel>,
    Keyed<AttentionKernel>,
    Keyed<MoeRouteKernel>,
    Keyed<MoeExpertsKernel>,
    Keyed<SampleKernel>,
>;

fn any_case(_: &OpCase) -> bool {
    true
}

/// A kernel for every case of its op.
fn any<K>(family: &str, variant: &str, kernel: K) -> Candidate<K> {
    Candidate { name: kernel_name(family, None, variant), supports: any_case, kernel }
}

/// A kernel for the weights of format `F`.
fn for_format<F: Format, K>(family: &str, variant: &str, kernel: K) -> Candidate<K> {
    Candidate { name: kernel_name(family, Some(F::FORMAT), variant), supports: |c| c.format.is_some_and(F::is), kernel }
}

/// A kernel for the integer formats (int8, int4, MXFP4): the q8 references.
fn integer<K>(family: &str, kernel: K) -> Candidate<K> {
    let integer = |c: &OpCase| c.format.is_some_and(|f| I8Row::is(f) || I4Row::is(f) || Mf4Row::is(f));
    Candidate { name: kernel_name(family, None, "q8_ref"), supports: integer, kernel }
}

/// The q8 definition's references (`reference::q8`), named `*_q8_ref`.
fn q8_reference() -> Candidates {
    Candidates {
        matmul: vec![integer("matmul", reference::q8::matmul as MatmulKernel)],
        qkv_rope: vec![integer("qkv_rope", QkvRopeKernel { one: reference::q8::qkv_rope, rows: reference::q8::qkv_rope_rows })],
        moe_experts: vec![integer("moe_experts_swiglu", reference::q8::moe_experts as MoeExpertsKernel)],
        ..Candidates::default()
    }
}

/// The reference kernels, named `*_ref`: every case of every op.
fn exact_reference() -> Candidates {
    Candidates {
        embed: vec![any("embed", "ref", reference::embed::embed)],
        rms_norm: vec![any("rms_norm", "ref", reference::rms_norm::rms_norm)],
        matmul: vec![any("matmul", "ref", reference::matmul::matmul)],
        qkv_rope: vec![any(
            "qkv_rope",
            "ref",
            QkvRopeKernel { one: reference::qkv_rope::qkv_rope, rows: reference::qkv_rope::qkv_rope_rows },
        )],
        attention: vec![any(
            "sdpa_sinks",
            "ref",
            AttentionKernel { one: reference::attention::attention, rows: reference::attention::attention_rows },
        )],
        moe_route: vec![any("moe_route", "ref", reference::moe_route::moe_route)],
        moe_experts: vec![any("moe_experts_swiglu", "ref", reference::moe_experts::moe_experts)],
        sample: vec![any("sample", "ref", reference::sample::sample)],
    }
}

/// The exact kernels of `H` for weights of format `F`, named by the ISA alone (they take no q8
/// extension).
fn exact<H: Compiled, F: Format>(c: &mut Candidates) {
    let v = H::ISA.name();
    c.matmul.push(for_format::<F, MatmulKernel>("matmul", v, drivers::matmul::matmul::<H, F, Exact>));
    let qkv_rope = QkvRopeKernel { one: drivers::qkv_rope::qkv_rope::<H, F, Exact>, rows: drivers::qkv_rope::qkv_rope_rows::<H, F, Exact> };
    c.qkv_rope.push(for_format::<F, QkvRopeKernel>("qkv_rope", v, qkv_rope));
    c.moe_route.push(for_format::<F, MoeRouteKernel>("moe_route", v, drivers::moe_route::moe_route::<H, F, Exact>));
    c.moe_experts.push(for_format::<F, MoeExpertsKernel>("moe_experts_swiglu", v, drivers::moe_experts::moe_experts::<H, F, Exact>));
}

/// The bf16-dot kernels of `H` for bf16 weights (`dpbf16_<isa>`: the same in every set that has them).
fn bf16_dot<H: Compiled>(c: &mut Candidates) {
    let v = format!("{}_{}", <Bf16Dot as Products<Bf16Row>>::VARIANT, H::ISA.name());
    c.matmul.push(for_format::<Bf16Row, MatmulKernel>("matmul", &v, drivers::matmul::matmul::<H, Bf16Row, Bf16Dot>));
    let qkv_rope = QkvRopeKernel {
        one: drivers::qkv_rope::qkv_rope::<H, Bf16Row, Bf16Dot>,
        rows: drivers::qkv_rope::qkv_rope_rows::<H, Bf16Row, Bf16Dot>,
    };
    c.qkv_rope.push(for_format::<Bf16Row, QkvRopeKernel>("qkv_rope", &v, qkv_rope));
    c.moe_route.push(for_format::<Bf16Row, MoeRouteKernel>("moe_route", &v, drivers::moe_route::moe_route::<H, Bf16Row, Bf16Dot>));
    let experts = drivers::moe_experts::moe_experts::<H, Bf16Row, Bf16Dot>;
    c.moe_experts.push(for_format::<Bf16Row, MoeExpertsKernel>("moe_experts_swiglu", &v, experts));
}

/// The q8 kernels of `H` for weights of format `F`.
fn quantized<H: Compiled, F: IntFormat>(c: &mut Candidates) {
    let v = format!("q8_{}", H::NAME);
    c.matmul.push(for_format::<F, MatmulKernel>("matmul", &v, drivers::matmul::matmul::<H, F, Quantized>));
    let qkv_rope =
        QkvRopeKernel { one: drivers::qkv_rope::qkv_rope::<H, F, Quantized>, rows: drivers::qkv_rope::qkv_rope_rows::<H, F, Quantized> };
    c.qkv_rope.push(for_format::<F, QkvRopeKernel>("qkv_rope", &v, qkv_rope));
    c.moe_experts.push(for_format::<F, MoeExpertsKernel>("moe_experts_swiglu", &v, drivers::moe_experts::moe_experts::<H, F, Quantized>));
}

/// The SIMD kernels of `H`: the exact ones first for f32 activations, the q8 ones first for
/// int8 activations (every one stays selectable by name).
pub fn simd<H: Compiled>(act: Activations) -> Candidates {
    let mut all = Candidates::default();
    all.rms_norm.push(any("rms_norm", H::ISA.name(), drivers::rms_norm::rms_norm::<H> as RmsNormKernel));
    let attention = AttentionKernel { one: drivers::attention::attention::<H>, rows: drivers::attention::attention_rows::<H> };
    all.attention.push(any("sdpa_sinks", H::ISA.name(), attention));
    exact::<H, F32Row>(&mut all);
    exact::<H, Bf16Row>(&mut all);
    if H::BF16_DOT {
        bf16_dot::<H>(&mut all);
    }
    exact::<H, I8Row>(&mut all);
    exact::<H, I4Row>(&mut all);
    exact::<H, Mf4Row>(&mut all);
    let mut q8 = Candidates::default();
    quantized::<H, I8Row>(&mut q8);
    quantized::<H, I4Row>(&mut q8);
    quantized::<H, Mf4Row>(&mut q8);
    match act {
        Activations::F32 => all.then(q8),
        Activations::Int8 => q8.then(all),
    }
}

/// The reference kernels: the exact ones (every case) and the q8 definition's (integer
/// formats), those of `act` first.
pub fn reference(act: Activations) -> Candidates {
    match act {
        Activations::F32 => exact_reference().then(q8_reference()),
        Activations::Int8 => q8_reference().then(exact_reference()),
    }
}

/// Every candidate of `isa` (the SIMD kernels of its compiled set `set`, or of the widest this
/// CPU runs, then the references), in the order `act` prefers.
pub fn candidates(isa: Isa, set: Option<&str>, act: Activations) -> Candidates {
    struct Simd(Activations, Candidates);
    impl Visit for Simd {
        fn visit<H: Compiled>(&mut self) {
            self.1 = simd::<H>(self.0);
        }
    }
    let mut found = Simd(act, Candidates::default());
    if isa != Isa::Scalar {
        compiled::for_isa(isa, set, &mut found);
    }
    found.1.then(reference(act))
}

/// Overrides naming the bf16 dot products (`*_dpbf16_<isa>`) for every op with bf16 weights,
/// where `isa`'s compiled set `set` (the widest when `None`) has them: how tests and
/// comparisons run them, since the exact bf16 kernels come first.
pub fn bf16_dot_overrides(isa: Isa, set: Option<&str>) -> Option<KernelOverrides> {
    struct Names(Option<String>);
    impl Visit for Names {
        fn visit<H: Compiled>(&mut self) {
            if H::BF16_DOT {
                let mut c = Candidates::default();
                bf16_dot::<H>(&mut c);
                let ops = [("matmul", &c.matmul[0].name), ("qkv_rope", &c.qkv_rope[0].name)];
                let ops = ops.into_iter().chain([("moe_route", &c.moe_route[0].name), ("moe_experts", &c.moe_experts[0].name)]);
                self.0 = Some(ops.map(|(op, name)| format!("{op}={name}")).collect::<Vec<_>>().join(","));
            }
        }
    }
    let mut names = Names(None);
    if isa != Isa::Scalar {
        compiled::for_isa(isa, set, &mut names);
    }
    names.0.map(|spec| KernelOverrides::parse(&spec).expect("the registry's own kernel names parse"))
}

/// The kernels chosen for a model's cases, and the report of the choices.
#[derive(Default)]
pub struct Chosen {
    pub kernels: ChosenKernels,
    pub report: Vec<KernelChoice>,
}

fn pick<K: Copy>(
    case: &OpCase,
    from: &[Candidate<K>],
    ov: &KernelOverrides,
    to: &mut Vec<Keyed<K>>,
    report: &mut Vec<KernelChoice>,
) -> Result<()> {
    let (c, overridden) = choose(case, from, ov)?;
    to.push((case.format, c.kernel));
    report.push(KernelChoice { case: *case, kernel: c.name.clone(), overridden });
    Ok(())
}

impl Chosen {
    /// The kernels of `isa`'s compiled set `set` (which the caller checked this CPU runs; the
    /// widest when `None`) for every case, the q8 ones first for int8 activations.
    pub fn new(isa: Isa, set: Option<&str>, act: Activations, cases: &[OpCase], ov: &KernelOverrides) -> Result<Self> {
        let all = candidates(isa, set, act);
        let (mut k, mut r) = (ChosenKernels::default(), Vec::new());
        for case in cases {
            match case.op {
                OpKind::Embed => pick(case, &all.embed, ov, &mut k.embed, &mut r)?,
                OpKind::RmsNorm => pick(case, &all.rms_norm, ov, &mut k.rms_norm, &mut r)?,
                OpKind::Matmul => pick(case, &all.matmul, ov, &mut k.matmul, &mut r)?,
                OpKind::QkvRope => pick(case, &all.qkv_rope, ov, &mut k.qkv_rope, &mut r)?,
                OpKind::Attention => pick(case, &all.attention, ov, &mut k.attention, &mut r)?,
                OpKind::MoeRoute => pick(case, &all.moe_route, ov, &mut k.moe_route, &mut r)?,
                OpKind::MoeExperts => pick(case, &all.moe_experts, ov, &mut k.moe_experts, &mut r)?,
                OpKind::Sample => pick(case, &all.sample, ov, &mut k.sample, &mut r)?,
            }
        }
        check_overrides(&r, ov)?;
        Ok(Chosen { kernels: k, report: r })
    }
}

/// The kernel chosen for `format` in `list`, or an error naming the unprepared case.
pub fn lookup<K: Copy>(list: &[Keyed<K>], op: OpKind, format: Option<WeightFormat>) -> Result<K> {
    list.iter().find(|(f, _)| *f == format).map(|(_, k)| *k).ok_or_else(|| {
        let what = format.map(|f| format!(" with {f} weights")).unwrap_or_default();
        EngineError::unsupported(op.name(), format!("no kernel was prepared for this op{what}; the model plan did not list it"))
    })
}
