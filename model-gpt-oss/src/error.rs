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
    /// The weights would not fit in the memory the backend has.
    #[error(
        "{model} needs {:.2} GB of {backend} memory for its weights and {:.2} GB is available{}",
        *needed as f64 / 1e9,
        *available as f64 / 1e9,
        if model.starts_with("synthetic:") { " (a synthetic model is generated in memory: `gptoss synth` writes it to disk, where the CPU backend maps it instead of holding it)" } else { "" }
    )]
    TooLarge { model: String, backend: &'static str, needed: u64, available: u64 },
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

/// The first problems joined on one line, and how many more there are.
fn summary(problems: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = problems.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if problems.len() > SHOWN {
        s.push_str(&format!("; … and {} more", problems.len() - SHOWN));
    }
    s
}
