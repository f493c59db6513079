//! Incremental parsing of generated token ids into harmony messages.
//!
//! Each token is handled in time proportional to its length: header tokens are collected and
//! decoded once at `<|message|>`; content tokens go through a streaming UTF-8 decoder and are
//! appended to the message text. So a whole completion parses in linear time.

use super::chat::{Content, Message, Role};
use super::error::{HarmonyError, Result};
use super::header::{Header, parse_header};
use super::render::HarmonyEncoding;
use gptoss_tokenizer::{StreamDecoder, TokenId};

/// Tokens a header may have. A real one (`<|channel|>commentary to=functions.NAME
/// <|constrain|>json`) takes a dozen or two; a stream that goes on longer without `<|message|>`
/// is not harmony, and saying so early keeps its text from being held back.
pub const MAX_HEADER_TOKENS: usize = 128;

enum State<'t> {
    /// Between messages: only `<|start|>` may come.
    ExpectStart,
    /// Inside a header; `role` is known when the prompt ended in `<|start|>{role}`.
    Header { role: Option<Role>, tokens: Vec<TokenId> },
    /// Inside content.
    Content { header: Header, text: String, decoder: StreamDecoder<'t> },
}

/// Turns a stream of token ids into messages; see the module documentation.
pub struct StreamParser<'t> {
    encoding: HarmonyEncoding<'t>,
    state: State<'t>,
    messages: Vec<Message>,
    /// Text that the last token added to the current message's content.
    last_delta: String,
}

impl<'t> StreamParser<'t> {
    /// A parser for a completion. With `Some(role)` the stream continues a prompt that ended
    /// in `<|start|>{role}` (so it starts inside the header); with `None` it starts between
    /// messages.
    pub fn new(encoding: HarmonyEncoding<'t>, role: Option<Role>) -> Self {
        let state = match role {
            Some(role) => State::Header { role: Some(role), tokens: Vec::new() },
            None => State::ExpectStart,
        };
        Self { encoding, state, messages: Vec::new(), last_delta: String::new() }
    }

    /// Consumes one token.
    pub fn push(&mut self, token: TokenId) -> Result<()> {
        self.last_delta.clear();
        let formatting = self.encoding.formatting_tokens();
        match &mut self.state {
            State::ExpectStart if token == formatting.start => {
                self.state = State::Header { role: None, tokens: Vec::new() };
            }
            State::ExpectStart => return Err(HarmonyError::ExpectedStart(token)),
            State::Header { role, tokens } if token == formatting.message => {
                let text = self.encoding.tokenizer().decode(tokens)?;
                let header = parse_header(&text, *role)?;
                self.state = State::Content { header, text: String::new(), decoder: self.encoding.tokenizer().stream_decoder() };
            }
            State::Header { tokens, .. } if tokens.len() >= MAX_HEADER_TOKENS => {
                return Err(HarmonyError::HeaderTooLong(MAX_HEADER_TOKENS));
            }
            State::Header { tokens, .. } => tokens.push(token),
            State::Content { .. } if self.encoding.message_end_tokens().contains(&token) => {
                self.end_message();
            }
            State::Content { text, decoder, .. } => {
                let delta = decoder.push(token)?;
                text.push_str(&delta);
                self.last_delta = delta;
            }
        }
        Ok(())
    }

    /// Ends the stream: a message still open is completed (any incomplete character becomes
    /// U+FFFD); a stream that stops inside a header is an error.
    pub fn finish(mut self) -> Result<Vec<Message>> {
        match self.state {
            State::Header { .. } => Err(HarmonyError::EndInsideHeader),
            State::Content { .. } => {
                self.end_message();
                Ok(self.messages)
            }
            State::ExpectStart => Ok(self.messages),
        }
    }

    fn end_message(&mut self) {
        if let State::Content { header, mut text, decoder } = std::mem::replace(&mut self.state, State::ExpectStart) {
            text.push_str(&decoder.finish());
            self.messages.push(Message {
                author: header.author,
                recipient: header.recipient,
                channel: header.channel,
                content_type: header.content_type,
                content: vec![Content::Text(text)],
            });
        }
    }

    /// Messages completed so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The text the last token added to the open message (empty if none, or if it only
    /// started a character).
    pub fn last_content_delta(&self) -> &str {
        &self.last_delta
    }

    /// The header of the message whose content is being read.
    pub fn current_header(&self) -> Option<&Header> {
        match &self.state {
            State::Content { header, .. } => Some(header),
            _ => None,
        }
    }

    /// The open message's content so far.
    pub fn current_content(&self) -> &str {
        match &self.state {
            State::Content { text, .. } => text,
            _ => "",
        }
    }
}
