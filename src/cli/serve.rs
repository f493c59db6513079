//! `gptoss serve`: the OpenAI-compatible HTTP server (see `src/serve/`).

use std::path::PathBuf;

use gptoss::{Error, Result};
use gptoss_engine::DType;
use gptoss_kernels_cpu::Activations;
use gptoss_model_gpt_oss::ModelSource;
use gptoss_model_gpt_oss::source::tokenizer_for;

use super::args::ModelArgs;
use crate::serve::{self, ServeOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* and /tokenize (default: the GPTOSS_API_KEY
    /// environment variable, if set).
    #[arg(long)]
    api_key: Option<String>,
    /// Sequence slots: requests generated at the same time, each with its own KV cache of
    /// --context tokens, allocated at start.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Requests that may wait for a free slot; beyond them the server answers 429.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// The model's name in /v1/models and responses (default: the model directory's name).
    #[arg(long)]
    model_name: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Test hook: replies to emit instead of sampled tokens (see src/serve/script.rs).
    #[arg(long, hide = true)]
    script: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let source = a.model.source()?;
    let tokenizer = tokenizer_for(Some(&source))?;
    let model_name = a.model_name.clone().unwrap_or_else(|| match &source {
        ModelSource::Dir(dir) => dir.file_name().map_or_else(|| a.model.model.clone(), |n| n.to_string_lossy().into_owned()),
        _ => a.model.model.clone(),
    });
    let model = source.open()?;
    let mut runtime = a.model.runtime(8192.min(model.config.max_position_embeddings), DType::Bf16, Activations::Int8)?;
    runtime.contexts = a.parallel;
    let api_key = a.api_key.clone().or_else(|| std::env::var("GPTOSS_API_KEY").ok()).filter(|k| !k.is_empty());
    if a.parallel == 0 {
        return Err(Error::Usage("--parallel must be at least 1".into()));
    }
    let opts = ServeOptions {
        host: a.host,
        port: a.port,
        api_key,
        parallel: a.parallel,
        queue: a.queue,
        model_name,
        max_body: a.max_body_bytes,
        script: a.script,
        show_plan: a.model.shows_plan(),
        record_routing: a.model.record_routing.clone(),
    };
    serve::run(&model, &runtime, tokenizer, opts)
}
