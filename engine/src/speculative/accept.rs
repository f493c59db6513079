//! Deciding how much of a proposal the target accepts, from the target's logits after one
//! forward over `[last, d_1 … d_k]` (row `i` is the target's next-token distribution after
//! `d_1 … d_i`).
//!
//! - Greedy: accept while `d_i` is the target's arg-max; the token after the accepted ones is
//!   the arg-max of the next row. Token for token what plain greedy decoding produces, as long
//!   as a token's logits do not depend on its batch-mates (true on the CPU; on CUDA within
//!   tolerance only, see the engine README).
//! - Sampling (Leviathan et al. 2023, Chen et al. 2023): accept `d_i` with probability
//!   `min(1, p(d_i) / q(d_i))`; at the first rejection draw from `max(0, p − q)` normalised;
//!   if all are accepted draw one more from row k. `p` is the target's distribution and `q` the
//!   draft's, both under the same temperature and cuts, so each emitted token is distributed
//!   exactly as plain sampling would draw it. A proposal without `q` (copied, arg-max, drawn
//!   independently) counts as a point mass: accepted with probability `p(d)`, and on rejection
//!   the draw is from `p` without `d` — again exactly `p`.

use crate::error::Result;
use crate::generator::check_finite_logits;
use crate::model::CausalLm;
use crate::sampling::{Rng, SamplingParams};

use super::distribution::{distribution, draw};
use super::draft::Proposal;

/// What verification of one proposal decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// How many proposed tokens were accepted: a prefix of the proposal.
    pub accepted: usize,
    /// The token after them: the target's own choice at the first rejection, or one more
    /// token from its last row when every proposal was accepted.
    pub next: u32,
}

/// Greedy verification of `proposal` from the target's last forward (`proposal.len() + 1`
/// rows of logits), each row checked finite first (`row`: vocab_size floats of scratch).
pub fn verify_greedy(target: &mut dyn CausalLm, proposal: &[u32], row: &mut [f32]) -> Result<Verdict> {
    for (i, &d) in proposal.iter().enumerate() {
        check_finite_logits(target, i, row)?;
        let choice = target.sample(i, &SamplingParams::GREEDY, 0.0)?;
        if choice != d {
            return Ok(Verdict { accepted: i, next: choice });
        }
    }
    check_finite_logits(target, proposal.len(), row)?;
    let next = target.sample(proposal.len(), &SamplingParams::GREEDY, 0.0)?;
    Ok(Verdict { accepted: proposal.len(), next })
}

/// Speculative sampling, with scratch sized to the vocabulary once.
#[derive(Default)]
pub struct Sampler {
    row: Vec<f32>,
    p: Vec<f32>,
    residual: Vec<f32>,
    ranked: Vec<(f32, u32)>,
}

impl Sampler {
    /// Verifies `proposal` against the target's last forward (`proposal.tokens.len() + 1`
    /// rows of logits) under `params`, drawing uniform numbers from `rng`.
    pub fn verify(&mut self, target: &mut dyn CausalLm, proposal: &Proposal, params: &SamplingParams, rng: &mut Rng) -> Result<Verdict> {
        self.row.resize(target.vocab_size(), 0.0);
        for (i, &d) in proposal.tokens.iter().enumerate() {
            check_finite_logits(target, i, &mut self.row)?;
            distribution(&self.row, params, &mut self.ranked, &mut self.p);
            let q = proposal.probs.get(i).filter(|q| q.get(d as usize).is_some_and(|&qd| qd > 0.0));
            let q_d = q.map_or(1.0, |q| q[d as usize]) as f64;
            // Accept with probability min(1, p/q): u < p/q for u uniform in [0, 1).
            if (rng.next_unit() as f64) * q_d < self.p[d as usize] as f64 {
                continue;
            }
            self.residual.clear();
            match q {
                Some(q) => self.residual.extend(self.p.iter().zip(q).map(|(&p, &q)| (p - q).max(0.0))),
                None => {
                    self.residual.extend_from_slice(&self.p);
                    self.residual[d as usize] = 0.0;
                }
            }
            // Rounding can leave no mass where p and q nearly agree: p itself is then the law.
            let dist = if self.residual.iter().any(|&r| r > 0.0) { &self.residual } else { &self.p };
            return Ok(Verdict { accepted: i, next: draw(dist, rng.next_unit()) });
        }
        let k = proposal.tokens.len();
        check_finite_logits(target, k, &mut self.row)?;
        distribution(&self.row, params, &mut self.ranked, &mut self.p);
        Ok(Verdict { accepted: k, next: draw(&self.p, rng.next_unit()) })
    }
}
