//! Arguments shared by several subcommands.

use std::path::PathBuf;

use gptoss::{BackendKind, Error, Model, Result, RuntimeOptions, Session};
use gptoss_engine::DType;
use gptoss_engine::residency::ByteSize;
use gptoss_kernels_cpu::Activations;
use gptoss_model_gpt_oss::residency::StreamStats;
use gptoss_model_gpt_oss::residency::plan::ResidencyOptions;
use gptoss_model_gpt_oss::weight_only::{DEFAULT_FAMILIES, WeightOnly, parse_format};
use gptoss_model_gpt_oss::{ContextOptions, LoadOptions, ModelSource, OpenedModel};

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
    /// The most memory the model may take, contexts included (e.g. 16GiB, 1.5GB): weights that
    /// do not fit are read from disk as they are needed (see --offload).
    #[arg(long)]
    pub memory_budget: Option<String>,
    /// Where weights live: auto (chosen from the budget), none (all in memory), mmap (the
    /// checkpoint mapped, paged by the OS), layered (each layer read before it runs), experts
    /// (dense weights in memory, routed experts read on demand into a cache), host (GPU: every
    /// expert in host memory the GPU reads in place, the hot ones copied into device slots).
    #[arg(long, default_value = "auto")]
    pub offload: String,
    /// The expert cache's replacement policy (experts mode): lru or lfu.
    #[arg(long, default_value = "lru")]
    pub expert_cache: String,
    /// Read the next layer's likely experts while this layer computes (experts mode, decode).
    #[arg(long)]
    pub prefetch: bool,
    /// I/O threads reading weights from disk (0: the default, 4).
    #[arg(long, default_value_t = 0)]
    pub io_threads: usize,
    /// Write the experts every forward step routes to (per layer and token) to FILE: a routing
    /// trace for `gptoss cache-sim`.
    #[arg(long)]
    pub record_routing: Option<PathBuf>,
    /// With --backend cuda: the routed experts computed by the CPU from host memory (a mapped
    /// checkpoint), attention, router and unembedding on the GPU (llama.cpp's --cpu-moe).
    #[arg(long)]
    pub cpu_experts: bool,
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
            load: LoadOptions { max_batch: self.batch, weights: parse_weights(&self.weights)?, residency: self.residency()? },
            context: ContextOptions { max_context: self.context.unwrap_or(default_context), kv_dtype },
            contexts: 1,
            cpu_experts: self.cpu_experts,
        })
    }

    /// The memory budget and residency options.
    pub fn residency(&self) -> Result<ResidencyOptions> {
        Ok(ResidencyOptions {
            budget: self.memory_budget.as_deref().map(parse_budget).transpose()?,
            offload: self.offload.parse().map_err(|e| Error::Usage(format!("--offload: {e}")))?,
            policy: self.expert_cache.parse().map_err(|e| Error::Usage(format!("--expert-cache: {e}")))?,
            prefetch: self.prefetch,
            io_threads: self.io_threads,
            read_chunk: 0,
            reserved: 0,
        })
    }

    /// Whether the user asked about residency (a budget or a mode), so the plan is worth
    /// printing.
    pub fn shows_plan(&self) -> bool {
        self.memory_budget.is_some() || self.offload != "auto"
    }

    /// Loads `model` as `opts` say: prints the residency plan first when asked about, shows
    /// `progress` while weights are read, and starts the routing trace.
    pub fn load(&self, model: &OpenedModel, opts: &RuntimeOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Session> {
        let shows = self.shows_plan();
        let mut session = Session::load_observed(
            model,
            opts,
            &mut |plan| {
                if shows {
                    eprintln!("{plan}");
                }
            },
            progress,
        )?;
        self.start_recording(&mut session.model, model)?;
        Ok(session)
    }

    /// Starts `--record-routing` on a loaded model.
    pub fn start_recording(&self, loaded: &mut Model, model: &OpenedModel) -> Result<()> {
        if let Some(path) = &self.record_routing {
            loaded.record_routing(path, &model.source.to_string())?;
        }
        Ok(())
    }
}

/// Parses `--memory-budget`.
pub fn parse_budget(s: &str) -> Result<u64> {
    s.parse::<ByteSize>().map(|b| b.0).map_err(|e| Error::Usage(format!("--memory-budget {e}")))
}

/// What streaming from disk did, one line for stderr (empty when nothing streamed).
pub fn stream_summary(stats: &StreamStats, tokens: usize) -> String {
    let per_token = |bytes: u64| ByteSize(bytes / tokens.max(1) as u64);
    match stats {
        StreamStats::None => String::new(),
        StreamStats::Layered(s) => {
            format!("streamed {} from disk ({} per token, {} layers read)", ByteSize(s.bytes_read), per_token(s.bytes_read), s.layers_read)
        }
        StreamStats::Experts { store, cache } => format!(
            "streamed {} from disk ({} per token); expert cache: {} hits, {} misses ({:.1} % hits), {} evictions{}",
            ByteSize(store.bytes_read),
            per_token(store.bytes_read),
            cache.hits,
            cache.misses,
            100.0 * cache.hit_rate(),
            cache.evictions,
            if store.prefetched > 0 { format!("; prefetched {}, {} used", store.prefetched, store.prefetch_used) } else { String::new() }
        ),
        StreamStats::Host { host, cache } => format!(
            "experts read from host memory {} ({} per token; {} of {} layer experts from device slots); {} copied into slots ({} experts), {} evictions",
            ByteSize(host.host_bytes),
            per_token(host.host_bytes),
            host.from_slots,
            host.from_slots + host.from_host,
            ByteSize(host.copied_bytes),
            host.landed,
            cache.evictions,
        ),
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
