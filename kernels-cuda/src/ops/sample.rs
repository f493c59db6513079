//! Launcher for `cuda/sample.cu`: the token id is the only thing copied back (4 bytes).

use gptoss_engine::{Buffers, EngineError, Result, SampleArgs, checks};

use super::On;
use crate::args::{GPTOSS_REDUCE_THREADS, GPTOSS_SAMPLE_CUT_THREADS, GptossSampleArgs};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};

const OP: &str = "sample";
/// Blocks of the sampling passes: about 2048 logits each, at most this many.
pub const MAX_BLOCKS: usize = 1024;

/// Scratch of the sampling passes, sized once for the vocabulary.
pub struct SampleScratch<D: Device> {
    /// f32 [MAX_BLOCKS]
    pub val: CudaBuffer<D>,
    /// u32 [MAX_BLOCKS]
    pub idx: CudaBuffer<D>,
    /// f64 [MAX_BLOCKS] (as 2 × MAX_BLOCKS f32 elements)
    pub mass: CudaBuffer<D>,
    /// u32 [2]: the ticket, then the sampled id
    pub ticket_and_id: CudaBuffer<D>,
}

/// Most ids the top-k / top-p pass takes: its fixed-point masses (2^40 per unit weight) must
/// sum within 64 bits.
pub const MAX_CUT_VOCAB: usize = 1 << 23;

/// The kernels of `cuda/sample.cu`.
pub struct Kernels<'a, D: Device> {
    pub argmax: &'a D::Function,
    pub temperature: &'a D::Function,
    pub cut: &'a D::Function,
}

pub fn sample<D: Device>(on: &On<D>, k: Kernels<D>, s: &mut SampleScratch<D>, a: SampleArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<u32> {
    checks::sample(&a)?;
    let (vocab, params, u) = (a.vocab, a.params, a.u);
    if vocab > u32::MAX as usize {
        return Err(EngineError::shape(OP, format!("a vocabulary of {vocab}")));
    }
    let cut = !params.is_greedy() && (params.top_k != 0 || params.top_p < 1.0);
    if cut && vocab > MAX_CUT_VOCAB {
        return Err(EngineError::unsupported(OP, format!("top-k / top-p over a vocabulary of {vocab} (at most {MAX_CUT_VOCAB})")));
    }
    let args = GptossSampleArgs {
        logits: a.logits.at(a.row * vocab) as *const f32,
        part_val: s.val.ptr() as *mut f32,
        part_idx: s.idx.ptr() as *mut u32,
        part_mass: s.mass.ptr() as *mut f64,
        counter: s.ticket_and_id.ptr() as *mut u32,
        out_id: s.ticket_and_id.at(1) as *mut u32,
        vocab: vocab as u32,
        temperature: params.temperature,
        u,
        top_k: params.top_k.min(u32::MAX as usize) as u32,
        top_p: params.top_p,
        pad_: 0,
    };
    let blocks = vocab.div_ceil(2048).clamp(1, MAX_BLOCKS) as u32;
    let cfg = Launch::linear([blocks, 1, 1], GPTOSS_REDUCE_THREADS);
    let one_block = Launch::linear([1, 1, 1], GPTOSS_SAMPLE_CUT_THREADS);
    // SAFETY: the row holds vocab floats (checked above), the scratch holds MAX_BLOCKS entries
    // per pass (≥ blocks) and the ticket starts at zero (each pass's last block resets it); the
    // cut pass is one block of the size it was compiled for, over at most MAX_CUT_VOCAB ids.
    unsafe {
        on.dev.launch(k.argmax, cfg, &args)?;
        if cut {
            on.dev.launch(k.cut, one_block, &args)?;
        } else if !params.is_greedy() {
            on.dev.launch(k.temperature, cfg, &args)?;
        }
    }
    let mut id = [0u8; 4];
    s.ticket_and_id.read(on.dev, 1, &mut id)?;
    Ok(u32::from_le_bytes(id))
}
