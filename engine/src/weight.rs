//! Weight formats and their exact byte layouts.
//!
//! A weight is a matrix `W` of `rows × cols` (or `experts` such matrices stacked), used as
//! `y = W · x + b`: a row is one output feature, `cols` is the reduction (input) dimension.
//! All multi-byte values are little-endian. Layouts, per format:
//!
//! | format | `data` | `scales` | element `W[r, c]` |
//! |---|---|---|---|
//! | `F32` | f32 `[E, rows, cols]` | — | `data[r, c]` |
//! | `Bf16` | bf16 `[E, rows, cols]` | — | `data[r, c]` widened to f32 |
//! | `Int8` | i8 `[E, rows, cols]` | f32 `[E, rows]` | `data[r, c] · scales[r]` |
//! | `Int4 { group }` | u8 `[E, rows, cols / 2]` | bf16 `[E, rows, cols / group]` | `(nib(r, c) − 8) · scales[r, c / group]` |
//! | `Mxfp4` | u8 `[E, rows, cols / 32, 16]` | u8 (E8M0) `[E, rows, cols / 32]` | `FP4[nib(r, c)] · 2^(scales[r, c / 32] − 127)` |
//!
//! `nib(r, c)` is the 4-bit code of element `c` of row `r`: byte `c / 2` of the row holds element
//! `c` in its **low** nibble when `c` is even and in its **high** nibble when `c` is odd (the
//! gpt-oss checkpoint order; ggml's order differs). So 16 bytes hold 32 consecutive elements.
//! `FP4` is the E2M1 table `{0, .5, 1, 1.5, 2, 3, 4, 6, −0, −.5, −1, −1.5, −2, −3, −4, −6}`.
//! Int4 codes are unsigned with an implicit zero point of 8 (range −8..7 after the shift); the
//! scale may be negative (the quantizer aims a group's largest-magnitude element at −8, the long
//! end of the range, whichever its sign). There is no zero point: at equal bytes per weight a symmetric group of 32 matched or
//! beat an asymmetric group of 64 on the matrices measured (bench/NOTES.md, "Quantization").
//! The quantizers that produce these formats are in `quant`.
//!
//! A bias, when present, is f32 `[E, rows]`.

use std::fmt;

use crate::dtype::DType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    F32,
    Bf16,
    /// Symmetric int8 with one f32 scale per output row.
    Int8,
    /// Symmetric 4-bit codes, two per byte, one bf16 scale per `group` consecutive inputs.
    Int4 {
        group: usize,
    },
    /// OCP MX FP4 (E2M1) in blocks of 32 inputs with one E8M0 scale byte per block.
    Mxfp4,
}

/// The supported int4 group sizes.
pub const INT4_GROUPS: [usize; 3] = [32, 64, 128];

/// E2M1 code → value (index = the 4-bit code).
pub const FP4_VALUES: [f32; 16] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];

