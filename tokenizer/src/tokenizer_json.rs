//! Hugging Face `tokenizer.json`, as real gpt-oss checkpoints ship it: a byte-level BPE model
//! whose `vocab` spells each ordinary token in GPT-2's byte alphabet, with special tokens in
//! `added_tokens`.
//!
//! Merge priority follows tiktoken: an ordinary token's id is its rank, and merging prefers the
//! pair whose concatenation has the lowest rank. tiktoken-derived files list exactly those merges
//! in that order, so `merges` is not needed to load them and is not read; it is written so that
//! other libraries can load the files this module writes.

use crate::byte_level::ByteLevel;
use crate::error::{Result, TokenizerError};
use crate::tokenizer::{TokenId, Tokenizer};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// The o200k pre-tokenizer regex, as tokenizer.json files spell it.
pub const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    pre_tokenizer: serde_json::Value,
    model: BpeModel,
}

#[derive(Deserialize)]
struct AddedToken {
    id: TokenId,
    content: String,
}

#[derive(Deserialize)]
struct BpeModel {
    #[serde(rename = "type")]
    kind: Option<String>,
    vocab: HashMap<String, TokenId>,
}

/// Every `{"Regex": "..."}` pattern in a pre-tokenizer description.
fn regex_patterns<'v>(value: &'v serde_json::Value, found: &mut Vec<&'v str>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("Regex", serde_json::Value::String(pattern)) => found.push(pattern),
                    _ => regex_patterns(child, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| regex_patterns(v, found)),
        _ => {}
    }
}

impl Tokenizer {
    /// Parses a `tokenizer.json`. Ordinary ids must be 0..n; added tokens become special tokens.
    pub fn from_tokenizer_json(json: &[u8]) -> Result<Self> {
        let parsed: TokenizerJson = serde_json::from_slice(json).map_err(|e| TokenizerError::MalformedTokenizerJson(e.to_string()))?;
        let unsupported = |what: String| TokenizerError::UnsupportedTokenizerJson(what);
        if let Some(kind) = parsed.model.kind.as_deref().filter(|&k| k != "BPE") {
            return Err(unsupported(format!("model type {kind:?} (only BPE is)")));
        }
        let mut patterns = Vec::new();
        regex_patterns(&parsed.pre_tokenizer, &mut patterns);
        if let Some(pattern) = patterns.iter().find(|&&p| p != O200K_PATTERN) {
            return Err(unsupported(format!("pre-tokenizer pattern {pattern:?} (only the o200k pattern is)")));
        }

        let special_ids: std::collections::HashSet<TokenId> = parsed.added_tokens.iter().map(|t| t.id).collect();
        let alphabet = ByteLevel::new();
        let mut ordinary: Vec<(TokenId, &String)> =
            parsed.model.vocab.iter().filter(|(_, id)| !special_ids.contains(id)).map(|(token, &id)| (id, token)).collect();
        ordinary.sort_unstable();
        if let Some(pair) = ordinary.windows(2).find(|p| p[0].0 == p[1].0) {
            let ((id, a), (_, b)) = (pair[0], pair[1]);
            return Err(TokenizerError::MalformedTokenizerJson(format!("vocab gives id {id} to both {a:?} and {b:?}")));
        }
        // Distinct ids fill 0..n exactly unless the largest is n or more: name that one.
        if let Some(&(id, token)) = ordinary.last().filter(|(id, _)| *id as usize >= ordinary.len()) {
            return Err(TokenizerError::OrdinaryIdOutOfRange { token: token.clone(), id, count: ordinary.len() });
        }
        let mut tokens = Vec::with_capacity(ordinary.len());
        for &(id, token) in &ordinary {
            tokens.push(alphabet.decode(token).ok_or_else(|| {
                TokenizerError::MalformedTokenizerJson(format!("vocab token {token:?} (id {id}) is not in the byte-level alphabet"))
            })?);
        }
        let special = parsed.added_tokens.into_iter().map(|t| (t.content, t.id));
        Self::from_parts(tokens, special)
    }

    /// This tokenizer as a Hugging Face `tokenizer.json` (byte-level BPE with the o200k
    /// pre-tokenizer, the merges tiktoken's ranks imply, special tokens as added tokens).
    ///
    /// Hugging Face's loaders need one added token per id (given two, `tokenizers` moves one to
    /// a new id past the vocabulary), so an id with several names is written under the first
    /// listed: o200k_harmony's 200018 as `<|endofprompt|>`, as gpt-oss's own file has it.
    pub fn to_tokenizer_json(&self) -> String {
        let alphabet = ByteLevel::new();
        let quoted = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = String::with_capacity(self.ordinary_token_count() * 40);
        out.push_str("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n");
        out.push_str("  \"added_tokens\": [");
        for (i, (name, id)) in self.special_tokens_one_per_id().into_iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{sep}\n    {{\"id\": {id}, \"content\": {}, \"single_word\": false, \"lstrip\": false, \
                 \"rstrip\": false, \"normalized\": false, \"special\": true}}",
                quoted(name)
            );
        }
        let _ = write!(
            out,
            "\n  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": {{\"type\": \"Sequence\", \"pretokenizers\": [\
             {{\"type\": \"Split\", \"pattern\": {{\"Regex\": {}}}, \"behavior\": \"Isolated\", \"invert\": false}}, \
             {{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}}]}},\n  \
             \"post_processor\": null,\n  \
             \"decoder\": {{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true}},\n  \
             \"model\": {{\n    \"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \
             \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, \
             \"byte_fallback\": false, \"ignore_merges\": true,\n    \"vocab\": {{",
            quoted(O200K_PATTERN)
        );
        let spelled: Vec<String> =
            (0..self.ordinary_token_count() as TokenId).map(|id| alphabet.encode(self.token_bytes(id).unwrap_or_default())).collect();
        for (id, token) in spelled.iter().enumerate() {
            let sep = if id == 0 { "" } else { "," };
            let _ = write!(out, "{sep}\n      {}: {id}", quoted(token));
        }
        out.push_str("\n    },\n    \"merges\": [");
        for (i, (left, right)) in self.implied_merges().into_iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}\n      [{}, {}]", quoted(&spelled[left as usize]), quoted(&spelled[right as usize]));
        }
        out.push_str("\n    ]\n  }\n}\n");
        out
    }

    /// Writes `dir/tokenizer.json`.
    pub fn write_tokenizer_json(&self, dir: &Path) -> Result<()> {
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, self.to_tokenizer_json()).map_err(|source| TokenizerError::Io { path, source })
    }

    /// Every (left, right) pair of ordinary tokens whose concatenation is a token, ordered by the
    /// rank of the result, then of left, then of right: the order Hugging Face's tiktoken
    /// converter writes.
    fn implied_merges(&self) -> Vec<(TokenId, TokenId)> {
        let mut merges = Vec::new();
        for id in 0..self.ordinary_token_count() as TokenId {
            let bytes = self.token_bytes(id).unwrap_or_default();
            let first = merges.len();
            for split in 1..bytes.len() {
                let (left, right) = bytes.split_at(split);
                if let (Some(l), Some(r)) = (self.ordinary_token_id(left), self.ordinary_token_id(right)) {
                    merges.push((l, r));
                }
            }
            merges[first..].sort_unstable();
        }
        merges
    }
}
