//! The harmony chat format of gpt-oss: rendering conversations to token ids and parsing
//! generated ids back into messages, compatible token for token with OpenAI's harmony library.
//!
//! A prompt is messages rendered back to back, then `<|start|>assistant`; the model answers
//! with messages of its own (`<|channel|>analysis<|message|>…<|end|><|start|>assistant
//! <|channel|>final<|message|>…<|return|>`), and sampling stops at `<|return|>` or `<|call|>`.

mod chat;
mod content_text;
mod error;
mod header;
mod json;
mod parser;
mod render;
mod typescript;

pub use chat::{
    Author, ChannelConfig, Content, DeveloperContent, Message, ReasoningEffort, Role,
    SystemContent, ToolDescription, ToolNamespace,
};
pub use error::{HarmonyError, Result};
pub use header::Header;
pub use json::JsonValue;
pub use parser::StreamParser;
pub use render::{FormattingTokens, HarmonyEncoding, RenderOptions};

#[cfg(test)]
mod tests;
