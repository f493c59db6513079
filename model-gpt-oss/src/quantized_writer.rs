//! The offline writer behind `gptoss quantize`: reads a model (a checkpoint or a synthetic
//! preset), requantizes the families a [`WeightOnly`] names with the engine's quantizers
//! (`gptoss_engine::quant`), and writes a complete model directory whose config.json records
//! it. Every other tensor is written exactly as stored; the other files of a checkpoint
//! directory (tokenizer, chat template, generation config…) are copied, and a synthetic model
//! gets the tokenizer `synth` writes. Rows are quantized as the writer asks for bytes, so no
//! tensor is ever held whole in memory.

use std::path::Path;

use gptoss_engine::WeightFormat;
use gptoss_engine::quant::quantize_rows;

use crate::accounting::{stored_formats, token_bytes};
use crate::checkpoint::{INDEX_FILE, SINGLE_FILE};
use crate::config::GptOssConfig;
use crate::dir_writer::{tensor_as_stored, write_model_dir, write_tokenizer};
use crate::error::{ModelError, Result};
use crate::safetensors::{StDtype, TensorToWrite};
use crate::source::{ModelSource, OpenedModel};
use crate::synthetic::config_json;
use crate::tensors::{Kind, TensorSpec, expected_tensors};
use crate::weight_only::WeightOnly;

/// What writing a quantized copy did.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedReport {
    /// Matrices requantized.
    pub matrices: usize,
    /// Tensor bytes of the source and of the result.
    pub bytes_before: usize,
    pub bytes_after: usize,
    /// Weight bytes a decoded token reads, before and after.
    pub per_token_before: f64,
    pub per_token_after: f64,
    /// Files besides weights, index and config: copied from the source directory, or for a
    /// synthetic model the tokenizer written.
    pub other_files: Vec<String>,
}

/// Writes `model` with `q` applied into `out` (created if missing; must be empty if it exists).
/// `progress(done, total)` counts tensor bytes written.
pub fn write_quantized(model: &OpenedModel, q: WeightOnly, out: &Path, progress: impl FnMut(usize, usize)) -> Result<QuantizedReport> {
    let c = &model.config;
    if let Some(have) = c.quantization.weight_only() {
        return Err(ModelError::Quantize(format!(
            "{} is already quantized ({}); quantize the original checkpoint",
            model.source, have.format
        )));
    }
    let problems = q.shape_problems(c.hidden_size, c.q_dim());
    if !problems.is_empty() {
        return Err(ModelError::Quantize(format!("cannot quantize {} to {}: {}", model.source, q.format, problems.join("; "))));
    }
    check_out_dir(model, out)?;

    let config = quantized_config(model, q)?;
    let out_config =
        GptOssConfig::from_json(&config.to_string()).map_err(|problems| ModelError::Config { path: out.join("config.json"), problems })?;
    let sources: std::collections::HashMap<String, TensorSpec> = expected_tensors(c).into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut matrices = 0;
    let tensors: Vec<TensorToWrite> = expected_tensors(&out_config)
        .into_iter()
        .map(|spec| match spec.kind {
            Kind::Codes(format) => {
                matrices += 1;
                quantized_tensor(model, sources[&spec.name].clone(), format, Part::Codes, spec)
            }
            Kind::Scales(format) => {
                let weight = spec.name.strip_suffix("_scales").expect("scales are named NAME_scales");
                quantized_tensor(model, sources[weight].clone(), format, Part::Scales, spec)
            }
            _ => tensor_as_stored(model, &sources[&spec.name]),
        })
        .collect();
    let bytes_before = expected_tensors(c).iter().map(|s| s.elements() * model.dtype(s).size()).sum();
    write_model_dir(out, tensors, &config, progress)?;
    let other_files = match model.dir() {
        Some(dir) => copy_other_files(dir, out)?,
        None => {
            write_tokenizer(out)?;
            vec!["tokenizer.json and tokenizer_config.json (o200k_harmony)".to_string()]
        }
    };

    // Reading the result back checks it against its config, as any later load will.
    let written = ModelSource::Dir(out.to_path_buf()).open()?;
    let per_token = |m: &OpenedModel| token_bytes(&m.config, &stored_formats(m), m.config.num_experts_per_tok as f64, 0).weights();
    Ok(QuantizedReport {
        matrices,
        bytes_before,
        bytes_after: written.checkpoint().map_or(0, |ck| ck.tensors().values().map(|t| t.info.end - t.info.start).sum()),
        per_token_before: per_token(model),
        per_token_after: per_token(&written),
        other_files,
    })
}

