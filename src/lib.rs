//! gptoss: a hand-written inference engine for OpenAI's gpt-oss models.
//!
//! This crate ties the workspace together: the runtime that opens a model on a backend (used by
//! the `gptoss` command), and the C API of `libgptoss.a` (`include/gptoss.h`).

pub mod batch;
pub mod capi;
pub mod error;
pub mod runtime;

pub use batch::Batch;
pub use error::{Error, Result};
pub use runtime::{BackendKind, Context, Model, RuntimeOptions, Session};
