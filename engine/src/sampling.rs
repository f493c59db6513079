//! Sampling parameters and the seeded random source behind them.
//!
//! A backend's `sample` op turns one row of logits into a token id given the parameters and a
//! uniform number `u ∈ [0, 1)` drawn here, so the same seed gives the same tokens on every
//! backend. The exact rule (implemented by each backend, reference in `kernels-cpu`):
//! 1. `temperature == 0` or `top_k == 1`: the arg-max, lowest id on ties.
//! 2. Otherwise the candidates are, when `top_k == 0` and `top_p == 1`, all ids in id order;
//!    else the ids ranked by logit, descending (lowest id first on ties), cut to the first
//!    `top_k` (none cut when 0), then to the shortest prefix whose probability reaches `top_p`
//!    of their mass. With `p_i ∝ exp((l_i − l_max) / temperature)`, the token is the first
//!    candidate whose cumulative probability exceeds `u ·` the candidates' mass (the last
//!    candidate if rounding leaves none).

use crate::error::{EngineError, Result};
use crate::synth::mix;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 means no top-k cut.
    pub top_k: usize,
    /// 1 means no nucleus cut.
    pub top_p: f32,
}

impl SamplingParams {
    pub const GREEDY: SamplingParams = SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0 };

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(EngineError::invalid(format!("temperature {} must be finite and ≥ 0", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(EngineError::invalid(format!("top-p {} must be in (0, 1]", self.top_p)));
        }
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }
}

impl Default for SamplingParams {
    /// gpt-oss's recommended sampling: temperature 1, no cuts.
    fn default() -> Self {
        SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0 }
    }
}

/// A seeded, reproducible source of uniform numbers (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 24 random bits.
    pub fn next_unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_reproducible_and_in_range() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            let u = a.next_unit();
            assert_eq!(u, b.next_unit());
            assert!((0.0..1.0).contains(&u));
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn params_are_validated() {
        assert!(SamplingParams::default().validate().is_ok());
        assert!(SamplingParams { temperature: -1.0, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { top_p: 0.0, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { temperature: f32::NAN, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { top_k: 1, ..Default::default() }.is_greedy());
    }
}
