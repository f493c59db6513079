//! Opening a model on a backend: what the CLI and the C API share.

use gptoss_engine::{BackendInfo, CausalLm, KernelChoice};
use gptoss_kernels_cpu::CpuBackend;
#[cfg(feature = "cuda")]
use gptoss_kernels_cuda::CudaBackend;
use gptoss_model_gpt_oss::{GptOss, LoadOptions, OpenedModel};

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
}

/// A loaded model on some backend.
pub enum Engine {
    Cpu(Box<GptOss<CpuBackend>>),
    #[cfg(feature = "cuda")]
    Cuda(Box<GptOss<CudaBackend>>),
}

/// Runs `$body` with `$m` bound to the model, whatever its backend.
macro_rules! each_backend {
    ($engine:expr, $m:ident => $body:expr) => {
        match $engine {
            Engine::Cpu($m) => $body,
            #[cfg(feature = "cuda")]
            Engine::Cuda($m) => $body,
        }
    };
}

impl Engine {
    pub fn load(model: &OpenedModel, opts: &RuntimeOptions) -> Result<Self> {
        match opts.backend {
            BackendKind::Cpu => Self::load_cpu(model, opts),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(Engine::Cuda(Box::new(GptOss::load(CudaBackend::new(0)?, model, opts.load)?))),
            #[cfg(feature = "cuda")]
            BackendKind::Auto => match CudaBackend::new(0) {
                Ok(gpu) => Ok(Engine::Cuda(Box::new(GptOss::load(gpu, model, opts.load)?))),
                // "auto" means the best available device: no usable GPU here, so the CPU.
                Err(_) => Self::load_cpu(model, opts),
            },
            #[cfg(not(feature = "cuda"))]
            BackendKind::Auto => Self::load_cpu(model, opts),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(Error::Usage("this build has no CUDA backend: rebuild with `--features cuda`".into())),
        }
    }

    fn load_cpu(model: &OpenedModel, opts: &RuntimeOptions) -> Result<Self> {
        let backend = CpuBackend::new(opts.threads)?;
        Ok(Engine::Cpu(Box::new(GptOss::load(backend, model, opts.load)?)))
    }

    pub fn lm(&mut self) -> &mut dyn CausalLm {
        each_backend!(self, m => m.as_mut())
    }

    pub fn backend_info(&self) -> BackendInfo {
        use gptoss_engine::Backend;
        each_backend!(self, m => m.backend().info())
    }

    pub fn kernels(&self) -> &[KernelChoice] {
        each_backend!(self, m => m.kernels())
    }

    pub fn kv_cache_bytes(&self) -> usize {
        each_backend!(self, m => m.kv_cache_bytes())
    }
}
