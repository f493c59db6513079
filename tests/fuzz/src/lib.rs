//! Fuzz target bodies: each `run(data)` feeds arbitrary bytes to one parser or loader and
//! panics only on a bug (see the README). Shared by the cargo-fuzz targets in `fuzz/` and the
//! stable replay in `tests/replay.rs`.

pub mod config_json;
pub mod encode;
pub mod harmony_parser;
pub mod model_dir;
pub mod safetensors_header;
pub mod safetensors_index;
pub mod tokenizer_json;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target by name (the folder of its seeds), for harnesses that run them all.
pub const TARGETS: [(&str, Body); 7] = [
    ("config_json", config_json::run),
    ("encode", encode::run),
    ("harmony_parser", harmony_parser::run),
    ("model_dir", model_dir::run),
    ("safetensors_header", safetensors_header::run),
    ("safetensors_index", safetensors_index::run),
    ("tokenizer_json", tokenizer_json::run),
];
