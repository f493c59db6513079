//! One safe launcher per kernel family: each checks shapes, dtypes, alignment and the limits
//! of its kernels, fills the family's argument struct and owns the `unsafe` launch.

pub mod attention;
pub mod embed;
pub mod matmul;
pub mod moe_experts;
pub mod moe_route;
pub mod qkv_rope;
pub mod rms_norm;
pub mod sample;
pub mod synth;

use std::ptr;

use gptoss_engine::{DType, DeviceBuffer, EngineError, Result, Weight, WeightFormat};

use crate::args::GptossWeight;
use crate::buffer::CudaBuffer;

/// Blocks for `items` spread `per_block` to a block, as a grid dimension.
pub fn blocks(items: usize, per_block: usize, op: &'static str) -> Result<u32> {
    u32::try_from(items.div_ceil(per_block)).map_err(|_| EngineError::unsupported(op, format!("{items} items exceed one grid dimension")))
}

/// A size that a kernel takes as a 32-bit count.
pub fn u32_of(v: usize, op: &'static str, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| EngineError::unsupported(op, format!("{what} = {v} exceeds 32 bits")))
}

/// A weight checked against its format's layout (engine/src/weight.rs), as the kernels see it.
pub fn weight(w: &Weight<CudaBuffer>, op: &'static str) -> Result<GptossWeight> {
    w.format.check_shape(w.rows, w.cols).map_err(|e| EngineError::shape(op, e))?;
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
    let scales = match (w.format.scales_layout(w.rows, w.cols), &w.scales) {
        (None, None) => ptr::null(),
        (Some((st, sn)), Some(s)) if s.dtype() == st && s.len() == sn * w.experts => s.ptr() as *const _,
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
    };
    let bias = match &w.bias {
        None => ptr::null(),
        Some(b) if b.dtype() == DType::F32 && b.len() == w.experts * w.rows => b.ptr() as *const f32,
        Some(b) => {
            return Err(EngineError::shape(op, format!("bias must be {} × f32, got {} × {}", w.experts * w.rows, b.len(), b.dtype())));
        }
    };
    let group = match w.format {
        WeightFormat::Int4 { group } => group,
        _ => 0,
    };
    Ok(GptossWeight {
        data: w.data.ptr() as *const _,
        scales,
        bias,
        data_stride: w.format.data_bytes(w.rows, w.cols) as u64,
        scale_stride: w.format.scales_bytes(w.rows, w.cols) as u64,
        rows: u32_of(w.rows, op, "rows")?,
        cols: u32_of(w.cols, op, "cols")?,
        experts: u32_of(w.experts, op, "experts")?,
        group: group as u32,
    })
}

/// A weight that must be a single matrix.
pub fn dense(w: &Weight<CudaBuffer>, op: &'static str) -> Result<GptossWeight> {
    if w.experts != 1 {
        return Err(EngineError::shape(op, format!("expected a dense weight, got {} experts", w.experts)));
    }
    weight(w, op)
}
