//! `gptoss cache-sim --trace FILE`: replays a routing trace (`--record-routing`) through the
//! expert cache for each policy and pool size, with the engine's own cache code, and prints the
//! hit rates, after the trace's routing statistics.

use std::path::PathBuf;

use gptoss::{Error, Result};
use gptoss_engine::residency::expert_cache::PolicyKind;
use gptoss_engine::residency::expert_cache::simulate::{routing_stats, simulate};
use gptoss_engine::residency::expert_cache::trace::Trace;

#[derive(clap::Args)]
pub struct Args {
    /// A routing trace written by --record-routing.
    #[arg(long)]
    trace: PathBuf,
    /// Pool sizes in expert slots (comma-separated); default: 5, 10, 20, 40 and 80 % of the
    /// model's experts.
    #[arg(long, value_delimiter = ',')]
    slots: Vec<usize>,
    /// Policies (comma-separated): lru, lfu; default: every one.
    #[arg(long, value_delimiter = ',')]
    policy: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let trace = Trace::read(&a.trace)?;
    let all = trace.layers * trace.experts;
    let slots: Vec<usize> =
        if a.slots.is_empty() { [5, 10, 20, 40, 80].iter().map(|p| (all * p / 100).max(2 * trace.top_k)).collect() } else { a.slots };
    let policies = if a.policy.is_empty() {
        PolicyKind::ALL.to_vec()
    } else {
        a.policy.iter().map(|p| p.parse::<PolicyKind>().map_err(|e| Error::Usage(format!("--policy: {e}")))).collect::<Result<Vec<_>>>()?
    };
    let s = routing_stats(&trace);
    println!(
        "{}: {} tokens in {} steps, {} layers × {} experts, top-{}",
        trace.model,
        s.tokens,
        trace.steps.len(),
        trace.layers,
        trace.experts,
        trace.top_k
    );
    let distinct = s.distinct_per_64.map_or("-".to_string(), |d| format!("{d:.1}"));
    println!(
        "routing: the previous token's experts are {:.1} % of the next token's; a layer's two most chosen experts take {:.1} % of its selections; {distinct} distinct experts per 64 tokens",
        100.0 * s.persistence,
        100.0 * s.top2_share
    );
    println!("{:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8}", "policy", "slots", "% of all", "hits", "misses", "evictions", "hit %");
    for &n in &slots {
        for &p in &policies {
            let st = simulate(&trace, n, p)?;
            println!(
                "{:>8} {:>8} {:>8.1} {:>10} {:>10} {:>10} {:>8.2}",
                p.name(),
                n,
                100.0 * n as f64 / all as f64,
                st.hits,
                st.misses,
                st.evictions,
                100.0 * st.hit_rate()
            );
        }
    }
    Ok(())
}
