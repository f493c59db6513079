//! Rendering conversations to token ids, token for token as OpenAI's harmony library does:
//!
//! `<|start|>{role or tool name}[:{name}][ to={recipient}][<|channel|>{channel}][ {content type}]
//! <|message|>{content}<|end|>` per message, with no separator between messages. Header and
//! content text are encoded as ordinary text (a special token's name inside user text stays
//! text); only the formatting tokens are special ids.

use super::chat::{Content, Message, Role};
use super::content_text::{developer_text, system_text};
use super::error::{HarmonyError, Result};
use gptoss_tokenizer::{TokenId, Tokenizer};

/// Ids of the formatting tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormattingTokens {
    pub start: TokenId,
    pub message: TokenId,
    pub end: TokenId,
    /// Ends a generated final answer; stored history uses `end` instead.
    pub return_: TokenId,
    /// Ends an assistant message addressed to a tool.
    pub call: TokenId,
    pub channel: TokenId,
    pub constrain: TokenId,
}

/// Options for rendering a whole conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// When the last assistant message is on the `final` channel, leave out the `analysis`
    /// messages before the first `final` one (chain of thought of finished turns).
    pub drop_earlier_analysis: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { drop_earlier_analysis: true }
    }
}

/// The harmony format over a tokenizer that has its special tokens (o200k_harmony).
#[derive(Clone, Copy, Debug)]
pub struct HarmonyEncoding<'t> {
    tokenizer: &'t Tokenizer,
    tokens: FormattingTokens,
}

impl<'t> HarmonyEncoding<'t> {
    pub fn new(tokenizer: &'t Tokenizer) -> Result<Self> {
        let id = |name: &'static str| tokenizer.special_token_id(name).ok_or(HarmonyError::MissingSpecialToken(name));
        let tokens = FormattingTokens {
            start: id("<|start|>")?,
            message: id("<|message|>")?,
            end: id("<|end|>")?,
            return_: id("<|return|>")?,
            call: id("<|call|>")?,
            channel: id("<|channel|>")?,
            constrain: id("<|constrain|>")?,
        };
        Ok(Self { tokenizer, tokens })
    }

    pub fn tokenizer(&self) -> &'t Tokenizer {
        self.tokenizer
    }

    pub fn formatting_tokens(&self) -> FormattingTokens {
        self.tokens
    }

    /// Where sampling stops: `<|return|>` (final answer done) and `<|call|>` (tool call).
    /// `<|end|>` is not among them: it separates the analysis message from the final one.
    pub fn stop_tokens_for_assistant_actions(&self) -> [TokenId; 2] {
        [self.tokens.return_, self.tokens.call]
    }

    /// Tokens that end a message: the sampling stops plus `<|end|>`.
    pub fn message_end_tokens(&self) -> [TokenId; 3] {
        [self.tokens.return_, self.tokens.call, self.tokens.end]
    }

    /// Renders one message. `has_function_tools` must say whether the conversation defines
    /// `functions` tools (it changes the system message's text).
    pub fn render_message_into(&self, message: &Message, has_function_tools: bool, out: &mut Vec<TokenId>) -> Result<()> {
        let text = |out: &mut Vec<TokenId>, text: &str| {
            out.extend(self.tokenizer.encode_ordinary(text));
        };
        out.push(self.tokens.start);
        let role = message.author.role;
        match (role, &message.author.name) {
            (Role::Tool, Some(name)) => text(out, name),
            (Role::Tool, None) => return Err(HarmonyError::ToolWithoutName),
            (_, name) => {
                text(out, role.as_str());
                if let Some(name) = name {
                    text(out, &format!(":{name}"));
                }
            }
        }
        if let Some(recipient) = message.recipient.as_deref().filter(|&r| r != "all") {
            text(out, &format!(" to={recipient}"));
        }
        if let Some(channel) = &message.channel {
            out.push(self.tokens.channel);
            text(out, channel);
        }
        if let Some(content_type) = &message.content_type {
            // `<|constrain|>` in a content type is the special token, not text.
            match content_type.strip_prefix("<|constrain|>") {
                Some(rest) => {
                    text(out, " ");
                    out.push(self.tokens.constrain);
                    if !rest.is_empty() {
                        text(out, rest);
                    }
                }
                None => text(out, &format!(" {content_type}")),
            }
        }
        out.push(self.tokens.message);
        for content in &message.content {
            match content {
                Content::Text(t) => text(out, t),
                Content::System(system) => {
                    check_role("system", Role::System, role)?;
                    text(out, &system_text(system, has_function_tools));
                }
                Content::Developer(developer) => {
                    check_role("developer", Role::Developer, role)?;
                    text(out, &developer_text(developer));
                }
            }
        }
        let tool_call = role == Role::Assistant && message.recipient.is_some();
        out.push(if tool_call { self.tokens.call } else { self.tokens.end });
        Ok(())
    }

    /// Renders a conversation (see [`RenderOptions`]).
    pub fn render_conversation(&self, messages: &[Message], options: RenderOptions) -> Result<Vec<TokenId>> {
        let has_function_tools = messages.iter().any(defines_function_tools);
        let last_assistant_is_final =
            messages.iter().rev().find(|m| m.author.role == Role::Assistant).is_some_and(|m| m.channel.as_deref() == Some("final"));
        let first_final = messages.iter().position(|m| m.channel.as_deref() == Some("final"));
        let drop_before = match (options.drop_earlier_analysis && last_assistant_is_final, first_final) {
            (true, Some(first)) => first,
            _ => 0,
        };
        let mut out = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            if i < drop_before && message.channel.as_deref() == Some("analysis") {
                continue;
            }
            self.render_message_into(message, has_function_tools, &mut out)?;
        }
        Ok(out)
    }

    /// A prompt for the model to continue: the conversation, then `<|start|>{role}`
    /// (`<|start|>assistant` = 200006, 173781 for a reply).
    pub fn render_for_completion(&self, messages: &[Message], next_role: Role, options: RenderOptions) -> Result<Vec<TokenId>> {
        let mut out = self.render_conversation(messages, options)?;
        out.push(self.tokens.start);
        out.extend(self.tokenizer.encode_ordinary(next_role.as_str()));
        Ok(out)
    }

    /// A training example: as [`Self::render_conversation`], but a conversation that ends in a
    /// `final` assistant message ends with `<|return|>`, as the model generates it.
    pub fn render_for_training(&self, messages: &[Message], options: RenderOptions) -> Result<Vec<TokenId>> {
        let mut out = self.render_conversation(messages, options)?;
        let ends_in_final = messages.last().is_some_and(|m| m.author.role == Role::Assistant && m.channel.as_deref() == Some("final"));
        if let (true, Some(last)) = (ends_in_final, out.last_mut()) {
            *last = self.tokens.return_;
        }
        Ok(out)
    }
}

fn check_role(content: &'static str, allowed: Role, found: Role) -> Result<()> {
    if allowed == found { Ok(()) } else { Err(HarmonyError::MisplacedContent { content, allowed, found }) }
}

fn defines_function_tools(message: &Message) -> bool {
    message.content.iter().any(|content| match content {
        Content::Developer(developer) => developer.tools.get("functions").is_some_and(|namespace| !namespace.tools.is_empty()),
        _ => false,
    })
}
