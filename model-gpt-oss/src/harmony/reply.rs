//! An assistant's reply as OpenAI-style APIs present it. The `analysis` channel is reasoning; a
//! message addressed to a recipient is a call (to `functions.NAME`: a function call whose text
//! is its JSON arguments); everything else (the `final` channel, `commentary` preambles) is
//! content for the user.
//!
//! Generated ids that are not harmony (a model with random weights, a broken or endless
//! header) come out verbatim as content from the point where the format broke, so nothing the
//! model wrote is lost and a client always sees why a reply looks the way it does.

use super::chat::Role;
use super::header::Header;
use super::parser::StreamParser;
use super::render::HarmonyEncoding;
use gptoss_tokenizer::{StreamDecoder, TokenId, Tokenizer};

/// What a message of the reply is, for an API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyPart {
    /// The `analysis` channel: the chain of thought.
    Reasoning,
    /// Text for the user: the `final` channel, a `commentary` preamble, or ids that were not
    /// harmony.
    Content,
    /// A message to `recipient`: a function (`functions.NAME`) or a built-in tool.
    Call { recipient: String },
}

impl ReplyPart {
    /// The part a message with this header is.
    pub fn of(header: &Header) -> Self {
        match header.recipient.as_deref() {
            Some(recipient) if recipient != "all" && header.author.role == Role::Assistant => {
                ReplyPart::Call { recipient: recipient.to_owned() }
            }
            _ if header.channel.as_deref() == Some("analysis") => ReplyPart::Reasoning,
            _ => ReplyPart::Content,
        }
    }

    /// The function called: `NAME` of a call to `functions.NAME`.
    pub fn function_name(&self) -> Option<&str> {
        match self {
            ReplyPart::Call { recipient } => recipient.strip_prefix("functions."),
            _ => None,
        }
    }
}

/// What one generated id did to the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyEvent {
    /// A message's header was read; its content starts.
    Started(ReplyPart),
    /// Text added to the open message.
    Delta(String),
    /// The open message ended, with its whole text.
    Ended { part: ReplyPart, text: String },
}

/// A finished message of the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyItem {
    pub part: ReplyPart,
    pub text: String,
}

/// Turns generated ids into [`ReplyEvent`]s and [`ReplyItem`]s; see the module documentation.
pub struct ReplyParser<'t> {
    tokenizer: &'t Tokenizer,
    /// `None` once the ids stopped being harmony, or after `finish`.
    parser: Option<StreamParser<'t>>,
    /// The open message's part and the bytes of its text already given out as deltas.
    open: Option<(ReplyPart, usize)>,
    /// Ids since the last message ended (a `<|start|>` and a header being read): given back as
    /// content if they turn out not to be harmony.
    pending: Vec<TokenId>,
    /// Decodes the rest verbatim once the ids stopped being harmony.
    raw: Option<(StreamDecoder<'t>, String)>,
    broken: bool,
    items: Vec<ReplyItem>,
}

impl<'t> ReplyParser<'t> {
    /// A parser for a reply to a prompt that ended in `<|start|>assistant`.
    pub fn new(encoding: HarmonyEncoding<'t>) -> Self {
        Self {
            tokenizer: encoding.tokenizer(),
            parser: Some(StreamParser::new(encoding, Some(Role::Assistant))),
            open: None,
            pending: Vec::new(),
            raw: None,
            broken: false,
            items: Vec::new(),
        }
    }

    /// Consumes one generated id and returns what it did (often nothing: a header token).
    pub fn push(&mut self, token: TokenId) -> Vec<ReplyEvent> {
        let mut events = Vec::new();
        if let Some((decoder, text)) = &mut self.raw {
            let delta = decoder.push(token).unwrap_or_else(|_| char::REPLACEMENT_CHARACTER.to_string());
            if !delta.is_empty() {
                text.push_str(&delta);
                events.push(ReplyEvent::Delta(delta));
            }
            return events;
        }
        let Some(parser) = self.parser.as_mut() else {
            return events;
        };
        let ended_before = parser.messages().len();
        if parser.push(token).is_err() {
            self.pending.push(token);
            self.go_raw(&mut events);
            return events;
        }
        if parser.messages().len() > ended_before {
            let text = parser.messages().last().map(|m| m.text()).unwrap_or_default();
            self.end_open(text, &mut events);
        } else if let Some((_, emitted)) = &mut self.open {
            let delta = parser.last_content_delta();
            if !delta.is_empty() {
                *emitted += delta.len();
                events.push(ReplyEvent::Delta(delta.to_owned()));
            }
        } else if let Some(header) = parser.current_header() {
            let part = ReplyPart::of(header);
            self.pending.clear();
            self.open = Some((part.clone(), 0));
            events.push(ReplyEvent::Started(part));
        } else {
            self.pending.push(token);
        }
        events
    }

    /// Ends the reply: an open message ends (a character cut short becomes U+FFFD), and a
    /// header cut short comes out verbatim as content.
    pub fn finish(&mut self) -> Vec<ReplyEvent> {
        let mut events = Vec::new();
        if let Some((decoder, mut text)) = self.raw.take() {
            let tail = decoder.finish();
            if !tail.is_empty() {
                text.push_str(&tail);
                events.push(ReplyEvent::Delta(tail));
            }
            events.push(ReplyEvent::Ended { part: ReplyPart::Content, text: text.clone() });
            self.items.push(ReplyItem { part: ReplyPart::Content, text });
            return events;
        }
        let Some(parser) = self.parser.take() else {
            return events;
        };
        let open = parser.current_header().is_some();
        match parser.finish() {
            Ok(messages) if open => {
                let text = messages.last().map(|m| m.text()).unwrap_or_default();
                let emitted = self.open.as_ref().map_or(0, |(_, n)| *n);
                if text.len() > emitted {
                    events.push(ReplyEvent::Delta(text[emitted..].to_owned()));
                }
                self.end_open(text, &mut events);
            }
            Ok(_) => {}
            Err(_) => {
                // Ended inside a header: what it held is content, verbatim.
                self.go_raw(&mut events);
                events.extend(self.finish());
            }
        }
        events
    }

    /// The messages finished so far, in order.
    pub fn items(&self) -> &[ReplyItem] {
        &self.items
    }

    /// Whether the ids stopped being harmony at some point.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn end_open(&mut self, text: String, events: &mut Vec<ReplyEvent>) {
        let part = self.open.take().map_or(ReplyPart::Content, |(part, _)| part);
        self.pending.clear();
        events.push(ReplyEvent::Ended { part: part.clone(), text: text.clone() });
        self.items.push(ReplyItem { part, text });
    }

    /// Switches to verbatim content, starting with the pending ids.
    fn go_raw(&mut self, events: &mut Vec<ReplyEvent>) {
        self.broken = true;
        self.parser = None;
        self.open = None;
        let mut decoder = self.tokenizer.stream_decoder();
        let mut text = String::new();
        for &id in &self.pending {
            text.push_str(&decoder.push(id).unwrap_or_else(|_| char::REPLACEMENT_CHARACTER.to_string()));
        }
        self.pending.clear();
        events.push(ReplyEvent::Started(ReplyPart::Content));
        if !text.is_empty() {
            events.push(ReplyEvent::Delta(text.clone()));
        }
        self.raw = Some((decoder, text));
    }
}
