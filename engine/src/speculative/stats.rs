//! What speculation did, step by step, summed: how much was proposed and accepted (overall and
//! by position), where the time went (drafting against verifying), and what the verification
//! forwards read from memory when the target accounts for it.

use std::time::Duration;

use crate::model::StepReads;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpeculationStats {
    /// The draft's name.
    pub draft: String,
    /// Verification forwards: each runs the last token and the proposal, and yields the
    /// accepted tokens plus one.
    pub steps: usize,
    pub proposed: usize,
    pub accepted: usize,
    /// `reached[i]`: steps whose proposal had a token at position `i` (from 0) after accepted
    /// ones only; `accepted_at[i]`: how many of those accepted it.
    pub reached: Vec<usize>,
    pub accepted_at: Vec<usize>,
    pub draft_time: Duration,
    /// The target's forwards over the proposals, the acceptance decisions and the rollbacks.
    pub verify_time: Duration,
    /// Index `n − 1`: steps that ran `n` tokens through the target, and their verify time.
    pub by_tokens: Vec<(usize, Duration)>,
    /// Summed over the steps whose reads the target reported (`read_steps` of them).
    pub read_steps: usize,
    pub read_bytes: f64,
    pub read_experts_per_layer: f64,
}

impl SpeculationStats {
    pub fn new(draft: String) -> Self {
        SpeculationStats { draft, ..Default::default() }
    }

    /// Records one verification step: `proposed` tokens offered, `accepted` of them taken.
    pub fn record(&mut self, proposed: usize, accepted: usize, draft: Duration, verify: Duration, reads: Option<StepReads>) {
        self.steps += 1;
        self.proposed += proposed;
        self.accepted += accepted;
        let reached = (accepted + 1).min(proposed);
        if self.reached.len() < reached {
            self.reached.resize(reached, 0);
            self.accepted_at.resize(reached, 0);
        }
        self.reached[..reached].iter_mut().for_each(|r| *r += 1);
        self.accepted_at[..accepted].iter_mut().for_each(|a| *a += 1);
        self.draft_time += draft;
        self.verify_time += verify;
        let n = proposed + 1;
        if self.by_tokens.len() < n {
            self.by_tokens.resize(n, (0, Duration::ZERO));
        }
        self.by_tokens[n - 1].0 += 1;
        self.by_tokens[n - 1].1 += verify;
        if let Some(r) = reads {
            self.read_steps += 1;
            self.read_bytes += r.bytes;
            self.read_experts_per_layer += r.experts_per_layer;
        }
    }

    /// Adds another generation's figures to these (repetitions of one configuration).
    pub fn merge(&mut self, o: &SpeculationStats) {
        let grow = |v: &mut Vec<usize>, n: usize| v.resize(v.len().max(n), 0);
        grow(&mut self.reached, o.reached.len());
        grow(&mut self.accepted_at, o.accepted_at.len());
        self.reached.iter_mut().zip(&o.reached).for_each(|(a, b)| *a += b);
        self.accepted_at.iter_mut().zip(&o.accepted_at).for_each(|(a, b)| *a += b);
        if self.by_tokens.len() < o.by_tokens.len() {
            self.by_tokens.resize(o.by_tokens.len(), (0, Duration::ZERO));
        }
        for (a, b) in self.by_tokens.iter_mut().zip(&o.by_tokens) {
            (a.0, a.1) = (a.0 + b.0, a.1 + b.1);
        }
        self.steps += o.steps;
        self.proposed += o.proposed;
        self.accepted += o.accepted;
        self.draft_time += o.draft_time;
        self.verify_time += o.verify_time;
        self.read_steps += o.read_steps;
        self.read_bytes += o.read_bytes;
        self.read_experts_per_layer += o.read_experts_per_layer;
    }

    /// Accepted proposals per verification step.
    pub fn mean_accepted(&self) -> f64 {
        ratio(self.accepted, self.steps)
    }

    /// Tokens each verification step yields: the accepted ones plus the target's own.
    pub fn tokens_per_step(&self) -> f64 {
        ratio(self.accepted + self.steps, self.steps)
    }

