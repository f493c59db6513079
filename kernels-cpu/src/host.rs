//! The operands the CPU kernels take: slices and typed views of host memory ([`Host`]), and
//! the conversion of each op's checked buffers into them. A converted argument struct holds
//! exactly the rows the op reads and writes (`n` tokens), so kernels index without checks.

use gptoss_engine::checks::{self, MoeShape};
use gptoss_engine::{
    AttentionArgs, AttentionRowsArgs, Buffers, EmbedArgs, EngineError, MatmulArgs, MoeExpertsArgs, MoeRouteArgs, Operands, QkvRopeArgs,
    QkvRopeRowsArgs, Result, RmsNormArgs, SampleArgs,
};

use crate::buffer::CpuBuffer;
use crate::view::{KvShape, KvView, KvViewMut, RopeView, WeightView};

/// Operands as the CPU kernels read them.
pub struct Host;

impl<'a> Operands<'a> for Host {
    type Weight = WeightView<'a>;
    type Floats = &'a [f32];
    type FloatsMut = &'a mut [f32];
    type Ids = &'a [u32];
    type IdsMut = &'a mut [u32];
    type Kv = KvView<'a>;
    type KvMut = KvViewMut<'a>;
    type KvRows = Vec<KvView<'a>>;
    type KvRowsMut = Vec<KvViewMut<'a>>;
    type Rope = RopeView<'a>;
}

/// The operands of a CPU op as the backend receives them.
type On = Buffers<CpuBuffer>;

/// Token ids below the table's rows (they live in host memory, so they are checked here, before
/// any kernel runs).
pub fn embed<'a>(a: EmbedArgs<'a, On>) -> Result<EmbedArgs<'a, Host>> {
    const OP: &str = "embed";
    let cols = checks::embed(&a)?;
    let table = WeightView::new(a.table, OP)?;
    let tokens = &a.tokens.u32s(OP)?[..a.n];
    if let Some(&id) = tokens.iter().find(|&&id| id as usize >= table.rows) {
        return Err(EngineError::TokenOutOfRange { id, vocab: table.rows });
    }
    Ok(EmbedArgs { table, tokens, n: a.n, out: &mut a.out.f32s_mut(OP)?[..a.n * cols] })
}

pub fn rms_norm<'a>(a: RmsNormArgs<'a, On>) -> Result<RmsNormArgs<'a, Host>> {
    const OP: &str = "rms_norm";
    let d = checks::rms_norm(&a)?;
    let (x, gain, out) = (&a.x.f32s(OP)?[..a.n * d], a.gain.f32s(OP)?, &mut a.out.f32s_mut(OP)?[..a.n * d]);
    Ok(RmsNormArgs { x, gain, n: a.n, eps: a.eps, out })
}

pub fn matmul<'a>(a: MatmulArgs<'a, On>) -> Result<MatmulArgs<'a, Host>> {
    const OP: &str = "matmul";
    checks::matmul(&a)?;
    let w = WeightView::new(a.w, OP)?;
    let (x, out) = (&a.x.f32s(OP)?[..a.n * w.cols], &mut a.out.f32s_mut(OP)?[..a.n * w.rows]);
    Ok(MatmulArgs { w, x, n: a.n, out, accumulate: a.accumulate })
}

pub fn qkv_rope<'a>(a: QkvRopeArgs<'a, On>) -> Result<QkvRopeArgs<'a, Host>> {
    const OP: &str = "qkv_rope";
    let s = checks::qkv_rope(&a)?;
    let (wq, wk, wv) = (WeightView::new(a.wq, OP)?, WeightView::new(a.wk, OP)?, WeightView::new(a.wv, OP)?);
    let rope = RopeView { inv_freq: &a.rope.inv_freq.f32s(OP)?[..s.head_dim / 2], concentration: a.rope.concentration };
    Ok(QkvRopeArgs {
        wq,
        wk,
        wv,
        x: &a.x.f32s(OP)?[..a.n * wq.cols],
        n: a.n,
        positions: &a.positions.u32s(OP)?[..a.n],
        rope,
        kv: KvViewMut::new(a.kv, OP)?,
        q_out: &mut a.q_out.f32s_mut(OP)?[..a.n * wq.rows],
    })
}

pub fn qkv_rope_rows<'a>(a: QkvRopeRowsArgs<'a, On>) -> Result<QkvRopeRowsArgs<'a, Host>> {
    const OP: &str = "qkv_rope_rows";
    let s = checks::qkv_rope_rows(&a)?;
    let (wq, wk, wv) = (WeightView::new(a.wq, OP)?, WeightView::new(a.wk, OP)?, WeightView::new(a.wv, OP)?);
    let rope = RopeView { inv_freq: &a.rope.inv_freq.f32s(OP)?[..s.head_dim / 2], concentration: a.rope.concentration };
    Ok(QkvRopeRowsArgs {
        wq,
        wk,
        wv,
        x: &a.x.f32s(OP)?[..a.n * wq.cols],
        n: a.n,
        positions: &a.positions.u32s(OP)?[..a.n],
        rope,
        kv: a.kv.iter_mut().map(|l| KvViewMut::new(l, OP)).collect::<Result<_>>()?,
        q_out: &mut a.q_out.f32s_mut(OP)?[..a.n * wq.rows],
    })
}

