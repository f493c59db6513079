//! gptoss: a hand-written inference engine for OpenAI's gpt-oss models.
//!
//! This crate ties the workspace together: the runtime that opens a model on a backend (used by
//! the `gptoss` command and the C API).

pub mod error;
pub mod runtime;

pub use error::{Error, Result};
pub use runtime::{BackendKind, Engine, LoadedModel, ModelContext, RuntimeOptions};
