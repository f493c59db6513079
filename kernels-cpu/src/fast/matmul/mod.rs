//! The matmul family's bodies: tiles of rows times tokens for every weight format, exact
//! (`tile`, over f32 activations, reordered for the 4-bit formats by `prepare`) and q8
//! (`q8_tile`, over int8 activations quantized by `q8`), and the formats as types (`format`).
//! qkv_rope, moe_route and moe_experts run their projections through the same tiles.

pub mod bf16_dot;
pub mod block_row;
pub mod format;
pub mod prepare;
pub mod q8;
pub mod q8_tile;
pub mod tile;
