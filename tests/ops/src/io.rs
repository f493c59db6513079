//! Host values into a backend's buffers and back, for any backend.

use gptoss_engine::{Backend, DType, DeviceBuffer};
use half::bf16;

/// A buffer of `dtype` holding `v`.
pub fn upload<B: Backend, T: bytemuck::Pod>(b: &mut B, dtype: DType, v: &[T]) -> B::Buffer {
    let bytes: &[u8] = bytemuck::cast_slice(v);
    let mut out = b.alloc(dtype, bytes.len() / dtype.size()).expect("allocate a test buffer");
    b.write(&mut out, 0, bytes).expect("write a test buffer");
    out
}

pub fn f32s<B: Backend>(b: &mut B, v: &[f32]) -> B::Buffer {
    upload(b, DType::F32, v)
}

pub fn u32s<B: Backend>(b: &mut B, v: &[u32]) -> B::Buffer {
    upload(b, DType::U32, v)
}

/// An f32 output of `len` elements filled with NaN, so that an element the op should write and
/// does not shows as a mismatch.
pub fn poisoned<B: Backend>(b: &mut B, len: usize) -> B::Buffer {
    f32s(b, &vec![f32::NAN; len])
}

pub fn read_f32<B: Backend>(b: &mut B, buf: &B::Buffer) -> Vec<f32> {
    let mut out = vec![0f32; buf.len()];
    b.read(buf, 0, bytemuck::cast_slice_mut(&mut out)).expect("read a test buffer");
    out
}

pub fn read_u32<B: Backend>(b: &mut B, buf: &B::Buffer) -> Vec<u32> {
    let mut out = vec![0u32; buf.len()];
    b.read(buf, 0, bytemuck::cast_slice_mut(&mut out)).expect("read a test buffer");
    out
}

/// An f32 or bf16 buffer (a KV cache) widened to f32.
pub fn read_widened<B: Backend>(b: &mut B, buf: &B::Buffer) -> Vec<f32> {
    match buf.dtype() {
        DType::Bf16 => {
            let mut raw = vec![0u16; buf.len()];
            b.read(buf, 0, bytemuck::cast_slice_mut(&mut raw)).expect("read a test buffer");
            raw.iter().map(|&h| bf16::from_bits(h).to_f32()).collect()
        }
        _ => read_f32(b, buf),
    }
}

/// `v` rounded to `dtype` (f32 or bf16) as little-endian bytes.
pub fn bytes_as(dtype: DType, v: &[f32]) -> Vec<u8> {
    match dtype {
        DType::Bf16 => v.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect(),
        _ => bytemuck::cast_slice(v).to_vec(),
    }
}
