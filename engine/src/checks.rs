//! The op contracts every backend enforces before launching anything: buffer types and sizes,
//! weight layouts, and how the weights of a fused op must fit together. One function per op
//! (`checks::matmul(&args)`, …) checks a whole argument struct and returns the sizes it
//! derived, so the backends cannot drift apart; each backend adds only its own limits.

use crate::backend::DeviceBuffer;
use crate::dtype::DType;
use crate::error::{EngineError, Result};
use crate::kv::KvLayer;
use crate::ops::{
    AttentionArgs, AttentionRowsArgs, Buffers, EmbedArgs, MatmulArgs, MoeExpertsArgs, MoeRouteArgs, QkvRopeArgs, QkvRopeRowsArgs,
    RmsNormArgs, SampleArgs,
};
use crate::weight::{Weight, WeightFormat};

/// `b` holds at least `len` elements of `dtype`.
pub fn buffer(b: &impl DeviceBuffer, dtype: DType, len: usize, op: &'static str, what: &str) -> Result<()> {
    if b.dtype() != dtype || b.len() < len {
        return Err(EngineError::shape(op, format!("{what} must be {dtype} with ≥ {len} elements, got {} × {}", b.dtype(), b.len())));
    }
    Ok(())
}

/// The weight's buffers match its format and shape (see `weight.rs` for the layouts).
pub fn weight<Buf: DeviceBuffer>(w: &Weight<Buf>, op: &'static str) -> Result<()> {
    w.format.check_shape(w.rows, w.cols).map_err(|e| EngineError::shape(op, e))?;
    if w.experts == 0 {
        return Err(EngineError::shape(op, format!("{} weight with 0 matrices", w.format)));
    }
    let (dt, n) = w.format.data_layout(w.rows, w.cols);
    if w.data.dtype() != dt || w.data.len() != n * w.experts {
        return Err(EngineError::shape(
            op,
            format!(
                "{} weight of {}×{}×{}: data must be {} × {dt}, got {} × {}",
                w.format,
                w.experts,
                w.rows,
                w.cols,
                n * w.experts,
                w.data.len(),
                w.data.dtype()
            ),
        ));
    }
    match (w.format.scales_layout(w.rows, w.cols), &w.scales) {
        (None, None) => {}
        (Some((st, sn)), Some(s)) if s.dtype() == st && s.len() == sn * w.experts => {}
        (want, got) => {
            return Err(EngineError::shape(
                op,
                format!(
                    "{} weight: scales must be {:?}, got {:?}",
                    w.format,
                    want.map(|(t, n)| (t, n * w.experts)),
                    got.as_ref().map(|s| (s.dtype(), s.len()))
                ),
            ));
        }
    }
    if let Some(b) = &w.bias
        && (b.dtype() != DType::F32 || b.len() != w.experts * w.rows)
    {
        return Err(EngineError::shape(op, format!("bias must be {} × f32, got {} × {}", w.experts * w.rows, b.len(), b.dtype())));
    }
    Ok(())
}

/// A single matrix (not a stack of experts) with a valid layout.
pub fn dense<Buf: DeviceBuffer>(w: &Weight<Buf>, op: &'static str) -> Result<()> {
    weight(w, op)?;
    if w.experts != 1 {
        return Err(EngineError::shape(op, format!("expected a dense weight, got {} experts", w.experts)));
    }
    Ok(())
}

/// A cache layer's buffers match its geometry.
pub fn kv_layer<Buf: DeviceBuffer>(l: &KvLayer<Buf>, op: &'static str) -> Result<()> {
    let elems = l.capacity * l.kv_heads * l.head_dim;
    if l.capacity == 0 || l.k.len() != elems || l.v.len() != elems || l.k.dtype() != l.v.dtype() {
        return Err(EngineError::shape(
            op,
            format!(
                "kv layer of {} slots × {} heads × {}: k has {} {}, v has {} {}",
                l.capacity,
                l.kv_heads,
                l.head_dim,
                l.k.len(),
                l.k.dtype(),
                l.v.len(),
                l.v.dtype()
            ),
        ));
    }
    Ok(())
}

