//! The harmony chat format of gpt-oss: rendering conversations to token ids and parsing
//! generated ids back into messages, compatible token for token with OpenAI's harmony library.
//!
//! A prompt is messages rendered back to back, then `<|start|>assistant`; the model answers
//! with messages of its own (`<|channel|>analysis<|message|>…<|end|><|start|>assistant
//! <|channel|>final<|message|>…<|return|>`), and sampling stops at `<|return|>` or `<|call|>`.
//!
//! ```
//! use gptoss_model_gpt_oss::harmony::{
//!     HarmonyEncoding, Message, ReasoningEffort, RenderOptions, Role, StreamParser, SystemContent,
//! };
//! use gptoss_tokenizer::Tokenizer;
//!
//! let tokenizer = Tokenizer::o200k_harmony()?;
//! let harmony = HarmonyEncoding::new(&tokenizer)?;
//! let system = SystemContent::default().with_reasoning_effort(ReasoningEffort::Low);
//! let conversation = [
//!     Message::new(Role::System, system),
//!     Message::new(Role::User, "What is 2 + 2?"),
//! ];
//! let prompt = harmony.render_for_completion(&conversation, Role::Assistant, RenderOptions::default())?;
//! assert_eq!(prompt[prompt.len() - 2..], [200006, 173781]); // <|start|>assistant
//!
//! // What a model might generate, fed to the parser token by token.
//! let generated = tokenizer.encode_with_special_tokens(
//!     "<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>",
//! );
//! let mut parser = StreamParser::new(harmony, Some(Role::Assistant));
//! for token in generated {
//!     parser.push(token)?;
//!     if harmony.stop_tokens_for_assistant_actions().contains(&token) {
//!         break;
//!     }
//! }
//! let messages = parser.finish()?;
//! assert_eq!(messages[1].channel.as_deref(), Some("final"));
//! assert_eq!(messages[1].text(), "4");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chat;
mod content_text;
mod error;
mod header;
mod json;
mod parser;
mod render;
mod reply;
mod typescript;

pub use chat::{
    Author, ChannelConfig, Content, DeveloperContent, Message, ReasoningEffort, Role, SystemContent, ToolDescription, ToolNamespace,
};
pub use error::{HarmonyError, Result};
pub use header::Header;
pub use json::JsonValue;
pub use parser::{MAX_HEADER_TOKENS, StreamParser};
pub use render::{FormattingTokens, HarmonyEncoding, RenderOptions};
pub use reply::{ReplyEvent, ReplyItem, ReplyParser, ReplyPart};

#[cfg(test)]
mod tests;
