//! From a sequence's events to what the APIs return: the harmony reply (via the shared
//! [`ReplyParser`]) as output items — reasoning, messages, function calls — streamed as they
//! grow, with stop strings, finish reasons, token counts and log-probabilities.

use gptoss_model_gpt_oss::harmony::{HarmonyEncoding, ReplyEvent, ReplyParser, ReplyPart};

use super::ids::new_id;
use super::scheduler::{Event, Finish};
use super::step::TokenLogprobs;

/// What an output item is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// The analysis channel (and messages to built-in tools the client cannot run).
    Reasoning,
    /// Text for the user.
    Message,
    /// A call of one of the request's functions.
    FunctionCall { call_id: String, name: String },
}

/// A change to the reply, in order: items open, grow and close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    Open(ItemKind),
    Delta(String),
    /// The open item is complete, with this text.
    Close(String),
}

/// Why a choice ended, as the APIs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// Holds back text that might be the start of a stop string; finds the first one.
#[derive(Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self { stops, held: String::new() }
    }

    /// Adds `text`; returns the text that is safe to show, and whether a stop string was
    /// found (then the text ends just before it and nothing after it is ever shown).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        if self.stops.is_empty() {
            return (text.to_owned(), false);
        }
        self.held.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let out = self.held[..at].to_owned();
            self.held.clear();
            return (out, true);
        }
        let keep = self.stops.iter().map(|s| suffix_prefix(&self.held, s)).max().unwrap_or(0);
        let out: String = self.held.drain(..self.held.len() - keep).collect();
        (out, false)
    }

    /// The held-back text (no stop string can complete any more).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The length of the longest suffix of `text` that is a proper prefix of `stop`.
fn suffix_prefix(text: &str, stop: &str) -> usize {
    (1..stop.len()).rev().find(|&k| stop.is_char_boundary(k) && text.ends_with(&stop[..k])).unwrap_or(0)
}

/// One choice's reply, assembled from its scheduler events.
pub struct Assembler {
    parser: ReplyParser<'static>,
    call_token: u32,
    /// The request's function names (a call to a bare `NAME` among them is a function call).
    tools: Vec<String>,
    stop: StopMatcher,
    open: Option<ItemKind>,
    /// Text of the open item as shown (stop strings cut it).
    shown: String,
    /// A stop string ended the reply: nothing more is shown.
    stopped: bool,
    pub items: Vec<(ItemKind, String)>,
    pub completion_tokens: usize,
    /// Tokens of the analysis channel (its text and end token).
    pub reasoning_tokens: usize,
    /// Log-probabilities of the message tokens, when asked for.
    pub logprobs: Vec<(u32, TokenLogprobs)>,
    pub finish: Option<FinishReason>,
    pub error: Option<String>,
    /// Changes not given out yet (a forced header's), shown with the next event's.
    pending: Vec<Out>,
    /// Ids that end the reply without being part of it (`<|endoftext|>`).
    end_of_text: Vec<u32>,
}

impl Assembler {
    /// An assembler for a reply that starts after `<|start|>assistant` and `forced` (a header
    /// the prompt already wrote, e.g. for `tool_choice`).
    pub fn new(harmony: HarmonyEncoding<'static>, forced: &[u32], tools: Vec<String>, stops: Vec<String>) -> Self {
        let mut a = Self {
            parser: ReplyParser::new(harmony),
            call_token: harmony.formatting_tokens().call,
            tools,
            stop: StopMatcher::new(stops),
            open: None,
            shown: String::new(),
            stopped: false,
            items: Vec::new(),
            completion_tokens: 0,
            reasoning_tokens: 0,
            logprobs: Vec::new(),
            finish: None,
            error: None,
            pending: Vec::new(),
            end_of_text: Vec::new(),
        };
        let mut ignored = Vec::new();
        for &t in forced {
            let events = a.parser.push(t);
            a.apply(events, &mut ignored);
        }
        // The forced header's events are shown with the first token's.
        a.pending = ignored;
        a
    }

    /// Ids that end the reply unseen (they are counted, not parsed).
    pub fn with_end_of_text(mut self, ids: Vec<u32>) -> Self {
        self.end_of_text = ids;
        self
    }

