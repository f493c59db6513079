//! Fits the `skewed` routing profile's two parameters to the published figures of a gpt-oss
//! routing trace: the previous token's experts predict ~18 % of the next token's, a layer's two
//! hottest experts take ~27 % of its selections, ~36 of 128 experts of a layer are touched over
//! 64 tokens.
//!
//! The model of the router used here: a synthetic model's router logit for expert e is
//! `g + bias_e`, where `g` (the router weights times the normalised hidden state) is close to a
//! standard normal, independent across tokens and experts — the router weights have variance
//! 1/hidden and the normalised state has norm √hidden — and `bias_e` is the profile's offset
//! for the expert's popularity rank (`RoutingProfile::offset`; the uniform model's own bias,
//! within ±0.1, is left out). Top-4 of 128 per token, over a grid of `popularity` and `warm`.
//! The fit is then checked on the model itself: `--record-routing` and `gptoss cache-sim`
//! print the same three figures for a recorded trace (bench/NOTES.md, "Routing profile").
//!
//! `cargo run --release -p gptoss-model-gpt-oss --example fit_routing [TRACE]`: with a path,
//! also writes the default profile's routing under this model of the router (6 layers, one
//! token per step) as a routing trace, for `gptoss cache-sim` to predict hit rates from.

use gptoss_engine::Rng;
use gptoss_engine::residency::expert_cache::simulate::{RoutingStats, routing_stats};
use gptoss_engine::residency::expert_cache::trace::{Trace, TraceStep, TraceWriter};
use gptoss_model_gpt_oss::residency::routing::{RoutingProfile, popularity_ranks};

const EXPERTS: usize = 128;
const TOP_K: usize = 4;
const LAYERS: usize = 8;
const TOKENS: usize = 1024;
/// The published figures: persistence, top-2 share, distinct experts per 64 tokens.
const TARGET: (f64, f64, f64) = (0.18, 0.27, 36.0);

/// A standard normal from two uniforms (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn trace(profile: RoutingProfile, seed: u64) -> Trace {
    trace_of(profile, seed, LAYERS)
}

fn trace_of(profile: RoutingProfile, seed: u64, layers: usize) -> Trace {
    let mut rng = Rng::new(seed);
    let mut steps = Vec::with_capacity(TOKENS);
    let biases: Vec<Vec<f64>> = (0..layers)
        .map(|l| {
            let ranks = popularity_ranks(seed, &format!("model.layers.{l}.mlp.router.bias"), EXPERTS);
            ranks.iter().map(|&r| profile.offset(r) as f64).collect()
        })
        .collect();
    for _ in 0..TOKENS {
        let ids = biases
            .iter()
            .map(|b| {
                let mut logits: Vec<(f64, u32)> = (0..EXPERTS).map(|e| (normal(&mut rng) + b[e], e as u32)).collect();
                logits.sort_by(|x, y| y.0.total_cmp(&x.0));
                logits[..TOP_K].iter().map(|&(_, e)| e).collect::<Vec<u32>>()
            })
            .collect();
        steps.push(TraceStep { tokens: 1, ids });
    }
    Trace {
        model: format!("model of a skewed router: {}", profile.query().unwrap_or_default()),
        layers,
        experts: EXPERTS,
        top_k: TOP_K,
        steps,
    }
}

/// Summed squared relative distance to the published figures.
fn distance(s: &RoutingStats) -> f64 {
    let d = s.distinct_per_64.unwrap_or(0.0);
    ((s.persistence - TARGET.0) / TARGET.0).powi(2) + ((s.top2_share - TARGET.1) / TARGET.1).powi(2) + ((d - TARGET.2) / TARGET.2).powi(2)
}

fn main() {
    println!("popularity warm | persistence top-2 share distinct/64 | distance");
    let mut best: Option<(RoutingProfile, f64, RoutingStats)> = None;
    for p in (0..=16).map(|i| 0.125 * i as f32) {
        for warm in [8, 16, 24, 32, 36, 40, 44, 48, 64, 96, 128] {
            let profile = RoutingProfile::Skewed { popularity: p, warm };
            let stats = routing_stats(&trace(profile, 7));
            let d = distance(&stats);
            println!(
                "{p:10.3} {warm:4} | {:11.3} {:11.3} {:11.1} | {d:.4}",
                stats.persistence,
                stats.top2_share,
                stats.distinct_per_64.unwrap_or(0.0)
            );
            if best.as_ref().is_none_or(|b| d < b.1) {
                best = Some((profile, d, stats));
            }
        }
    }
    if let Some((profile, d, stats)) = best {
        println!(
            "best: {}: persistence {:.3}, top-2 share {:.3}, distinct/64 {:.1} (distance {d:.4}); the default is {}",
            profile.query().unwrap_or_default(),
            stats.persistence,
            stats.top2_share,
            stats.distinct_per_64.unwrap_or(0.0),
            RoutingProfile::SKEWED.query().unwrap_or_default()
        );
    }
    if let Some(path) = std::env::args().nth(1) {
        write_trace(&trace_of(RoutingProfile::SKEWED, 7, 6), std::path::Path::new(&path));
        println!("wrote {path}");
    }
}

fn write_trace(t: &Trace, path: &std::path::Path) {
    let mut w = TraceWriter::create(path, &t.model, t.layers, t.experts, t.top_k).expect("trace file");
    for s in &t.steps {
        w.write_step(&s.ids).expect("trace step");
    }
}
