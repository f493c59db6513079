//! The test hook: `--script FILE` (hidden from `--help`) makes the server emit given replies
//! instead of sampled tokens, so tests can drive tool calls and reasoning over the wire with a
//! model whose own text is random. The model still runs every step (prefill, decode, slots,
//! cancellation); only the sampled ids are replaced, and each replaced id is fed back as the
//! next input, as a sampled one would be.
//!
//! The file is a JSON array of `{"when": TEXT, "reply": HARMONY}`: a request whose last message
//! (chat, responses) or prompt (completions) contains `TEXT` gets the tokens of `HARMONY`
//! (special tokens included), e.g. `<|channel|>final<|message|>Hi<|return|>`. The first entry
//! that matches wins; a request no entry matches is sampled as usual.

use std::path::Path;
use std::sync::Arc;

use gptoss::{Error, Result};
use gptoss_tokenizer::Tokenizer;

#[derive(serde::Deserialize)]
struct Entry {
    when: String,
    reply: String,
}

pub struct Script {
    entries: Vec<(String, Arc<[u32]>)>,
}

impl Script {
    pub fn load(path: &Path, tokenizer: &Tokenizer) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("--script {}: {e}", path.display())))?;
        let entries: Vec<Entry> = serde_json::from_str(&text).map_err(|e| Error::Usage(format!("--script {}: {e}", path.display())))?;
        Ok(Self { entries: entries.into_iter().map(|e| (e.when, tokenizer.encode_with_special_tokens(&e.reply).into())).collect() })
    }

    /// The reply for a request whose last message is `text`.
    pub fn find(&self, text: &str) -> Option<Arc<[u32]>> {
        self.entries.iter().find(|(when, _)| text.contains(when.as_str())).map(|(_, tokens)| tokens.clone())
    }
}