/// The source's config.json (every key kept) with the quantization section replaced.
fn quantized_config(model: &OpenedModel, q: WeightOnly) -> Result<serde_json::Value> {
    let mut v = match model.dir() {
        Some(dir) => {
            let path = dir.join("config.json");
            let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
            serde_json::from_str(&text).map_err(|e| ModelError::Config { path, problems: vec![format!("not valid JSON: {e}")] })?
        }
        None => config_json(&model.config),
    };
    v["quantization_config"] = q.to_json();
    Ok(v)
}

/// Refuses to write over the source or into a directory that holds anything.
fn check_out_dir(model: &OpenedModel, out: &Path) -> Result<()> {
    if let Some(src) = model.dir()
        && out.canonicalize().ok() == src.canonicalize().ok()
    {
        return Err(ModelError::Quantize(format!("--out {} is the source directory", out.display())));
    }
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| ModelError::io(out, e))?;
        if entries.next().is_some() {
            return Err(ModelError::Quantize(format!("--out {} exists and is not empty", out.display())));
        }
    }
    Ok(())
}

/// Copies the regular files of `src` that are not weights, index or config (subdirectories,
/// such as the original-format weights of the released checkpoints, are left out).
fn copy_other_files(src: &Path, out: &Path) -> Result<Vec<String>> {
    let mut copied = Vec::new();
    for entry in std::fs::read_dir(src).map_err(|e| ModelError::io(src, e))? {
        let entry = entry.map_err(|e| ModelError::io(src, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(|e| ModelError::io(entry.path(), e))?.is_file();
        if !is_file || name.ends_with(".safetensors") || name == INDEX_FILE || name == SINGLE_FILE || name == "config.json" {
            continue;
        }
        std::fs::copy(entry.path(), out.join(&name)).map_err(|e| ModelError::io(entry.path(), e))?;
        copied.push(name);
    }
    copied.sort();
    Ok(copied)
}

#[derive(Clone, Copy)]
enum Part {
    Codes,
    Scales,
}

/// One of the two tensors of a quantized matrix. Each call quantizes the rows its byte range
/// covers, a block at a time (a row at the edge of two ranges is quantized twice, identically).
fn quantized_tensor(model: &OpenedModel, src: TensorSpec, to: WeightFormat, part: Part, out: TensorSpec) -> TensorToWrite<'_> {
    let (rows, cols) = (src.shape[0], src.shape[1]);
    let (row_data, row_scales) = (to.data_bytes(1, cols), to.scales_bytes(1, cols));
    let (dtype, row_bytes) = match (part, to) {
        (Part::Codes, WeightFormat::Int8) => (StDtype::I8, row_data),
        (Part::Codes, _) => (StDtype::U8, row_data),
        (Part::Scales, WeightFormat::Int8) => (StDtype::F32, row_scales),
        (Part::Scales, _) => (StDtype::Bf16, row_scales),
    };
    let fill = move |off: usize, bytes: &mut [u8]| -> Result<(), String> {
        const BLOCK: usize = 32;
        let mut w = vec![0f32; BLOCK * cols];
        let (mut data, mut scales) = (vec![0u8; BLOCK * row_data], vec![0u8; BLOCK * row_scales]);
        let end = off + bytes.len();
        let mut r = off / row_bytes;
        while r * row_bytes < end {
            let n = BLOCK.min(rows - r);
            let (w, d, s) = (&mut w[..n * cols], &mut data[..n * row_data], &mut scales[..n * row_scales]);
            model.read_f32(&src, r * cols, w).map_err(|e| e.to_string())?;
            quantize_rows(to, cols, w, r, d, s).map_err(|e| format!("quantizing '{}': {e}", src.name))?;
            let produced = match part {
                Part::Codes => &*d,
                Part::Scales => &*s,
            };
            // The overlap of these rows' bytes with the requested range.
            let (lo, hi) = ((r * row_bytes).max(off), ((r + n) * row_bytes).min(end));
            bytes[lo - off..hi - off].copy_from_slice(&produced[lo - r * row_bytes..hi - r * row_bytes]);
            r += n;
        }
        Ok(())
    };
    TensorToWrite { name: out.name, dtype, shape: out.shape, fill: Box::new(fill) }
}
