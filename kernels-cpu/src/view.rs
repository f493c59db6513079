//! Borrowed, validated views of weights and KV-cache layers: what the kernels receive.

use gptoss_engine::weight::{FP4_VALUES, e8m0_to_f64, nibble};
use gptoss_engine::{DType, DeviceBuffer, EngineError, KvLayer, Result, Weight, WeightFormat, checks};
use half::bf16;

use crate::buffer::CpuBuffer;

/// Head dimensions the CPU kernels support (they keep a head's accumulators on the stack).
pub const MAX_HEAD_DIM: usize = 256;

/// A weight whose buffers were checked against its format and shape.
#[derive(Clone, Copy)]
pub struct WeightView<'a> {
    pub format: WeightFormat,
    pub experts: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
    pub scales: &'a [u8],
    /// f32 `[experts, rows]`.
    pub bias: Option<&'a [f32]>,
}

impl<'a> WeightView<'a> {
    pub fn new(w: &'a Weight<CpuBuffer>, op: &'static str) -> Result<Self> {
        checks::weight(w, op)?;
        let scales = w.scales.as_ref().map_or(&[][..], |s| s.bytes());
        let bias = w.bias.as_ref().map(|b| b.f32s(op)).transpose()?;
        Ok(WeightView { format: w.format, experts: w.experts, rows: w.rows, cols: w.cols, data: w.data.bytes(), scales, bias })
    }

    /// The view of expert `e`'s matrix (a dense weight has only expert 0).
    pub fn expert(&self, e: usize) -> WeightView<'a> {
        let data_bytes = self.format.data_bytes(self.rows, self.cols);
        let scale_bytes = self.format.scales_bytes(self.rows, self.cols);
        WeightView {
            experts: 1,
            data: &self.data[e * data_bytes..(e + 1) * data_bytes],
            scales: &self.scales[e * scale_bytes..(e + 1) * scale_bytes],
            bias: self.bias.map(|b| &b[e * self.rows..(e + 1) * self.rows]),
            ..*self
        }
    }

    pub fn bias_at(&self, r: usize) -> f64 {
        self.bias.map_or(0.0, |b| b[r] as f64)
    }

    /// `Σ_c W[r, c] · x[c]` in f64 for row `r` of a single matrix (expert already selected).
    /// The scalar definition of every format's decode; each product is exact in f64 (for the q8
    /// reference's f64 activations too, with the integer formats it serves: an int8 times a
    /// 24-bit scale, times a weight of at most 8 significant bits).
    pub fn row_dot<T: Copy + Into<f64>>(&self, r: usize, x: &[T]) -> f64 {
        let cols = self.cols;
        let xv = |c: usize| -> f64 { x[c].into() };
        match self.format {
            WeightFormat::F32 => {
                let row = &self.data[r * cols * 4..(r + 1) * cols * 4];
                dot4((0..cols).map(|c| f32::from_le_bytes(row[4 * c..4 * c + 4].try_into().unwrap()) as f64 * xv(c)))
            }
            WeightFormat::Bf16 => {
                let row = &self.data[r * cols * 2..(r + 1) * cols * 2];
                dot4((0..cols).map(|c| bf16_at(row, c) as f64 * xv(c)))
            }
            WeightFormat::Int8 => {
                let row = &self.data[r * cols..(r + 1) * cols];
                let scale = f32::from_le_bytes(self.scales[4 * r..4 * r + 4].try_into().unwrap()) as f64;
                dot4(row.iter().enumerate().map(|(c, &q)| q as i8 as f64 * xv(c))) * scale
            }
            WeightFormat::Int4 { group } => {
                let row = &self.data[r * cols / 2..(r + 1) * cols / 2];
                let groups = cols / group;
                let mut acc = 0.0;
                for g in 0..groups {
                    let scale = bf16_at(&self.scales[r * groups * 2..], g) as f64;
                    let part = dot4((g * group..(g + 1) * group).map(|c| (nibble(row, c) as f64 - 8.0) * xv(c)));
                    acc += part * scale;
                }
                acc
            }
            WeightFormat::Mxfp4 => {
                let blocks = cols / 32;
                let row = &self.data[r * blocks * 16..(r + 1) * blocks * 16];
                let scales = &self.scales[r * blocks..(r + 1) * blocks];
                let mut acc = 0.0;
                for b in 0..blocks {
                    let block = &row[16 * b..16 * b + 16];
                    let part = dot4((0..32).map(|j| FP4_VALUES[nibble(block, j) as usize] as f64 * xv(32 * b + j)));
                    acc += part * e8m0_to_f64(scales[b]);
                }
                acc
            }
        }
    }

    /// Row `r` decoded to f32 (exact for every format but int8/int4, whose products with the
    /// scale round once).
    pub fn row_f32(&self, r: usize, out: &mut [f32]) {
        let cols = self.cols;
        match self.format {
            WeightFormat::F32 => {
                for (c, o) in out.iter_mut().enumerate() {
                    let i = (r * cols + c) * 4;
                    *o = f32::from_le_bytes(self.data[i..i + 4].try_into().unwrap());
                }
            }
            WeightFormat::Bf16 => {
                let row = &self.data[r * cols * 2..];
                for (c, o) in out.iter_mut().enumerate() {
                    *o = bf16_at(row, c);
                }
            }
            _ => {
                // Decode through the dot product with unit vectors would be wasteful; go element
                // by element with the same formulas.
                for (c, o) in out.iter_mut().enumerate() {
                    *o = self.element(r, c) as f32;
                }
            }
        }
    }

    /// `W[r, c]` in f64.
    pub fn element(&self, r: usize, c: usize) -> f64 {
        let cols = self.cols;
        match self.format {
            WeightFormat::F32 => {
                let i = (r * cols + c) * 4;
                f32::from_le_bytes(self.data[i..i + 4].try_into().unwrap()) as f64
            }
            WeightFormat::Bf16 => bf16_at(&self.data[r * cols * 2..], c) as f64,
            WeightFormat::Int8 => {
                let scale = f32::from_le_bytes(self.scales[4 * r..4 * r + 4].try_into().unwrap()) as f64;
                self.data[r * cols + c] as i8 as f64 * scale
            }
            WeightFormat::Int4 { group } => {
                let groups = cols / group;
                let scale = bf16_at(&self.scales[r * groups * 2..], c / group) as f64;
                (nibble(&self.data[r * cols / 2..], c) as f64 - 8.0) * scale
            }
            WeightFormat::Mxfp4 => {
                let blocks = cols / 32;
                let q = nibble(&self.data[r * cols / 2..], c);
                FP4_VALUES[q as usize] as f64 * e8m0_to_f64(self.scales[r * blocks + c / 32])
            }
        }
    }
}

