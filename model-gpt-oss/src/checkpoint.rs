//! A checkpoint directory in the Hugging Face layout: `config.json` plus either one
//! `model.safetensors` or shards listed by `model.safetensors.index.json`. Shards are memory
//! mapped; tensors are handed out as zero-copy byte regions of the mapping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gptoss_engine::HostBytes;
use memmap2::Mmap;
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::files::{open_regular, present, read_json_text};
use crate::safetensors::{TensorInfo, parse_header};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    map: HostBytes,
}

/// A tensor located in a shard.
#[derive(Clone, Debug)]
pub struct Located {
    pub shard: usize,
    pub info: TensorInfo,
}

pub struct Checkpoint {
    pub dir: PathBuf,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, Located>,
}

impl Checkpoint {
    /// Maps every shard and parses every header. Fails on the first malformed file.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let index = if present(&index_path) { Some(parse_index(&index_path, &read_json_text(&index_path)?)?) } else { None };
        let files: Vec<String> = match &index {
            Some(weight_map) => shard_names(weight_map),
            None if present(&dir.join(SINGLE_FILE)) => vec![SINGLE_FILE.to_string()],
            None => {
                return Err(ModelError::checkpoint(dir, format!("neither {SINGLE_FILE} nor {INDEX_FILE} is in this directory")));
            }
        };
        let mut shards: Vec<Shard> = Vec::new();
        let mut tensors = BTreeMap::new();
        for name in files {
            let path = dir.join(&name);
            let map = map_file(&path)?;
            for (tname, info) in parse_header(&path, map.as_bytes())? {
                if let Some(prev) = tensors.insert(tname.clone(), Located { shard: shards.len(), info }) {
                    return Err(ModelError::checkpoint(
                        &path,
                        format!("tensor '{tname}' also appears in {}", shards[prev.shard].path.display()),
                    ));
                }
            }
            shards.push(Shard { path, map });
        }
        if let Some(weight_map) = &index {
            check_index_map(&index_path, weight_map, &shards, &tensors)?;
        }
        Ok(Checkpoint { dir: dir.to_path_buf(), shards, tensors })
    }

    pub fn tensors(&self) -> &BTreeMap<String, Located> {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&Located> {
        self.tensors.get(name)
    }

    /// The tensor's bytes, borrowed from the mapping.
    pub fn bytes(&self, t: &Located) -> HostBytes {
        self.shards[t.shard].map.slice(t.info.start, t.info.end - t.info.start).expect("ranges are checked when the header is parsed")
    }

    pub fn shard_path(&self, t: &Located) -> &Path {
        &self.shards[t.shard].path
    }

    /// Every shard file, in the order `Located::shard` numbers them.
    pub fn shard_paths(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// Total bytes of all files.
    pub fn file_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.map.len()).sum()
    }
}

fn map_file(path: &Path) -> Result<HostBytes> {
    let (file, _) = open_regular(path)?;
    // SAFETY: the mapping is read-only; a checkpoint modified while loaded is outside our
    // contract (as for every engine that maps weights).
    let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
    Ok(HostBytes::new(Arc::new(map)))
}

/// An index's `weight_map`: (tensor, shard file) in the file's order. Every file must be a
/// plain name in the model's directory.
pub fn parse_index(index: &Path, text: &str) -> Result<Vec<(String, String)>> {
    let v: Value = serde_json::from_str(text).map_err(|e| ModelError::checkpoint(index, format!("not valid JSON: {e}")))?;
    let map = v.get("weight_map").and_then(Value::as_object).ok_or_else(|| ModelError::checkpoint(index, "no \"weight_map\" object"))?;
    let mut entries = Vec::with_capacity(map.len());
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::checkpoint(index, format!("weight_map['{tensor}'] is not a file name")))?;
        if file.is_empty() || file.contains('/') || file.contains('\\') || file == "." || file == ".." {
            return Err(ModelError::checkpoint(index, format!("weight_map['{tensor}'] = '{file}' is not a file in this directory")));
        }
        entries.push((tensor.clone(), file.to_string()));
    }
    if entries.is_empty() {
        return Err(ModelError::checkpoint(index, "weight_map is empty"));
    }
    Ok(entries)
}

/// The distinct shard files of a weight map, in first-seen order.
fn shard_names(weight_map: &[(String, String)]) -> Vec<String> {
    let mut seen = HashSet::new();
    weight_map.iter().filter(|(_, file)| seen.insert(file.as_str())).map(|(_, file)| file.clone()).collect()
}

/// Every tensor listed in the index must be in the shard the index names.
fn check_index_map(index: &Path, weight_map: &[(String, String)], shards: &[Shard], tensors: &BTreeMap<String, Located>) -> Result<()> {
    let file_of: HashMap<&Path, usize> = shards.iter().enumerate().map(|(i, s)| (s.path.as_path(), i)).collect();
    for (tensor, file) in weight_map {
        let want = index.with_file_name(file);
        match tensors.get(tensor) {
            None => {
                return Err(ModelError::checkpoint(
                    index,
                    format!("tensor '{tensor}' is listed for {} but that file does not contain it", want.display()),
                ));
            }
            Some(l) if file_of.get(want.as_path()) != Some(&l.shard) => {
                return Err(ModelError::checkpoint(
                    index,
                    format!("tensor '{tensor}' is listed for {} but found in {}", want.display(), shards[l.shard].path.display()),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
