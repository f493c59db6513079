//! Reading back what a context's KV cache holds for the positions the next token can attend
//! (every cached position on full layers, the last `window` on sliding ones, wherever the
//! ring keeps them): how tests check that rolled-back and replayed caches equal plain ones.

use gptoss_engine::{Backend, DType, Result};

use crate::context::Context;
use crate::model::GptOss;

/// One layer's attended keys and values, position by position, widened to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct AttendedKv {
    /// The position of the first row.
    pub first: usize,
    /// f32 [positions, kv_heads · head_dim]
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

impl<B: Backend> GptOss<B> {
    /// The keys and values of every layer that the token at `ctx.position()` would attend.
    pub fn attended_kv(&mut self, ctx: &Context<B::Buffer>) -> Result<Vec<AttendedKv>> {
        let len = ctx.kv.len();
        let mut out = Vec::with_capacity(ctx.kv.layers.len());
        for layer in &ctx.kv.layers {
            // The next token sees positions len − window + 1 ..= len: itself and window − 1 older.
            let first = layer.window.map_or(0, |w| (len + 1).saturating_sub(w));
            let (row, size) = (layer.row(), layer.dtype().size());
            let mut bytes = vec![0u8; row * size];
            let (mut k, mut v) = (Vec::with_capacity((len - first) * row), Vec::with_capacity((len - first) * row));
            for p in first..len {
                let slot = (p % layer.capacity) * row;
                for (buf, dst) in [(&layer.k, &mut k), (&layer.v, &mut v)] {
                    self.backend.read(buf, slot, &mut bytes)?;
                    match layer.dtype() {
                        DType::Bf16 => dst.extend(bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())),
                        _ => dst.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
                    }
                }
            }
            out.push(AttendedKv { first, k, v });
        }
        Ok(out)
    }
}
