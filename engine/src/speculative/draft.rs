//! The one thing a draft source must do: propose the next few tokens of a sequence.

use crate::error::Result;
use crate::sampling::{Rng, SamplingParams};

/// Tokens proposed to follow a sequence, with the distributions they were drawn from.
#[derive(Clone, Debug, Default)]
pub struct Proposal {
    pub tokens: Vec<u32>,
    /// For a draft that samples: `probs[i][id]` is the probability with which `tokens[i]` was
    /// drawn. Empty when the proposals do not come from a distribution over the vocabulary
    /// (copied from the sequence, arg-maxes, drawn independently of the target): verification
    /// then treats each as certain, which keeps the output distribution exact (see `accept`).
    pub probs: Vec<Vec<f32>>,
}

impl Proposal {
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.probs.clear();
    }
}

/// A source of proposed continuations, verified by the target model k at a time.
///
/// To add one: implement `propose` (and `name`, `vocab_size`); `generate_speculative` does
/// the rest (verification, rollback, accounting). A draft keeps whatever state it likes
/// between calls (a KV cache, an index), but must not assume that its earlier proposals were
/// accepted: each call receives the whole sequence as it now stands.
pub trait Draft {
    /// A label for reports: `ngram:3`, `self:int4`, `synthetic:20b`, …
    fn name(&self) -> String;
    /// The vocabulary size of a draft that is a model (a target with another one is refused);
    /// `None` for sources that only copy or invent ids.
    fn vocab_size(&self) -> Option<usize>;
    /// Proposes up to `k` tokens to follow `history` (every token of the sequence so far: what
    /// the target's cache holds plus the last sampled token), into `out` (cleared first).
    /// Fewer than `k`, even none, is allowed. With a non-greedy `sampling` a draft that has a
    /// distribution draws from it (under the same temperature and cuts) with `rng`, and
    /// records it in `out.probs`.
    fn propose(&mut self, history: &[u32], k: usize, sampling: &SamplingParams, rng: &mut Rng, out: &mut Proposal) -> Result<()>;
}
