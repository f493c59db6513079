//! Least frequently used: each filled slot counts its uses since its expert was read (the
//! count starts again when the slot is refilled, so a once-hot expert evicted long ago has no
//! head start); ties go to the least recently used. Kept in an ordered set of
//! (uses, last use, slot).

use std::collections::BTreeSet;

use super::policy::ReplacementPolicy;

pub struct Lfu {
    uses: Vec<u64>,
    last: Vec<u64>,
    order: BTreeSet<(u64, u64, usize)>,
    tick: u64,
}

impl Lfu {
    pub fn new(slots: usize) -> Self {
        Lfu { uses: vec![0; slots], last: vec![0; slots], order: BTreeSet::new(), tick: 0 }
    }

    fn set(&mut self, slot: usize, uses: u64) {
        self.order.remove(&(self.uses[slot], self.last[slot], slot));
        self.tick += 1;
        (self.uses[slot], self.last[slot]) = (uses, self.tick);
        self.order.insert((uses, self.tick, slot));
    }
}

impl ReplacementPolicy for Lfu {
    fn filled(&mut self, slot: usize) {
        self.set(slot, 1);
    }

    fn hit(&mut self, slot: usize) {
        self.set(slot, self.uses[slot] + 1);
    }

    fn emptied(&mut self, slot: usize) {
        self.order.remove(&(self.uses[slot], self.last[slot], slot));
    }

    fn victim(&self, evictable: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.order.iter().map(|&(_, _, slot)| slot).find(|&s| evictable(s))
    }
}
