//! Parsing a message header (the decoded text between `<|start|>` and `<|message|>`) into
//! author, recipient, channel and content type, following OpenAI's harmony library.

use super::chat::{Author, Role};
use super::error::{HarmonyError, Result};

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub author: Author,
    pub recipient: Option<String>,
    pub channel: Option<String>,
    pub content_type: Option<String>,
}

const CHANNEL: &str = "<|channel|>";
const CONSTRAIN: &str = "<|constrain|>";

/// Parses `text`. `role` is the role already known (the prompt ended in `<|start|>assistant`),
/// else the first word names it; a word that is not a role is a tool's name.
pub(crate) fn parse_header(text: &str, role: Option<Role>) -> Result<Header> {
    let malformed = |reason| HarmonyError::MalformedHeader { header: text.to_owned(), reason };
    // `<|channel|>name` may sit anywhere; the name ends at whitespace or the next `<`.
    let mut rest = text.to_owned();
    let mut channel = None;
    if let Some(at) = rest.find(CHANNEL) {
        let after = &rest[at + CHANNEL.len()..];
        let len = after.find(|c: char| c.is_whitespace() || c == '<').unwrap_or(after.len());
        if len == 0 {
            return Err(malformed("<|channel|> without a channel name"));
        }
        channel = Some(after[..len].to_owned());
        rest = format!("{}{}", &rest[..at], &after[len..]);
    }
    // `to=x<|constrain|>json` is two words.
    let rest = rest.trim().replace(CONSTRAIN, &format!(" {CONSTRAIN}"));
    let mut words: Vec<&str> = rest.split_ascii_whitespace().collect();

    let (role, tool_name) = match role {
        Some(role) => (role, None),
        None => {
            let first = *words.first().ok_or_else(|| malformed("no role"))?;
            match Role::parse(first) {
                Some(role) => (role, Some(first)),
                None => {
                    words.remove(0);
                    (Role::Tool, Some(first))
                }
            }
        }
    };
    if words.first() == Some(&role.as_str()) {
        words.remove(0);
    }

    let mut recipient = None;
    let mut content_type = None;
    if let Some(last) = words.pop() {
        if let Some(to) = last.strip_prefix("to=") {
            recipient = Some(to.to_owned());
        } else if words.is_empty() {
            // A lone word after the role is a recipient.
            recipient = Some(last.to_owned());
        } else {
            content_type = Some(last.to_owned());
            let to = words.pop().unwrap_or_default();
            recipient = Some(to.strip_prefix("to=").unwrap_or(to).to_owned());
        }
    }
    if !words.is_empty() {
        return Err(malformed("unexpected words in the header"));
    }
    let name = if role == Role::Tool { tool_name.map(str::to_owned) } else { None };
    Ok(Header { author: Author { role, name }, recipient, channel, content_type })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str, role: Option<Role>) -> Header {
        parse_header(text, role).unwrap()
    }

    #[test]
    fn assistant_channels_recipients_and_content_types() {
        let h = header("<|channel|>analysis", Some(Role::Assistant));
        assert_eq!((h.author.role, h.channel.as_deref()), (Role::Assistant, Some("analysis")));
        let h = header("assistant to=functions.get_weather<|channel|>commentary <|constrain|>json", None);
        assert_eq!(h.recipient.as_deref(), Some("functions.get_weather"));
        assert_eq!(h.channel.as_deref(), Some("commentary"));
        assert_eq!(h.content_type.as_deref(), Some("<|constrain|>json"));
        let h = header("<|channel|>commentary to=functions.f<|constrain|>json", Some(Role::Assistant));
        assert_eq!(h.recipient.as_deref(), Some("functions.f"));
        assert_eq!(h.content_type.as_deref(), Some("<|constrain|>json"));
        let h = header("<|channel|>commentary to=browser.search code", Some(Role::Assistant));
        assert_eq!(h.recipient.as_deref(), Some("browser.search"));
        assert_eq!(h.content_type.as_deref(), Some("code"));
    }

    #[test]
    fn tool_messages_are_named_by_their_first_word() {
        let h = header("browser.search to=assistant<|channel|>commentary", None);
        assert_eq!(h.author.role, Role::Tool);
        assert_eq!(h.author.name.as_deref(), Some("browser.search"));
        assert_eq!(h.recipient.as_deref(), Some("assistant"));
        let h = header("functions.lookup_weather", None);
        assert_eq!(h.author.name.as_deref(), Some("functions.lookup_weather"));
        assert_eq!(h.recipient, None);
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert!(parse_header("", None).is_err());
        assert!(parse_header("assistant<|channel|>", None).is_err());
        assert!(parse_header("assistant to=x y z", None).is_err());
    }
}
