//! The two drafts that bound what any real draft can do, for benchmarks on models whose
//! weights make acceptance meaningless (synthetic ones): the oracle (every proposal accepted,
//! at no drafting cost: the ceiling the verification cost allows) and random proposals (almost
//! none accepted: the floor).

use crate::error::{EngineError, Result};
use crate::sampling::{Rng, SamplingParams};

use super::draft::{Draft, Proposal};

/// Proposes the target's own continuation, known beforehand from a plain greedy run of the
/// same prompt. Under greedy verification every proposal is accepted where a token's logits do
/// not depend on its batch-mates.
pub struct OracleDraft {
    /// The whole sequence the plain run produced: prompt then continuation.
    sequence: Vec<u32>,
}

impl OracleDraft {
    pub fn new(sequence: Vec<u32>) -> Self {
        OracleDraft { sequence }
    }
}

impl Draft for OracleDraft {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn vocab_size(&self) -> Option<usize> {
        None
    }

    fn propose(&mut self, history: &[u32], k: usize, _: &SamplingParams, _: &mut Rng, out: &mut Proposal) -> Result<()> {
        out.clear();
        // Once the sequence has left the known one there is nothing to propose.
        if self.sequence.starts_with(history) {
            let end = (history.len() + k).min(self.sequence.len());
            out.tokens.extend_from_slice(&self.sequence[history.len()..end]);
        }
        Ok(())
    }
}

/// Proposes ids drawn uniformly from the vocabulary with a random source of its own.
pub struct RandomDraft {
    vocab: usize,
    rng: Rng,
}

impl RandomDraft {
    pub fn new(vocab: usize, seed: u64) -> Result<Self> {
        if vocab == 0 {
            return Err(EngineError::invalid("random draft: an empty vocabulary"));
        }
        Ok(RandomDraft { vocab, rng: Rng::new(seed) })
    }
}

impl Draft for RandomDraft {
    fn name(&self) -> String {
        "random".into()
    }

    fn vocab_size(&self) -> Option<usize> {
        Some(self.vocab)
    }

    fn propose(&mut self, _: &[u32], k: usize, _: &SamplingParams, _: &mut Rng, out: &mut Proposal) -> Result<()> {
        out.clear();
        out.tokens.extend((0..k).map(|_| (self.rng.next_u64() % self.vocab as u64) as u32));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_proposes_the_known_continuation_while_the_sequence_follows_it() {
        let mut d = OracleDraft::new(vec![1, 2, 3, 4, 5]);
        let mut out = Proposal::default();
        let (p, mut rng) = (SamplingParams::GREEDY, Rng::new(0));
        d.propose(&[1, 2], 2, &p, &mut rng, &mut out).unwrap();
        assert_eq!(out.tokens, vec![3, 4]);
        d.propose(&[1, 2, 3, 4], 3, &p, &mut rng, &mut out).unwrap();
        assert_eq!(out.tokens, vec![5]);
        d.propose(&[1, 9], 3, &p, &mut rng, &mut out).unwrap();
        assert!(out.tokens.is_empty());
    }

    #[test]
    fn random_proposals_are_in_the_vocabulary_and_seeded() {
        let run = |seed| {
            let mut out = Proposal::default();
            RandomDraft::new(7, seed).unwrap().propose(&[0], 50, &SamplingParams::GREEDY, &mut Rng::new(0), &mut out).unwrap();
            out.tokens
        };
        assert!(run(1).iter().all(|&t| t < 7));
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert!(RandomDraft::new(0, 1).is_err());
    }
}
