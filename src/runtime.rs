//! Opening a model on a backend: what the CLI and the C API share. The names follow the model
//! crate's: a `Model` is gpt-oss on some backend (`GptOss<B>` for each B), a `Context` its KV
//! cache and activations, a `Session` a model with one context (the borrowed
//! `gptoss_model_gpt_oss::Session` is what runs it; `gptoss_session` is the C handle).

use gptoss_engine::profiled::{OpSite, OpTime, Profiled};
use gptoss_engine::{BackendInfo, CausalLm, KernelChoice};
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuBuffer, CpuOptions};
#[cfg(feature = "cuda")]
use gptoss_kernels_cuda::Gpu;
#[cfg(feature = "cuda-sim")]
use gptoss_kernels_cuda::Sim;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use gptoss_kernels_cuda::{CudaBackend, CudaBuffer};
use gptoss_model_gpt_oss::accounting::Formats;
use gptoss_model_gpt_oss::context::context_bytes;
use gptoss_model_gpt_oss::residency::StreamStats;
use gptoss_model_gpt_oss::residency::plan::ResidencyPlan;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, GptOssConfig, LoadOptions, OpenedModel, SelfDraftSpec, shared_sessions};

use crate::error::{Error, Result};

/// Which device runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The best available: CUDA when built with it and a GPU is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    /// The CUDA kernels on the emulated device (`cuda-sim` builds): a checker, not a speed.
    CudaSim,
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" => Ok(BackendKind::Cuda),
            "cuda-sim" => Ok(BackendKind::CudaSim),
            other => Err(Error::Usage(format!("unknown backend '{other}' (expected auto, cpu, cuda or cuda-sim)"))),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RuntimeOptions {
    pub backend: BackendKind,
    /// CPU worker threads (all cores when `None`).
    pub threads: Option<usize>,
    /// What the CPU's matmuls of integer weights (int8, int4, MXFP4) multiply: int8 activations
    /// in blocks of 32 (the default: the experts' products at integer speed, KL ~1e-3 nats on
    /// the reference fixture, bench/NOTES.md) or exact f32 ones. bf16 and f32 weights always
    /// take f32 activations.
    pub cpu_activations: Activations,
    pub load: LoadOptions,
    /// The context a `Session` starts with.
    pub context: ContextOptions,
    /// Contexts of `context`'s size the caller will create (their bytes count in a memory
    /// budget): 1 for a session, the slots of a server.
    pub contexts: usize,
    /// On a CUDA backend, the routed experts computed by the CPU from host memory, the rest on
    /// the device (`--cpu-experts`).
    pub cpu_experts: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            backend: BackendKind::default(),
            threads: None,
            cpu_activations: Activations::Int8,
            load: LoadOptions::default(),
            context: ContextOptions::default(),
            contexts: 1,
            cpu_experts: false,
        }
    }
}

impl RuntimeOptions {
    /// The load options with the contexts' bytes reserved in the memory budget.
    fn load_options(&self, c: &GptOssConfig) -> LoadOptions {
        let mut load = self.load;
        let per_context = context_bytes(c, load.max_batch, self.context, true);
        load.residency.reserved = self.contexts.max(1) as u64 * per_context;
        load
    }
}

/// A model loaded on some backend. Every backend is wrapped in `Profiled`, which only forwards
/// until per-op timing is switched on.
pub enum Model {
    Cpu(Box<GptOss<Profiled<CpuBackend>>>),
    #[cfg(feature = "cuda")]
    Cuda(Box<GptOss<Profiled<CudaBackend<Gpu>>>>),
    #[cfg(feature = "cuda-sim")]
    CudaSim(Box<GptOss<Profiled<CudaBackend<Sim>>>>),
}

/// A context (KV cache and activations) of a `Model`, on the same backend.
pub enum Context {
    Cpu(Box<gptoss_model_gpt_oss::Context<CpuBuffer>>),
    #[cfg(feature = "cuda")]
    Cuda(Box<gptoss_model_gpt_oss::Context<CudaBuffer<Gpu>>>),
    #[cfg(feature = "cuda-sim")]
    CudaSim(Box<gptoss_model_gpt_oss::Context<CudaBuffer<Sim>>>),
}

