//! Errors of model loading and running, each naming the file, tensor or value at fault.

use std::path::PathBuf;

use gptoss_engine::residency::{ByteSize, Offload};
use gptoss_engine::{EngineError, WeightFormat};
use thiserror::Error;

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Every problem found in a config.json, reported together.
    #[error("{}: {}", path.display(), problems.join("; "))]
    Config { path: PathBuf, problems: Vec<String> },
    /// A malformed safetensors file or index.
    #[error("{}: {detail}", path.display())]
    Checkpoint { path: PathBuf, detail: String },
    /// Every tensor that is missing or does not match the config, reported together.
    #[error("checkpoint {} does not match its config ({} problems): {}", dir.display(), problems.len(), summary(problems))]
    Tensors { dir: PathBuf, problems: Vec<String> },
    #[error("unknown model '{0}': expected a directory or synthetic:tiny, synthetic:20b, synthetic:120b (optionally @SEED)")]
    UnknownModel(String),
    /// A quantization that cannot be done as asked.
    #[error("{0}")]
    Quantize(String),
    /// A weight that could not be converted at load time.
    #[error("converting '{tensor}' to {to}: {source}")]
    Convert { tensor: String, to: WeightFormat, source: EngineError },
    /// A load's or a context's buffers would not fit in the memory the backend has (`needed`
    /// is None when the size overflows).
    #[error("{who} needs {} of {backend} memory ({what}) and {} is available", gb(*needed), gb(Some(*available)))]
    TooLarge { who: String, backend: &'static str, needed: Option<u64>, available: u64, what: String },
    /// A weight that is NaN or infinite (`scan::check_finite`).
    #[error("tensor '{tensor}' holds {value} at index {index:?}: the first weight that is not finite")]
    NonFinite { tensor: String, index: Vec<usize>, value: String },
    /// A memory budget too small for the residency mode: both numbers and what makes up the
    /// smaller one.
    #[error(
        "a memory budget of {} ({budget} bytes) is too small for {model} in the {mode} mode: it needs at least {} ({needed} bytes: {parts}){}",
        ByteSize(*budget),
        ByteSize(*needed),
        if model.starts_with("synthetic:") { "; a synthetic model is generated in memory: `gptoss synth` writes it to disk, where the experts mode streams it" } else { "" }
    )]
    Budget { model: String, mode: Offload, budget: u64, needed: u64, parts: String },
    /// A residency mode this model or backend cannot run.
    #[error("{0}")]
    Residency(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A model error met while running (a streamed layer that fails to load), as the engine's
/// error the forward pass returns.
impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Engine(e) => e,
            other => EngineError::InvalidArgument(other.to_string()),
        }
    }
}

impl ModelError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), source }
    }
    pub fn checkpoint(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        ModelError::Checkpoint { path: path.into(), detail: detail.into() }
    }
}

/// Bytes as GB with two decimals; None is a size beyond counting.
pub(crate) fn gb(bytes: Option<u64>) -> String {
    bytes.map_or("more than 2^64 bytes".into(), |b| format!("{:.2} GB", b as f64 / 1e9))
}

/// The first problems joined on one line, and how many more there are.
fn summary(problems: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = problems.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if problems.len() > SHOWN {
        s.push_str(&format!("; … and {} more", problems.len() - SHOWN));
    }
    s
}
