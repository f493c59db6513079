//! `gptoss synth`: writes a synthetic model as a complete Hugging Face-layout directory —
//! config.json, sharded safetensors with an index, tokenizer.json and tokenizer_config.json —
//! whose tensors are exactly those the in-memory `synthetic:NAME` model generates.

use std::path::Path;

use crate::dir_writer::{tensor_as_stored, write_model_dir, write_tokenizer};
use crate::error::Result;
use crate::source::ModelSource;
use crate::synthetic::{Preset, config_json};
use crate::tensors::expected_tensors;

/// Writes the preset into `dir` (created if needed). `progress(done, total)` is called as
/// bytes are written.
pub fn write_synthetic(preset: Preset, seed: u64, dir: &Path, progress: impl FnMut(usize, usize)) -> Result<()> {
    let model = ModelSource::Synthetic { preset, seed }.open()?;
    let tensors = expected_tensors(&model.config).iter().map(|spec| tensor_as_stored(&model, spec)).collect();
    write_model_dir(dir, tensors, &config_json(&model.config), progress)?;
    write_tokenizer(dir)
}
