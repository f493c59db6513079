//! `Backend::convert_weight` on the CPU: the bytes are exactly those of
//! `gptoss_engine::quant::quantize_rows` applied to the decoded rows, for every target, for
//! stacked matrices and row counts that straddle the parallel split; a quantized weight then
//! computes what its decoded values say; bad targets and values are errors.

use gptoss_engine::quant::quantize_rows;
use gptoss_engine::{Backend, DType, Weight, WeightFormat};
use gptoss_kernels_cpu::view::WeightView;
use gptoss_kernels_cpu::{CpuBackend, CpuBuffer};
use half::bf16;

fn backend() -> CpuBackend {
    CpuBackend::new(Some(3)).unwrap()
}

/// Gaussian-ish bf16 values with a few outliers, deterministic.
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let h = gptoss_engine::synth::mix(seed * 1_000_003 + i);
            let u = ((h >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32;
            bf16::from_f32(if h.is_multiple_of(61) { u * 9.0 } else { u }).to_f32()
        })
        .collect()
}

fn bf16_weight(b: &mut CpuBackend, experts: usize, rows: usize, cols: usize, seed: u64) -> (Weight<CpuBuffer>, Vec<f32>) {
    let v = values(experts * rows * cols, seed);
    let bytes: Vec<u8> = v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect();
    let mut data = b.alloc(DType::Bf16, v.len()).unwrap();
    b.write(&mut data, 0, &bytes).unwrap();
    let bias: Vec<f32> = (0..experts * rows).map(|i| i as f32 * 0.25).collect();
    let mut bias_buf = b.alloc(DType::F32, bias.len()).unwrap();
    b.write(&mut bias_buf, 0, bytemuck::cast_slice(&bias)).unwrap();
    (Weight { format: WeightFormat::Bf16, experts, rows, cols, data, scales: None, bias: Some(bias_buf) }, v)
}

#[test]
fn conversion_matches_the_quantizer_byte_for_byte() {
    let mut b = backend();
    let targets =
        [WeightFormat::Int8, WeightFormat::Int4 { group: 32 }, WeightFormat::Int4 { group: 64 }, WeightFormat::Int4 { group: 128 }];
    // 1 row, a prime, ROWS_PER_TASK ± 1, and stacked experts whose rows cross task boundaries.
    for (experts, rows) in [(1, 1), (1, 7), (1, 63), (1, 65), (3, 37)] {
        let cols = 256;
        let (w, v) = bf16_weight(&mut b, experts, rows, cols, rows as u64);
        for to in targets {
            let q = b.convert_weight(&w, to).unwrap();
            assert_eq!((q.format, q.experts, q.rows, q.cols), (to, experts, rows, cols));
            let (mut data, mut scales) = (vec![0u8; experts * to.data_bytes(rows, cols)], vec![0u8; experts * to.scales_bytes(rows, cols)]);
            quantize_rows(to, cols, &v, 0, &mut data, &mut scales).unwrap();
            assert_eq!(q.data.bytes(), &data[..], "{to} codes, {experts}×{rows}");
            assert_eq!(q.scales.as_ref().unwrap().bytes(), &scales[..], "{to} scales, {experts}×{rows}");
            assert_eq!(q.bias.as_ref().unwrap().bytes(), w.bias.as_ref().unwrap().bytes());
        }
    }
}

#[test]
fn converting_to_f32_and_bf16_is_exact() {
    let mut b = backend();
    let (w, v) = bf16_weight(&mut b, 2, 5, 96, 9);
    let f = b.convert_weight(&w, WeightFormat::F32).unwrap();
    assert_eq!(f.data.f32s("test").unwrap(), &v[..]);
    assert!(f.scales.is_none());
    let back = b.convert_weight(&f, WeightFormat::Bf16).unwrap();
    assert_eq!(back.data.bytes(), w.data.bytes());
}

#[test]
fn quantized_weights_compute_with_their_decoded_values() {
    // matmul through the quantized weight equals matmul through its decode to f32.
    let mut b = backend();
    let (w, _) = bf16_weight(&mut b, 1, 9, 128, 4);
    let x: Vec<f32> = values(128, 77);
    for to in [WeightFormat::Int8, WeightFormat::Int4 { group: 32 }] {
        let q = b.convert_weight(&w, to).unwrap();
        let view = WeightView::new(&q, "test").unwrap();
        for r in 0..9 {
            let mut row = vec![0f32; 128];
            view.row_f32(r, &mut row);
            let want: f64 = row.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
            let got = view.row_dot(r, &x);
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{to} row {r}: {got} vs {want}");
        }
    }
}

#[test]
fn bad_conversions_are_errors() {
    let mut b = backend();
    let (w, _) = bf16_weight(&mut b, 1, 3, 96, 1);
    let e = b.convert_weight(&w, WeightFormat::Int4 { group: 64 }).err().unwrap().to_string();
    assert!(e.contains("convert_weight") && e.contains("not a multiple of the group size 64"), "{e}");
    let e = b.convert_weight(&w, WeightFormat::Mxfp4).err().unwrap().to_string();
    assert!(e.contains("bf16 to mxfp4") && e.contains("not supported"), "{e}");

    let mut v = values(3 * 96, 2);
    v[96 + 5] = f32::INFINITY;
    let bytes: Vec<u8> = v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect();
    let mut data = b.alloc(DType::Bf16, v.len()).unwrap();
    b.write(&mut data, 0, &bytes).unwrap();
    let inf = Weight { format: WeightFormat::Bf16, experts: 1, rows: 3, cols: 96, data, scales: None, bias: None };
    let e = b.convert_weight(&inf, WeightFormat::Int8).err().unwrap().to_string();
    assert!(e.contains("weight [1, 5] = inf is not finite"), "{e}");
}
