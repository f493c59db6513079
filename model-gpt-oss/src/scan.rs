//! Finding weights that are not finite (`gptoss inspect --check`). A NaN or an infinity in a
//! weight loads like any other value and turns every logit it reaches into NaN; the scan names
//! the first one, in checkpoint order, by tensor and index.
//!
//! What can hold such a value: BF16 and F32 tensors (matrices, vectors, int4 and int8 scales)
//! and MXFP4's E8M0 scales, whose byte 0xFF is NaN. FP4, int8 and int4 codes cannot.

use rayon::prelude::*;

use crate::error::{ModelError, Result};
use crate::safetensors::StDtype;
use crate::source::{OpenedModel, TensorData};
use crate::tensors::{Kind, TensorSpec, expected_tensors};

/// Elements checked per parallel task.
const BLOCK: usize = 1 << 16;

/// An element's value, if it is not finite: its bits as stored → the text for the message.
type Check<'a> = dyn Fn(usize, usize) -> Option<(usize, String)> + Sync + 'a;

/// Scans every weight of `model` that can hold a NaN or an infinity, telling `progress`
/// (tensors done, tensors in all). The error names the first such weight.
pub fn check_finite(model: &OpenedModel, progress: &mut dyn FnMut(usize, usize)) -> Result<()> {
    let specs = expected_tensors(&model.config);
    for (i, spec) in specs.iter().enumerate() {
        if let Some((index, value)) = first_non_finite(model, spec) {
            return Err(ModelError::NonFinite { tensor: spec.name.clone(), index: coordinates(&spec.shape, index), value });
        }
        progress(i + 1, specs.len());
    }
    Ok(())
}

/// The first element of one tensor that is not finite, with its value as text.
fn first_non_finite(model: &OpenedModel, spec: &TensorSpec) -> Option<(usize, String)> {
    let e8m0 = spec.kind == Kind::Mx && spec.name.ends_with("_scales");
    let float = matches!(spec.kind, Kind::Matrix | Kind::Vector | Kind::Scales(_));
    if !(e8m0 || float) {
        return None;
    }
    let n = spec.elements();
    let check: Box<Check> = match model.tensor(spec) {
        TensorData::Host(bytes, StDtype::F32) => Box::new(move |from, to| {
            let b = &bytes.as_bytes()[4 * from..4 * to];
            let values = b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            values.enumerate().find(|(_, v)| !v.is_finite()).map(|(i, v)| (from + i, v.to_string()))
        }),
        TensorData::Host(bytes, StDtype::Bf16) => Box::new(move |from, to| {
            let b = &bytes.as_bytes()[2 * from..2 * to];
            let values = b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32());
            values.enumerate().find(|(_, v)| !v.is_finite()).map(|(i, v)| (from + i, v.to_string()))
        }),
        TensorData::Host(bytes, _) => Box::new(move |from, to| e8m0_nan(from, &bytes.as_bytes()[from..to])),
        TensorData::Synth(t, StDtype::Bf16) => Box::new(move |from, to| {
            let mut bits = vec![0u16; to - from];
            t.fill_bf16(from, &mut bits);
            let values = bits.iter().map(|&b| half::bf16::from_bits(b).to_f32());
            values.enumerate().find(|(_, v)| !v.is_finite()).map(|(i, v)| (from + i, v.to_string()))
        }),
        TensorData::Synth(t, _) => Box::new(move |from, to| {
            let mut bytes = vec![0u8; to - from];
            t.fill_bytes(from, &mut bytes);
            e8m0_nan(from, &bytes)
        }),
    };
    (0..n.div_ceil(BLOCK)).into_par_iter().find_map_first(|b| check(b * BLOCK, (b * BLOCK + BLOCK).min(n)))
}

/// E8M0 scales (2^(e − 127)) have one NaN, 0xFF, and no infinity.
fn e8m0_nan(first: usize, scales: &[u8]) -> Option<(usize, String)> {
    scales.iter().position(|&s| s == 0xFF).map(|i| (first + i, "NaN (E8M0 scale 0xff)".into()))
}

/// A flat index as coordinates in `shape` (row-major).
fn coordinates(shape: &[usize], mut index: usize) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for (o, &d) in out.iter_mut().zip(shape).rev() {
        *o = index % d.max(1);
        index /= d.max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_indices_become_coordinates() {
        assert_eq!(coordinates(&[3, 4], 7), vec![1, 3]);
        assert_eq!(coordinates(&[2, 3, 4], 23), vec![1, 2, 3]);
        assert_eq!(coordinates(&[5], 4), vec![4]);
    }

    #[test]
    fn only_0xff_is_an_e8m0_nan() {
        assert_eq!(e8m0_nan(10, &[0, 127, 254]), None);
        assert_eq!(e8m0_nan(10, &[0, 255, 255]).map(|(i, _)| i), Some(11));
    }
}
