//! Arguments shared by several subcommands.

use gptoss::{BackendKind, Error, Result, RuntimeOptions};
use gptoss_engine::DType;
use gptoss_kernels_cpu::Activations;
use gptoss_model_gpt_oss::weight_only::{DEFAULT_FAMILIES, WeightOnly, parse_format};
use gptoss_model_gpt_oss::{ContextOptions, LoadOptions, ModelSource};

/// Where the model comes from and how it runs.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// A model directory (Hugging Face layout) or synthetic:tiny|20b|120b[@SEED].
    #[arg(long, default_value = "synthetic:20b")]
    pub model: String,
    /// auto, cpu, cuda, or cuda-sim (the CUDA kernels on the emulated device, in builds with
    /// the `cuda-sim` feature: a checker, slow).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tokens the KV cache holds.
    #[arg(long)]
    pub context: Option<usize>,
    /// Tokens per forward pass during prefill.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// KV cache element type: bf16 or f32.
    #[arg(long)]
    pub kv_dtype: Option<String>,
    /// What the CPU's matmuls of int8, int4 and MXFP4 weights multiply: f32 (exact) or int8
    /// (activations quantized in blocks of 32; faster, ~0.5 % error per product). Default:
    /// int8 for generate, chat and serve, f32 for logits and eval.
    #[arg(long)]
    pub cpu_activations: Option<String>,
    /// Weights of attention and unembedding: native (as stored), or quantized while loading to
    /// int8, int4 or int4:GROUP (32, 64, 128).
    #[arg(long, default_value = "native")]
    pub weights: String,
}

impl ModelArgs {
    pub fn source(&self) -> Result<ModelSource> {
        Ok(self.model.parse()?)
    }

    /// Runtime options; `context`, `kv_dtype` and `cpu_activations` fall back to the given defaults.
    pub fn runtime(&self, default_context: usize, default_kv: DType, default_act: Activations) -> Result<RuntimeOptions> {
        let kv_dtype = match self.kv_dtype.as_deref() {
            None => default_kv,
            Some("bf16") => DType::Bf16,
            Some("f32") => DType::F32,
            Some(other) => return Err(Error::Usage(format!("--kv-dtype {other}: expected bf16 or f32"))),
        };
        if self.batch == 0 {
            return Err(Error::Usage("--batch must be at least 1".into()));
        }
        Ok(RuntimeOptions {
            backend: self.backend.parse::<BackendKind>()?,
            threads: self.threads,
            cpu_activations: self.cpu_activations.as_deref().map_or(Ok(default_act), parse_activations)?,
            load: LoadOptions { max_batch: self.batch, weights: parse_weights(&self.weights)? },
            context: ContextOptions { max_context: self.context.unwrap_or(default_context), kv_dtype },
        })
    }
}

/// Parses `--cpu-activations`: f32 or int8.
pub fn parse_activations(s: &str) -> Result<Activations> {
    s.parse().map_err(|e: gptoss_engine::EngineError| Error::Usage(format!("--cpu-activations: {e}")))
}

/// Parses `--weights`: `native` (none), or a format for the default families.
pub fn parse_weights(s: &str) -> Result<Option<WeightOnly>> {
    if s == "native" {
        return Ok(None);
    }
    let usage = |e: String| Error::Usage(format!("--weights {s}: {e}"));
    let format = parse_format(s).map_err(usage)?;
    Ok(Some(WeightOnly::new(format, &DEFAULT_FAMILIES).map_err(usage)?))
}

/// Parses `1,2,3` (spaces and newlines allowed) into token ids.
pub fn parse_ids(text: &str, what: &str) -> Result<Vec<u32>> {
    let ids = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().map_err(|_| Error::Usage(format!("{what}: '{s}' is not a token id"))))
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        return Err(Error::Usage(format!("{what}: no token ids given")));
    }
    Ok(ids)
}
