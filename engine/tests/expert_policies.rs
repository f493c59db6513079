//! The replacement policies against reference models written from their definitions alone
//! (plain lists, full scans, no shared code with `expert_cache`): on routing traces of several
//! shapes and skews, every pool size from the smallest that fits a token to one that holds
//! every expert, the hit, miss and eviction counts must be equal.

use gptoss_engine::Rng;
use gptoss_engine::residency::expert_cache::simulate::simulate;
use gptoss_engine::residency::expert_cache::trace::{Trace, TraceStep};
use gptoss_engine::residency::expert_cache::{CacheStats, PolicyKind, token_groups};

/// A resident expert in the reference model.
struct Entry {
    key: (usize, u32),
    uses: u64,
    last: u64,
}

/// The reference: a list of resident experts. Per group of a layer step (the same cut as the
/// engine's: consecutive tokens whose experts fit the pool), each distinct expert in first-use
/// order is a hit if listed, else it takes an unused slot or evicts, among the experts not used
/// by this group, the one the policy names — LRU: the oldest last use; LFU: the fewest uses since
/// it was read, then the oldest last use.
fn reference(trace: &Trace, slots: usize, policy: PolicyKind) -> CacheStats {
    let mut resident: Vec<Entry> = Vec::new();
    let mut stats = CacheStats::default();
    let mut clock = 0u64;
    for step in &trace.steps {
        for (layer, ids) in step.ids.iter().enumerate() {
            for group in token_groups(ids, trace.top_k, slots).expect("pool fits a token") {
                let mut in_group: Vec<(usize, u32)> = Vec::new();
                for &e in &ids[group.start * trace.top_k..group.end * trace.top_k] {
                    let key = (layer, e);
                    if in_group.contains(&key) {
                        continue;
                    }
                    in_group.push(key);
                    clock += 1;
                    if let Some(entry) = resident.iter_mut().find(|x| x.key == key) {
                        stats.hits += 1;
                        entry.uses += 1;
                        entry.last = clock;
                        continue;
                    }
                    stats.misses += 1;
                    if resident.len() == slots {
                        let candidates = resident.iter().enumerate().filter(|(_, x)| !in_group.contains(&x.key));
                        let victim = match policy {
                            PolicyKind::Lru => candidates.min_by_key(|(_, x)| x.last),
                            PolicyKind::Lfu => candidates.min_by_key(|(_, x)| (x.uses, x.last)),
                        }
                        .map(|(i, _)| i)
                        .expect("a group never pins every slot");
                        resident.remove(victim);
                        stats.evictions += 1;
                    }
                    resident.push(Entry { key, uses: 1, last: clock });
                }
            }
        }
    }
    stats
}

/// A model's routing shape: layers, experts per layer, experts per token.
type Shape = (usize, usize, usize);

/// A trace of `tokens` decode steps then one prefill chunk of `chunk` tokens, routed with
/// per-layer popularity `skew` (0: uniform) and a chance `stick` of repeating the previous
/// token's expert in the same position.
fn random_trace(seed: u64, (layers, experts, top_k): Shape, tokens: usize, chunk: usize, skew: f64, stick: f64) -> Trace {
    let mut rng = Rng::new(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let weights: Vec<f64> = (0..experts).map(|r| 1.0 / (1.0 + r as f64).powf(skew)).collect();
    let total: f64 = weights.iter().sum();
    let mut prev: Vec<Vec<u32>> = vec![Vec::new(); layers];
    let mut token = |layer: usize, uniform: &mut dyn FnMut() -> f64| {
        let mut chosen: Vec<u32> = Vec::new();
        while chosen.len() < top_k {
            let i = chosen.len();
            let e = if i < prev[layer].len() && uniform() < stick {
                prev[layer][i]
            } else {
                let mut u = uniform() * total;
                let mut e = 0;
                while e + 1 < experts && u >= weights[e] {
                    u -= weights[e];
                    e += 1;
                }
                // A per-layer permutation of popularity ranks.
                ((e * 7 + layer * 3) % experts) as u32
            };
            if !chosen.contains(&e) {
                chosen.push(e);
            }
        }
        prev[layer] = chosen.clone();
        chosen
    };
    let mut steps = Vec::new();
    for n in std::iter::repeat_n(1, tokens).chain([chunk]) {
        let ids = (0..layers).map(|l| (0..n).flat_map(|_| token(l, &mut uniform)).collect()).collect();
        steps.push(TraceStep { tokens: n, ids });
    }
    Trace { model: "random".into(), layers, experts, top_k, steps }
}

#[test]
fn policies_match_their_reference_models() {
    let shapes = [(4, 8, 4), (3, 32, 4), (6, 128, 4), (2, 16, 2)];
    for (i, &(layers, experts, top_k)) in shapes.iter().enumerate() {
        for (j, &(skew, stick)) in [(0.0, 0.0), (1.0, 0.2), (2.0, 0.5)].iter().enumerate() {
            let t = random_trace((10 * i + j) as u64, (layers, experts, top_k), 200, 24, skew, stick);
            let all = layers * experts;
            for slots in [top_k, 2 * top_k, 3 * top_k + 1, all / 3, all / 2, all] {
                for policy in PolicyKind::ALL {
                    let got = simulate(&t, slots, policy).unwrap();
                    let want = reference(&t, slots, policy);
                    assert_eq!(got, want, "shape {:?} skew {skew} stick {stick} slots {slots} {policy}", shapes[i]);
                    assert_eq!(got.lookups(), want.lookups());
                }
            }
        }
    }
}

#[test]
fn a_pool_of_every_expert_misses_each_once() {
    let t = random_trace(3, (4, 8, 4), 100, 16, 1.0, 0.3);
    for policy in PolicyKind::ALL {
        let s = simulate(&t, 32, policy).unwrap();
        assert!(s.misses <= 32 && s.evictions == 0, "{s:?}");
    }
}