/// Runs `$body` with `$m` bound to the model, whatever its backend.
macro_rules! each_model {
    ($model:expr, $m:ident => $body:expr) => {
        match $model {
            Model::Cpu($m) => $body,
            #[cfg(feature = "cuda")]
            Model::Cuda($m) => $body,
            #[cfg(feature = "cuda-sim")]
            Model::CudaSim($m) => $body,
        }
    };
}

/// A context used with a model of another backend: contexts come only from `new_context`.
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
const FOREIGN_CONTEXT: &str = "a Context used with a Model of another backend";

/// `opened` on a device backend: everything on it, or (`cpu_experts`) the routed experts on
/// the CPU beside it.
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
fn device_model<B: gptoss_engine::Backend>(
    backend: B,
    opened: &OpenedModel,
    opts: &RuntimeOptions,
    load: LoadOptions,
    on_plan: &mut dyn FnMut(&ResidencyPlan),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GptOss<B>> {
    if opts.cpu_experts {
        let cpu = CpuOptions { activations: opts.cpu_activations, ..CpuOptions::from_env(opts.threads)? };
        return Ok(GptOss::load_with_experts_on(backend, CpuBackend::with_options(cpu)?, opened, load, progress)?);
    }
    on_plan(&GptOss::plan_residency(&backend, opened, &load)?);
    Ok(GptOss::load_with_progress(backend, opened, load, progress)?)
}

impl Model {
    /// Loads `model`, telling `progress` (bytes loaded, bytes in all).
    pub fn load(opened: &OpenedModel, opts: &RuntimeOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        Self::load_observed(opened, opts, &mut |_| {}, progress)
    }

    /// As `load`, showing `on_plan` the residency plan once it is made, before any weight is
    /// read (a refused budget is an error before that).
    pub fn load_observed(
        opened: &OpenedModel,
        opts: &RuntimeOptions,
        on_plan: &mut dyn FnMut(&ResidencyPlan),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let load = opts.load_options(&opened.config);
        if opts.cpu_experts && matches!(opts.backend, BackendKind::Cpu) {
            return Err(Error::Usage(
                "--cpu-experts runs the experts on the CPU beside a GPU; --backend cpu runs everything there already".into(),
            ));
        }
        match opts.backend {
            BackendKind::Cpu => Self::load_cpu(opened, opts, load, on_plan, progress),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Self::load_cuda(
                CudaBackend::gpu(0).map_err(|e| Error::Unsupported(format!("the CUDA backend cannot start here: {e}")))?,
                opened,
                opts,
                load,
                on_plan,
                progress,
            ),
            #[cfg(feature = "cuda")]
            BackendKind::Auto => match CudaBackend::gpu(0) {
                Ok(gpu) => Self::load_cuda(gpu, opened, opts, load, on_plan, progress),
                // "auto" is the best device available: without a usable GPU, the CPU.
                Err(_) => Self::load_cpu(opened, opts, load, on_plan, progress),
            },
            #[cfg(not(feature = "cuda"))]
            BackendKind::Auto => Self::load_cpu(opened, opts, load, on_plan, progress),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(Error::Unsupported("this build has no CUDA backend: rebuild with `--features cuda`".into())),
            #[cfg(feature = "cuda-sim")]
            BackendKind::CudaSim => {
                let backend = Profiled::new(CudaBackend::sim()?);
                Ok(Model::CudaSim(Box::new(device_model(backend, opened, opts, load, on_plan, progress)?)))
            }
            #[cfg(not(feature = "cuda-sim"))]
            BackendKind::CudaSim => Err(Error::Usage("this build has no emulated CUDA device: rebuild with `--features cuda-sim`".into())),
        }
    }

    fn load_cpu(
        opened: &OpenedModel,
        opts: &RuntimeOptions,
        load: LoadOptions,
        on_plan: &mut dyn FnMut(&ResidencyPlan),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let cpu = CpuOptions { activations: opts.cpu_activations, ..CpuOptions::from_env(opts.threads)? };
        let backend = Profiled::new(CpuBackend::with_options(cpu)?);
        on_plan(&GptOss::plan_residency(&backend, opened, &load)?);
        Ok(Model::Cpu(Box::new(GptOss::load_with_progress(backend, opened, load, progress)?)))
    }

    #[cfg(feature = "cuda")]
    fn load_cuda(
        gpu: CudaBackend<Gpu>,
        opened: &OpenedModel,
        opts: &RuntimeOptions,
        load: LoadOptions,
        on_plan: &mut dyn FnMut(&ResidencyPlan),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        Ok(Model::Cuda(Box::new(device_model(Profiled::new(gpu), opened, opts, load, on_plan, progress)?)))
    }

    pub fn new_context(&mut self, opts: ContextOptions) -> Result<Context> {
        match self {
            Model::Cpu(m) => Ok(Context::Cpu(Box::new(m.new_context(opts)?))),
            #[cfg(feature = "cuda")]
            Model::Cuda(m) => Ok(Context::Cuda(Box::new(m.new_context(opts)?))),
            #[cfg(feature = "cuda-sim")]
            Model::CudaSim(m) => Ok(Context::CudaSim(Box::new(m.new_context(opts)?))),
        }
    }

    /// A context whose forward passes run the self-draft `spec` of this model (see
    /// `gptoss_model_gpt_oss::self_draft`).
    pub fn new_self_draft_context(&mut self, spec: SelfDraftSpec, opts: ContextOptions) -> Result<Context> {
        match self {
            Model::Cpu(m) => Ok(Context::Cpu(Box::new(m.new_self_draft_context(spec, opts)?))),
            #[cfg(feature = "cuda")]
            Model::Cuda(m) => Ok(Context::Cuda(Box::new(m.new_self_draft_context(spec, opts)?))),
            #[cfg(feature = "cuda-sim")]
            Model::CudaSim(m) => Ok(Context::CudaSim(Box::new(m.new_self_draft_context(spec, opts)?))),
        }
    }

    /// The model with each of two of its contexts, as two `CausalLm`s usable side by side (a
    /// target and its self-draft).
    #[allow(clippy::type_complexity)]
    pub fn shared_sessions<'a>(
        &'a mut self,
        first: &'a mut Context,
        second: &'a mut Context,
    ) -> Result<(Box<dyn CausalLm + 'a>, Box<dyn CausalLm + 'a>)> {
        match (self, first, second) {
            (Model::Cpu(m), Context::Cpu(a), Context::Cpu(b)) => {
                let (a, b) = shared_sessions(m, a, b);
                Ok((Box::new(a), Box::new(b)))
            }
            #[cfg(feature = "cuda")]
            (Model::Cuda(m), Context::Cuda(a), Context::Cuda(b)) => {
                let (a, b) = shared_sessions(m, a, b);
                Ok((Box::new(a), Box::new(b)))
            }
            #[cfg(feature = "cuda-sim")]
            (Model::CudaSim(m), Context::CudaSim(a), Context::CudaSim(b)) => {
                let (a, b) = shared_sessions(m, a, b);
                Ok((Box::new(a), Box::new(b)))
            }
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN_CONTEXT.into())),
        }
    }

    /// The model and one of its contexts as a `CausalLm`.
    pub fn session<'a>(&'a mut self, ctx: &'a mut Context) -> Result<Box<dyn CausalLm + 'a>> {
        match (self, ctx) {
            (Model::Cpu(m), Context::Cpu(c)) => Ok(Box::new(m.session(c))),
            #[cfg(feature = "cuda")]
            (Model::Cuda(m), Context::Cuda(c)) => Ok(Box::new(m.session(c))),
            #[cfg(feature = "cuda-sim")]
            (Model::CudaSim(m), Context::CudaSim(c)) => Ok(Box::new(m.session(c))),
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN_CONTEXT.into())),
        }
    }

    /// Tokens one forward takes at most (a prefill chunk; the rows of a decode batch).
    pub fn max_batch(&self) -> usize {
        each_model!(self, m => m.max_batch())
    }

    pub fn config(&self) -> &GptOssConfig {
        each_model!(self, m => m.config())
    }

    pub fn backend_info(&self) -> BackendInfo {
        use gptoss_engine::Backend;
        each_model!(self, m => m.backend().info())
    }

    pub fn kernels(&self) -> &[KernelChoice] {
        each_model!(self, m => m.kernels())
    }

    /// Where the weights live.
    pub fn residency_plan(&self) -> &ResidencyPlan {
        each_model!(self, m => m.residency_plan())
    }

    /// What streaming weights from disk has done since the load.
    pub fn stream_stats(&self) -> StreamStats {
        each_model!(self, m => m.stream_stats())
    }

    /// Writes every following step's routed experts to a routing trace at `path`.
    pub fn record_routing(&mut self, path: &std::path::Path, model_name: &str) -> Result<()> {
        each_model!(self, m => Ok(m.record_routing(path, model_name)?))
    }

    /// How the weights (and a context's cache) are stored, for byte accounting.
    pub fn formats(&self, ctx: &Context) -> Result<Formats> {
        match (self, ctx) {
            (Model::Cpu(m), Context::Cpu(c)) => Ok(m.formats(c.kv_dtype())),
            #[cfg(feature = "cuda")]
            (Model::Cuda(m), Context::Cuda(c)) => Ok(m.formats(c.kv_dtype())),
            #[cfg(feature = "cuda-sim")]
            (Model::CudaSim(m), Context::CudaSim(c)) => Ok(m.formats(c.kv_dtype())),
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN_CONTEXT.into())),
        }
    }

    /// The device's measured bandwidth ceiling, when it has its own memory (see `Backend`).
    pub fn measure_peak_gb_s(&mut self) -> Result<Option<f64>> {
        use gptoss_engine::Backend;
        each_model!(self, m => Ok(m.backend_mut().measure_peak_gb_s()?))
    }

    /// Device memory (used, total) in bytes, for devices with their own memory.
    pub fn device_memory(&self) -> Option<(u64, u64)> {
        use gptoss_engine::Backend;
        each_model!(self, m => m.backend().device_memory())
    }

    /// Switches per-op timing on (clearing earlier times) or off.
    pub fn set_profiling(&mut self, on: bool) {
        each_model!(self, m => m.backend_mut().set_enabled(on))
    }

    /// Time spent per op site since profiling was switched on.
    pub fn op_times(&self) -> Vec<(OpSite, OpTime)> {
        each_model!(self, m => m.backend().times().to_vec())
    }
}