/// Element `i` of a little-endian bf16 array, widened to f32.
#[inline]
pub fn bf16_at(bytes: &[u8], i: usize) -> f32 {
    bf16::from_bits(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])).to_f32()
}

/// A sum of f64 terms with four interleaved partial sums (shorter dependency chains than one
/// running sum, same f64 accuracy class).
#[inline]
pub fn dot4(terms: impl Iterator<Item = f64>) -> f64 {
    let mut acc = [0.0f64; 4];
    for (i, t) in terms.enumerate() {
        acc[i & 3] += t;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// The rotary embedding's inverse frequencies (one per dimension pair) and the factor on cos
/// and sin.
#[derive(Clone, Copy)]
pub struct RopeView<'a> {
    pub inv_freq: &'a [f32],
    pub concentration: f32,
}

/// One KV-cache layer's storage, typed.
pub enum KvData<'a> {
    Bf16(&'a [u16]),
    F32(&'a [f32]),
}

pub enum KvDataMut<'a> {
    Bf16(&'a mut [u16]),
    F32(&'a mut [f32]),
}

impl KvData<'_> {
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            KvData::Bf16(d) => bf16::from_bits(d[i]).to_f32(),
            KvData::F32(d) => d[i],
        }
    }
}

impl KvDataMut<'_> {
    /// Stores `v`, rounding to nearest-even when the cache is bf16.
    #[inline]
    pub fn set(&mut self, i: usize, v: f32) {
        match self {
            KvDataMut::Bf16(d) => d[i] = bf16::from_f32(v).to_bits(),
            KvDataMut::F32(d) => d[i] = v,
        }
    }
}

fn kv_data<'a>(b: &'a CpuBuffer, op: &'static str) -> Result<KvData<'a>> {
    match b.dtype() {
        DType::Bf16 => Ok(KvData::Bf16(bytemuck::try_cast_slice(b.bytes()).map_err(|e| EngineError::shape(op, format!("{e:?}")))?)),
        DType::F32 => Ok(KvData::F32(b.f32s(op)?)),
        other => Err(EngineError::shape(op, format!("kv cache of {other}"))),
    }
}

fn kv_data_mut<'a>(b: &'a mut CpuBuffer, op: &'static str) -> Result<KvDataMut<'a>> {
    match b.dtype() {
        DType::Bf16 => {
            Ok(KvDataMut::Bf16(bytemuck::try_cast_slice_mut(b.bytes_mut()?).map_err(|e| EngineError::shape(op, format!("{e:?}")))?))
        }
        DType::F32 => Ok(KvDataMut::F32(b.f32s_mut(op)?)),
        other => Err(EngineError::shape(op, format!("kv cache of {other}"))),
    }
}

/// Geometry of a cache layer, shared by the read and write views.
#[derive(Clone, Copy, Debug)]
pub struct KvShape {
    pub capacity: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub window: Option<usize>,
}

impl KvShape {
    fn of(l: &KvLayer<CpuBuffer>, op: &'static str) -> Result<Self> {
        checks::kv_layer(l, op)?;
        Ok(KvShape { capacity: l.capacity, kv_heads: l.kv_heads, head_dim: l.head_dim, window: l.window })
    }