/// An error unless the cache (of geometry `kv`) still holds the keys a query at `p` attends:
/// the ring of a sliding-window layer keeps only the last slots. Positions live in host memory,
/// so they are checked here.
fn held(kv: &KvShape, p: u32, op: &'static str) -> Result<()> {
    if p as usize + 1 - kv.first_key(p as usize) > kv.capacity {
        return Err(EngineError::shape(op, format!("position {p} needs more keys than the layer's {} cache slots", kv.capacity)));
    }
    Ok(())
}

pub fn attention<'a>(a: AttentionArgs<'a, On>) -> Result<AttentionArgs<'a, Host>> {
    const OP: &str = "attention";
    let s = checks::attention(&a)?;
    let kv = KvView::new(a.kv, OP)?;
    let positions = &a.positions.u32s(OP)?[..a.n];
    positions.iter().try_for_each(|&p| held(&kv.shape, p, OP))?;
    let row = s.q_heads * s.head_dim;
    Ok(AttentionArgs {
        q: &a.q.f32s(OP)?[..a.n * row],
        kv,
        n: a.n,
        positions,
        sinks: a.sinks.f32s(OP)?,
        scale: a.scale,
        out: &mut a.out.f32s_mut(OP)?[..a.n * row],
    })
}

/// Each row's position within what its own cache holds.
pub fn attention_rows<'a>(a: AttentionRowsArgs<'a, On>) -> Result<AttentionRowsArgs<'a, Host>> {
    const OP: &str = "attention_rows";
    let s = checks::attention_rows(&a)?;
    let kv: Vec<KvView> = a.kv.iter().map(|l| KvView::new(l, OP)).collect::<Result<_>>()?;
    let positions = &a.positions.u32s(OP)?[..a.n];
    kv.iter().zip(positions).try_for_each(|(kv, &p)| held(&kv.shape, p, OP))?;
    let row = s.q_heads * s.head_dim;
    Ok(AttentionRowsArgs {
        q: &a.q.f32s(OP)?[..a.n * row],
        kv,
        n: a.n,
        positions,
        sinks: a.sinks.f32s(OP)?,
        scale: a.scale,
        out: &mut a.out.f32s_mut(OP)?[..a.n * row],
    })
}

pub fn moe_route<'a>(a: MoeRouteArgs<'a, On>) -> Result<MoeRouteArgs<'a, Host>> {
    const OP: &str = "moe_route";
    checks::moe_route(&a)?;
    let router = WeightView::new(a.router, OP)?;
    let slots = a.n * a.top_k;
    Ok(MoeRouteArgs {
        router,
        x: &a.x.f32s(OP)?[..a.n * router.cols],
        n: a.n,
        top_k: a.top_k,
        ids: &mut a.ids.u32s_mut(OP)?[..slots],
        weights: &mut a.weights.f32s_mut(OP)?[..slots],
    })
}

/// Expert ids within the layer's experts (host memory: checked here).
pub fn moe_experts<'a>(a: MoeExpertsArgs<'a, On>) -> Result<(MoeExpertsArgs<'a, Host>, MoeShape)> {
    const OP: &str = "moe_experts";
    let s = checks::moe_experts(&a)?;
    let slots = a.n * a.top_k;
    let ids = &a.ids.u32s(OP)?[..slots];
    if let Some(&e) = ids.iter().find(|&&e| e as usize >= s.experts) {
        return Err(EngineError::shape(OP, format!("expert id {e} out of range (the layer has {})", s.experts)));
    }
    let host = MoeExpertsArgs {
        gate_up: WeightView::new(a.gate_up, OP)?,
        down: WeightView::new(a.down, OP)?,
        x: &a.x.f32s(OP)?[..a.n * s.hidden],
        n: a.n,
        ids,
        weights: &a.weights.f32s(OP)?[..slots],
        top_k: a.top_k,
        swiglu: a.swiglu,
        residual: &mut a.residual.f32s_mut(OP)?[..a.n * s.hidden],
    };
    Ok((host, s))
}

/// The row of logits alone (`row` 0 of the converted args).
pub fn sample<'a>(a: SampleArgs<'a, On>) -> Result<SampleArgs<'a, Host>> {
    const OP: &str = "sample";
    checks::sample(&a)?;
    let logits = &a.logits.f32s(OP)?[a.row * a.vocab..(a.row + 1) * a.vocab];
    Ok(SampleArgs { logits, row: 0, vocab: a.vocab, params: a.params, u: a.u })
}
