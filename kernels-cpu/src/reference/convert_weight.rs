//! Weight conversion: each row decoded to f32 through its format's scalar definition
//! (`WeightView::row_f32`), then quantized by `quant::quantize_rows`, the engine's single
//! definition of the target layouts. Blocks of rows in parallel; the result does not depend
//! on the split.

use gptoss_engine::WeightFormat;
use gptoss_engine::quant::{QuantizeError, quantize_rows};

use crate::pool::for_each_chunk;
use crate::view::WeightView;

use super::ROWS_PER_TASK;

/// One task's rows: its first global row (expert-major), its outputs, and its outcome.
struct Task<'a> {
    first: usize,
    data: &'a mut [u8],
    scales: &'a mut [u8],
    result: Result<(), QuantizeError>,
}

/// Writes `w` (all its stacked matrices) in format `to` into `data` and `scales`, which must
/// have the sizes of `to`'s layout for `w.experts × w.rows × w.cols`.
pub fn convert_weight(w: &WeightView, to: WeightFormat, data: &mut [u8], scales: &mut [u8]) -> Result<(), QuantizeError> {
    let rows = w.experts * w.rows;
    let (row_data, row_scales) = (to.data_bytes(1, w.cols), to.scales_bytes(1, w.cols));
    if data.len() != rows * row_data || scales.len() != rows * row_scales {
        return Err(QuantizeError::Shape(format!(
            "{to} {rows}×{}: data and scales must be {} and {} bytes, got {} and {}",
            w.cols,
            rows * row_data,
            rows * row_scales,
            data.len(),
            scales.len()
        )));
    }
    let scale_chunks: Box<dyn Iterator<Item = &mut [u8]>> = if row_scales == 0 {
        Box::new(std::iter::repeat_with(|| &mut [][..]))
    } else {
        Box::new(scales.chunks_mut(ROWS_PER_TASK * row_scales))
    };
    let mut tasks: Vec<Task> = data
        .chunks_mut(ROWS_PER_TASK * row_data)
        .zip(scale_chunks)
        .enumerate()
        .map(|(i, (data, scales))| Task { first: i * ROWS_PER_TASK, data, scales, result: Ok(()) })
        .collect();
    for_each_chunk(&mut tasks, 1, |_, task| {
        let t = &mut task[0];
        let n = t.data.len() / row_data;
        let mut row = vec![0f32; n * w.cols];
        for (i, out) in row.chunks_exact_mut(w.cols).enumerate() {
            let g = t.first + i;
            w.expert(g / w.rows).row_f32(g % w.rows, out);
        }
        t.result = quantize_rows(to, w.cols, &row, t.first, t.data, t.scales);
    });
    tasks.into_iter().try_for_each(|t| t.result)
}
