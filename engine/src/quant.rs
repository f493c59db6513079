//! Weight-only quantizers: rows of f32 weights → the byte layouts of [`WeightFormat`]. The one
//! definition both the offline converter and every backend's load-time conversion follow.
//!
//! - **Int8**, per output row: `scale = absmax / 127` (f32), `q = clamp(round(w / scale), ±127)`.
//!   Every element is within `scale / 2` of its value (no clipping; −128 is unused).
//! - **Int4**, per group of `group` consecutive inputs of a row, symmetric (zero point 8):
//!   the search of llama.cpp's `make_qx_quants`. With `m` the group's element of largest
//!   magnitude (the first on ties), for each `k` in −9..=9 take the trial codes
//!   `t = clamp(round(w · inv), −8, 7)` with `inv = −(8 + k/10) / m`, and their least-squares
//!   scale `s = Σ w·t / Σ t²`, whose squared error is `Σ w² − (Σ w·t)² / Σ t²` (sums in f64, in
//!   element order). The `s` with the least error (the first on ties) is rounded to bf16, and
//!   the stored codes are `clamp(round(w / s), −8, 7) + 8` for that rounded scale, so each element
//!   decodes to the nearest of its group's 16 levels. A group of zeros gets scale 0, codes 8.
//!
//! Why the search: aiming the extreme at −8 uses all 16 codes, and fitting the scale to the
//! codes instead of the extreme lowers the error by a further 8–17 %; together 21–32 % below
//! `absmax / 7` on every matrix measured, at no cost in bytes (bench/NOTES.md, "Quantization"). `round` is half away from zero (Rust's `f32::round`, CUDA's `roundf`); `/` and
//! `·` are single f32 operations.

use std::fmt;

use half::bf16;

use crate::weight::WeightFormat;

/// Why a matrix could not be quantized.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantizeError {
    /// A NaN or infinite weight (element `col` of row `row`).
    NonFinite { row: usize, col: usize, value: f32 },
    /// Buffers that do not match the format and shape.
    Shape(String),
    /// A target format this module does not produce.
    Unsupported(WeightFormat),
}

impl fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantizeError::NonFinite { row, col, value } => write!(f, "weight [{row}, {col}] = {value} is not finite"),
            QuantizeError::Shape(s) => f.write_str(s),
            QuantizeError::Unsupported(to) => write!(f, "quantizing to {to} is not supported (targets: bf16, f32, int8, int4)"),
        }
    }
}

impl std::error::Error for QuantizeError {}

/// Quantizes `src` (f32 `[rows, cols]`, rows = `src.len() / cols`) into `to`'s layout: `data`
/// and `scales` must have exactly the sizes [`WeightFormat::data_bytes`] and
/// [`WeightFormat::scales_bytes`] give. `first_row` only numbers rows in errors.
pub fn quantize_rows(
    to: WeightFormat,
    cols: usize,
    src: &[f32],
    first_row: usize,
    data: &mut [u8],
    scales: &mut [u8],
) -> Result<(), QuantizeError> {
    if cols == 0 || !src.len().is_multiple_of(cols) {
        return Err(QuantizeError::Shape(format!("{} values do not form rows of {cols}", src.len())));
    }
    let rows = src.len() / cols;
    to.check_shape(1, cols).map_err(QuantizeError::Shape)?;
    // Bytes of one row's codes and scales.
    let (row_data, row_scales) = (to.data_bytes(1, cols), to.scales_bytes(1, cols));
    if data.len() != rows * row_data || scales.len() != rows * row_scales {
        return Err(QuantizeError::Shape(format!(
            "{to} {rows}×{cols}: data and scales must be {} and {} bytes, got {} and {}",
            rows * row_data,
            rows * row_scales,
            data.len(),
            scales.len()
        )));
    }
    for (r, row) in src.chunks_exact(cols).enumerate() {
        if let Some(col) = row.iter().position(|v| !v.is_finite()) {
            return Err(QuantizeError::NonFinite { row: first_row + r, col, value: row[col] });
        }
        let d = &mut data[r * row_data..(r + 1) * row_data];
        let s = &mut scales[r * row_scales..(r + 1) * row_scales];
        match to {
            WeightFormat::F32 => d.copy_from_slice(bytemuck::cast_slice(row)),
            WeightFormat::Bf16 => {
                for (o, &v) in d.chunks_exact_mut(2).zip(row) {
                    o.copy_from_slice(&bf16::from_f32(v).to_le_bytes());
                }
            }
            WeightFormat::Int8 => s.copy_from_slice(&int8_row(row, d).to_le_bytes()),
            WeightFormat::Int4 { group } => int4_row(row, group, d, s),
            WeightFormat::Mxfp4 => return Err(QuantizeError::Unsupported(to)),
        }
    }
    Ok(())
}

