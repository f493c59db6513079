//! The hash index from a token's bytes to its rank: open addressing with linear probing over
//! slots that carry the key itself for tokens of up to 8 bytes (most lookups), so a lookup
//! hashes the borrowed slice, usually reads one cache line, and allocates nothing.
//!
//! Keys of up to 8 bytes are packed into a `u64` that serves for both hashing and equality;
//! longer keys are compared against the vocabulary's byte buffer by the caller.

/// One slot; `len == 0` marks it empty (tokens are never empty).
#[derive(Clone, Copy, Default)]
pub(crate) struct Slot {
    /// `pack_short` of the token if it has at most 8 bytes, else 0.
    pub(crate) packed: u64,
    pub(crate) len: u32,
    pub(crate) rank: u32,
}

/// Bytes of a key of at most 8 bytes, packed so that keys of equal length pack equally only if
/// they are equal (overlapping loads: the first and last 4, 2 or 1 bytes).
#[inline(always)]
pub(crate) fn pack_short(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let first = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let last = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
        u64::from(first) | (u64::from(last) << 32)
    } else if n >= 2 {
        let first = u16::from_le_bytes([b[0], b[1]]);
        let last = u16::from_le_bytes([b[n - 2], b[n - 1]]);
        u64::from(first) | (u64::from(last) << 16)
    } else {
        b.first().map_or(0, |&x| u64::from(x))
    }
}

/// Folded 64×64→128-bit multiply: every input bit reaches the high bits the index uses.
#[inline(always)]
fn mix(x: u64) -> u64 {
    let product = u128::from(x ^ 0x243F_6A88_85A3_08D3) * 0x9E37_79B9_7F4A_7C15u128;
    (product as u64) ^ ((product >> 64) as u64)
}

#[inline(always)]
pub(crate) fn hash_short(packed: u64, len: usize) -> u64 {
    mix(packed ^ (len as u64).rotate_right(8))
}

pub(crate) fn hash_long(bytes: &[u8]) -> u64 {
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        hash = mix(hash ^ word);
    }
    mix(hash ^ pack_short(chunks.remainder()))
}

pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    if bytes.len() <= 8 {
        hash_short(pack_short(bytes), bytes.len())
    } else {
        hash_long(bytes)
    }
}

/// The table: a power of two of slots, at most half full.
pub(crate) struct RankIndex {
    slots: Vec<Slot>,
    /// 64 minus log2 of the slot count: `hash >> shift` is the home slot.
    shift: u32,
}

impl RankIndex {
    pub(crate) fn with_capacity(count: usize) -> Self {
        let slots = (count * 2).next_power_of_two().max(16);
        Self {
            slots: vec![Slot::default(); slots],
            shift: 64 - slots.trailing_zeros(),
        }
    }

    /// The first slot from `hash`'s home that is empty or satisfies `is_key`.
    #[inline(always)]
    fn probe(&self, hash: u64, is_key: impl Fn(&Slot) -> bool) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (hash >> self.shift) as usize;
        loop {
            let slot = &self.slots[i];
            if slot.len == 0 || is_key(slot) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of the key `is_key` recognises, if present.
    #[inline(always)]
    pub(crate) fn find(&self, hash: u64, is_key: impl Fn(&Slot) -> bool) -> Option<&Slot> {
        let slot = &self.slots[self.probe(hash, is_key)];
        (slot.len != 0).then_some(slot)
    }

    /// Stores `entry` unless `is_key` finds its key already present; returns the rank present.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        entry: Slot,
        is_key: impl Fn(&Slot) -> bool,
    ) -> Option<u32> {
        let i = self.probe(hash, is_key);
        let slot = &mut self.slots[i];
        if slot.len != 0 {
            return Some(slot.rank);
        }
        *slot = entry;
        None
    }
}
