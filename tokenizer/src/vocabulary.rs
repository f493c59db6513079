//! The ordinary (mergeable) tokens: their bytes in rank order and a hash index from bytes to
//! rank. In tiktoken vocabularies an ordinary token's id is its merge rank.
//!
//! All token bytes live in one buffer; the index stores only ranks and compares candidate keys
//! against that buffer, so a lookup hashes the borrowed slice and allocates nothing.

use crate::error::{Result, TokenizerError};
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

/// Ordinary tokens `0..len()`, each a non-empty byte string, all distinct, covering every byte.
pub(crate) struct Vocabulary {
    /// Token bytes, concatenated in rank order.
    bytes: Vec<u8>,
    /// `offsets[r]..offsets[r + 1]` is token `r` in `bytes` (len() + 1 entries).
    offsets: Vec<u32>,
    /// Ranks, hashed by their token's bytes.
    index: HashTable<u32>,
    /// The rank of each single byte.
    byte_ranks: [u32; 256],
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    FxBuildHasher.hash_one(bytes)
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
        let mut vocabulary = Self {
            bytes,
            offsets,
            index: HashTable::with_capacity(count),
            byte_ranks: [u32::MAX; 256],
        };
        for rank in 0..count as u32 {
            let token = vocabulary.token_unchecked(rank);
            let hash = hash_bytes(token);
            let existing = vocabulary.index.find(hash, |&other| {
                let (start, end) = vocabulary.span(other);
                &vocabulary.bytes[start..end] == token
            });
            if let Some(&first) = existing {
                return Err(TokenizerError::DuplicateToken {
                    bytes: token.to_vec(),
                    first,
                    second: rank,
                });
            }
            if let [byte] = token {
                vocabulary.byte_ranks[usize::from(*byte)] = rank;
            }
            let (bytes, offsets) = (&vocabulary.bytes, &vocabulary.offsets);
            vocabulary.index.insert_unique(hash, rank, |&r| {
                hash_bytes(&bytes[offsets[r as usize] as usize..offsets[r as usize + 1] as usize])
            });
        }
        if let Some(byte) = vocabulary.byte_ranks.iter().position(|&r| r == u32::MAX) {
            return Err(TokenizerError::MissingByte(byte as u8));
        }
        Ok(vocabulary)
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
        self.index
            .find(hash_bytes(token), |&r| self.token_unchecked(r) == token)
            .copied()
    }

    /// The rank of a single byte (every byte has one).
    #[inline(always)]
    pub(crate) fn byte_rank(&self, byte: u8) -> u32 {
        self.byte_ranks[usize::from(byte)]
    }
}
