//! Feeding tokens through a model in chunks: the one prefill loop that the generator, the
//! bench, the fidelity comparison, `gptoss logits` and the C API's append all use.
//!
//! A model takes at most `max_batch()` tokens per `forward` (its activations are sized for
//! that many), so a longer prompt goes in as consecutive chunks; only the logits someone reads
//! are computed (the unembedding is the largest single matrix of a step).

use crate::error::{EngineError, Result};
use crate::model::CausalLm;

/// Which rows of logits a prefill computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None: the tokens only fill the cache.
    None,
    /// The last token's only, left as row 0 for `sample` and `logits` once the prefill returns.
    Last,
    /// Every token's, a chunk at a time: readable only while that chunk's `on_chunk` runs.
    All,
}

/// Appends `tokens` to `model`'s cache from its current position, computing the logits
/// `logits` names. An empty `tokens` does nothing.
pub fn prefill(model: &mut dyn CausalLm, tokens: &[u32], logits: Logits) -> Result<()> {
    prefill_chunks(model, tokens, logits, |_, _, _| Ok::<(), EngineError>(()))
}

/// As [`prefill`], calling `on_chunk(model, start, chunk)` after each chunk's forward, with
/// `start` the chunk's offset in `tokens`: with [`Logits::All`], logits row `i` is then that of
/// `tokens[start + i]`. An error from the model or from `on_chunk` stops the prefill.
pub fn prefill_chunks<E: From<EngineError>>(
    model: &mut dyn CausalLm,
    tokens: &[u32],
    logits: Logits,
    mut on_chunk: impl FnMut(&mut dyn CausalLm, usize, &[u32]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    // A model that takes no tokens per call gets one anyway: its forward says why it refuses.
    let batch = model.max_batch().max(1);
    let chunks = tokens.len().div_ceil(batch);
    for (i, chunk) in tokens.chunks(batch).enumerate() {
        let rows = match logits {
            Logits::None => 0,
            Logits::Last => usize::from(i + 1 == chunks),
            Logits::All => chunk.len(),
        };
        model.forward(chunk, rows)?;
        on_chunk(model, i * batch, chunk)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::SamplingParams;

    /// Records each forward's (tokens, logits rows); refuses ids of 99 and above.
    #[derive(Default)]
    struct Recorder {
        pos: usize,
        forwards: Vec<(usize, usize)>,
    }

    impl CausalLm for Recorder {
        fn vocab_size(&self) -> usize {
            99
        }
        fn max_context(&self) -> usize {
            64
        }
        fn max_batch(&self) -> usize {
            4
        }
        fn position(&self) -> usize {
            self.pos
        }
        fn rollback(&mut self, to: usize) -> Result<()> {
            self.pos = to;
            Ok(())
        }
        fn forward(&mut self, tokens: &[u32], rows: usize) -> Result<()> {
            if let Some(&id) = tokens.iter().find(|&&t| t >= 99) {
                return Err(EngineError::TokenOutOfRange { id, vocab: 99 });
            }
            self.pos += tokens.len();
            self.forwards.push((tokens.len(), rows));
            Ok(())
        }
        fn logits(&mut self, _: usize, _: &mut [f32]) -> Result<()> {
            unreachable!("not read")
        }
        fn sample(&mut self, _: usize, _: &SamplingParams, _: f32) -> Result<u32> {
            unreachable!("not sampled")
        }
    }

    #[test]
    fn chunks_of_max_batch_with_the_logits_asked_for() {
        let tokens: Vec<u32> = (0..10).collect();
        for (logits, rows) in [(Logits::None, [0, 0, 0]), (Logits::Last, [0, 0, 1]), (Logits::All, [4, 4, 2])] {
            let mut m = Recorder::default();
            let mut starts = vec![];
            prefill_chunks(&mut m, &tokens, logits, |m, start, chunk| {
                assert_eq!(m.position(), start + chunk.len());
                assert_eq!(chunk, &tokens[start..start + chunk.len()]);
                starts.push(start);
                Ok::<(), EngineError>(())
            })
            .unwrap();
            assert_eq!(m.forwards, vec![(4, rows[0]), (4, rows[1]), (2, rows[2])], "{logits:?}");
            assert_eq!(starts, vec![0, 4, 8]);
        }
        // One chunk exactly, and nothing at all.
        let mut m = Recorder::default();
        prefill(&mut m, &tokens[..4], Logits::Last).unwrap();
        prefill(&mut m, &[], Logits::Last).unwrap();
        assert_eq!(m.forwards, vec![(4, 1)]);
    }

    #[test]
    fn an_error_stops_the_prefill() {
        let mut m = Recorder::default();
        let e = prefill(&mut m, &[1, 2, 3, 4, 5, 99, 7, 8, 9], Logits::Last).unwrap_err();
        assert!(matches!(e, EngineError::TokenOutOfRange { id: 99, .. }), "{e}");
        assert_eq!(m.forwards, vec![(4, 0)]);
        let mut m = Recorder::default();
        let e = prefill_chunks(
            &mut m,
            &[1; 9],
            Logits::All,
            |_, start, _| {
                if start == 4 { Err(EngineError::invalid("stop here")) } else { Ok(()) }
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("stop here"), "{e}");
        assert_eq!(m.forwards, vec![(4, 4), (4, 4)]);
    }
}
