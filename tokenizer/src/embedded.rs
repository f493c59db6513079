//! The o200k_base ranks, embedded so that a tokenizer needs no model directory.
//!
//! `data/o200k_base.tokens.deflate` is raw DEFLATE of the 199,998 tokens in rank order, each as
//! one length byte followed by the token's bytes (1.1 MB instead of the 3.6 MB `.tiktoken` text).
//! It is written by `cargo run -p gptoss-tokenizer-compat --example pack_o200k_base`, and a test
//! of that crate checks it token for token against tiktoken-rs. See NOTICE for its origin.

use crate::error::{Result, TokenizerError};

static PACKED: &[u8] = include_bytes!("../data/o200k_base.tokens.deflate");

/// Number of ordinary tokens in o200k_base.
pub(crate) const O200K_BASE_TOKENS: usize = 199_998;

/// The unpacked table: length-prefixed tokens, split by [`split_tokens`].
pub(crate) fn o200k_base_packed() -> Result<Vec<u8>> {
    miniz_oxide::inflate::decompress_to_vec(PACKED).map_err(|e| TokenizerError::CorruptEmbeddedVocabulary(format!("inflate failed: {e:?}")))
}

/// The o200k_base tokens in rank order, borrowed from the unpacked table.
pub(crate) fn split_tokens(packed: &[u8]) -> Result<Vec<&[u8]>> {
    let corrupt = |reason: String| TokenizerError::CorruptEmbeddedVocabulary(reason);
    let mut tokens = Vec::with_capacity(O200K_BASE_TOKENS);
    let mut rest = packed;
    while let Some((&len, tail)) = rest.split_first() {
        let (token, after) =
            tail.split_at_checked(usize::from(len)).ok_or_else(|| corrupt(format!("token {} is truncated", tokens.len())))?;
        tokens.push(token);
        rest = after;
    }
    if tokens.len() != O200K_BASE_TOKENS {
        return Err(corrupt(format!("{} tokens instead of {O200K_BASE_TOKENS}", tokens.len())));
    }
    Ok(tokens)
}
