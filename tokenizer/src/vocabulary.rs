//! The ordinary (mergeable) tokens: their bytes in rank order and a hash index from bytes to
//! rank. In tiktoken vocabularies an ordinary token's id is its merge rank.
//!
//! All token bytes live in one buffer; the index (`rank_index`) maps a borrowed slice to its
//! rank without allocating.

use crate::error::{Result, TokenizerError};
use crate::rank_index::{RankIndex, Slot, hash_bytes, hash_long, hash_short, pack_short};

/// Ordinary tokens `0..len()`, each a non-empty byte string, all distinct, covering every byte.
pub(crate) struct Vocabulary {
    /// Token bytes, concatenated in rank order.
    bytes: Vec<u8>,
    /// `offsets[r]..offsets[r + 1]` is token `r` in `bytes` (len() + 1 entries).
    offsets: Vec<u32>,
    /// Ranks, hashed by their token's bytes.
    index: RankIndex,
    /// The rank of each single byte.
    byte_ranks: [u32; 256],
    /// The rank of each two-byte token by `(first << 8) | second`, `u32::MAX` where none: the
    /// first round of every merge looks up nothing but byte pairs.
    byte_pair_ranks: Box<[u32]>,
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
        let mut index = RankIndex::with_capacity(count);
        for rank in 0..count {
            let token = token_at(rank);
            let entry = Slot {
                packed: if token.len() <= 8 {
                    pack_short(token)
                } else {
                    0
                },
                len: token.len() as u32,
                rank: rank as u32,
            };
            let same = |slot: &Slot| token_at(slot.rank as usize) == token;
            if let Some(first) = index.insert(hash_bytes(token), entry, same) {
                return Err(TokenizerError::DuplicateToken {
                    bytes: token.to_vec(),
                    first,
                    second: rank as u32,
                });
            }
            match token {
                [byte] => byte_ranks[usize::from(*byte)] = rank as u32,
                [first, second] => {
                    byte_pair_ranks[usize::from(*first) << 8 | usize::from(*second)] = rank as u32
                }
                _ => {}
            }
        }
        if let Some(byte) = byte_ranks.iter().position(|&r| r == u32::MAX) {
            return Err(TokenizerError::MissingByte(byte as u8));
        }
        Ok(Self {
            bytes,
            offsets,
            index,
            byte_ranks,
            byte_pair_ranks,
        })
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
            self.index.find(hash_short(packed, len), |e| {
                e.packed == packed && e.len == len as u32
            })
        } else {
            self.index.find(hash_long(token), |e| {
                e.len == len as u32 && self.token_unchecked(e.rank) == token
            })
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
