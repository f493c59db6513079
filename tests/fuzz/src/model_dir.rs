//! A whole model directory, structure-aware: the reference fixture (a small valid gpt-oss
//! checkpoint: config, index, three shards) changed by a list of mutations the fuzzer chooses —
//! config values, header entries, header lengths, truncations, overwritten bytes, index entries,
//! files replaced by directories or symlinks — written to a temporary directory and opened as
//! `gptoss` opens a model. What opens is scanned for NaN, loaded on the CPU and generates a few
//! tokens. Every step must end in a value or an error: never a panic, an abort or a hang.

use std::path::Path;
use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use gptoss_engine::{DType, GenerateOptions, SamplingParams, generate};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_model_gpt_oss::scan::check_finite;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource};
use serde_json::Value;

/// The fixture's files, read once: (name, bytes), config first, then the index and the shards.
static FIXTURE: LazyLock<Vec<(String, Vec<u8>)>> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/fixture");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the reference fixture is in the repository")
        .map(|e| {
            let e = e.expect("a directory entry");
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("a fixture file"))
        })
        .collect();
    files.sort_by_key(|(name, _)| (!name.ends_with(".json"), name.clone()));
    files
});

/// The keys of a gpt-oss config.json the mutations set or remove.
const CONFIG_KEYS: [&str; 21] = [
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "num_local_experts",
    "num_experts_per_tok",
    "intermediate_size",
    "vocab_size",
    "sliding_window",
    "max_position_embeddings",
    "rope_theta",
    "rope_scaling",
    "rms_norm_eps",
    "swiglu_limit",
    "attention_bias",
    "layer_types",
    "eos_token_id",
    "quantization_config",
    "model_type",
    "tie_word_embeddings",
];

/// A JSON value, biased towards the numbers and shapes configs and headers hold.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Small(u8),
    Count(u32),
    Big(u64),
    Negative(i64),
    Float(f64),
    Text(String),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => (*b).into(),
            Json::Small(n) => (*n).into(),
            Json::Count(n) => (*n).into(),
            Json::Big(n) => (*n).into(),
            Json::Negative(n) => (*n).into(),
            Json::Float(x) => (*x).into(),
            Json::Text(s) => s.as_str().into(),
            Json::List(items) => items.iter().map(Json::value).collect(),
            Json::Object(fields) => fields.iter().map(|(k, v)| (k.clone(), v.value())).collect::<serde_json::Map<_, _>>().into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Field {
    Dtype,
    Shape,
    Offsets,
}

/// What a file can be replaced by.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Special {
    Missing,
    Directory,
    DanglingLink,
    LinkLoop,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    /// config.json: a key set to a value, or removed.
    Config { key: u8, value: Option<Json> },
    /// A shard's header: one field of one tensor's entry set to a value.
    Entry { shard: u8, tensor: u16, field: Field, value: Json },
    /// A shard's header: a tensor's entry renamed.
    Rename { shard: u8, tensor: u16, name: String },
    /// A shard's 8-byte header length.
    HeaderLength { shard: u8, len: u64 },
    /// A file cut short.
    Truncate { file: u8, keep: u32 },
    /// Bytes of a file overwritten.
    Overwrite { file: u8, offset: u32, bytes: Vec<u8> },
    /// The index: a tensor (an existing one or a new name) mapped to a file name.
    Index { tensor: u16, name: Option<String>, file: String },
    /// A file replaced by something that is not a regular file.
    Replace { file: u8, by: Special },
}

/// At most this many mutations per input: more only slows each run down.
const MAX_MUTATIONS: usize = 8;

pub fn run(data: &[u8]) {
    let Ok(mutations) = Vec::<Mutation>::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut files: Vec<(String, Vec<u8>)> = FIXTURE.clone();
    let mut specials = Vec::new();
    for m in mutations.iter().take(MAX_MUTATIONS) {
        apply(m, &mut files, &mut specials);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).expect("a temporary file");
    }
    for (file, by) in specials {
        replace(&dir.path().join(&files[file].0), by);
    }
    exercise(dir.path());
}

/// Opens, scans, loads and runs the model in `dir` as far as it goes.
fn exercise(dir: &Path) {
    let Ok(model) = ModelSource::Dir(dir.to_path_buf()).open() else { return };
    let _ = check_finite(&model, &mut |_, _| {});
    let backend = CpuBackend::new(Some(1)).expect("a one-thread CPU backend");
    let Ok(mut gpt) = GptOss::load(backend, &model, LoadOptions { max_batch: 4, weights: None, ..Default::default() }) else { return };
    let Ok(mut ctx) = gpt.new_context(ContextOptions { max_context: 16, kv_dtype: DType::F32 }) else { return };
    let vocab = gpt.config().vocab_size as u32;
    let opts = GenerateOptions { max_tokens: 3, stop_tokens: vec![], sampling: SamplingParams::GREEDY, seed: 0 };
    let _ = generate(&mut gpt.session(&mut ctx), &[1 % vocab, 7 % vocab], &opts, |_| true);
}

