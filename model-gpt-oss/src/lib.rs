//! gptoss-model-gpt-oss: everything that knows gpt-oss. Its config, checkpoint loading
//! (safetensors, memory-mapped, validated against the config), synthetic checkpoints, the
//! forward pass written by hand against the engine's `Backend` trait, and the harmony chat
//! format.

pub mod accounting;
pub mod checkpoint;
pub mod config;
pub mod dir_writer;
pub mod error;
pub mod files;
pub mod graph;
pub mod harmony;
pub mod memory;
pub mod quantization;
pub mod quantize;
pub mod safetensors;
pub mod scan;
pub mod source;
pub mod synth_writer;
pub mod synthetic;
pub mod tensors;
pub mod weights;

pub use config::GptOssConfig;
pub use error::{ModelError, Result};
pub use graph::{Context, ContextOptions, GptOss, LoadOptions, Probe, ProbeData, Session};
pub use source::{ModelSource, OpenedModel};
