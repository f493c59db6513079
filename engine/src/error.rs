//! The engine's error type, shared by every backend and the model code.

use thiserror::Error;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum EngineError {
    /// An argument that breaks an op's contract (wrong length, dtype, alignment…).
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    /// A weight format, shape or option the chosen kernel does not support.
    #[error("{op}: unsupported: {detail}")]
    Unsupported { op: &'static str, detail: String },
    /// A token id outside the vocabulary.
    #[error("token id {id} is out of range: the vocabulary has {vocab} tokens (ids 0..{vocab})")]
    TokenOutOfRange { id: u32, vocab: usize },
    /// More tokens than the KV cache was allocated for.
    #[error("context overflow: {needed} tokens needed but the context holds {capacity}")]
    ContextOverflow { needed: usize, capacity: usize },
    /// A bad request from the caller (empty prompt, invalid sampling parameter…).
    #[error("{0}")]
    InvalidArgument(String),
    /// Memory for a buffer could not be had.
    #[error("{backend} backend: out of memory allocating {bytes} bytes")]
    OutOfMemory { backend: &'static str, bytes: usize },
    /// A failure inside a backend (a device error…).
    #[error("{backend} backend: {detail}")]
    Backend { backend: &'static str, detail: String },
    /// Weights streamed from disk while the model runs could not be read.
    #[error("reading weights from {}: {detail}", path.display())]
    WeightRead { path: std::path::PathBuf, detail: String },
    /// Logits a token would be sampled from hold NaN or an infinity: a sample would be an
    /// arbitrary id.
    #[error(
        "the logits after position {position} are not finite (logit {index} is {value}): NaN or infinite weights or activations; `gptoss inspect --check` scans the weights"
    )]
    NonFiniteLogits { position: usize, index: usize, value: f32 },
}

impl EngineError {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        EngineError::Shape { op, detail: detail.into() }
    }
    pub fn unsupported(op: &'static str, detail: impl Into<String>) -> Self {
        EngineError::Unsupported { op, detail: detail.into() }
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        EngineError::InvalidArgument(detail.into())
    }
}
