//! Incremental decoding: text from a stream of token ids as soon as it is complete UTF-8.
//!
//! A multi-byte character may be split across tokens (byte-level BPE has tokens for partial
//! UTF-8 sequences), so bytes of an incomplete trailing sequence are held back until a later
//! token completes them. Bytes that can never become valid UTF-8 come out as U+FFFD at once.

use crate::error::Result;
use crate::tokenizer::{TokenId, Tokenizer};

/// Decodes ids one at a time; see the module documentation.
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    /// Bytes of an incomplete UTF-8 sequence (at most 3).
    pending: Vec<u8>,
}

impl<'t> StreamDecoder<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer) -> Self {
        Self { tokenizer, pending: Vec::with_capacity(8) }
    }

    /// Adds one token and returns the text it completes (often empty for a partial character).
    pub fn push(&mut self, id: TokenId) -> Result<String> {
        let bytes = self.tokenizer.token_bytes(id)?;
        if let (true, Ok(text)) = (self.pending.is_empty(), std::str::from_utf8(bytes)) {
            return Ok(text.to_owned());
        }
        let mut out = String::new();
        self.pending.extend_from_slice(bytes);
        self.drain_complete(&mut out);
        Ok(out)
    }

    /// Whether bytes of an incomplete character are being held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: held-back bytes come out as U+FFFD.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }

    /// Moves every complete character of `pending` to `out`, keeping an incomplete tail.
    fn drain_complete(&mut self, out: &mut String) {
        let mut consumed = 0;
        loop {
            match std::str::from_utf8(&self.pending[consumed..]) {
                Ok(valid) => {
                    out.push_str(valid);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid_len = e.valid_up_to();
                    let valid = &self.pending[consumed..consumed + valid_len];
                    // `valid_up_to` guarantees this prefix is UTF-8.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    consumed += valid_len;
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            consumed += bad;
                        }
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..consumed);
    }
}