/// The cache layers of `n` rows, one per row, valid and of one geometry (slots, kv heads, head
/// dim, window, element type). Returns the first, whose geometry they share.
fn kv_rows<'l, Buf: DeviceBuffer + 'l>(
    layers: impl ExactSizeIterator<Item = &'l KvLayer<Buf>>,
    n: usize,
    op: &'static str,
) -> Result<&'l KvLayer<Buf>> {
    if layers.len() != n {
        return Err(EngineError::shape(op, format!("{n} rows but {} cache layers (one per row)", layers.len())));
    }
    let mut first: Option<&KvLayer<Buf>> = None;
    for (t, l) in layers.enumerate() {
        kv_layer(l, op)?;
        let Some(f) = first else {
            first = Some(l);
            continue;
        };
        let geometry = |l: &KvLayer<Buf>| (l.capacity, l.kv_heads, l.head_dim, l.window, l.dtype());
        if geometry(l) != geometry(f) {
            return Err(EngineError::shape(
                op,
                format!(
                    "row {t}'s cache layer ({} slots × {} heads × {}, window {:?}, {}) differs from row 0's ({} × {} × {}, {:?}, {})",
                    l.capacity,
                    l.kv_heads,
                    l.head_dim,
                    l.window,
                    l.dtype(),
                    f.capacity,
                    f.kv_heads,
                    f.head_dim,
                    f.window,
                    f.dtype()
                ),
            ));
        }
    }
    first.ok_or_else(|| EngineError::shape(op, "no rows"))
}

/// q, k and v projections that share a format and input and fit the cache's kv heads; the
/// head dimension must be even for the rotation. Returns the format.
fn qkv<Buf: DeviceBuffer>(
    wq: &Weight<Buf>,
    wk: &Weight<Buf>,
    wv: &Weight<Buf>,
    kv: &KvLayer<Buf>,
    op: &'static str,
) -> Result<WeightFormat> {
    for w in [wq, wk, wv] {
        dense(w, op)?;
    }
    kv_layer(kv, op)?;
    if wq.format != wk.format || wq.format != wv.format {
        return Err(EngineError::shape(
            op,
            format!("q, k, v weights must share a format, got {}, {}, {}", wq.format, wk.format, wv.format),
        ));
    }
    let d = kv.head_dim;
    let kv_row = kv.kv_heads * d;
    if d == 0
        || !d.is_multiple_of(2)
        || wk.rows != kv_row
        || wv.rows != kv_row
        || !wq.rows.is_multiple_of(d)
        || wk.cols != wq.cols
        || wv.cols != wq.cols
    {
        return Err(EngineError::shape(
            op,
            format!(
                "q {}×{}, k {}×{}, v {}×{} do not fit {} kv heads of {d}",
                wq.rows, wq.cols, wk.rows, wk.cols, wv.rows, wv.cols, kv.kv_heads
            ),
        ));
    }
    Ok(wq.format)
}

/// Query heads (one sink each) that group evenly over the cache's kv heads.
fn attention_heads<Buf: DeviceBuffer>(sinks: &Buf, kv: &KvLayer<Buf>, op: &'static str) -> Result<usize> {
    kv_layer(kv, op)?;
    let q_heads = sinks.len();
    if q_heads == 0 || !q_heads.is_multiple_of(kv.kv_heads) {
        return Err(EngineError::shape(op, format!("{q_heads} query heads (sinks) are not a multiple of {} kv heads", kv.kv_heads)));
    }
    buffer(sinks, DType::F32, q_heads, op, "sinks")?;
    Ok(q_heads)
}

/// Stacked gate_up (interleaved gate/up rows) and down weights of one format that form an
/// expert MLP. Returns the intermediate size.
fn expert_mlp<Buf: DeviceBuffer>(gate_up: &Weight<Buf>, down: &Weight<Buf>, op: &'static str) -> Result<usize> {
    weight(gate_up, op)?;
    weight(down, op)?;
    let inter = gate_up.rows / 2;
    if !gate_up.rows.is_multiple_of(2) || gate_up.experts != down.experts || down.cols != inter || down.rows != gate_up.cols {
        return Err(EngineError::shape(
            op,
            format!(
                "gate_up {}×{}×{} and down {}×{}×{} do not form an expert MLP",
                gate_up.experts, gate_up.rows, gate_up.cols, down.experts, down.rows, down.cols
            ),
        ));
    }
    if gate_up.format != down.format {
        return Err(EngineError::shape(op, format!("gate_up is {} but down is {}", gate_up.format, down.format)));
    }
    Ok(inter)
}

