//! The op contracts every backend enforces before launching anything: buffer types and sizes,
//! weight layouts, and how the weights of a fused op must fit together. Written once here so
//! the backends cannot drift apart; each backend adds only its own limits.

use crate::backend::DeviceBuffer;
use crate::dtype::DType;
use crate::error::{EngineError, Result};
use crate::kv::KvLayer;
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

/// q, k and v projections that share a format and input and fit the cache's kv heads; the
/// head dimension must be even for the rotation. Returns the format.
pub fn qkv<Buf: DeviceBuffer>(
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
pub fn attention_heads<Buf: DeviceBuffer>(sinks: &Buf, kv: &KvLayer<Buf>, op: &'static str) -> Result<usize> {
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
pub fn expert_mlp<Buf: DeviceBuffer>(gate_up: &Weight<Buf>, down: &Weight<Buf>, op: &'static str) -> Result<usize> {
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
pub fn top_k(experts: usize, top_k: usize, op: &'static str) -> Result<()> {
    if top_k == 0 || top_k > experts {
        return Err(EngineError::shape(op, format!("top-{top_k} of {experts} experts")));
    }
    Ok(())
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
}
