//! The ordinary (mergeable) tokens: their bytes in rank order and a hash index from bytes to
//! rank. In tiktoken vocabularies an ordinary token's id is its merge rank.
//!
//! All token bytes live in one buffer; the index stores only ranks and compares candidate keys
//! against that buffer, so a lookup hashes the borrowed slice and allocates nothing. Keys of up
//! to 8 bytes (most lookups) are packed into a `u64` that serves both for hashing and for the
//! equality check, which then needs no `memcmp`.

use crate::error::{Result, TokenizerError};
use hashbrown::HashTable;

/// Ordinary tokens `0..len()`, each a non-empty byte string, all distinct, covering every byte.
pub(crate) struct Vocabulary {
    /// Token bytes, concatenated in rank order.
    bytes: Vec<u8>,
    /// `offsets[r]..offsets[r + 1]` is token `r` in `bytes` (len() + 1 entries).
    offsets: Vec<u32>,
    /// Ranks, hashed by their token's bytes.
    index: HashTable<IndexEntry>,
    /// The rank of each single byte.
    byte_ranks: [u32; 256],
    /// The rank of each two-byte token by `(first << 8) | second`, `u32::MAX` where none: the
    /// first round of every merge looks up nothing but byte pairs.
    byte_pair_ranks: Box<[u32]>,
}

/// An index slot: the rank plus what decides equality for short keys, so that a lookup touches
/// one slot and, for keys of at most 8 bytes, nothing else.
#[derive(Clone, Copy)]
struct IndexEntry {
    /// `pack_short` of the token if it has at most 8 bytes, else 0.
    packed: u64,
    len: u32,
    rank: u32,
}

/// Bytes of a key of at most 8 bytes, packed so that keys of equal length pack equally only if
/// they are equal (overlapping loads: the first and last 4, 2 or 1 bytes).
#[inline(always)]
fn pack_short(b: &[u8]) -> u64 {
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

/// Folded 64×64→128-bit multiply: every input bit reaches both halves of the hash.
#[inline(always)]
fn mix(x: u64) -> u64 {
    let product = u128::from(x ^ 0x243F_6A88_85A3_08D3) * 0x9E37_79B9_7F4A_7C15u128;
    (product as u64) ^ ((product >> 64) as u64)
}

#[inline(always)]
fn hash_short(packed: u64, len: usize) -> u64 {
    mix(packed ^ (len as u64).rotate_right(8))
}

fn hash_long(bytes: &[u8]) -> u64 {
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        hash = mix(hash ^ word);
    }
    mix(hash ^ pack_short(chunks.remainder()))
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    if bytes.len() <= 8 { hash_short(pack_short(bytes), bytes.len()) } else { hash_long(bytes) }
}

impl Vocabulary {
    /// Builds the vocabulary from tokens in rank order.
    pub(crate) fn from_tokens<I, T>(tokens: I) -> Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut bytes = Vec::new();
        let mut offsets = vec![0u32];
        for token in tokens {
            let token = token.as_ref();
            let rank = (offsets.len() - 1) as u32;
            if token.is_empty() {
                return Err(TokenizerError::EmptyToken(rank));
            }
            bytes.extend_from_slice(token);
            let end = u32::try_from(bytes.len()).map_err(|_| TokenizerError::VocabularyTooLarge)?;
            offsets.push(end);
        }
        let count = offsets.len() - 1;
        let token_at = |rank: usize| &bytes[offsets[rank] as usize..offsets[rank + 1] as usize];
        let mut byte_ranks = [u32::MAX; 256];
        let mut byte_pair_ranks = vec![u32::MAX; 1 << 16].into_boxed_slice();
        let mut index: HashTable<IndexEntry> = HashTable::with_capacity(count);
        for rank in 0..count {
            let token = token_at(rank);
            let hash = hash_bytes(token);
            let same = |entry: &IndexEntry| token_at(entry.rank as usize) == token;
            if let Some(first) = index.find(hash, same) {
                return Err(TokenizerError::DuplicateToken { bytes: token.to_vec(), first: first.rank, second: rank as u32 });
            }
            match token {
                [byte] => byte_ranks[usize::from(*byte)] = rank as u32,
                [first, second] => byte_pair_ranks[usize::from(*first) << 8 | usize::from(*second)] = rank as u32,
                _ => {}
            }
            let entry =
                IndexEntry { packed: if token.len() <= 8 { pack_short(token) } else { 0 }, len: token.len() as u32, rank: rank as u32 };
            index.insert_unique(hash, entry, |e| hash_bytes(token_at(e.rank as usize)));
        }
        if let Some(byte) = byte_ranks.iter().position(|&r| r == u32::MAX) {
            return Err(TokenizerError::MissingByte(byte as u8));
        }
        Ok(Self { bytes, offsets, index, byte_ranks, byte_pair_ranks })
    }

    /// Number of ordinary tokens.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn span(&self, rank: u32) -> (usize, usize) {
        let r = rank as usize;
        (self.offsets[r] as usize, self.offsets[r + 1] as usize)
    }

    fn token_unchecked(&self, rank: u32) -> &[u8] {
        let (start, end) = self.span(rank);
        &self.bytes[start..end]
    }

    /// The bytes of token `rank`, if it is an ordinary token.
    pub(crate) fn token(&self, rank: u32) -> Option<&[u8]> {
        ((rank as usize) < self.len()).then(|| self.token_unchecked(rank))
    }

    /// The rank of the token with exactly these bytes.
    #[inline]
    pub(crate) fn rank(&self, token: &[u8]) -> Option<u32> {
        let len = token.len();
        let entry = if len <= 8 {
            let packed = pack_short(token);
            self.index.find(hash_short(packed, len), |e| e.packed == packed && e.len == len as u32)
        } else {
            self.index.find(hash_long(token), |e| e.len == len as u32 && self.token_unchecked(e.rank) == token)
        };
        entry.map(|e| e.rank)
    }

    /// The rank of the token `[first, second]`, or `u32::MAX`.
    #[inline(always)]
    pub(crate) fn byte_pair_rank(&self, first: u8, second: u8) -> u32 {
        self.byte_pair_ranks[usize::from(first) << 8 | usize::from(second)]
    }

    /// The rank of a single byte (every byte has one).
    #[inline(always)]
    pub(crate) fn byte_rank(&self, byte: u8) -> u32 {
        self.byte_ranks[usize::from(byte)]
    }
}
