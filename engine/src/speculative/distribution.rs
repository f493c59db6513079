//! The distribution a backend's `sample` op draws from, computed on the host, so that
//! speculative sampling can compare the target's probabilities with the draft's.
//!
//! The rule is the one `sampling` states (and `kernels-cpu`'s reference implements): greedy is
//! a point mass on the arg-max (lowest id on ties); otherwise `p_i ∝ exp((l_i − l_max) / T)`
//! over the candidates left by the top-k cut (ranked by logit, lowest id first on ties) and
//! then the shortest ranked prefix whose mass reaches `top_p` of theirs; zero elsewhere.

use crate::sampling::SamplingParams;

/// Arg-max, lowest id on ties; NaN never wins.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() && !l.is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Writes to `out` (resized to the vocabulary) the probability of each id under `params`.
/// `ranked` is scratch for the cuts (reused, so a caller in a loop allocates once).
pub fn distribution(logits: &[f32], params: &SamplingParams, ranked: &mut Vec<(f32, u32)>, out: &mut Vec<f32>) {
    out.clear();
    out.resize(logits.len(), 0.0);
    if logits.is_empty() {
        return;
    }
    let best = argmax(logits);
    if params.is_greedy() {
        out[best as usize] = 1.0;
        return;
    }
    let max = logits[best as usize] as f64;
    let weight = |l: f32| ((l as f64 - max) / params.temperature as f64).exp();
    if params.top_k == 0 && params.top_p >= 1.0 {
        let mass: f64 = logits.iter().map(|&l| weight(l)).sum();
        out.iter_mut().zip(logits).for_each(|(o, &l)| *o = (weight(l) / mass) as f32);
        return;
    }
    ranked.clear();
    ranked.extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
    let by_rank = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if params.top_k != 0 && params.top_k < ranked.len() {
        ranked.select_nth_unstable_by(params.top_k - 1, by_rank);
        ranked.truncate(params.top_k);
    }
    ranked.sort_unstable_by(by_rank);
    if params.top_p < 1.0 {
        let total: f64 = ranked.iter().map(|c| weight(c.0)).sum();
        let mut cum = 0.0;
        let keep = ranked
            .iter()
            .position(|c| {
                cum += weight(c.0);
                cum >= params.top_p as f64 * total
            })
            .map_or(ranked.len(), |i| i + 1);
        ranked.truncate(keep);
    }
    let mass: f64 = ranked.iter().map(|c| weight(c.0)).sum();
    for &(l, id) in ranked.iter() {
        out[id as usize] = (weight(l) / mass) as f32;
    }
}

/// The id drawn from `probs` (not necessarily normalised) with the uniform number `u`: the
/// first id whose cumulative probability exceeds `u ·` the total; the last id with any
/// probability if rounding leaves none.
pub fn draw(probs: &[f32], u: f32) -> u32 {
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    let target = u as f64 * total;
    let mut cum = 0.0;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cum += p as f64;
            last = i;
            if cum > target {
                return i as u32;
            }
        }
    }
    last as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(logits: &[f32], params: SamplingParams) -> Vec<f32> {
        let mut out = vec![];
        distribution(logits, &params, &mut vec![], &mut out);
        out
    }

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < 1e-6)
    }

    #[test]
    fn greedy_is_a_point_mass_on_the_first_maximum() {
        assert_eq!(dist(&[1.0, 3.0, 3.0], SamplingParams::GREEDY), vec![0.0, 1.0, 0.0]);
        assert_eq!(dist(&[1.0, 3.0, 2.0], SamplingParams { top_k: 1, ..Default::default() }), vec![0.0, 1.0, 0.0]);
        assert_eq!(argmax(&[f32::NAN, -1.0]), 1);
    }

    #[test]
    fn temperature_top_k_and_top_p_as_the_sampling_rule_states() {
        let l = [0.0f32, 2.0f32.ln(), 3.0f32.ln(), 4.0f32.ln()];
        // exp(l) = 1, 2, 3, 4 of 10.
        assert!(close(&dist(&l, SamplingParams::default()), &[0.1, 0.2, 0.3, 0.4]));
        // T = 0.5 squares the weights: 1, 4, 9, 16 of 30.
        let t = SamplingParams { temperature: 0.5, ..Default::default() };
        assert!(close(&dist(&l, t), &[1.0 / 30.0, 4.0 / 30.0, 9.0 / 30.0, 16.0 / 30.0]));
        let k2 = SamplingParams { top_k: 2, ..Default::default() };
        assert!(close(&dist(&l, k2), &[0.0, 0.0, 3.0 / 7.0, 4.0 / 7.0]));
        // top-p 0.65: 0.4, then 0.7 reaches it; the two best remain.
        let p = SamplingParams { top_p: 0.65, ..Default::default() };
        assert!(close(&dist(&l, p), &[0.0, 0.0, 3.0 / 7.0, 4.0 / 7.0]));
        // Ties rank the lower id first: top-1 of equal logits keeps id 0 under top_k 1 (greedy)
        // and the top-k cut keeps the lower ids.
        let k3 = SamplingParams { top_k: 3, ..Default::default() };
        assert!(close(&dist(&[1.0; 4], k3), &[1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0]));
    }

    #[test]
    fn draw_walks_the_cumulative_distribution() {
        let p = [0.0, 0.25, 0.0, 0.75];
        assert_eq!(draw(&p, 0.0), 1);
        assert_eq!(draw(&p, 0.2499), 1);
        assert_eq!(draw(&p, 0.25), 3);
        assert_eq!(draw(&p, 0.9999999), 3);
        // Unnormalised weights are fine.
        assert_eq!(draw(&[2.0, 2.0], 0.6), 1);
    }
}
