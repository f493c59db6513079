//! Decode steps over several contexts of a `Model` in one forward (continuous batching): the
//! backend-independent face of `gptoss_model_gpt_oss::Batch`. What the server's scheduler runs
//! once per step for all its running sequences.

use gptoss_engine::SamplingParams;
use gptoss_kernels_cpu::CpuBuffer;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use gptoss_kernels_cuda::CudaBuffer;
#[cfg(feature = "cuda")]
use gptoss_kernels_cuda::Gpu;
#[cfg(feature = "cuda-sim")]
use gptoss_kernels_cuda::Sim;
use gptoss_model_gpt_oss::Batch as Rows;

#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use crate::error::Error;
use crate::error::Result;
use crate::runtime::{Context, Model};

/// The activations of decode steps over up to `max_rows` contexts of a `Model`, on its backend.
pub enum Batch {
    Cpu(Box<Rows<CpuBuffer>>),
    #[cfg(feature = "cuda")]
    Cuda(Box<Rows<CudaBuffer<Gpu>>>),
    #[cfg(feature = "cuda-sim")]
    CudaSim(Box<Rows<CudaBuffer<Sim>>>),
}

/// A batch or context used with a model of another backend: both come only from the model.
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
const FOREIGN: &str = "a Batch or Context used with a Model of another backend";

/// The CPU contexts among `contexts`; an error if any is another backend's.
fn cpu_contexts<'a>(contexts: &'a mut [&mut Context]) -> Result<Vec<&'a mut gptoss_model_gpt_oss::Context<CpuBuffer>>> {
    contexts
        .iter_mut()
        .map(|c| match &mut **c {
            Context::Cpu(c) => Ok(&mut **c),
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN.into())),
        })
        .collect()
}

/// The contexts among `contexts` that `pick` takes; an error if it refuses one (another backend's).
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
fn cuda_contexts<'a, T>(contexts: &'a mut [&mut Context], pick: impl Fn(&'a mut Context) -> Option<&'a mut T>) -> Result<Vec<&'a mut T>> {
    contexts.iter_mut().map(|c| pick(c).ok_or_else(|| Error::Usage(FOREIGN.into()))).collect()
}

impl Model {
    /// Activations for decode steps of up to `max_rows` contexts at once.
    pub fn new_batch(&mut self, max_rows: usize) -> Result<Batch> {
        Ok(match self {
            Model::Cpu(m) => Batch::Cpu(Box::new(m.new_batch(max_rows)?)),
            #[cfg(feature = "cuda")]
            Model::Cuda(m) => Batch::Cuda(Box::new(m.new_batch(max_rows)?)),
            #[cfg(feature = "cuda-sim")]
            Model::CudaSim(m) => Batch::CudaSim(Box::new(m.new_batch(max_rows)?)),
        })
    }

    /// Whether `ctx` can take `token` as its next decode step (an id within the vocabulary, room
    /// for one more position).
    pub fn check_decode(&self, ctx: &Context, token: u32) -> Result<()> {
        match (self, ctx) {
            (Model::Cpu(m), Context::Cpu(c)) => Ok(m.check_decode(c, token)?),
            #[cfg(feature = "cuda")]
            (Model::Cuda(m), Context::Cuda(c)) => Ok(m.check_decode(c, token)?),
            #[cfg(feature = "cuda-sim")]
            (Model::CudaSim(m), Context::CudaSim(c)) => Ok(m.check_decode(c, token)?),
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN.into())),
        }
    }

    /// Appends `tokens[t]` to `contexts[t]` and computes every row's logits, in one forward
    /// (`GptOss::forward_rows`). Every row is checked first; on error no context has advanced.
    pub fn forward_rows(&mut self, batch: &mut Batch, contexts: &mut [&mut Context], tokens: &[u32]) -> Result<()> {
        match (self, batch) {
            (Model::Cpu(m), Batch::Cpu(b)) => Ok(m.forward_rows(b, &mut cpu_contexts(contexts)?, tokens)?),
            #[cfg(feature = "cuda")]
            (Model::Cuda(m), Batch::Cuda(b)) => {
                let mut rows = cuda_contexts(contexts, |c| if let Context::Cuda(c) = c { Some(&mut **c) } else { None })?;
                Ok(m.forward_rows(b, &mut rows, tokens)?)
            }
            #[cfg(feature = "cuda-sim")]
            (Model::CudaSim(m), Batch::CudaSim(b)) => {
                let mut rows = cuda_contexts(contexts, |c| if let Context::CudaSim(c) = c { Some(&mut **c) } else { None })?;
                Ok(m.forward_rows(b, &mut rows, tokens)?)
            }
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN.into())),
        }
    }

    /// Copies logits row `row` of the last `forward_rows` to the host.
    pub fn batch_logits(&mut self, batch: &Batch, row: usize, out: &mut [f32]) -> Result<()> {
        match (self, batch) {
            (Model::Cpu(m), Batch::Cpu(b)) => Ok(m.batch_logits(b, row, out)?),
            #[cfg(feature = "cuda")]
            (Model::Cuda(m), Batch::Cuda(b)) => Ok(m.batch_logits(b, row, out)?),
            #[cfg(feature = "cuda-sim")]
            (Model::CudaSim(m), Batch::CudaSim(b)) => Ok(m.batch_logits(b, row, out)?),
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN.into())),
        }
    }

    /// Samples from logits row `row` of the last `forward_rows` with the uniform number `u`.
    pub fn batch_sample(&mut self, batch: &Batch, row: usize, params: &SamplingParams, u: f32) -> Result<u32> {
        match (self, batch) {
            (Model::Cpu(m), Batch::Cpu(b)) => Ok(m.batch_sample(b, row, params, u)?),
            #[cfg(feature = "cuda")]
            (Model::Cuda(m), Batch::Cuda(b)) => Ok(m.batch_sample(b, row, params, u)?),
            #[cfg(feature = "cuda-sim")]
            (Model::CudaSim(m), Batch::CudaSim(b)) => Ok(m.batch_sample(b, row, params, u)?),
            #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
            _ => Err(Error::Usage(FOREIGN.into())),
        }
    }
}

impl Batch {
    /// The most contexts one step takes.
    pub fn max_rows(&self) -> usize {
        match self {
            Batch::Cpu(b) => b.max_rows(),
            #[cfg(feature = "cuda")]
            Batch::Cuda(b) => b.max_rows(),
            #[cfg(feature = "cuda-sim")]
            Batch::CudaSim(b) => b.max_rows(),
        }
    }
}