impl Context {
    /// Keeps the experts each forward touches, so that the session can report what a step
    /// read (`CausalLm::last_step_reads`); see `gptoss_model_gpt_oss::Context::record_routing`.
    pub fn record_routing(&mut self, on: bool) {
        match self {
            Context::Cpu(c) => c.record_routing(on),
            #[cfg(feature = "cuda")]
            Context::Cuda(c) => c.record_routing(on),
            #[cfg(feature = "cuda-sim")]
            Context::CudaSim(c) => c.record_routing(on),
        }
    }

    /// Tokens in the cache: the next token's position.
    pub fn position(&self) -> usize {
        match self {
            Context::Cpu(c) => c.position(),
            #[cfg(feature = "cuda")]
            Context::Cuda(c) => c.position(),
            #[cfg(feature = "cuda-sim")]
            Context::CudaSim(c) => c.position(),
        }
    }

    pub fn kv_cache_bytes(&self) -> usize {
        match self {
            Context::Cpu(c) => c.kv_cache_bytes(),
            #[cfg(feature = "cuda")]
            Context::Cuda(c) => c.kv_cache_bytes(),
            #[cfg(feature = "cuda-sim")]
            Context::CudaSim(c) => c.kv_cache_bytes(),
        }
    }
}

/// A model with one context: what the commands use.
pub struct Session {
    pub model: Model,
    pub context: Context,
}

impl Session {
    pub fn load(opened: &OpenedModel, opts: &RuntimeOptions) -> Result<Self> {
        Self::load_with_progress(opened, opts, &mut |_, _| {})
    }

    /// As `load`, telling `progress` (bytes loaded, bytes in all).
    pub fn load_with_progress(opened: &OpenedModel, opts: &RuntimeOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        Self::load_observed(opened, opts, &mut |_| {}, progress)
    }

    /// As `load_with_progress`, showing `on_plan` the residency plan before any weight is read.
    pub fn load_observed(
        opened: &OpenedModel,
        opts: &RuntimeOptions,
        on_plan: &mut dyn FnMut(&ResidencyPlan),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let mut model = Model::load_observed(opened, opts, on_plan, progress)?;
        let context = model.new_context(opts.context)?;
        Ok(Session { model, context })
    }

    pub fn lm(&mut self) -> Result<Box<dyn CausalLm + '_>> {
        self.model.session(&mut self.context)
    }

    pub fn formats(&self) -> Result<Formats> {
        self.model.formats(&self.context)
    }
}
