//! Synthetic tensors (`Backend::load_synth`): every fill, lengths around a word (8 bytes) and
//! far beyond a block of threads, bit for bit — every backend builds the same model.

use gptoss_engine::{Backend, DType, DeviceBuffer, SynthFill, SynthTensor};

use crate::metric::check_exact;

/// The bytes of every (dtype, fill, length) case on `b`.
pub fn all<B: Backend>(b: &mut B) -> Vec<(String, Vec<u8>)> {
    let fills = [
        (DType::Bf16, SynthFill::Uniform { center: 0.25, half_width: 0.75 }),
        (DType::F32, SynthFill::Uniform { center: 1.0, half_width: 0.125 }),
        (DType::U8, SynthFill::Bytes),
        (DType::U8, SynthFill::ByteRange { lo: 118, hi: 121 }),
        (DType::U8, SynthFill::ByteRange { lo: 0, hi: 255 }),
    ];
    let mut out = vec![];
    for (dtype, fill) in fills {
        for len in [1usize, 7, 8, 9, 1001, 1 << 18] {
            let t = SynthTensor { seed: 42, name: format!("layers.{len}.weight"), fill };
            let buf = b.load_synth(dtype, len, &t).expect("synth");
            let mut bytes = vec![0u8; buf.len() * dtype.size()];
            b.read(&buf, 0, &mut bytes).expect("read");
            out.push((format!("{dtype} {fill:?} × {len}"), bytes));
        }
    }
    out
}

pub fn compare<B: Backend, R: Backend>(b: &mut B, reference: &mut R, on: &str) {
    for ((what, got), (_, want)) in all(b).into_iter().zip(all(reference)) {
        let (g, w): (Vec<u32>, Vec<u32>) = (got.iter().map(|&x| x as u32).collect(), want.iter().map(|&x| x as u32).collect());
        check_exact(&format!("synth {what} on {on}"), &g, &w);
    }
}
