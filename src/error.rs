//! The top-level error: anything the CLI or the C API can report, as one line.

use gptoss_engine::EngineError;
use gptoss_model_gpt_oss::ModelError;
use gptoss_model_gpt_oss::harmony::HarmonyError;
use gptoss_tokenizer::TokenizerError;
use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Harmony(#[from] HarmonyError),
    /// A bad command-line or API argument.
    #[error("{0}")]
    Usage(String),
    /// A backend or feature this build or machine lacks.
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
