//! [`Tokenizer`]: encoding text to token ids and decoding ids back to bytes.

use crate::bpe::{MergeScratch, merge_piece};
use crate::embedded;
use crate::error::{Result, TokenizerError};
use crate::pretokenize::Pieces;
use crate::special_tokens::{SpecialTokens, harmony_special_tokens};
use crate::stream::StreamDecoder;
use crate::tiktoken_file;
use crate::vocabulary::Vocabulary;
use std::path::Path;

/// A token id: the merge rank for ordinary tokens, or a special token's id.
pub type TokenId = u32;

/// A byte-level BPE tokenizer with the o200k pre-tokenizer and a set of special tokens.
///
/// Encoding never fails: every byte is a token. Decoding fails only on ids outside the
/// vocabulary (or, for [`Tokenizer::decode`], bytes that are not UTF-8).
pub struct Tokenizer {
    vocabulary: Vocabulary,
    specials: SpecialTokens,
}

impl Tokenizer {
    /// Builds a tokenizer from ordinary tokens in rank order (id = position) and special tokens.
    /// When an id has several special names, the last one listed is the one it decodes to.
    pub fn from_parts<I, T>(ordinary: I, special: impl IntoIterator<Item = (String, TokenId)>) -> Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let vocabulary = Vocabulary::from_tokens(ordinary)?;
        let specials = SpecialTokens::new(special)?;
        if let Some(id) = specials.ids().find(|&id| (id as usize) < vocabulary.len()) {
            return Err(TokenizerError::SpecialIdCollision { name: specials.name(id).unwrap_or_default().to_owned(), id });
        }
        Ok(Self { vocabulary, specials })
    }

    /// o200k_harmony, gpt-oss's tokenizer, from the embedded o200k_base ranks plus the harmony
    /// special tokens (ids 199998..=201087).
    pub fn o200k_harmony() -> Result<Self> {
        let packed = embedded::o200k_base_packed()?;
        Self::from_parts(embedded::split_tokens(&packed)?, harmony_special_tokens())
    }

    /// A tiktoken `.tiktoken` ranks file's contents plus special tokens.
    pub fn from_tiktoken(ranks: &[u8], special: impl IntoIterator<Item = (String, TokenId)>) -> Result<Self> {
        Self::from_parts(tiktoken_file::parse_ranks(ranks)?, special)
    }

    /// A `.tiktoken` ranks file plus special tokens: o200k_harmony is `o200k_base.tiktoken`
    /// with [`harmony_special_tokens`](crate::harmony_special_tokens).
    pub fn from_tiktoken_file(path: &Path, special: impl IntoIterator<Item = (String, TokenId)>) -> Result<Self> {
        Self::from_tiktoken(&read(path)?, special).map_err(|e| in_file(path, e))
    }

    /// The tokenizer of a model directory: its `tokenizer.json`.
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        Self::from_tokenizer_json_file(&dir.join("tokenizer.json"))
    }

    /// A Hugging Face `tokenizer.json` file.
    pub fn from_tokenizer_json_file(path: &Path) -> Result<Self> {
        Self::from_tokenizer_json(&read(path)?).map_err(|e| in_file(path, e))
    }

    /// Number of ids: one past the largest ordinary or special id.
    pub fn vocab_size(&self) -> usize {
        let specials_end = self.specials.ids().map(|id| id as usize + 1).max();
        specials_end.unwrap_or(0).max(self.vocabulary.len())
    }

    /// Number of ordinary tokens (ids `0..n`).
    pub fn ordinary_token_count(&self) -> usize {
        self.vocabulary.len()
    }

    /// Encodes `text` treating special-token strings as plain text (what chat rendering uses
    /// for message content).
    pub fn encode_ordinary(&self, text: &str) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_ordinary_into(text, &mut MergeScratch::default(), &mut out);
        out
    }

    /// Encodes `text`, turning every special-token string in it into its special id.
    pub fn encode_with_special_tokens(&self, text: &str) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut scratch = MergeScratch::default();
        let mut start = 0;
        while let Some((special_start, special_end, id)) = self.specials.find(text, start) {
            self.encode_ordinary_into(&text[start..special_start], &mut scratch, &mut out);
            out.push(id);
            start = special_end;
        }
        self.encode_ordinary_into(&text[start..], &mut scratch, &mut out);
        out
    }

    fn encode_ordinary_into(&self, text: &str, scratch: &mut MergeScratch, out: &mut Vec<u32>) {
        for piece in Pieces::new(text) {
            let bytes = piece.as_bytes();
            match self.vocabulary.rank(bytes) {
                Some(rank) => out.push(rank),
                None => merge_piece(&self.vocabulary, bytes, scratch, out),
            }
        }
    }

    /// The bytes of one token: an ordinary token's bytes or a special token's name.
    pub fn token_bytes(&self, id: TokenId) -> Result<&[u8]> {
        self.vocabulary.token(id).or_else(|| self.specials.name(id).map(str::as_bytes)).ok_or(TokenizerError::UnknownTokenId(id))
    }

    /// The concatenated bytes of `ids`.
    pub fn decode_bytes(&self, ids: &[TokenId]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(out)
    }

    /// The text of `ids`; an error if the bytes are not valid UTF-8.
    pub fn decode(&self, ids: &[TokenId]) -> Result<String> {
        String::from_utf8(self.decode_bytes(ids)?).map_err(|e| TokenizerError::InvalidUtf8 { offset: e.utf8_error().valid_up_to() })
    }

    /// The text of `ids`, with U+FFFD for bytes that are not valid UTF-8.
    pub fn decode_lossy(&self, ids: &[TokenId]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// A decoder for a stream of ids that yields text as soon as it is complete UTF-8.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    /// The id of a special token by name, e.g. `<|start|>`.
    pub fn special_token_id(&self, name: &str) -> Option<TokenId> {
        self.specials.id(name)
    }

    /// Whether `id` is a special token.
    pub fn is_special(&self, id: TokenId) -> bool {
        self.specials.name(id).is_some()
    }

    /// The id of the ordinary token with exactly these bytes.
    pub fn ordinary_token_id(&self, bytes: &[u8]) -> Option<TokenId> {
        self.vocabulary.rank(bytes)
    }

    /// The id of a token given as text: a special token's name, else an ordinary token.
    pub fn token_id(&self, token: &str) -> Option<TokenId> {
        self.special_token_id(token).or_else(|| self.ordinary_token_id(token.as_bytes()))
    }

    /// Special tokens as (name, id), sorted by id; an id may have several names.
    pub fn special_tokens(&self) -> Vec<(&str, TokenId)> {
        self.specials.entries()
    }

    /// Special tokens with one name per id (the first one listed), sorted by id.
    pub(crate) fn special_tokens_one_per_id(&self) -> Vec<(&str, TokenId)> {
        self.specials.first_names()
    }
}

/// Vocabulary files larger than this are refused before reading (o200k_harmony's
/// tokenizer.json is 17 to 27 MB, its .tiktoken file 3.6 MB); what parsing one builds is a
/// small multiple of its size, so this also bounds the memory a load can ask for.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// The whole of a vocabulary file. Anything but a regular file is refused before it is opened
/// (opening a named pipe blocks until a writer comes), and so is a size no vocabulary has.
fn read(path: &Path) -> Result<Vec<u8>> {
    let io = |source| TokenizerError::Io { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")));
    }
    if meta.len() > MAX_FILE_BYTES {
        let detail = format!("{} bytes, more than the {MAX_FILE_BYTES} a vocabulary file may have", meta.len());
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidData, detail)));
    }
    std::fs::read(path).map_err(io)
}

/// A parse error of `path`'s contents, named after the file.
fn in_file(path: &Path, e: TokenizerError) -> TokenizerError {
    TokenizerError::InFile { path: path.to_owned(), source: Box::new(e) }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("ordinary_tokens", &self.vocabulary.len())
            .field("special_tokens", &self.specials.ids().count())
            .finish()
    }
}
