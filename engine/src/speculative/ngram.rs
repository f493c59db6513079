//! Prompt lookup: proposals copied from earlier in the sequence. The last `n` tokens are
//! looked up (the most recent earlier occurrence wins; shorter n-grams down to one token when
//! none matches) and the tokens that followed them are proposed. Free to produce; useful where
//! the output repeats its input (code edits, quotations, extraction).

use crate::error::{EngineError, Result};
use crate::sampling::{Rng, SamplingParams};

use super::draft::{Draft, Proposal};

pub struct NgramDraft {
    n: usize,
}

impl NgramDraft {
    /// Looks up n-grams of at most `n` tokens (1 or more).
    pub fn new(n: usize) -> Result<Self> {
        if n == 0 {
            return Err(EngineError::invalid("ngram draft: the n-gram needs at least 1 token"));
        }
        Ok(NgramDraft { n })
    }
}

/// The start of the continuation after the most recent earlier occurrence of the last `size`
/// tokens of `history`.
fn lookup(history: &[u32], size: usize) -> Option<usize> {
    let len = history.len();
    if len <= size {
        return None;
    }
    let tail = &history[len - size..];
    (0..len - size).rev().find(|&s| &history[s..s + size] == tail).map(|s| s + size)
}

impl Draft for NgramDraft {
    fn name(&self) -> String {
        format!("ngram:{}", self.n)
    }

    fn vocab_size(&self) -> Option<usize> {
        None
    }

    fn propose(&mut self, history: &[u32], k: usize, _: &SamplingParams, _: &mut Rng, out: &mut Proposal) -> Result<()> {
        out.clear();
        if k == 0 {
            return Ok(());
        }
        if let Some(start) = (1..=self.n).rev().find_map(|size| lookup(history, size)) {
            out.tokens.extend_from_slice(&history[start..(start + k).min(history.len())]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn propose(n: usize, history: &[u32], k: usize) -> Vec<u32> {
        let mut out = Proposal::default();
        NgramDraft::new(n).unwrap().propose(history, k, &SamplingParams::GREEDY, &mut Rng::new(0), &mut out).unwrap();
        assert!(out.probs.is_empty());
        out.tokens
    }

    #[test]
    fn copies_what_followed_the_latest_match_of_the_longest_n_gram() {
        // "… 1 2 3 9 … 1 2 3 7 8 … 2 3" → the 2-gram [2, 3] last seen before 7, 8.
        let h = [1, 2, 3, 9, 5, 1, 2, 3, 7, 8, 4, 2, 3];
        assert_eq!(propose(2, &h, 3), vec![7, 8, 4]);
        // A 3-gram [4, 2, 3] never occurred before: falls back to the 2-gram.
        assert_eq!(propose(3, &h, 2), vec![7, 8]);
        // The continuation stops at the end of the sequence.
        assert_eq!(propose(1, &[5, 6, 5], 4), vec![6, 5]);
        assert_eq!(propose(2, &[1, 2, 3], 4), Vec::<u32>::new());
        assert_eq!(propose(2, &h, 0), Vec::<u32>::new());
        assert!(NgramDraft::new(0).is_err());
    }
}
