//! Where a model's weights live while it runs: the residency modes `--offload` names.

use std::fmt;
use std::str::FromStr;

/// A residency mode. `Auto` is resolved by the loader from the memory budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Offload {
    /// Chosen from the budget: everything resident when it fits, else `Experts`.
    #[default]
    Auto,
    /// Every weight in memory the engine owns (or on the device).
    None,
    /// The checkpoint memory-mapped and computed from in place: the OS pages it in and out.
    Mmap,
    /// AirLLM's method: each whole layer read before it runs and dropped after, the next one
    /// read while this one computes.
    Layered,
    /// Dense weights resident; routed experts read on demand into a fixed pool of slots.
    Experts,
    /// For a device with memory of its own: dense weights on the device, every routed expert in
    /// host memory the device reads in place, the hot ones copied into a pool of device slots
    /// beside the steps (which stay recordable).
    Host,
}

impl Offload {
    /// The modes a user can force, in the order reports list them.
    pub const FORCED: [Offload; 5] = [Offload::None, Offload::Mmap, Offload::Layered, Offload::Experts, Offload::Host];

    pub fn name(self) -> &'static str {
        match self {
            Offload::Auto => "auto",
            Offload::None => "none",
            Offload::Mmap => "mmap",
            Offload::Layered => "layered",
            Offload::Experts => "experts",
            Offload::Host => "host",
        }
    }

    /// Whether weights are read from disk while the model runs (so a step does host work
    /// between ops and cannot be replayed as a recording).
    pub fn streams(self) -> bool {
        matches!(self, Offload::Layered | Offload::Experts)
    }
}

impl FromStr for Offload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Offload::Auto),
            other => Offload::FORCED
                .into_iter()
                .find(|m| m.name() == other)
                .ok_or_else(|| format!("unknown offload mode '{other}' (expected auto, none, mmap, layered, experts or host)")),
        }
    }
}

impl fmt::Display for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in [Offload::Auto, Offload::None, Offload::Mmap, Offload::Layered, Offload::Experts, Offload::Host] {
            assert_eq!(m.name().parse::<Offload>(), Ok(m));
        }
        assert!("disk".parse::<Offload>().unwrap_err().contains("expected auto"));
    }
}
