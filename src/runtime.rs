//! Opening a model on a backend: what the CLI and the C API share.

use gptoss_engine::{BackendInfo, CausalLm, KernelChoice};
use gptoss_kernels_cpu::CpuBackend;
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
}

impl Engine {
    pub fn load(model: &OpenedModel, opts: &RuntimeOptions) -> Result<Self> {
        match opts.backend {
            BackendKind::Auto | BackendKind::Cpu => {
                let backend = CpuBackend::new(opts.threads)?;
                Ok(Engine::Cpu(Box::new(GptOss::load(backend, model, opts.load)?)))
            }
            BackendKind::Cuda => Err(Error::Usage("this build has no CUDA backend: rebuild with `--features cuda`".into())),
        }
    }

    pub fn lm(&mut self) -> &mut dyn CausalLm {
        match self {
            Engine::Cpu(m) => m.as_mut(),
        }
    }

    pub fn backend_info(&self) -> BackendInfo {
        use gptoss_engine::Backend;
        match self {
            Engine::Cpu(m) => m.backend().info(),
        }
    }

    pub fn kernels(&self) -> &[KernelChoice] {
        match self {
            Engine::Cpu(m) => m.kernels(),
        }
    }

    pub fn kv_cache_bytes(&self) -> usize {
        match self {
            Engine::Cpu(m) => m.kv_cache_bytes(),
        }
    }
}