/// A router of `experts` rows choosing `top_k` of them.
fn top_k(experts: usize, top_k: usize, op: &'static str) -> Result<()> {
    if top_k == 0 || top_k > experts {
        return Err(EngineError::shape(op, format!("top-{top_k} of {experts} experts")));
    }
    Ok(())
}

// ---- one check per op ----------------------------------------------------------------------

/// An embedding lookup: a dense table, `n` token ids, `n` rows out. Returns the row width.
pub fn embed<Buf: DeviceBuffer>(a: &EmbedArgs<'_, Buffers<Buf>>) -> Result<usize> {
    const OP: &str = "embed";
    dense(a.table, OP)?;
    buffer(a.tokens, DType::U32, a.n, OP, "tokens")?;
    buffer(&*a.out, DType::F32, a.n * a.table.cols, OP, "out")?;
    Ok(a.table.cols)
}

/// `n` rows of the gain's width and a usable epsilon. Returns the width.
pub fn rms_norm<Buf: DeviceBuffer>(a: &RmsNormArgs<'_, Buffers<Buf>>) -> Result<usize> {
    const OP: &str = "rms_norm";
    let d = a.gain.len();
    buffer(a.gain, DType::F32, d, OP, "gain")?;
    buffer(a.x, DType::F32, a.n * d, OP, "x")?;
    buffer(&*a.out, DType::F32, a.n * d, OP, "out")?;
    if !(a.eps.is_finite() && a.eps >= 0.0) {
        return Err(EngineError::shape(OP, format!("eps {} must be finite and ≥ 0", a.eps)));
    }
    Ok(d)
}

/// A dense weight, `n` input rows of its width and `n` output rows of its height.
pub fn matmul<Buf: DeviceBuffer>(a: &MatmulArgs<'_, Buffers<Buf>>) -> Result<()> {
    const OP: &str = "matmul";
    dense(a.w, OP)?;
    buffer(a.x, DType::F32, a.n * a.w.cols, OP, "x")?;
    buffer(&*a.out, DType::F32, a.n * a.w.rows, OP, "out")
}

/// The sizes of a checked `qkv_rope` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkvShape {
    pub format: WeightFormat,
    pub head_dim: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
}

/// q, k and v projections that share a format and input and fit the cache's kv heads (an even
/// head dimension, for the rotation), with inputs, positions, frequencies and outputs sized.
pub fn qkv_rope<Buf: DeviceBuffer>(a: &QkvRopeArgs<'_, Buffers<Buf>>) -> Result<QkvShape> {
    const OP: &str = "qkv_rope";
    let format = qkv(a.wq, a.wk, a.wv, a.kv, OP)?;
    let d = a.kv.head_dim;
    buffer(a.x, DType::F32, a.n * a.wq.cols, OP, "x")?;
    buffer(a.positions, DType::U32, a.n, OP, "positions")?;
    buffer(&a.rope.inv_freq, DType::F32, d / 2, OP, "rope inv_freq")?;
    buffer(&*a.q_out, DType::F32, a.n * a.wq.rows, OP, "q_out")?;
    Ok(QkvShape { format, head_dim: d, q_heads: a.wq.rows / d, kv_heads: a.kv.kv_heads })
}

/// The sizes of a checked `attention` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub q_heads: usize,
    pub head_dim: usize,
    /// Query heads per kv head.
    pub group: usize,
}

/// Query heads (one sink each) that group evenly over the cache's kv heads; queries, positions
/// and outputs sized.
pub fn attention<Buf: DeviceBuffer>(a: &AttentionArgs<'_, Buffers<Buf>>) -> Result<AttentionShape> {
    const OP: &str = "attention";
    let q_heads = attention_heads(a.sinks, a.kv, OP)?;
    let d = a.kv.head_dim;
    buffer(a.q, DType::F32, a.n * q_heads * d, OP, "q")?;
    buffer(&*a.out, DType::F32, a.n * q_heads * d, OP, "out")?;
    buffer(a.positions, DType::U32, a.n, OP, "positions")?;
    Ok(AttentionShape { q_heads, head_dim: d, group: q_heads / a.kv.kv_heads })
}

