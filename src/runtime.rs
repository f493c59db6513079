//! Opening a model on a backend: what the CLI and the C API share.

use gptoss_engine::profiled::{OpSite, OpTime, Profiled};
use gptoss_engine::{BackendInfo, CausalLm, KernelChoice};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_kernels_cpu::CpuBuffer;
use gptoss_model_gpt_oss::accounting::Formats;
use gptoss_model_gpt_oss::{Context, ContextOptions, GptOss, GptOssConfig, LoadOptions, OpenedModel};

use crate::error::{Error, Result};

/// Which device runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The best available: CUDA when built with it and a GPU is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" => Ok(BackendKind::Cuda),
            other => Err(Error::Usage(format!("unknown backend '{other}' (expected auto, cpu or cuda)"))),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RuntimeOptions {
    pub backend: BackendKind,
    /// CPU worker threads (all cores when `None`).
    pub threads: Option<usize>,
    pub load: LoadOptions,
    /// The context the engine starts with.
    pub context: ContextOptions,
}

/// A loaded model on some backend, with one context. Every backend is wrapped in `Profiled`,
/// which only forwards until per-op timing is switched on.
pub enum Engine {
    Cpu(Box<GptOss<Profiled<CpuBackend>>>, Context<CpuBuffer>),
}

impl Engine {
    pub fn load(model: &OpenedModel, opts: &RuntimeOptions) -> Result<Self> {
        Self::load_with_progress(model, opts, &mut |_, _| {})
    }

    /// As `load`, telling `progress` (bytes loaded, bytes in all).
    pub fn load_with_progress(model: &OpenedModel, opts: &RuntimeOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        match opts.backend {
            BackendKind::Auto | BackendKind::Cpu => {
                let backend = Profiled::new(CpuBackend::new(opts.threads)?);
                let mut m = Box::new(GptOss::load_with_progress(backend, model, opts.load, progress)?);
                let ctx = m.new_context(opts.context)?;
                Ok(Engine::Cpu(m, ctx))
            }
            BackendKind::Cuda => Err(Error::Usage("this build has no CUDA backend: rebuild with `--features cuda`".into())),
        }
    }

    /// The model and its context as a `CausalLm`.
    pub fn lm(&mut self) -> Box<dyn CausalLm + '_> {
        match self {
            Engine::Cpu(m, ctx) => Box::new(m.session(ctx)),
        }
    }

    pub fn config(&self) -> &GptOssConfig {
        match self {
            Engine::Cpu(m, _) => m.config(),
        }
    }

    pub fn backend_info(&self) -> BackendInfo {
        use gptoss_engine::Backend;
        match self {
            Engine::Cpu(m, _) => m.backend().info(),
        }
    }

    pub fn kernels(&self) -> &[KernelChoice] {
        match self {
            Engine::Cpu(m, _) => m.kernels(),
        }
    }

    pub fn formats(&self) -> Formats {
        match self {
            Engine::Cpu(m, ctx) => m.formats(ctx.kv_dtype()),
        }
    }

    pub fn kv_cache_bytes(&self) -> usize {
        match self {
            Engine::Cpu(_, ctx) => ctx.kv_cache_bytes(),
        }
    }

    /// Switches per-op timing on (clearing earlier times) or off.
    pub fn set_profiling(&mut self, on: bool) {
        match self {
            Engine::Cpu(m, _) => m.backend_mut().set_enabled(on),
        }
    }

    /// Time spent per op site since profiling was switched on.
    pub fn op_times(&self) -> Vec<(OpSite, OpTime)> {
        match self {
            Engine::Cpu(m, _) => m.backend().times().to_vec(),
        }
    }
}
