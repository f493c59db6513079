//! Sampling one token from a row of logits; the rule is stated in `gptoss_engine::sampling`.

use gptoss_engine::{SampleArgs, SamplingParams};

use crate::host::Host;
use crate::workspace::Workspace;

/// Arg-max, lowest id on ties (NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() && !l.is_nan() {
            best = i;
        }
    }
    best as u32
}

/// The token drawn from the one row of logits in `a` (the workspace's candidates hold the
/// vocabulary: reused, never grown).
pub fn sample(a: SampleArgs<Host>, ws: &mut Workspace) -> u32 {
    draw(a.logits, a.params, a.u, &mut ws.sample)
}

/// `scratch` must hold `logits.len()` entries of capacity; it is reused, never grown.
pub fn draw(logits: &[f32], p: &SamplingParams, u: f32, scratch: &mut Vec<(f32, u32)>) -> u32 {
    if p.is_greedy() {
        return argmax(logits);
    }
    let max = logits[argmax(logits) as usize] as f64;
    let weight = |l: f32| ((l as f64 - max) / p.temperature as f64).exp();
    scratch.clear();
    scratch.extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
    if p.top_k != 0 || p.top_p < 1.0 {
        let by_rank = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if p.top_k != 0 && p.top_k < scratch.len() {
            scratch.select_nth_unstable_by(p.top_k - 1, by_rank);
            scratch.truncate(p.top_k);
        }
        scratch.sort_unstable_by(by_rank);
        if p.top_p < 1.0 {
            let total: f64 = scratch.iter().map(|c| weight(c.0)).sum();
            let mut cum = 0.0;
            let keep = scratch
                .iter()
                .position(|c| {
                    cum += weight(c.0);
                    cum >= p.top_p as f64 * total
                })
                .map_or(scratch.len(), |i| i + 1);
            scratch.truncate(keep);
        }
    }
    let mass: f64 = scratch.iter().map(|c| weight(c.0)).sum();
    let target = u as f64 * mass;
    let mut cum = 0.0;
    for c in scratch.iter() {
        cum += weight(c.0);
        if cum > target {
            return c.1;
        }
    }
    scratch.last().map_or(0, |c| c.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(logits: &[f32], p: SamplingParams, u: f32) -> u32 {
        let mut s = Vec::with_capacity(logits.len());
        draw(logits, &p, u, &mut s)
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
        assert_eq!(sample(&[0.0, 2.0, 1.0], SamplingParams::GREEDY, 0.9), 1);
    }

    #[test]
    fn uniform_walks_the_cumulative_distribution() {
        let l = [0.0f32; 4];
        let p = SamplingParams::default();
        assert_eq!(sample(&l, p, 0.0), 0);
        assert_eq!(sample(&l, p, 0.26), 1);
        assert_eq!(sample(&l, p, 0.99), 3);
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let l = [0.0f32, 5.0, 4.0, 1.0];
        let k2 = SamplingParams { top_k: 2, ..Default::default() };
        for u in [0.0, 0.5, 0.999] {
            assert!(matches!(sample(&l, k2, u), 1 | 2));
        }
        // With top-p 0.5 only the best token (≈ 0.71 of the mass) remains.
        let p = SamplingParams { top_p: 0.5, ..Default::default() };
        assert_eq!(sample(&l, p, 0.99), 1);
    }

    #[test]
    fn temperature_sharpens() {
        let l = [0.0f32, 1.0];
        let cold = SamplingParams { temperature: 0.01, ..Default::default() };
        assert_eq!(sample(&l, cold, 0.001), 1);
    }
}
