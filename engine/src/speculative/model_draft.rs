//! A language model as the draft: another model sharing the tokenizer (20b drafting for 120b),
//! or the target itself in a cheaper form on a context of its own. Its KV cache is kept in
//! step with the sequence: each call rolls it back to what it shares with the sequence as it
//! now stands (the proposals that were rejected go), runs the tokens it has not seen in one
//! prefill, then decodes its proposals one at a time.

use crate::error::Result;
use crate::model::CausalLm;
use crate::prefill::{Logits, prefill};
use crate::sampling::{Rng, SamplingParams};

use super::distribution::{distribution, draw};
use super::draft::{Draft, Proposal};

pub struct ModelDraft<'a> {
    name: String,
    lm: Box<dyn CausalLm + 'a>,
    /// The tokens the draft's cache holds, in order.
    cached: Vec<u32>,
    row: Vec<f32>,
    ranked: Vec<(f32, u32)>,
}

impl<'a> ModelDraft<'a> {
    /// Drafts with `lm`, whose cache holds `cached` (empty for a new context; what
    /// [`ModelDraft::into_cached`] returned after an earlier generation, to reuse it). A cache
    /// that does not hold as many tokens is emptied.
    pub fn new(name: impl Into<String>, mut lm: Box<dyn CausalLm + 'a>, mut cached: Vec<u32>) -> Result<Self> {
        if lm.position() != cached.len() {
            lm.rollback(0)?;
            cached.clear();
        }
        Ok(ModelDraft { name: name.into(), lm, cached, row: Vec::new(), ranked: Vec::new() })
    }

    /// The tokens the draft's cache holds, for a later `new` on the same context.
    pub fn into_cached(self) -> Vec<u32> {
        self.cached
    }

    /// Brings the cache to exactly `history`, leaving the logits of its last token as row 0.
    fn catch_up(&mut self, history: &[u32]) -> Result<()> {
        // At least one token is run, so that there are logits to draft from.
        let shared = self.cached.iter().zip(history).take_while(|(a, b)| a == b).count().min(history.len() - 1);
        // A sliding window's ring may no longer hold what a deep rollback needs: start over.
        let keep = if self.lm.rollback(shared).is_ok() {
            shared
        } else {
            self.lm.rollback(0)?;
            0
        };
        self.cached.truncate(keep);
        prefill(self.lm.as_mut(), &history[keep..], Logits::Last)?;
        self.cached.extend_from_slice(&history[keep..]);
        Ok(())
    }

    /// Draws the next proposal from logits row 0.
    fn next(&mut self, sampling: &SamplingParams, rng: &mut Rng, out: &mut Proposal) -> Result<u32> {
        if sampling.is_greedy() {
            return self.lm.sample(0, &SamplingParams::GREEDY, 0.0);
        }
        self.row.resize(self.lm.vocab_size(), 0.0);
        self.lm.logits(0, &mut self.row)?;
        let mut q = Vec::new();
        distribution(&self.row, sampling, &mut self.ranked, &mut q);
        let token = draw(&q, rng.next_unit());
        out.probs.push(q);
        Ok(token)
    }
}

impl Draft for ModelDraft<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn vocab_size(&self) -> Option<usize> {
        Some(self.lm.vocab_size())
    }

    fn propose(&mut self, history: &[u32], k: usize, sampling: &SamplingParams, rng: &mut Rng, out: &mut Proposal) -> Result<()> {
        out.clear();
        // Proposal i (from 0) is drafted with the sequence and the i before it in the cache.
        let room = (self.lm.max_context() + 1).saturating_sub(history.len());
        let k = k.min(room);
        if k == 0 || history.is_empty() {
            return Ok(());
        }
        self.catch_up(history)?;
        for i in 0..k {
            let token = self.next(sampling, rng, out)?;
            out.tokens.push(token);
            if i + 1 < k {
                self.lm.forward(&[token], 1)?;
                self.cached.push(token);
            }
        }
        Ok(())
    }
}
