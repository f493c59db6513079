//! The offline simulator: a routing trace replayed through the expert cache for each policy
//! and pool size, with the cache code the engine runs (`groups::run_layer`), so a trace's hit
//! counts here are the engine's own; and the statistics of a trace that describe how skewed and
//! persistent its routing is (the figures the synthetic routing profile is fitted to).

use super::cache::{CacheStats, ExpertCache};
use super::groups::run_layer;
use super::policy::PolicyKind;
use super::trace::Trace;
use crate::error::Result;

/// The cache statistics `trace` gets with a pool of `slots` slots under `policy`.
pub fn simulate(trace: &Trace, slots: usize, policy: PolicyKind) -> Result<CacheStats> {
    let mut cache = ExpertCache::new(slots, policy);
    for step in &trace.steps {
        for (layer, ids) in step.ids.iter().enumerate() {
            run_layer(&mut cache, layer, ids, trace.top_k, |_, _, _| Ok::<(), crate::EngineError>(()))?;
        }
    }
    Ok(cache.stats())
}

/// How a trace routes, per layer averaged over layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoutingStats {
    pub tokens: usize,
    /// The share of a token's experts that the previous token also chose.
    pub persistence: f64,
    /// The share of all selections taken by a layer's two most chosen experts.
    pub top2_share: f64,
    /// Distinct experts per window of 64 consecutive tokens (None below 64 tokens).
    pub distinct_per_64: Option<f64>,
}

pub fn routing_stats(trace: &Trace) -> RoutingStats {
    let k = trace.top_k;
    let (mut persistence, mut top2, mut distinct, mut windows) = (0.0, 0.0, 0.0, 0usize);
    let mut pairs = 0usize;
    for layer in 0..trace.layers {
        // This layer's token sets, in order across steps.
        let tokens: Vec<&[u32]> = trace.steps.iter().flat_map(|s| s.ids[layer].chunks(k)).collect();
        for w in tokens.windows(2) {
            persistence += w[1].iter().filter(|e| w[0].contains(e)).count() as f64 / k as f64;
            pairs += 1;
        }
        let mut counts = vec![0usize; trace.experts];
        tokens.iter().flat_map(|t| t.iter()).for_each(|&e| counts[e as usize] += 1);
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = counts.iter().sum();
        if total > 0 {
            top2 += (counts[0] + counts.get(1).copied().unwrap_or(0)) as f64 / total as f64;
        }
        for window in tokens.chunks_exact(64) {
            let mut seen = vec![false; trace.experts];
            window.iter().flat_map(|t| t.iter()).for_each(|&e| seen[e as usize] = true);
            distinct += seen.iter().filter(|s| **s).count() as f64;
            windows += 1;
        }
    }
    RoutingStats {
        tokens: trace.tokens(),
        persistence: if pairs == 0 { 0.0 } else { persistence / pairs as f64 },
        top2_share: top2 / trace.layers as f64,
        distinct_per_64: (windows > 0).then(|| distinct / windows as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::super::trace::TraceStep;
    use super::*;

    fn trace(steps: Vec<Vec<Vec<u32>>>, top_k: usize) -> Trace {
        let steps = steps.into_iter().map(|ids| TraceStep { tokens: ids[0].len() / top_k, ids }).collect();
        Trace { model: "m".into(), layers: 1, experts: 8, top_k, steps }
    }

    #[test]
    fn replays_like_the_engine() {
        // top-2, one layer, a pool of 2: {0,1} miss miss; {0,1} hit hit; {2,3} miss miss.
        let t = trace(vec![vec![vec![0, 1]], vec![vec![1, 0]], vec![vec![2, 3]]], 2);
        assert_eq!(simulate(&t, 2, PolicyKind::Lru).unwrap(), CacheStats { hits: 2, misses: 4, evictions: 2 });
        // A pool too small for one token is an error, not a wrong count.
        assert!(simulate(&t, 1, PolicyKind::Lru).is_err());
    }

    #[test]
    fn statistics_of_a_known_trace() {
        let t = trace(vec![vec![vec![0, 1, 0, 2, 0, 1]]], 2);
        let s = routing_stats(&t);
        // Pairs: {0,1}→{0,2} shares 1 of 2, {0,2}→{0,1} shares 1 of 2.
        assert_eq!(s.persistence, 0.5);
        // Selections 0:3, 1:2, 2:1 → top two take 5 of 6.
        assert!((s.top2_share - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.distinct_per_64, None);
    }
}
