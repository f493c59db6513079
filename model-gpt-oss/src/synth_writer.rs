//! `gptoss synth`: writes a synthetic model as a complete Hugging Face-layout directory —
//! config.json, sharded safetensors with an index, tokenizer.json and tokenizer_config.json —
//! whose tensors are exactly those the in-memory `synthetic:NAME` model generates.

use std::path::Path;

use crate::config::GptOssConfig;
use crate::dir_writer::{data_as_stored, write_model_dir, write_tokenizer};
use crate::error::Result;
use crate::residency::routing::RoutingProfile;
use crate::source::synthetic_tensor;
use crate::synthetic::{Preset, config_json};
use crate::tensors::{Kind, expected_tensors};

/// Bytes the files of a synthetic model take (tensor data; headers and config add a few KB).
pub fn synthetic_bytes(preset: Preset) -> u64 {
    let c = preset.config();
    expected_tensors(&c).iter().map(|s| (s.elements() * if s.kind == Kind::Mx { 1 } else { 2 }) as u64).sum()
}

/// Writes the preset into `dir` (created if needed), streaming: a chunk of each tensor is
/// generated and written at a time, so memory stays small whatever the model's size.
/// `progress(done, total)` is called as bytes are written.
pub fn write_synthetic(preset: Preset, seed: u64, routing: RoutingProfile, dir: &Path, progress: impl FnMut(usize, usize)) -> Result<()> {
    write_synthetic_config(&preset.config(), seed, routing, dir, progress)
}

/// As [`write_synthetic`] for any config (tests make small models of unusual shapes).
pub fn write_synthetic_config(
    c: &GptOssConfig,
    seed: u64,
    routing: RoutingProfile,
    dir: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<()> {
    let tensors = expected_tensors(c).iter().map(|spec| data_as_stored(spec, synthetic_tensor(spec, seed, routing))).collect();
    write_model_dir(dir, tensors, &config_json(c), progress)?;
    write_tokenizer(dir)
}