    /// Accepted over proposed.
    pub fn acceptance(&self) -> f64 {
        ratio(self.accepted, self.proposed)
    }

    /// For each position, the share of proposals accepted there among those reached (the ones
    /// before accepted).
    pub fn acceptance_by_position(&self) -> Vec<f64> {
        self.reached.iter().zip(&self.accepted_at).map(|(&r, &a)| ratio(a, r)).collect()
    }

    /// Mean bytes a verification step read, when the target reported them.
    pub fn bytes_per_step(&self) -> Option<f64> {
        (self.read_steps > 0).then(|| self.read_bytes / self.read_steps as f64)
    }

    /// Mean distinct experts a verification step touched per layer, when reported.
    pub fn experts_per_layer(&self) -> Option<f64> {
        (self.read_steps > 0).then(|| self.read_experts_per_layer / self.read_steps as f64)
    }

    /// One paragraph for a terminal.
    pub fn summary(&self) -> String {
        let by_position: Vec<String> = self.acceptance_by_position().iter().map(|a| format!("{:.0}%", 100.0 * a)).collect();
        let mut s = format!(
            "speculation ({}): {} steps, {:.2} of {:.2} proposed tokens accepted per step ({:.0}%), {:.2} tokens per step; \
             acceptance by position [{}]; draft {:.0} ms, verify {:.0} ms",
            self.draft,
            self.steps,
            self.mean_accepted(),
            ratio(self.proposed, self.steps),
            100.0 * self.acceptance(),
            self.tokens_per_step(),
            by_position.join(" "),
            self.draft_time.as_secs_f64() * 1e3,
            self.verify_time.as_secs_f64() * 1e3,
        );
        if let (Some(b), Some(e)) = (self.bytes_per_step(), self.experts_per_layer()) {
            s += &format!("; a verify step read {} ({e:.1} experts per layer)", show_bytes(b));
        }
        s
    }
}

/// Bytes in GB, or in MB below 0.1 GB.
pub fn show_bytes(b: f64) -> String {
    if b >= 1e8 { format!("{:.3} GB", b / 1e9) } else { format!("{:.3} MB", b / 1e6) }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptance_is_counted_by_position_among_the_proposals_reached() {
        let mut s = SpeculationStats::new("x".into());
        let ms = Duration::from_millis;
        s.record(4, 4, ms(1), ms(10), Some(StepReads { bytes: 100.0, experts_per_layer: 8.0 }));
        s.record(4, 1, ms(1), ms(10), None);
        s.record(2, 0, ms(1), ms(6), Some(StepReads { bytes: 50.0, experts_per_layer: 6.0 }));
        s.record(0, 0, ms(0), ms(3), None);
        assert_eq!((s.steps, s.proposed, s.accepted), (4, 10, 5));
        assert_eq!(s.reached, vec![3, 2, 1, 1]);
        assert_eq!(s.accepted_at, vec![2, 1, 1, 1]);
        assert_eq!(s.acceptance_by_position(), vec![2.0 / 3.0, 0.5, 1.0, 1.0]);
        assert_eq!((s.mean_accepted(), s.tokens_per_step()), (1.25, 2.25));
        assert_eq!(s.by_tokens, vec![(1, ms(3)), (0, ms(0)), (1, ms(6)), (0, ms(0)), (2, ms(20))]);
        assert_eq!((s.bytes_per_step(), s.experts_per_layer()), (Some(75.0), Some(7.0)));
        assert!(s.summary().contains("acceptance by position [67% 50% 100% 100%]"), "{}", s.summary());
        // Two generations merged count as one long one.
        let mut a = SpeculationStats::new("x".into());
        a.record(4, 4, ms(1), ms(10), Some(StepReads { bytes: 100.0, experts_per_layer: 8.0 }));
        a.record(4, 1, ms(1), ms(10), None);
        let mut b = SpeculationStats::new("x".into());
        b.record(2, 0, ms(1), ms(6), Some(StepReads { bytes: 50.0, experts_per_layer: 6.0 }));
        b.record(0, 0, ms(0), ms(3), None);
        a.merge(&b);
        assert_eq!(a, s);
    }
}