/// As `qkv_rope`, with one cache layer per row, all of one geometry.
pub fn qkv_rope_rows<Buf: DeviceBuffer>(a: &QkvRopeRowsArgs<'_, Buffers<Buf>>) -> Result<QkvShape> {
    const OP: &str = "qkv_rope_rows";
    let kv = kv_rows(a.kv.iter().map(|l| &**l), a.n, OP)?;
    let format = qkv(a.wq, a.wk, a.wv, kv, OP)?;
    let d = kv.head_dim;
    buffer(a.x, DType::F32, a.n * a.wq.cols, OP, "x")?;
    buffer(a.positions, DType::U32, a.n, OP, "positions")?;
    buffer(&a.rope.inv_freq, DType::F32, d / 2, OP, "rope inv_freq")?;
    buffer(&*a.q_out, DType::F32, a.n * a.wq.rows, OP, "q_out")?;
    Ok(QkvShape { format, head_dim: d, q_heads: a.wq.rows / d, kv_heads: kv.kv_heads })
}

/// As `attention`, with one cache layer per row, all of one geometry.
pub fn attention_rows<Buf: DeviceBuffer>(a: &AttentionRowsArgs<'_, Buffers<Buf>>) -> Result<AttentionShape> {
    const OP: &str = "attention_rows";
    let kv = kv_rows(a.kv.iter().copied(), a.n, OP)?;
    let q_heads = attention_heads(a.sinks, kv, OP)?;
    let d = kv.head_dim;
    buffer(a.q, DType::F32, a.n * q_heads * d, OP, "q")?;
    buffer(&*a.out, DType::F32, a.n * q_heads * d, OP, "out")?;
    buffer(a.positions, DType::U32, a.n, OP, "positions")?;
    Ok(AttentionShape { q_heads, head_dim: d, group: q_heads / kv.kv_heads })
}

/// A dense router choosing `top_k` of its rows, with inputs and both outputs sized.
pub fn moe_route<Buf: DeviceBuffer>(a: &MoeRouteArgs<'_, Buffers<Buf>>) -> Result<()> {
    const OP: &str = "moe_route";
    dense(a.router, OP)?;
    top_k(a.router.rows, a.top_k, OP)?;
    buffer(a.x, DType::F32, a.n * a.router.cols, OP, "x")?;
    buffer(&*a.ids, DType::U32, a.n * a.top_k, OP, "ids")?;
    buffer(&*a.weights, DType::F32, a.n * a.top_k, OP, "weights")
}

/// The sizes of a checked `moe_experts` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoeShape {
    pub experts: usize,
    pub hidden: usize,
    pub intermediate: usize,
}

/// Expert weights that form an MLP, a top-k within their count, and every buffer sized.
pub fn moe_experts<Buf: DeviceBuffer>(a: &MoeExpertsArgs<'_, Buffers<Buf>>) -> Result<MoeShape> {
    const OP: &str = "moe_experts";
    let inter = expert_mlp(a.gate_up, a.down, OP)?;
    let (hidden, experts) = (a.gate_up.cols, a.gate_up.experts);
    top_k(experts, a.top_k, OP)?;
    buffer(a.x, DType::F32, a.n * hidden, OP, "x")?;
    buffer(a.ids, DType::U32, a.n * a.top_k, OP, "ids")?;
    buffer(a.weights, DType::F32, a.n * a.top_k, OP, "weights")?;
    buffer(&*a.residual, DType::F32, a.n * hidden, OP, "residual")?;
    Ok(MoeShape { experts, hidden, intermediate: inter })
}