/// One row to int8 codes (two's complement bytes); returns the row's scale.
pub fn int8_row(row: &[f32], codes: &mut [u8]) -> f32 {
    let absmax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = absmax / 127.0;
    for (c, &w) in codes.iter_mut().zip(row) {
        let q = if scale == 0.0 { 0.0 } else { (w / scale).round().clamp(-127.0, 127.0) };
        *c = q as i8 as u8;
    }
    scale
}

/// One row to packed int4 codes (`row.len() / 2` bytes, even element in the low nibble) and
/// bf16 scales (`row.len() / group` of them, little-endian).
pub fn int4_row(row: &[f32], group: usize, packed: &mut [u8], scales: &mut [u8]) {
    for (g, (ws, s)) in row.chunks_exact(group).zip(scales.chunks_exact_mut(2)).enumerate() {
        let scale = int4_group_scale(ws);
        s.copy_from_slice(&scale.to_le_bytes());
        let scale = scale.to_f32();
        let bytes = &mut packed[g * group / 2..(g + 1) * group / 2];
        for (b, pair) in bytes.iter_mut().zip(ws.chunks_exact(2)) {
            *b = int4_code(pair[0], scale) | (int4_code(pair[1], scale) << 4);
        }
    }
}

/// The unsigned code (0..=15) of `w` for a group scale: the nearest level, offset by 8.
#[inline]
pub fn int4_code(w: f32, scale: f32) -> u8 {
    let q = if scale == 0.0 { 0.0 } else { (w / scale).round().clamp(-8.0, 7.0) };
    (q as i32 + 8) as u8
}

