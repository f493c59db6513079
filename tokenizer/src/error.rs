//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong loading a vocabulary or decoding tokens. Encoding cannot fail.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("token id {0} is not in the vocabulary")]
    UnknownTokenId(u32),

    #[error("decoded bytes are not valid UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 { offset: usize },

    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A file that was read but holds no usable vocabulary.
    #[error("{}: {source}", path.display())]
    InFile { path: PathBuf, source: Box<TokenizerError> },

    #[error("malformed tokenizer.json: {0}")]
    MalformedTokenizerJson(String),

    #[error("unsupported tokenizer.json: {0}")]
    UnsupportedTokenizerJson(String),

    #[error("malformed .tiktoken ranks file, line {line}: {reason}")]
    MalformedTiktoken { line: usize, reason: String },

    #[error("vocab token {token:?} has id {id}, but the {count} ordinary tokens must have ids 0..{count} without gaps")]
    OrdinaryIdOutOfRange { token: String, id: u32, count: usize },

    #[error("vocabulary gives the same bytes {bytes:?} to ids {first} and {second}")]
    DuplicateToken { bytes: Vec<u8>, first: u32, second: u32 },

    #[error("vocabulary holds more than 4 GiB of token bytes")]
    VocabularyTooLarge,

    #[error("vocabulary has an empty token at id {0}")]
    EmptyToken(u32),

    #[error("vocabulary lacks the single byte 0x{0:02x}, so not every text could be encoded")]
    MissingByte(u8),

    #[error("special token {name:?} has id {id}, which an ordinary token already uses")]
    SpecialIdCollision { name: String, id: u32 },

    #[error("special token {0:?} is empty")]
    EmptySpecialToken(String),

    #[error("the embedded o200k_base vocabulary is corrupt: {0}")]
    CorruptEmbeddedVocabulary(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;
