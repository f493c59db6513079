//! Quantization error of candidate int4 layouts on several kinds of weight matrices.
//!
//! `cargo run --release -p gptoss-model-gpt-oss --example int4_layouts`
//!
//! Each layout is measured by the normalised mean squared error of the dequantized matrix,
//! NMSE = ‖W − Ŵ‖² / ‖W‖², and of its products with random activations, ‖Wx − Ŵx‖² / ‖Wx‖²,
//! next to its storage cost in bits per weight (codes + per-group metadata).

use std::path::Path;

use gptoss_engine::quant::int4_row;
use gptoss_engine::synth::mix;
use gptoss_engine::weight::nibble;
use gptoss_model_gpt_oss::checkpoint::Checkpoint;
use gptoss_model_gpt_oss::safetensors::StDtype;
use gptoss_model_gpt_oss::synthetic::{Preset, synth_tensor};
use gptoss_model_gpt_oss::tensors::expected_tensors;
use half::bf16;

/// A candidate: how one group of weights becomes codes and back, and what it costs.
#[derive(Clone, Copy)]
enum Layout {
    /// Symmetric, scale = absmax / 7, codes −7..7 (−8 unused): |err| ≤ scale / 2 always.
    SymAbsmax7,
    /// Symmetric, scale = (signed absmax) / −8 as llama.cpp's Q4_0: all 16 codes, but an
    /// element equal to −(the extreme) clamps to 7 (error up to one step).
    SymSigned8,
    /// Symmetric with the scale searched over absmax/7 · {1.00, 0.98, …, 0.70} for the least
    /// squared error of the group (clips a few outliers).
    SymMse,
    /// Symmetric, llama.cpp's `make_qx_quants` search: codes from 19 trial scales around
    /// (signed absmax) / −8, each followed by the least-squares scale for its codes
    /// (Σ w·q / Σ q²); the least squared error wins. The engine's quantizer (`quant::int4_row`).
    SymSearchRefit,
    /// Asymmetric with an integer zero point: scale = (max − min) / 15, z = round(−min / scale),
    /// Ŵ = (q − z) · scale. A bf16 scale plus a 4-bit zero point (one byte with padding).
    AsymZeroPoint,
    /// Asymmetric with a float offset (llama.cpp's Q4_1): Ŵ = q · scale + min, bf16 both.
    AsymMin,
}

impl Layout {
    const ALL: [Layout; 6] =
        [Layout::SymAbsmax7, Layout::SymSigned8, Layout::SymMse, Layout::SymSearchRefit, Layout::AsymZeroPoint, Layout::AsymMin];

    fn name(self) -> &'static str {
        match self {
            Layout::SymAbsmax7 => "sym absmax/7",
            Layout::SymSigned8 => "sym signed/-8 (Q4_0)",
            Layout::SymMse => "sym mse-searched",
            Layout::SymSearchRefit => "sym search + refit (engine)",
            Layout::AsymZeroPoint => "asym int zero point",
            Layout::AsymMin => "asym bf16 min (Q4_1)",
        }
    }

    /// Metadata bytes per group.
    fn meta_bytes(self) -> f64 {
        match self {
            Layout::SymAbsmax7 | Layout::SymSigned8 | Layout::SymMse | Layout::SymSearchRefit => 2.0,
            Layout::AsymZeroPoint => 2.5,
            Layout::AsymMin => 4.0,
        }
    }

    fn bits_per_weight(self, group: usize) -> f64 {
        4.0 + 8.0 * self.meta_bytes() / group as f64
    }

    /// Quantizes and dequantizes one group in place.
    fn round_trip(self, g: &mut [f32]) {
        let bf = |v: f32| bf16::from_f32(v).to_f32();
        let absmax = g.iter().fold(0f32, |m, &v| m.max(v.abs()));
        match self {
            Layout::SymAbsmax7 => sym(g, bf(absmax / 7.0)),
            Layout::SymSigned8 => {
                let extreme = g.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
                sym(g, bf(extreme / -8.0))
            }
            Layout::SymMse => {
                let original = g.to_vec();
                let mut best = (f64::INFINITY, 0f32);
                for step in 0..=15 {
                    let s = bf(absmax / 7.0 * (1.0 - 0.02 * step as f32));
                    let mut trial = original.clone();
                    sym(&mut trial, s);
                    let e: f64 = trial.iter().zip(&original).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
                    if e < best.0 {
                        best = (e, s);
                    }
                }
                sym(g, best.1);
            }
            Layout::SymSearchRefit => {
                let (mut packed, mut scales) = (vec![0u8; g.len() / 2], [0u8; 2]);
                int4_row(g, g.len(), &mut packed, &mut scales);
                let s = bf16::from_le_bytes(scales).to_f32();
                for (c, v) in g.iter_mut().enumerate() {
                    *v = (nibble(&packed, c) as f32 - 8.0) * s;
                }
            }
            Layout::AsymZeroPoint => {
                let (lo, hi) = min_max(g);
                let s = bf((hi - lo) / 15.0);
                let z = if s == 0.0 { 8.0 } else { (-lo / s).round().clamp(0.0, 15.0) };
                for v in g.iter_mut() {
                    let q = if s == 0.0 { z } else { (*v / s + z).round().clamp(0.0, 15.0) };
                    *v = (q - z) * s;
                }
            }
            Layout::AsymMin => {
                let (lo, hi) = min_max(g);
                let (s, m) = (bf((hi - lo) / 15.0), bf(lo));
                for v in g.iter_mut() {
                    let q = if s == 0.0 { 0.0 } else { ((*v - m) / s).round().clamp(0.0, 15.0) };
                    *v = q * s + m;
                }
            }
        }
    }
}