    /// Whether a stop string ended the reply (the sequence should be cancelled).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Takes one scheduler event; returns what it changed.
    pub fn on_event(&mut self, event: Event) -> Vec<Out> {
        let mut out = std::mem::take(&mut self.pending);
        if self.finish.is_some() {
            return out;
        }
        match event {
            Event::Token { id, .. } if self.end_of_text.contains(&id) => self.completion_tokens += 1,
            Event::Token { id, logprobs } => {
                self.completion_tokens += 1;
                let in_reasoning = self.open == Some(ItemKind::Reasoning);
                let in_message = self.open == Some(ItemKind::Message);
                let events = self.parser.push(id);
                let closes = events.iter().any(|e| matches!(e, ReplyEvent::Ended { .. }));
                if in_reasoning {
                    self.reasoning_tokens += 1;
                }
                if let (true, false, Some(lp)) = (in_message, closes, logprobs) {
                    self.logprobs.push((id, lp));
                }
                self.apply(events, &mut out);
                if self.stopped {
                    self.finish = Some(FinishReason::Stop);
                } else if id == self.call_token && self.has_calls() {
                    self.finish = Some(FinishReason::ToolCalls);
                }
            }
            Event::Finished(finish) => {
                let events = self.parser.finish();
                self.apply(events, &mut out);
                self.finish = Some(match finish {
                    _ if self.finish.is_some() => self.finish.unwrap_or(FinishReason::Stop),
                    Finish::Length => FinishReason::Length,
                    Finish::StopToken(t) if t == self.call_token && self.has_calls() => FinishReason::ToolCalls,
                    Finish::ScriptEnd if self.has_calls() && matches!(self.items.last(), Some((ItemKind::FunctionCall { .. }, _))) => {
                        FinishReason::ToolCalls
                    }
                    _ => FinishReason::Stop,
                });
            }
            Event::Failed(message) => {
                let events = self.parser.finish();
                self.apply(events, &mut out);
                self.error = Some(message);
                self.finish = Some(FinishReason::Stop);
            }
        }
        out
    }

    fn has_calls(&self) -> bool {
        self.items.iter().any(|(k, _)| matches!(k, ItemKind::FunctionCall { .. }))
            || matches!(self.open, Some(ItemKind::FunctionCall { .. }))
    }

    fn kind(&self, part: &ReplyPart) -> ItemKind {
        match part {
            ReplyPart::Reasoning => ItemKind::Reasoning,
            ReplyPart::Content => ItemKind::Message,
            ReplyPart::Call { recipient } => {
                let name = part.function_name().or_else(|| self.tools.iter().any(|t| t == recipient).then_some(recipient.as_str()));
                match name {
                    Some(name) => ItemKind::FunctionCall { call_id: new_id("call"), name: name.to_owned() },
                    None => ItemKind::Reasoning,
                }
            }
        }
    }

    fn apply(&mut self, events: Vec<ReplyEvent>, out: &mut Vec<Out>) {
        for event in events {
            if self.stopped {
                return;
            }
            match event {
                ReplyEvent::Started(part) => {
                    let kind = self.kind(&part);
                    self.open = Some(kind.clone());
                    self.shown.clear();
                    out.push(Out::Open(kind));
                }
                ReplyEvent::Delta(text) => {
                    let (text, hit) = match self.open {
                        Some(ItemKind::Message) => self.stop.push(&text),
                        _ => (text, false),
                    };
                    if !text.is_empty() {
                        self.shown.push_str(&text);
                        out.push(Out::Delta(text));
                    }
                    if hit {
                        self.stopped = true;
                        self.close(out);
                    }
                }
                ReplyEvent::Ended { .. } => {
                    if self.open == Some(ItemKind::Message) {
                        let tail = self.stop.flush();
                        if !tail.is_empty() {
                            self.shown.push_str(&tail);
                            out.push(Out::Delta(tail));
                        }
                    }
                    self.close(out);
                }
            }
        }
    }

    fn close(&mut self, out: &mut Vec<Out>) {
        if let Some(kind) = self.open.take() {
            let text = std::mem::take(&mut self.shown);
            out.push(Out::Close(text.clone()));
            self.items.push((kind, text));
        }
    }

    /// The messages' text, joined (what Chat Completions calls `content`).
    pub fn content(&self) -> String {
        self.items.iter().filter(|(k, _)| *k == ItemKind::Message).map(|(_, t)| t.as_str()).collect()
    }

    /// The reasoning text, joined (as it streams).
    pub fn reasoning(&self) -> String {
        self.items.iter().filter(|(k, _)| *k == ItemKind::Reasoning).map(|(_, t)| t.as_str()).collect()
    }

    /// The function calls: (call id, name, JSON arguments).
    pub fn calls(&self) -> Vec<(&str, &str, &str)> {
        self.items
            .iter()
            .filter_map(|(k, t)| match k {
                ItemKind::FunctionCall { call_id, name } => Some((call_id.as_str(), name.as_str(), t.as_str())),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_hold_back_possible_starts() {
        let mut m = StopMatcher::new(vec!["STOP".into(), "\n\n".into()]);
        assert_eq!(m.push("abc S"), ("abc ".into(), false));
        assert_eq!(m.push("T"), (String::new(), false));
        assert_eq!(m.push("x"), ("STx".into(), false));
        assert_eq!(m.push("y\n"), ("y".into(), false));
        assert_eq!(m.push("\nz"), (String::new(), true));
        let mut m = StopMatcher::new(vec!["é!".into()]);
        assert_eq!(m.push("caf"), ("caf".into(), false));
        assert_eq!(m.push("é"), (String::new(), false));
        assert_eq!(m.flush(), "é");
        let mut m = StopMatcher::default();
        assert_eq!(m.push("anything"), ("anything".into(), false));
    }
}
