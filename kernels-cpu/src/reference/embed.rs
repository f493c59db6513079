//! Embedding lookup: `out[t, :] = table[tokens[t], :]`, decoded to f32.

use gptoss_engine::{EngineError, Result};

use crate::view::WeightView;

pub fn f32_embed(table: &WeightView, tokens: &[u32], out: &mut [f32]) -> Result<()> {
    let d = table.cols;
    for (t, &id) in tokens.iter().enumerate() {
        if id as usize >= table.rows {
            return Err(EngineError::TokenOutOfRange { id, vocab: table.rows });
        }
        table.row_f32(id as usize, &mut out[t * d..(t + 1) * d]);
    }
    Ok(())
}
