//! gptoss-model-gpt-oss: everything that knows gpt-oss. Its config, checkpoint loading
//! (safetensors, memory-mapped, validated against the config), synthetic checkpoints, the
//! forward pass written by hand against the engine's `Backend` trait, and the harmony chat
//! format.

pub mod accounting;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod context;
pub mod dir_writer;
pub mod error;
pub mod files;
mod graph;
pub mod harmony;
pub mod memory;
pub mod model;
mod plan;
pub mod probe;
pub mod quantized_writer;
pub mod residency;
pub mod safetensors;
pub mod scan;
pub mod session;
pub mod source;
pub mod synth_writer;
pub mod synthetic;
pub mod tensors;
pub mod weight_only;
pub mod weights;

pub use batch::Batch;
pub use config::GptOssConfig;
pub use context::{Context, ContextOptions};
pub use error::{ModelError, Result};
pub use model::{GptOss, LoadOptions};
pub use probe::{Probe, ProbeData};
pub use session::Session;
pub use source::{ModelSource, OpenedModel};
