//! Replacement policies: which resident expert to evict when a step needs a slot for one that
//! is not cached. A policy sees only slot numbers and events; the cache tells it when a slot is
//! filled, used again or emptied, and asks it for a victim among the slots it may evict (the
//! ones holding an expert and not pinned by the step in progress).

use std::fmt;
use std::str::FromStr;

use super::lfu::Lfu;
use super::lru::Lru;

pub trait ReplacementPolicy: Send {
    /// `slot` now holds an expert just read.
    fn filled(&mut self, slot: usize);
    /// The expert in `slot` was used again (a hit).
    fn hit(&mut self, slot: usize);
    /// `slot` holds nothing any more.
    fn emptied(&mut self, slot: usize);
    /// The slot to evict among the filled slots for which `evictable` holds, or `None` when
    /// there is none.
    fn victim(&self, evictable: &dyn Fn(usize) -> bool) -> Option<usize>;
}

/// The policies by name: what `--expert-cache` and the simulator accept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Least recently used (by (layer, expert)): evicts the expert whose last use is oldest.
    #[default]
    Lru,
    /// Least frequently used: evicts the expert used the fewest times since it was read, the
    /// least recently used among those.
    Lfu,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 2] = [PolicyKind::Lru, PolicyKind::Lfu];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::Lfu => "lfu",
        }
    }

    /// A fresh policy for a pool of `slots` slots.
    pub fn make(self, slots: usize) -> Box<dyn ReplacementPolicy> {
        match self {
            PolicyKind::Lru => Box::new(Lru::new(slots)),
            PolicyKind::Lfu => Box::new(Lfu::new(slots)),
        }
    }
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PolicyKind::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<_> = PolicyKind::ALL.iter().map(|p| p.name()).collect();
            format!("unknown expert cache policy '{s}' (expected {})", names.join(" or "))
        })
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
