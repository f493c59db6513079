//! Errors of harmony rendering and parsing.

use super::chat::Role;
use gptoss_tokenizer::TokenizerError;

#[derive(Debug, thiserror::Error)]
pub enum HarmonyError {
    #[error("the tokenizer has no special token {0}, which the harmony format needs")]
    MissingSpecialToken(&'static str),

    #[error("a tool message needs the tool's name (e.g. functions.get_weather) as its author name")]
    ToolWithoutName,

    #[error("{content} content may only appear in {allowed} messages, not in a {found} message")]
    MisplacedContent { content: &'static str, allowed: Role, found: Role },

    #[error("token {0} where a message must start with <|start|>")]
    ExpectedStart(u32),

    #[error("a message header longer than {0} tokens")]
    HeaderTooLong(usize),

    #[error("the token stream ended inside a message header")]
    EndInsideHeader,

    #[error("message header {header:?}: {reason}")]
    MalformedHeader { header: String, reason: &'static str },

    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

pub type Result<T, E = HarmonyError> = std::result::Result<T, E>;
