//! `gptoss synth`: writes a synthetic model as a complete Hugging Face-layout directory —
//! config.json, sharded safetensors with an index, tokenizer.json — whose tensors are exactly those the
//! in-memory `synthetic:NAME` model generates.

use std::path::Path;

use serde_json::json;

use crate::error::{ModelError, Result};
use crate::safetensors::{StDtype, TensorToWrite, write_file};
use crate::synthetic::{Preset, config_json, synth_tensor};
use crate::tensors::{Kind, expected_tensors};

/// Shards are cut before a tensor that would take them past this size (HF's default cap).
pub const SHARD_BYTES: usize = 5_000_000_000;

/// Writes the preset into `dir` (created if needed). `progress(done, total)` is called as
/// bytes are written.
pub fn write_synthetic(preset: Preset, seed: u64, dir: &Path, mut progress: impl FnMut(usize, usize)) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let config = preset.config();
    let specs = expected_tensors(&config);

    let tensors: Vec<TensorToWrite> = specs
        .iter()
        .map(|spec| {
            let t = synth_tensor(spec, seed);
            if spec.kind == Kind::Mx {
                TensorToWrite {
                    name: spec.name.clone(),
                    dtype: StDtype::U8,
                    shape: spec.shape.clone(),
                    fill: Box::new(move |off, out| t.fill_bytes(off, out)),
                }
            } else {
                let fill = move |off: usize, out: &mut [u8]| {
                    let mut bits = [0u16; 256];
                    for (i, chunk) in out.chunks_mut(512).enumerate() {
                        let n = chunk.len() / 2;
                        t.fill_bf16(off / 2 + i * 256, &mut bits[..n]);
                        for (o, b) in chunk.chunks_exact_mut(2).zip(&bits[..n]) {
                            o.copy_from_slice(&b.to_le_bytes());
                        }
                    }
                };
                TensorToWrite { name: spec.name.clone(), dtype: StDtype::Bf16, shape: spec.shape.clone(), fill: Box::new(fill) }
            }
        })
        .collect();

    let mut shards: Vec<Vec<&TensorToWrite>> = vec![Vec::new()];
    let mut size = 0;
    for t in &tensors {
        if size + t.bytes() > SHARD_BYTES && !shards.last().unwrap().is_empty() {
            shards.push(Vec::new());
            size = 0;
        }
        size += t.bytes();
        shards.last_mut().unwrap().push(t);
    }
    let total: usize = tensors.iter().map(TensorToWrite::bytes).sum();
    let mut done = 0;
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards.len());
        let owned: Vec<TensorToWrite> = shard
            .iter()
            .map(|t| TensorToWrite { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone(), fill: Box::new(|o, b| (t.fill)(o, b)) })
            .collect();
        write_file(&dir.join(&file), &owned, |n| {
            done += n;
            progress(done, total);
        })?;
        for t in shard {
            weight_map.insert(t.name.clone(), json!(file));
        }
    }
    let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    write_json(&dir.join(crate::checkpoint::INDEX_FILE), &index)?;
    // The tokenizer gpt-oss ships, so the directory is complete.
    gptoss_tokenizer::Tokenizer::o200k_harmony()
        .and_then(|t| t.write_tokenizer_json(dir))
        .map_err(|e| ModelError::checkpoint(dir.join("tokenizer.json"), e.to_string()))?;
    write_json(&dir.join("config.json"), &config_json(&config))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("plain values serialise");
    std::fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}
