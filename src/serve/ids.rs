//! Identifiers for completions, responses, items and tool calls: a prefix and 24 hex digits,
//! unique within the process and unlikely to repeat across restarts.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `{prefix}_{24 hex digits}` (`chatcmpl` takes a dash, as OpenAI writes it).
pub fn new_id(prefix: &str) -> String {
    static BASE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let a = mix(base ^ n);
    let b = mix(a ^ n.rotate_left(17));
    let sep = if prefix == "chatcmpl" || prefix == "cmpl" { '-' } else { '_' };
    format!("{prefix}{sep}{:016x}{:08x}", a, b as u32)
}

/// A fresh seed for a request that gave none.
pub fn random_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    mix(nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(40))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn mix(x: u64) -> u64 {
    gptoss_engine::synth::mix(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = super::new_id("call");
        let b = super::new_id("call");
        assert_ne!(a, b);
        assert!(a.starts_with("call_") && a.len() == 5 + 24, "{a}");
        assert!(super::new_id("chatcmpl").starts_with("chatcmpl-"));
    }
}