/// The scale of one int4 group by the search described in the module docs.
pub fn int4_group_scale(g: &[f32]) -> bf16 {
    let m = g.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
    if m == 0.0 {
        return bf16::ZERO;
    }
    let sum_w2: f64 = g.iter().map(|&w| w as f64 * w as f64).sum();
    let mut best = (f64::INFINITY, 0.0f64);
    for k in -9..=9 {
        let inv = -(8.0 + 0.1 * k as f32) / m;
        let (mut wt, mut tt) = (0f64, 0f64);
        for &w in g {
            let t = (w * inv).round().clamp(-8.0, 7.0) as f64;
            wt += w as f64 * t;
            tt += t * t;
        }
        // |m · inv| ≥ 7.1, so m's code is ±7 or −8 and tt > 0.
        let err = sum_w2 - wt * wt / tt;
        if err < best.0 {
            best = (err, wt / tt);
        }
    }
    bf16::from_f64(best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in (−1, 1) with a few larger ones.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503))
                    .rotate_left(13)
                    .wrapping_mul(2_246_822_519);
                let u = (h >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0;
                if h.is_multiple_of(97) { u * 6.0 } else { u }
            })
            .collect()
    }

    fn decode_int4(packed: &[u8], scales: &[u8], group: usize, c: usize) -> f32 {
        let nib = crate::weight::nibble(packed, c);
        let s = bf16::from_le_bytes([scales[2 * (c / group)], scales[2 * (c / group) + 1]]).to_f32();
        (nib as f32 - 8.0) * s
    }

    #[test]
    fn int8_error_is_at_most_half_a_step() {
        for cols in [1, 2, 7, 31, 64, 97] {
            let row = values(cols, cols as u32);
            let mut codes = vec![0u8; cols];
            let s = int8_row(&row, &mut codes);
            for (c, (&w, &q)) in row.iter().zip(&codes).enumerate() {
                let err = (w - q as i8 as f32 * s).abs();
                assert!(err <= s * 0.5 * (1.0 + 1e-6), "cols {cols} element {c}: {w} → {q} × {s}, error {err}");
                assert!(q as i8 != -128);
            }
        }
    }

    #[test]
    fn int4_codes_are_the_nearest_level_of_their_group() {
        for group in [32, 64, 128] {
            let row = values(4 * group, group as u32);
            let (mut packed, mut scales) = (vec![0u8; 2 * group], vec![0u8; 8]);
            int4_row(&row, group, &mut packed, &mut scales);
            for (c, &w) in row.iter().enumerate() {
                let s = bf16::from_le_bytes([scales[2 * (c / group)], scales[2 * (c / group) + 1]]).to_f32().abs();
                let got = decode_int4(&packed, &scales, group, c);
                let err = (w - got).abs();
                // Inside the grid: within half a step. Beyond it (clipped): at the grid's end.
                let in_grid = (w / s).abs() <= 7.5;
                assert!(
                    err <= s * 0.5 * (1.0 + 1e-6) || (!in_grid && (got.abs() >= 7.0 * s)),
                    "g{group} element {c}: {w} → {got} (step {s})"
                );
            }
        }
    }

    #[test]
    fn int4_search_beats_absmax_over_seven() {
        let group = 32;
        let row = values(32 * 64, 5);
        let (mut packed, mut scales) = (vec![0u8; row.len() / 2], vec![0u8; row.len() / group * 2]);
        int4_row(&row, group, &mut packed, &mut scales);
        let searched: f64 = (0..row.len()).map(|c| (row[c] - decode_int4(&packed, &scales, group, c)) as f64).map(|e| e * e).sum();
        let plain: f64 = row
            .chunks_exact(group)
            .flat_map(|g| {
                let s = bf16::from_f32(g.iter().fold(0f32, |m, v| m.max(v.abs())) / 7.0).to_f32();
                g.iter().map(move |&w| (w - (w / s).round() * s) as f64)
            })
            .map(|e| e * e)
            .sum();
        assert!(searched < 0.9 * plain, "searched {searched} vs absmax/7 {plain}");
    }

    #[test]
    fn packing_is_low_nibble_first_and_exact_on_the_grid() {
        // Values exactly on the grid of scale −0.5 (extreme 4.0 ↦ −8) come back bit for bit.
        let mut row = vec![0f32; 32];
        for (c, v) in row.iter_mut().enumerate() {
            *v = -0.5 * (c as f32 % 16.0 - 8.0);
        }
        let (mut packed, mut scales) = (vec![0u8; 16], vec![0u8; 2]);
        int4_row(&row, 32, &mut packed, &mut scales);
        assert_eq!(bf16::from_le_bytes([scales[0], scales[1]]).to_f32(), -0.5);
        assert_eq!(&packed[..8], &[0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
        for (c, &w) in row.iter().enumerate() {
            assert_eq!(decode_int4(&packed, &scales, 32, c), w);
        }
    }

    #[test]
    fn zeros_and_bad_input() {
        let mut d = vec![0u8; 16];
        let mut s = vec![0u8; 2];
        quantize_rows(WeightFormat::Int4 { group: 32 }, 32, &[0.0; 32], 0, &mut d, &mut s).unwrap();
        assert!(d.iter().all(|&b| b == 0x88) && s == [0, 0]);
        let mut row = vec![0.5f32; 64];
        row[33] = f32::NAN;
        let mut d = vec![0u8; 64];
        let mut s = vec![0u8; 8];
        let e = quantize_rows(WeightFormat::Int8, 32, &row, 10, &mut d, &mut s).unwrap_err();
        assert_eq!(e.to_string(), "weight [11, 1] = NaN is not finite");
        let e = quantize_rows(WeightFormat::Int4 { group: 64 }, 96, &[0.0; 96], 0, &mut [0; 48], &mut [0; 2]).unwrap_err();
        assert!(e.to_string().contains("not a multiple of the group size 64"), "{e}");
        let e = quantize_rows(WeightFormat::Int8, 4, &[0.0; 8], 0, &mut [0; 8], &mut [0; 4]).unwrap_err();
        assert!(e.to_string().contains("must be 8 and 8 bytes"), "{e}");
        assert!(matches!(
            quantize_rows(WeightFormat::Mxfp4, 32, &[0.0; 32], 0, &mut [0; 16], &mut [0; 1]),
            Err(QuantizeError::Unsupported(_))
        ));
    }
}