    /// Element offset of (position, kv head).
    #[inline]
    pub fn offset(&self, pos: usize, head: usize) -> usize {
        ((pos % self.capacity) * self.kv_heads + head) * self.head_dim
    }

    /// The first position a query at `pos` may attend (its window's start).
    #[inline]
    pub fn first_key(&self, pos: usize) -> usize {
        self.window.map_or(0, |w| (pos + 1).saturating_sub(w))
    }
}

pub struct KvView<'a> {
    pub shape: KvShape,
    pub k: KvData<'a>,
    pub v: KvData<'a>,
}

pub struct KvViewMut<'a> {
    pub shape: KvShape,
    pub k: KvDataMut<'a>,
    pub v: KvDataMut<'a>,
}

impl<'a> KvView<'a> {
    pub fn new(l: &'a KvLayer<CpuBuffer>, op: &'static str) -> Result<Self> {
        Ok(KvView { shape: KvShape::of(l, op)?, k: kv_data(&l.k, op)?, v: kv_data(&l.v, op)? })
    }
}

impl<'a> KvViewMut<'a> {
    pub fn new(l: &'a mut KvLayer<CpuBuffer>, op: &'static str) -> Result<Self> {
        let shape = KvShape::of(l, op)?;
        Ok(KvViewMut { shape, k: kv_data_mut(&mut l.k, op)?, v: kv_data_mut(&mut l.v, op)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(data: &[u8], scales: &[u8], rows: usize, cols: usize) -> WeightView<'static> {
        let data: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
        let scales: &'static [u8] = Box::leak(scales.to_vec().into_boxed_slice());
        WeightView { format: WeightFormat::Mxfp4, experts: 1, rows, cols, data, scales, bias: None }
    }

    #[test]
    fn mxfp4_decodes_every_code_at_every_scale_exactly() {
        // Row r holds the 16 codes twice (even element = low nibble); its block's scale is r.
        let mut data = Vec::new();
        for _ in 0..256 {
            for j in 0..16u8 {
                let (lo, hi) = ((2 * j) % 16, (2 * j + 1) % 16);
                data.push(lo | (hi << 4));
            }
        }
        let scales: Vec<u8> = (0..=255).collect();
        let w = mx(&data, &scales, 256, 32);
        for s in 0..256usize {
            for c in 0..32 {
                let code = c % 16;
                let want = FP4_VALUES[code] as f64 * 2f64.powi(s as i32 - 127);
                let got = w.element(s, c);
                assert!(got == want && got.is_sign_negative() == want.is_sign_negative(), "code {code} scale {s}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn row_dot_agrees_with_elements_for_every_format() {
        let cols = 128;
        let x: Vec<f32> = (0..cols).map(|c| ((c * 37 % 11) as f32 - 5.0) / 7.0).collect();
        let bytes: Vec<u8> = (0..cols * 4 * 2).map(|i| (i * 131 % 251) as u8).collect();
        let bf16_scales: Vec<u8> = (0..8).flat_map(|g| bf16::from_f32(0.01 * (g + 1) as f32).to_le_bytes()).collect();
        let f32_scales: Vec<u8> = (0..2).flat_map(|r| (0.02f32 * (r + 1) as f32).to_le_bytes()).collect();
        // Finite f32/bf16 bit patterns: clear the exponent's top bit.
        let mut finite = bytes.clone();
        for (i, b) in finite.iter_mut().enumerate() {
            if i % 4 == 3 || (i % 2 == 1) {
                *b &= 0x3f;
            }
        }
        let cases: Vec<(WeightFormat, Vec<u8>, Vec<u8>)> = vec![
            (WeightFormat::F32, finite[..2 * cols * 4].to_vec(), vec![]),
            (WeightFormat::Bf16, finite[..2 * cols * 2].to_vec(), vec![]),
            (WeightFormat::Int8, bytes[..2 * cols].to_vec(), f32_scales),
            (WeightFormat::Int4 { group: 32 }, bytes[..cols].to_vec(), bf16_scales.clone()),
            (WeightFormat::Int4 { group: 64 }, bytes[..cols].to_vec(), bf16_scales[..8].to_vec()),
            (WeightFormat::Mxfp4, bytes[..cols].to_vec(), vec![120, 127, 130, 100, 127, 127, 131, 126]),
        ];
        for (format, data, scales) in cases {
            let w = WeightView { format, experts: 1, rows: 2, cols, data: &data, scales: &scales, bias: None };
            for r in 0..2 {
                let want: f64 = (0..cols).map(|c| w.element(r, c) * x[c] as f64).sum();
                let got = w.row_dot(r, &x);
                assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{format} row {r}: {got} vs {want}");
                let mut row = vec![0f32; cols];
                w.row_f32(r, &mut row);
                for (c, &v) in row.iter().enumerate() {
                    assert_eq!(v, w.element(r, c) as f32, "{format} element ({r}, {c})");
                }
            }
        }
    }
}