impl WeightFormat {
    /// Checks that a `rows × cols` matrix can be stored in this format.
    pub fn check_shape(self, rows: usize, cols: usize) -> Result<(), String> {
        if rows == 0 || cols == 0 {
            return Err(format!("{self} matrix of {rows}×{cols} is empty"));
        }
        match self {
            WeightFormat::F32 | WeightFormat::Bf16 | WeightFormat::Int8 => Ok(()),
            WeightFormat::Int4 { group } => {
                if !INT4_GROUPS.contains(&group) {
                    Err(format!("int4 group size {group} is not one of {INT4_GROUPS:?}"))
                } else if !cols.is_multiple_of(group) {
                    Err(format!("int4: {cols} input columns are not a multiple of the group size {group}"))
                } else {
                    Ok(())
                }
            }
            WeightFormat::Mxfp4 => {
                if !cols.is_multiple_of(32) {
                    Err(format!("mxfp4: {cols} input columns are not a multiple of 32"))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Element type and count of `data` for one `rows × cols` matrix.
    pub fn data_layout(self, rows: usize, cols: usize) -> (DType, usize) {
        match self {
            WeightFormat::F32 => (DType::F32, rows * cols),
            WeightFormat::Bf16 => (DType::Bf16, rows * cols),
            WeightFormat::Int8 => (DType::I8, rows * cols),
            WeightFormat::Int4 { .. } | WeightFormat::Mxfp4 => (DType::U8, rows * cols / 2),
        }
    }

    /// Element type and count of `scales` for one `rows × cols` matrix, if the format has them.
    pub fn scales_layout(self, rows: usize, cols: usize) -> Option<(DType, usize)> {
        match self {
            WeightFormat::F32 | WeightFormat::Bf16 => None,
            WeightFormat::Int8 => Some((DType::F32, rows)),
            WeightFormat::Int4 { group } => Some((DType::Bf16, rows * (cols / group))),
            WeightFormat::Mxfp4 => Some((DType::U8, rows * (cols / 32))),
        }
    }

    /// Bytes of `data` for one `rows × cols` matrix.
    pub fn data_bytes(self, rows: usize, cols: usize) -> usize {
        let (dt, n) = self.data_layout(rows, cols);
        dt.size() * n
    }

    /// Bytes of `scales` for one `rows × cols` matrix (0 when the format has none).
    pub fn scales_bytes(self, rows: usize, cols: usize) -> usize {
        self.scales_layout(rows, cols).map_or(0, |(st, sn)| st.size() * sn)
    }

    /// Bytes one `rows × cols` matrix occupies (data plus scales, no bias).
    pub fn matrix_bytes(self, rows: usize, cols: usize) -> usize {
        self.data_bytes(rows, cols) + self.scales_bytes(rows, cols)
    }

    /// Short name used in kernel names: `bf16`, `f32`, `i8`, `i4`, `mf4`.
    pub fn kernel_tag(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::Bf16 => "bf16",
            WeightFormat::Int8 => "i8",
            WeightFormat::Int4 { .. } => "i4",
            WeightFormat::Mxfp4 => "mf4",
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightFormat::Int4 { group } => write!(f, "int4/g{group}"),
            WeightFormat::F32 => f.write_str("f32"),
            WeightFormat::Bf16 => f.write_str("bf16"),
            WeightFormat::Int8 => f.write_str("int8"),
            WeightFormat::Mxfp4 => f.write_str("mxfp4"),
        }
    }
}

/// One weight matrix (or `experts` stacked matrices) living in a backend's buffers.
pub struct Weight<Buf> {
    pub format: WeightFormat,
    /// Number of stacked matrices: 1 for a dense layer, the expert count for MoE weights.
    pub experts: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Buf,
    pub scales: Option<Buf>,
    pub bias: Option<Buf>,
}

impl<Buf> Weight<Buf> {
    /// Bytes of data and scales of one of the stacked matrices.
    pub fn matrix_bytes(&self) -> usize {
        self.format.matrix_bytes(self.rows, self.cols)
    }
}

/// Decodes the 4-bit code of element `c` from a packed row (checkpoint nibble order).
#[inline]
pub fn nibble(row: &[u8], c: usize) -> u8 {
    let byte = row[c / 2];
    if c.is_multiple_of(2) { byte & 0x0f } else { byte >> 4 }
}

/// `2^(e − 127)` for an E8M0 scale byte, exact in f64 (e = 255 gives 2^128, not NaN).
#[inline]
pub fn e8m0_to_f64(e: u8) -> f64 {
    (2.0f64).powi(e as i32 - 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked() {
        assert!(WeightFormat::Mxfp4.check_shape(4, 2880).is_ok());
        assert!(WeightFormat::Mxfp4.check_shape(4, 2881).unwrap_err().contains("multiple of 32"));
        assert!(WeightFormat::Int4 { group: 48 }.check_shape(4, 96).is_err());
        assert!(WeightFormat::Int4 { group: 64 }.check_shape(4, 96).is_err());
        assert!(WeightFormat::Int4 { group: 32 }.check_shape(4, 96).is_ok());
        assert!(WeightFormat::Bf16.check_shape(0, 3).is_err());
    }

    #[test]
    fn byte_counts_match_the_checkpoint() {
        // gpt-oss-20b: one layer's gate_up blocks + scales for 32 experts.
        let per_expert = WeightFormat::Mxfp4.matrix_bytes(5760, 2880);
        assert_eq!(per_expert * 32, 265_420_800 + 16_588_800);
        assert_eq!(WeightFormat::Bf16.matrix_bytes(201_088, 2880), 1_158_266_880);
        assert_eq!(WeightFormat::Int8.matrix_bytes(10, 64), 640 + 40);
        assert_eq!(WeightFormat::Int4 { group: 32 }.matrix_bytes(10, 64), 320 + 40);
    }

    #[test]
    fn nibble_order_is_low_first() {
        let row = [0x21u8, 0x43];
        assert_eq!((0..4).map(|c| nibble(&row, c)).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn e8m0_extremes_are_exact() {
        assert_eq!(e8m0_to_f64(127), 1.0);
        assert_eq!(e8m0_to_f64(0), 2f64.powi(-127));
        assert_eq!(e8m0_to_f64(255), 2f64.powi(128));
    }
}
