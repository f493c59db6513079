//! The slot table: which (layer, expert) each slot of the pool holds, which slots the step in
//! progress has pinned, and the hit and miss counts. Moving bytes is the caller's job: a miss
//! names the slot to fill, and the caller reads the expert into it before using it.

use std::collections::HashMap;

use super::ExpertKey;
use super::policy::{PolicyKind, ReplacementPolicy};

/// The outcome of looking an expert up for the current step. Either way the slot is pinned
/// until [`ExpertCache::release_all`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The expert is in `slot`.
    Hit(usize),
    /// The expert must be read into `slot`, which held `evicted` (or nothing).
    Miss { slot: usize, evicted: Option<ExpertKey> },
}

impl Lookup {
    pub fn slot(self) -> usize {
        match self {
            Lookup::Hit(s) | Lookup::Miss { slot: s, .. } => s,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Placements (misses and prefetches) that evicted a cached expert rather than fill an
    /// empty slot.
    pub evictions: u64,
}

impl CacheStats {
    pub fn lookups(&self) -> u64 {
        self.hits + self.misses
    }

    /// Hits per lookup (0 before any lookup).
    pub fn hit_rate(&self) -> f64 {
        if self.lookups() == 0 { 0.0 } else { self.hits as f64 / self.lookups() as f64 }
    }
}

pub struct ExpertCache {
    /// What each slot holds.
    keys: Vec<Option<ExpertKey>>,
    index: HashMap<ExpertKey, usize>,
    pinned: Vec<bool>,
    /// Slots whose expert is still being read (not evictable, whatever the pins).
    busy: Vec<bool>,
    /// Slots holding nothing, taken lowest first.
    empty: std::collections::BTreeSet<usize>,
    policy: Box<dyn ReplacementPolicy>,
    kind: PolicyKind,
    stats: CacheStats,
}

impl ExpertCache {
    pub fn new(slots: usize, kind: PolicyKind) -> Self {
        ExpertCache {
            keys: vec![None; slots],
            index: HashMap::with_capacity(slots),
            pinned: vec![false; slots],
            busy: vec![false; slots],
            empty: (0..slots).collect(),
            policy: kind.make(slots),
            kind,
            stats: CacheStats::default(),
        }
    }

    pub fn slots(&self) -> usize {
        self.keys.len()
    }

    pub fn policy(&self) -> PolicyKind {
        self.kind
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Slots a step may use: neither pinned by it nor being read.
    pub fn unpinned(&self) -> usize {
        self.pinned.iter().zip(&self.busy).filter(|(p, b)| !**p && !**b).count()
    }

    /// Marks `slot` as being read (`true`) or read (`false`): a busy slot is never evicted.
    pub fn set_busy(&mut self, slot: usize, busy: bool) {
        self.busy[slot] = busy;
    }

    /// The slot holding `key`, if any, without counting a lookup or telling the policy.
    pub fn slot_of(&self, key: ExpertKey) -> Option<usize> {
        self.index.get(&key).copied()
    }

    /// What `slot` holds.
    pub fn key(&self, slot: usize) -> Option<ExpertKey> {
        self.keys[slot]
    }

    /// Looks `key` up for the current step and pins its slot; on a miss the slot is assigned
    /// to `key` at once (an empty slot if there is one, else the policy's victim). `None` when
    /// every slot is pinned.
    pub fn acquire(&mut self, key: ExpertKey) -> Option<Lookup> {
        if let Some(&slot) = self.index.get(&key) {
            self.stats.hits += 1;
            self.policy.hit(slot);
            self.pinned[slot] = true;
            return Some(Lookup::Hit(slot));
        }
        let lookup = self.place(key)?;
        self.stats.misses += 1;
        self.pinned[lookup.slot()] = true;
        Some(lookup)
    }

    /// Places `key` ahead of its use (a prefetch): a slot to read it into, unpinned, or `None`
    /// when it is cached already or no slot can be had. Counts no lookup: the use that follows
    /// counts as a hit.
    pub fn prefetch(&mut self, key: ExpertKey) -> Option<usize> {
        if self.index.contains_key(&key) {
            return None;
        }
        self.place(key).map(Lookup::slot)
    }

    /// Assigns `key` a slot: an empty one, else the policy's victim.
    fn place(&mut self, key: ExpertKey) -> Option<Lookup> {
        let (slot, evicted) = match self.empty.pop_first() {
            Some(slot) => (slot, None),
            None => {
                let (keys, pinned, busy) = (&self.keys, &self.pinned, &self.busy);
                let slot = self.policy.victim(&|s| keys[s].is_some() && !pinned[s] && !busy[s])?;
                let old = self.keys[slot].take();
                if let Some(old) = old {
                    self.index.remove(&old);
                }
                self.policy.emptied(slot);
                self.stats.evictions += 1;
                (slot, old)
            }
        };
        self.keys[slot] = Some(key);
        self.index.insert(key, slot);
        self.policy.filled(slot);
        Some(Lookup::Miss { slot, evicted })
    }

    /// Unpins every slot: the step no longer uses them.
    pub fn release_all(&mut self) {
        self.pinned.fill(false);
    }

    /// Empties `slot`: its read failed, so it holds nothing usable.
    pub fn forget(&mut self, slot: usize) {
        if let Some(key) = self.keys[slot].take() {
            self.index.remove(&key);
            self.policy.emptied(slot);
        }
        self.pinned[slot] = false;
        self.busy[slot] = false;
        self.empty.insert(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(layer: u32, expert: u32) -> ExpertKey {
        ExpertKey { layer, expert }
    }

    #[test]
    fn hits_misses_pins_and_evictions() {
        let mut c = ExpertCache::new(2, PolicyKind::Lru);
        assert_eq!(c.acquire(k(0, 1)), Some(Lookup::Miss { slot: 0, evicted: None }));
        assert_eq!(c.acquire(k(0, 2)), Some(Lookup::Miss { slot: 1, evicted: None }));
        // Both pinned by the step: nothing to evict.
        assert_eq!(c.acquire(k(0, 3)), None);
        c.release_all();
        assert_eq!(c.acquire(k(0, 1)), Some(Lookup::Hit(0)));
        // Slot 1 is the least recently used unpinned one.
        assert_eq!(c.acquire(k(1, 0)), Some(Lookup::Miss { slot: 1, evicted: Some(k(0, 2)) }));
        assert_eq!(c.stats(), CacheStats { hits: 1, misses: 3, evictions: 1 });
        c.forget(1);
        c.release_all();
        assert_eq!(c.key(1), None);
        assert_eq!(c.acquire(k(1, 0)), Some(Lookup::Miss { slot: 1, evicted: None }));
    }
}