fn sym(g: &mut [f32], s: f32) {
    for v in g.iter_mut() {
        let q = if s == 0.0 { 0.0 } else { (*v / s).round().clamp(-8.0, 7.0) };
        *v = q * s;
    }
}

fn min_max(g: &[f32]) -> (f32, f32) {
    g.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// A deterministic stream of uniform numbers in (0, 1).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 += 1;
        ((mix(self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gaussian(&mut self) -> f64 {
        (-2.0 * self.next().ln()).sqrt() * (std::f64::consts::TAU * self.next()).cos()
    }
    /// Student's t with `nu` degrees of freedom (heavy tails for small nu).
    fn student_t(&mut self, nu: usize) -> f64 {
        let chi2: f64 = (0..nu).map(|_| self.gaussian().powi(2)).sum();
        self.gaussian() / (chi2 / nu as f64).sqrt()
    }
}

struct Matrix {
    name: String,
    rows: usize,
    cols: usize,
    /// bf16-representable values, as every matrix we quantize starts out as bf16.
    w: Vec<f32>,
}

fn generated(name: &str, rows: usize, cols: usize, seed: u64, mut draw: impl FnMut(&mut Uniform, usize) -> f64) -> Matrix {
    let mut u = Uniform(seed);
    let w = (0..rows * cols).map(|i| bf16::from_f64(draw(&mut u, i % cols) / (cols as f64).sqrt()).to_f32()).collect();
    Matrix { name: name.into(), rows, cols, w }
}

fn matrices() -> Vec<Matrix> {
    let (rows, cols) = (512, 2880);
    let mut out = Vec::new();
    // The synthetic 20b model's attention and unembedding: uniform with variance 1/fan-in.
    let c = Preset::GPT_20B.config();
    for spec in
        expected_tensors(&c).into_iter().filter(|s| s.name == "model.layers.0.self_attn.q_proj.weight" || s.name == "lm_head.weight")
    {
        let mut w = vec![0f32; rows * spec.shape[1]];
        synth_tensor(&spec, 0).fill_f32(0, &mut w);
        out.push(Matrix { name: format!("synthetic 20b {}", spec.name), rows, cols: spec.shape[1], w });
    }
    // The reference fixture (gaussian, 64 inputs), every matrix we would quantize, stacked.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/fixture");
    let ckpt = Checkpoint::open(&dir).expect("the reference fixture opens");
    let mut w = Vec::new();
    for (name, t) in ckpt.tensors() {
        if t.info.dtype == StDtype::Bf16 && t.info.shape.len() == 2 && (name.contains("self_attn") || name == "lm_head.weight") {
            let bytes = ckpt.bytes(t);
            w.extend(bytes.as_bytes().chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()));
        }
    }
    out.push(Matrix { name: "fixture attention + lm_head".into(), rows: w.len() / 64, cols: 64, w });
    out.push(generated("gaussian", rows, cols, 1, |u, _| u.gaussian()));
    out.push(generated("student-t nu=4", rows, cols, 2, |u, _| u.student_t(4)));
    out.push(generated("student-t nu=2", rows, cols, 3, |u, _| u.student_t(2)));
    // LLM-like: gaussian with 1% of the input channels 10× larger in every row.
    out.push(generated("gaussian, 1% outlier columns ×10", rows, cols, 4, |u, c| {
        let outlier = mix(c as u64 + 77).is_multiple_of(100);
        u.gaussian() * if outlier { 10.0 } else { 1.0 }
    }));
    // A per-row offset (a skewed group is what a zero point is for).
    out.push(generated("gaussian + row offset 0.5σ", rows, cols, 5, |u, _| u.gaussian() + 0.5));
    out
}

fn main() {
    let mut u = Uniform(99);
    for m in matrices() {
        let x: Vec<Vec<f32>> = (0..8).map(|_| (0..m.cols).map(|_| u.gaussian() as f32).collect()).collect();
        let wx = matvec(&m.w, m.cols, &x);
        println!("\n## {} ({}×{})", m.name, m.rows, m.cols);
        println!("| layout | group | bits/weight | NMSE(W) | NMSE(Wx) |");
        println!("|---|---:|---:|---:|---:|");
        for group in [32, 64, 128].into_iter().filter(|g| m.cols.is_multiple_of(*g)) {
            for layout in Layout::ALL {
                let mut q = m.w.clone();
                q.chunks_exact_mut(group).for_each(|g| layout.round_trip(g));
                let qx = matvec(&q, m.cols, &x);
                println!(
                    "| {} | {group} | {:.3} | {:.3e} | {:.3e} |",
                    layout.name(),
                    layout.bits_per_weight(group),
                    nmse(&q, &m.w),
                    nmse(&qx, &wx)
                );
            }
        }
    }
}

fn matvec(w: &[f32], cols: usize, xs: &[Vec<f32>]) -> Vec<f32> {
    xs.iter()
        .flat_map(|x| w.chunks_exact(cols).map(move |row| row.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() as f32))
        .collect()
}

fn nmse(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    num / den
}
