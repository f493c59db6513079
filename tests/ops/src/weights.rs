//! Random weights of every format as bytes, loadable into any backend, so the backend under
//! test and the reference read the same matrices.

use gptoss_engine::{Backend, DType, Weight, WeightFormat};
use half::bf16;

use crate::io::upload;
use crate::rng::Rng;

/// A weight's bytes (`experts` stacked `rows × cols` matrices in `format`'s layout).
#[derive(Clone, Debug)]
pub struct Spec {
    pub format: WeightFormat,
    pub experts: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
    pub scales: Vec<u8>,
    pub bias: Option<Vec<f32>>,
}

impl Spec {
    /// Values of the scale a checkpoint holds: f32/bf16 uniform in ±1, int8 codes with row
    /// scales in 0.01..0.03, int4 codes with group scales in ±0.05, MXFP4 codes (every code
    /// appears) with block scales around 2^0; bias in ±0.5.
    pub fn random(format: WeightFormat, experts: usize, rows: usize, cols: usize, bias: bool, rng: &mut Rng) -> Spec {
        let n = experts * rows * cols;
        let (data, scales) = match format {
            WeightFormat::F32 => (bytemuck::cast_slice(&rng.floats(n, 1.0)).to_vec(), vec![]),
            WeightFormat::Bf16 => (rng.floats(n, 1.0).iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(), vec![]),
            WeightFormat::Int8 => (rng.bytes(n), (0..experts * rows).flat_map(|_| (0.01 + 0.02 * rng.f().abs()).to_le_bytes()).collect()),
            WeightFormat::Int4 { group } => {
                (rng.bytes(n / 2), (0..n / group).flat_map(|_| bf16::from_f32(0.05 * rng.f()).to_le_bytes()).collect())
            }
            WeightFormat::Mxfp4 => (rng.bytes(n / 2), (0..n / 32).map(|_| 120 + (rng.word() % 12) as u8).collect()),
        };
        let bias = bias.then(|| rng.floats(experts * rows, 0.5));
        Spec { format, experts, rows, cols, data, scales, bias }
    }

    pub fn load<B: Backend>(&self, b: &mut B) -> Weight<B::Buffer> {
        let (dt, _) = self.format.data_layout(self.rows, self.cols);
        let scales = self.format.scales_layout(self.rows, self.cols).map(|(st, _)| upload(b, st, &self.scales));
        Weight {
            format: self.format,
            experts: self.experts,
            rows: self.rows,
            cols: self.cols,
            data: upload(b, dt, &self.data),
            scales,
            bias: self.bias.as_ref().map(|v| upload(b, DType::F32, v)),
        }
    }
}