/// Applies `m` to the files' bytes; a replacement by a special file is recorded in `specials`,
/// to be made once the files are written.
fn apply(m: &Mutation, files: &mut [(String, Vec<u8>)], specials: &mut Vec<(usize, Special)>) {
    let n = files.len();
    let shard = |i: u8| 2 + usize::from(i) % (n - 2);
    match m {
        Mutation::Config { key, value } => edit_json(&mut files[0].1, |v| {
            let key = CONFIG_KEYS[usize::from(*key) % CONFIG_KEYS.len()];
            match value {
                Some(j) => v[key] = j.value(),
                None => drop(v.as_object_mut().and_then(|o| o.remove(key))),
            }
        }),
        Mutation::Entry { shard: s, tensor, field, value } => edit_header(&mut files[shard(*s)].1, *tensor, |entry| {
            let key = match field {
                Field::Dtype => "dtype",
                Field::Shape => "shape",
                Field::Offsets => "data_offsets",
            };
            entry[key] = value.value();
        }),
        Mutation::Rename { shard: s, tensor, name } => {
            let name = name.clone();
            edit_header_map(&mut files[shard(*s)].1, *tensor, move |map, old| {
                if let Some(entry) = map.remove(old) {
                    map.insert(name, entry);
                }
            })
        }
        Mutation::HeaderLength { shard: s, len } => {
            let bytes = &mut files[shard(*s)].1;
            if bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&len.to_le_bytes());
            }
        }
        Mutation::Truncate { file, keep } => {
            let bytes = &mut files[usize::from(*file) % n].1;
            let keep = *keep as usize % (bytes.len() + 1);
            bytes.truncate(keep);
        }
        Mutation::Overwrite { file, offset, bytes: patch } => {
            let bytes = &mut files[usize::from(*file) % n].1;
            let start = (*offset as usize).min(bytes.len());
            let end = (start + patch.len()).min(bytes.len());
            bytes[start..end].copy_from_slice(&patch[..end - start]);
        }
        Mutation::Index { tensor, name, file } => edit_json(&mut files[1].1, |v| {
            let Some(map) = v.get_mut("weight_map").and_then(Value::as_object_mut) else { return };
            let key = match name {
                Some(name) => name.clone(),
                None if map.is_empty() => return,
                None => map.keys().nth(usize::from(*tensor) % map.len()).cloned().expect("in range"),
            };
            map.insert(key, file.as_str().into());
        }),
        Mutation::Replace { file, by } => specials.push((usize::from(*file) % n, *by)),
    }
}

/// Rewrites a JSON file with `edit`; a file that no longer parses is left as it is.
fn edit_json(bytes: &mut Vec<u8>, edit: impl FnOnce(&mut Value)) {
    if let Ok(mut v) = serde_json::from_slice::<Value>(bytes)
        && v.is_object()
    {
        edit(&mut v);
        *bytes = v.to_string().into_bytes();
    }
}

/// Rewrites the entry of the `tensor`-th tensor (modulo their number) of a safetensors header,
/// if it is still an object (overwritten bytes may have made it anything).
fn edit_header(bytes: &mut Vec<u8>, tensor: u16, edit: impl FnOnce(&mut Value)) {
    edit_header_map(bytes, tensor, |map, name| {
        if let Some(entry) = map.get_mut(name).filter(|e| e.is_object()) {
            edit(entry);
        }
    });
}

/// Rewrites a safetensors header as a map, given the name of its `tensor`-th tensor; the data
/// after the header is kept. A header that no longer parses is left as it is.
fn edit_header_map(bytes: &mut Vec<u8>, tensor: u16, edit: impl FnOnce(&mut serde_json::Map<String, Value>, &str)) {
    let Some(len) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize) else { return };
    let Some(header) = bytes.get(8..8usize.saturating_add(len)) else { return };
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(header) else { return };
    let names: Vec<String> = map.keys().filter(|k| *k != "__metadata__").cloned().collect();
    if names.is_empty() {
        return;
    }
    let name = &names[usize::from(tensor) % names.len()];
    edit(&mut map, name);
    let mut text = Value::Object(map).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + len..]);
    *bytes = out;
}

/// Puts `by` where `path` is; an earlier replacement of the same file (a directory, a link) is
/// removed first.
fn replace(path: &Path, by: Special) {
    let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path));
    match by {
        Special::Missing => {}
        Special::Directory => std::fs::create_dir(path).expect("a directory in a temporary one"),
        #[cfg(unix)]
        Special::DanglingLink => std::os::unix::fs::symlink("nowhere", path).expect("a symlink"),
        #[cfg(unix)]
        Special::LinkLoop => std::os::unix::fs::symlink(path.file_name().expect("a file name"), path).expect("a symlink"),
        #[cfg(not(unix))]
        Special::DanglingLink | Special::LinkLoop => {}
    }
}
