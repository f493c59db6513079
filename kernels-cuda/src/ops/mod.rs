//! One safe launcher per kernel family: each checks shapes, dtypes, alignment and the limits
//! of its kernels, fills the family's argument struct and owns the `unsafe` launch.

pub mod attention;
pub mod embed;
pub mod matmul;
pub mod moe_experts;
pub mod moe_route;
pub mod qkv_rope;
pub mod rms_norm;
pub mod rows;
pub mod sample;
pub mod split;
pub mod synth;

use std::ptr;

use gptoss_engine::{EngineError, Result, Weight, WeightFormat, checks};

use crate::args::GptossWeight;
use crate::buffer::{CudaBuffer, Holds};
use crate::device::Device;
use crate::registry::{Loaded, Resolved};

/// What every launcher needs: the device, and the address of the status word through which
/// kernels report bad device-side inputs (see `cuda/args.h`).
pub struct On<'a, D: Device> {
    pub dev: &'a D,
    pub status: u64,
}

/// Blocks for `items` spread `per_block` to a block, as a grid dimension.
pub fn blocks(items: usize, per_block: u32, op: &'static str) -> Result<u32> {
    u32::try_from(items.div_ceil(per_block as usize))
        .map_err(|_| EngineError::unsupported(op, format!("{items} items exceed one grid dimension")))
}

/// A size that a kernel takes as a 32-bit count.
pub fn u32_of(v: usize, op: &'static str, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| EngineError::unsupported(op, format!("{what} = {v} exceeds 32 bits")))
}

/// A weight checked against its format's layout (engine/src/weight.rs), as the kernels see it.
pub fn weight<D: Device>(w: &Weight<CudaBuffer<D>>, op: &'static str) -> Result<GptossWeight> {
    if w.data.holds() != Holds::Values {
        return Err(EngineError::unsupported(op, "a stack of experts reached through a table (only moe_experts reads one)"));
    }
    stack(w, op)
}

/// A weight that may be a stack of experts reached through a table (`tables.rs`): what
/// `moe_experts` reads, the only kernels that look experts up with `expert_data`.
pub fn stack<D: Device>(w: &Weight<CudaBuffer<D>>, op: &'static str) -> Result<GptossWeight> {
    checks::weight(w, op)?;
    if w.data.holds() == Holds::ExpertTable {
        return Ok(GptossWeight { data: ptr::null(), scales: ptr::null(), table: w.data.ptr() as *const u64, ..values(w, op)? });
    }
    values(w, op)
}

fn values<D: Device>(w: &Weight<CudaBuffer<D>>, op: &'static str) -> Result<GptossWeight> {
    let scales = w.scales.as_ref().map_or(ptr::null(), |s| s.ptr() as *const _);
    let bias = w.bias.as_ref().map_or(ptr::null(), |b| b.ptr() as *const f32);
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
        table: ptr::null(),
    })
}

/// A weight that must be a single matrix.
pub fn dense<D: Device>(w: &Weight<CudaBuffer<D>>, op: &'static str) -> Result<GptossWeight> {
    checks::dense(w, op)?;
    weight(w, op)
}

/// The form a batched op runs in (see `registry::Ptx::Batched`).
pub enum Form<'k, D: Device> {
    Gemv(&'k Loaded<D>),
    /// The tensor-core kernels, on this many bf16 planes of the activations.
    Mma(&'k Loaded<D>, u32),
}

/// The form for `n` tokens: the tensor-core kernels from `mma_from` tokens on when the chosen
/// variant has both forms and the shapes suit them (`mma_fits`: why not, if they do not), the
/// one form a forced variant has otherwise (an error if that is the tensor-core one and the
/// shapes do not suit it).
pub fn form<'k, D: Device>(
    kernels: &'k Resolved<D>,
    n: usize,
    mma_from: usize,
    mma_fits: std::result::Result<(), String>,
    op: &'static str,
) -> Result<Form<'k, D>> {
    match kernels {
        Resolved::Batched { gemv: Some(g), mma: Some((m, terms)), .. } => {
            Ok(if n >= mma_from && mma_fits.is_ok() { Form::Mma(m, *terms) } else { Form::Gemv(g) })
        }
        Resolved::Batched { gemv: Some(g), mma: None, .. } => Ok(Form::Gemv(g)),
        Resolved::Batched { gemv: None, mma: Some((m, terms)), .. } => match mma_fits {
            Ok(()) => Ok(Form::Mma(m, *terms)),
            Err(why) => Err(EngineError::unsupported(op, format!("the tensor-core kernel was chosen, but {why}"))),
        },
        _ => Err(EngineError::Backend { backend: D::BACKEND, detail: format!("{op}: kernel table mismatch") }),
    }
}

/// Whether the tensor-core GEMM can stream `w`'s rows: whole 16-byte chunks per row (bf16 cols
/// a multiple of 8, int8 of 16; int4 and MXFP4 always), and not f32.
pub fn mma_rows_fit<D: Device>(w: &Weight<CudaBuffer<D>>) -> std::result::Result<(), String> {
    if w.format == WeightFormat::F32 {
        return Err("f32 weights have no tensor-core form".into());
    }
    let row_bytes = w.format.data_bytes(1, w.cols);
    if !row_bytes.is_multiple_of(16) {
        return Err(format!("its rows of {} {} values are not whole 16-byte chunks", w.cols, w.format));
    }
    Ok(())
}
