//! Least recently used: each filled slot carries the tick of its last use, kept in an ordered
//! set so the victim is the first evictable entry (pinned slots, a handful, are skipped).

use std::collections::BTreeSet;

use super::policy::ReplacementPolicy;

pub struct Lru {
    /// The tick of each slot's last use (meaningful for filled slots).
    last: Vec<u64>,
    /// (last use, slot) of every filled slot, oldest first.
    order: BTreeSet<(u64, usize)>,
    tick: u64,
}

impl Lru {
    pub fn new(slots: usize) -> Self {
        Lru { last: vec![0; slots], order: BTreeSet::new(), tick: 0 }
    }

    fn used(&mut self, slot: usize) {
        self.order.remove(&(self.last[slot], slot));
        self.tick += 1;
        self.last[slot] = self.tick;
        self.order.insert((self.tick, slot));
    }
}

impl ReplacementPolicy for Lru {
    fn filled(&mut self, slot: usize) {
        self.used(slot);
    }

    fn hit(&mut self, slot: usize) {
        self.used(slot);
    }

    fn emptied(&mut self, slot: usize) {
        self.order.remove(&(self.last[slot], slot));
    }

    fn victim(&self, evictable: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.order.iter().map(|&(_, slot)| slot).find(|&s| evictable(s))
    }
}