/// A row of logits that exists, and valid sampling parameters.
pub fn sample<Buf: DeviceBuffer>(a: &SampleArgs<'_, Buffers<Buf>>) -> Result<()> {
    const OP: &str = "sample";
    a.params.validate()?;
    if a.vocab == 0 {
        return Err(EngineError::shape(OP, "a vocabulary of 0 tokens"));
    }
    buffer(a.logits, DType::F32, (a.row + 1) * a.vocab, OP, "logits")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf(DType, usize);
    impl DeviceBuffer for Buf {
        fn dtype(&self) -> DType {
            self.0
        }
        fn len(&self) -> usize {
            self.1
        }
    }

    fn w(format: WeightFormat, experts: usize, rows: usize, cols: usize) -> Weight<Buf> {
        let (dt, n) = format.data_layout(rows, cols);
        Weight {
            format,
            experts,
            rows,
            cols,
            data: Buf(dt, n * experts),
            scales: format.scales_layout(rows, cols).map(|(t, s)| Buf(t, s * experts)),
            bias: Some(Buf(DType::F32, rows * experts)),
        }
    }

    #[test]
    fn layouts_are_checked() {
        assert!(weight(&w(WeightFormat::Mxfp4, 4, 64, 32), "t").is_ok());
        assert!(dense(&w(WeightFormat::Mxfp4, 4, 64, 32), "t").unwrap_err().to_string().contains("4 experts"));
        let mut bad = w(WeightFormat::Int8, 1, 8, 16);
        bad.scales = None;
        assert!(weight(&bad, "t").unwrap_err().to_string().contains("scales must be"));
        let mut bad = w(WeightFormat::Bf16, 1, 8, 16);
        bad.bias = Some(Buf(DType::Bf16, 8));
        assert!(weight(&bad, "t").unwrap_err().to_string().contains("bias must be 8 × f32"));
    }

    #[test]
    fn fused_shapes_are_checked() {
        assert_eq!(expert_mlp(&w(WeightFormat::Mxfp4, 4, 64, 32), &w(WeightFormat::Mxfp4, 4, 32, 32), "t").unwrap(), 32);
        assert!(expert_mlp(&w(WeightFormat::Mxfp4, 4, 64, 32), &w(WeightFormat::Mxfp4, 3, 32, 32), "t").is_err());
        assert!(expert_mlp(&w(WeightFormat::Mxfp4, 4, 64, 32), &w(WeightFormat::Bf16, 4, 32, 32), "t").is_err());
        let kv =
            KvLayer { k: Buf(DType::Bf16, 4 * 2 * 8), v: Buf(DType::Bf16, 4 * 2 * 8), capacity: 4, kv_heads: 2, head_dim: 8, window: None };
        let f = WeightFormat::Bf16;
        assert!(qkv(&w(f, 1, 32, 16), &w(f, 1, 16, 16), &w(f, 1, 16, 16), &kv, "t").is_ok());
        assert!(qkv(&w(f, 1, 32, 16), &w(f, 1, 8, 16), &w(f, 1, 16, 16), &kv, "t").is_err());
        assert_eq!(attention_heads(&Buf(DType::F32, 6), &kv, "t").unwrap(), 6);
        assert!(attention_heads(&Buf(DType::F32, 5), &kv, "t").is_err());
        assert!(top_k(4, 5, "t").is_err());
    }

    #[test]
    fn rows_need_one_cache_layer_each_of_one_geometry() {
        let layer = |capacity: usize, window| KvLayer {
            k: Buf(DType::Bf16, capacity * 2 * 8),
            v: Buf(DType::Bf16, capacity * 2 * 8),
            capacity,
            kv_heads: 2,
            head_dim: 8,
            window,
        };
        let (a, b, c) = (layer(4, None), layer(4, None), layer(6, None));
        assert_eq!(kv_rows([&a, &b].into_iter(), 2, "t").map(|l| l.capacity).ok(), Some(4));
        assert!(
            kv_rows([&a, &b].into_iter(), 3, "t").err().map(|e| e.to_string()).unwrap_or_default().contains("3 rows but 2 cache layers")
        );
        assert!(kv_rows([&a, &c].into_iter(), 2, "t").err().map(|e| e.to_string()).unwrap_or_default().contains("row 1's cache layer"));
        assert!(kv_rows([&a, &layer(4, Some(2))].into_iter(), 2, "t").is_err());
        assert!(kv_rows(std::iter::empty::<&KvLayer<Buf>>(), 0, "t").err().map(|e| e.to_string()).unwrap_or_default().contains("no rows"));
    }
}
