//! o200k_harmony, the tokenizer of OpenAI's gpt-oss models: byte-level BPE over the o200k
//! vocabulary with harmony's special tokens.
//!
//! * [`Tokenizer::o200k_harmony`] works with no files (o200k_base is embedded);
//!   [`Tokenizer::from_model_dir`] reads a checkpoint's `tokenizer.json`;
//!   [`Tokenizer::from_tiktoken`] reads a `.tiktoken` ranks file.
//! * Encoding splits text with a hand-written o200k pre-tokenizer (no regex engine) and merges
//!   each piece in O(n log n) worst case; its output equals tiktoken's, id for id.
//! * [`StreamDecoder`] turns a stream of ids into text without splitting characters.
//!
//! ```
//! use gptoss_tokenizer::Tokenizer;
//!
//! let tokenizer = Tokenizer::o200k_harmony()?;
//! let ids = tokenizer.encode_with_special_tokens("<|start|>assistant");
//! assert_eq!(ids, [200006, 173781]);
//! assert_eq!(tokenizer.decode(&ids)?, "<|start|>assistant");
//! // As ordinary text, a special token's name is just characters.
//! assert_ne!(tokenizer.encode_ordinary("<|start|>"), [200006]);
//!
//! let mut stream = tokenizer.stream_decoder();
//! let text: String = tokenizer
//!     .encode_ordinary("naïve 🙂")
//!     .into_iter()
//!     .map(|id| stream.push(id))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(text + &stream.finish(), "naïve 🙂");
//! # Ok::<(), gptoss_tokenizer::TokenizerError>(())
//! ```

mod bpe;
mod byte_level;
mod char_class;
mod char_class_table;
mod embedded;
mod error;
mod long_piece;
mod pretokenize;
mod special_tokens;
mod stream;
mod tiktoken_file;
mod tokenizer;
mod tokenizer_json;
mod vocabulary;

pub use error::{Result, TokenizerError};
pub use special_tokens::harmony_special_tokens;
pub use stream::StreamDecoder;
pub use tokenizer::{MAX_FILE_BYTES, TokenId, Tokenizer};
pub use tokenizer_json::O200K_PATTERN;

/// Splits `text` into the o200k pre-tokenizer's pieces (exposed for tests and tools).
pub fn pretokenize(text: &str) -> impl Iterator<Item = &str> {
    pretokenize::Pieces::new(text)
}
