//! How many tokens to propose per step: a fixed `k`, or `auto`, which picks each step the `k`
//! that maximises the expected tokens per second from what the generation has measured so far.
//!
//! With `a_i` the acceptance at position `i` given the ones before were accepted (observed,
//! with a prior of one acceptance in two tries), a step proposing `k` yields
//! `1 + Σ_{i<k} Π_{m≤i} a_m` tokens on average and costs `k` draft tokens plus a verification
//! of `k + 1` tokens. Verification time as a function of the tokens run is a line fitted to
//! the step times seen (a constant while only one size has been seen; a plain decode step is
//! measured first). On a mixture of experts the line is steep — the union of the experts the
//! tokens route to is read — so a draft must be accepted often to pay; `k = 0` (plain
//! decoding) is one of the choices, and after 16 steps of it one step of `k = 1` refreshes the
//! acceptance figures.

use std::str::FromStr;

use crate::error::{EngineError, Result};

use super::stats::SpeculationStats;

/// `--speculate`: a fixed number of proposed tokens per step, or adaptive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speculate {
    Fixed(usize),
    /// Chooses `0..=max` per step.
    Auto {
        max: usize,
    },
}

impl Speculate {
    /// The largest `k` that `auto` considers.
    pub const AUTO_MAX: usize = 8;

    /// The most tokens a step may propose.
    pub fn max(self) -> usize {
        match self {
            Speculate::Fixed(k) | Speculate::Auto { max: k } => k,
        }
    }
}

impl FromStr for Speculate {
    type Err = EngineError;

    /// `auto` or a positive count.
    fn from_str(s: &str) -> Result<Self> {
        if s == "auto" {
            return Ok(Speculate::Auto { max: Self::AUTO_MAX });
        }
        match s.parse::<usize>() {
            Ok(k) if k > 0 => Ok(Speculate::Fixed(k)),
            _ => Err(EngineError::invalid(format!("speculate '{s}': expected a number of tokens (1 or more) or 'auto'"))),
        }
    }
}

impl std::fmt::Display for Speculate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speculate::Fixed(k) => write!(f, "{k}"),
            Speculate::Auto { .. } => f.write_str("auto"),
        }
    }
}

/// Picks each step's `k`.
pub struct KChooser {
    speculate: Speculate,
    /// Consecutive steps `auto` has chosen plain decoding.
    plain_run: usize,
}

/// Steps of plain decoding after which `auto` tries one proposal again.
const PROBE_AFTER: usize = 16;

impl KChooser {
    pub fn new(speculate: Speculate) -> Self {
        KChooser { speculate, plain_run: 0 }
    }

    /// The `k` for the next step (before clamping to the room left), given what `stats` has
    /// measured.
    pub fn next(&mut self, stats: &SpeculationStats) -> usize {
        let max = match self.speculate {
            Speculate::Fixed(k) => return k,
            Speculate::Auto { max } => max,
        };
        let k = if self.plain_run >= PROBE_AFTER { 1.min(max) } else { best_k(stats, max) };
        self.plain_run = if k == 0 { self.plain_run + 1 } else { 0 };
        k
    }
}

/// The `k` in `0..=max` with the most expected tokens per second.
fn best_k(stats: &SpeculationStats, max: usize) -> usize {
    // Measure a plain decode step first: the cost every choice is compared with.
    if stats.by_tokens.first().is_none_or(|&(n, _)| n == 0) {
        return 0;
    }
    let draft_per_token = if stats.proposed == 0 { 0.0 } else { stats.draft_time.as_secs_f64() / stats.proposed as f64 };
    let verify = verify_cost(stats);
    let acceptance = |i: usize| {
        let (reached, accepted) = (stats.reached.get(i).copied().unwrap_or(0), stats.accepted_at.get(i).copied().unwrap_or(0));
        (accepted as f64 + 1.0) / (reached as f64 + 2.0)
    };
    let (mut best, mut best_rate) = (0, 0.0);
    let (mut tokens, mut survive) = (1.0, 1.0);
    for k in 0..=max {
        if k > 0 {
            survive *= acceptance(k - 1);
            tokens += survive;
        }
        let rate = tokens / (draft_per_token * k as f64 + verify(k + 1)).max(f64::MIN_POSITIVE);
        if rate > best_rate {
            (best, best_rate) = (k, rate);
        }
    }
    best
}

/// Verification seconds as a function of the tokens run: the least-squares line through the
/// mean time of each size seen (its slope at least 0), or a constant with one size seen.
fn verify_cost(stats: &SpeculationStats) -> impl Fn(usize) -> f64 {
    let points: Vec<(f64, f64)> = stats
        .by_tokens
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(i, (n, t))| ((i + 1) as f64, t.as_secs_f64() / *n as f64))
        .collect();
    let count = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / count, points.iter().map(|p| p.1).sum::<f64>() / count);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
    move |n| my + slope * (n as f64 - mx)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats(steps: &[(usize, usize, u64)], draft_ms_per_token: u64) -> SpeculationStats {
        let mut s = SpeculationStats::default();
        for &(proposed, accepted, verify_ms) in steps {
            let draft = Duration::from_millis(draft_ms_per_token * proposed as u64);
            s.record(proposed, accepted, draft, Duration::from_millis(verify_ms), None);
        }
        s
    }

    #[test]
    fn parses_counts_and_auto() {
        assert_eq!("4".parse::<Speculate>().unwrap(), Speculate::Fixed(4));
        assert_eq!("auto".parse::<Speculate>().unwrap(), Speculate::Auto { max: 8 });
        for bad in ["0", "-1", "x", ""] {
            assert!(bad.parse::<Speculate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fixed_is_fixed_and_auto_starts_with_a_plain_step() {
        let empty = SpeculationStats::default();
        assert_eq!(KChooser::new(Speculate::Fixed(3)).next(&empty), 3);
        assert_eq!(KChooser::new(Speculate::Auto { max: 8 }).next(&empty), 0);
    }

    #[test]
    fn auto_proposes_much_when_proposals_are_accepted_and_cheap_to_check() {
        // Verifying 9 tokens costs 1.2 plain steps and everything is accepted.
        let s = stats(&[(0, 0, 100), (8, 8, 120), (8, 8, 120), (8, 8, 120)], 0);
        assert_eq!(KChooser::new(Speculate::Auto { max: 8 }).next(&s), 8);
    }

    #[test]
    fn auto_stops_proposing_what_is_rejected_and_probes_again_later() {
        // Nothing accepted and a 9-token check costs three plain steps.
        let s = stats(&[(0, 0, 100), (8, 0, 300), (8, 0, 300), (8, 0, 300), (8, 0, 300)], 1);
        let mut c = KChooser::new(Speculate::Auto { max: 8 });
        for _ in 0..PROBE_AFTER {
            assert_eq!(c.next(&s), 0);
        }
        assert_eq!(c.next(&s), 1);
        assert_eq!(c.next(&s), 0);
    }

    #[test]
    fn auto_weighs_acceptance_against_the_cost_of_each_extra_token() {
        // Each extra verified token adds 25 % of a plain step; position 0 is accepted 90 % of
        // the time, later ones 20 %: one or two proposals, not eight.
        let mut steps = vec![(0, 0, 100)];
        for i in 0..20 {
            let accepted = if i % 10 == 9 {
                0
            } else if i % 5 == 0 {
                2
            } else {
                1
            };
            steps.push((4, accepted, 200));
        }
        steps.push((1, 1, 125));
        let s = stats(&steps, 0);
        let k = KChooser::new(Speculate::Auto { max: 8 }).next(&s);
        assert!((1..=2).contains(&k), "{k}");
    }
}
