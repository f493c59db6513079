//! Element types of backend buffers.

use std::fmt;

/// The element type of a buffer. Buffers are typed and sized when they are allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    /// bfloat16, stored as its 16 raw bits (little-endian).
    Bf16,
    /// Raw bytes: MXFP4 codes and E8M0 scales, packed int4, int8 (as two's complement).
    U8,
    I8,
    U32,
}

impl DType {
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::Bf16 => 2,
            DType::U8 | DType::I8 => 1,
        }
    }

    /// Bytes for `len` elements, or `None` on overflow.
    pub fn bytes(self, len: usize) -> Option<usize> {
        len.checked_mul(self.size())
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::Bf16 => "bf16",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::U32 => "u32",
        })
    }
}
