//! What the generator needs from a model: a forward pass over a KV cache, and sampling.

use crate::error::Result;
use crate::sampling::SamplingParams;

/// A causal language model with a static KV cache, running on some backend.
pub trait CausalLm {
    fn vocab_size(&self) -> usize;
    /// Tokens the KV cache holds at most.
    fn max_context(&self) -> usize;
    /// Tokens one `forward` call accepts at most.
    fn max_batch(&self) -> usize;
    /// Tokens in the cache; the next token's position.
    fn position(&self) -> usize;
    /// Forgets the tokens from position `to` on.
    fn rollback(&mut self, to: usize) -> Result<()>;
    /// Appends `tokens` at positions `position()..` and computes logits for the last
    /// `logits_rows` of them (0 during a prefill chunk whose logits nobody reads). Validates the
    /// ids and the context before touching the cache; on error the cache is unchanged.
    fn forward(&mut self, tokens: &[u32], logits_rows: usize) -> Result<()>;
    /// Copies logits row `row` (of the last forward's `logits_rows`) to the host.
    fn logits(&mut self, row: usize, out: &mut [f32]) -> Result<()>;
    /// Samples from logits row `row` with the uniform number `u`.
    fn sample(&mut self, row: usize, params: &SamplingParams, u: f32) -> Result<u32>;
    /// What the last `forward` read from memory, for a model that accounts for it and was
    /// asked to (recording which experts a step touched costs a read per layer); `None`
    /// otherwise. Speculative decoding reports it per verification step.
    fn last_step_reads(&self) -> Option<StepReads> {
        None
    }
}

/// The memory one forward step read: every dense weight once, the distinct experts its tokens
/// were routed to, and the KV cache positions it attended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReads {
    pub bytes: f64,
    /// Distinct experts per layer, averaged over the layers.
    pub experts_per_layer: f64,
}
