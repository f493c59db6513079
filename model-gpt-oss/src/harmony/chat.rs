//! The harmony conversation model: messages with an author, an optional recipient, channel and
//! content type, and content that is plain text or a structured system / developer message.

use super::json::JsonValue;
use std::collections::BTreeMap;
use std::fmt;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    /// A tool's output; the tool's name (e.g. `functions.get_weather`) is the author name.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// The role a header word names, if it names one.
    pub fn parse(word: &str) -> Option<Role> {
        [Role::System, Role::Developer, Role::User, Role::Assistant, Role::Tool].into_iter().find(|role| role.as_str() == word)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message's author: a role and, for tools (or named users), a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub role: Role,
    pub name: Option<String>,
}

/// How hard the model should think, stated in the system message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReasoningEffort {
    Low,
    #[default]
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

impl std::str::FromStr for ReasoningEffort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(ReasoningEffort::Low),
            "medium" => Ok(ReasoningEffort::Medium),
            "high" => Ok(ReasoningEffort::High),
            other => Err(format!("reasoning effort {other:?} is not low, medium or high")),
        }
    }
}

/// The channels the system message declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    pub valid_channels: Vec<String>,
    /// Adds "Channel must be included for every message."
    pub channel_required: bool,
}

/// One tool: a name, a description and optionally a JSON schema of its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolDescription {
    pub name: String,
    pub description: String,
    pub parameters: Option<JsonValue>,
}

/// A namespace of tools, e.g. `functions` or `browser`.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolNamespace {
    pub name: String,
    pub description: Option<String>,
    pub tools: Vec<ToolDescription>,
}

/// Structured content of the system message.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemContent {
    pub model_identity: Option<String>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub knowledge_cutoff: Option<String>,
    /// `YYYY-MM-DD`, rendered as "Current date: ...".
    pub conversation_start_date: Option<String>,
    pub channel_config: Option<ChannelConfig>,
    /// Built-in tool namespaces, rendered in name order.
    pub tools: BTreeMap<String, ToolNamespace>,
}

impl Default for SystemContent {
    /// The defaults of OpenAI's harmony library.
    fn default() -> Self {
        Self {
            model_identity: Some("You are ChatGPT, a large language model trained by OpenAI.".to_owned()),
            reasoning_effort: Some(ReasoningEffort::Medium),
            knowledge_cutoff: Some("2024-06".to_owned()),
            conversation_start_date: None,
            channel_config: Some(ChannelConfig {
                valid_channels: ["analysis", "commentary", "final"].map(String::from).to_vec(),
                channel_required: true,
            }),
            tools: BTreeMap::new(),
        }
    }
}

impl SystemContent {
    pub fn with_reasoning_effort(mut self, effort: ReasoningEffort) -> Self {
        self.reasoning_effort = Some(effort);
        self
    }

    pub fn with_conversation_start_date(mut self, date: impl Into<String>) -> Self {
        self.conversation_start_date = Some(date.into());
        self
    }

    pub fn with_tools(mut self, namespace: ToolNamespace) -> Self {
        self.tools.insert(namespace.name.clone(), namespace);
        self
    }
}

/// Structured content of the developer message: instructions and function tools.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DeveloperContent {
    pub instructions: Option<String>,
    /// Tool namespaces, rendered in name order.
    pub tools: BTreeMap<String, ToolNamespace>,
}

impl DeveloperContent {
    pub fn with_instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = Some(instructions.into());
        self
    }

    /// Adds the `functions` namespace, the one function calls go to.
    pub fn with_function_tools(mut self, tools: Vec<ToolDescription>) -> Self {
        let namespace = ToolNamespace { name: "functions".to_owned(), description: None, tools };
        self.tools.insert(namespace.name.clone(), namespace);
        self
    }
}

/// A piece of message content.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Text(String),
    /// Only in system messages.
    System(SystemContent),
    /// Only in developer messages.
    Developer(DeveloperContent),
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<SystemContent> for Content {
    fn from(content: SystemContent) -> Self {
        Content::System(content)
    }
}

impl From<DeveloperContent> for Content {
    fn from(content: DeveloperContent) -> Self {
        Content::Developer(content)
    }
}

/// One harmony message: `<|start|>{header}<|message|>{content}<|end|>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub author: Author,
    /// Whom the message is for (`functions.get_weather` for a tool call); `None` means everyone.
    pub recipient: Option<String>,
    /// `analysis`, `commentary` or `final` for assistant messages.
    pub channel: Option<String>,
    /// e.g. `json` or `<|constrain|>json`.
    pub content_type: Option<String>,
    pub content: Vec<Content>,
}

impl Message {
    /// A message from `role` with one piece of content.
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Self { author: Author { role, name: None }, recipient: None, channel: None, content_type: None, content: vec![content.into()] }
    }

    /// A tool's output; `name` is the tool, e.g. `functions.get_weather`.
    pub fn from_tool(name: impl Into<String>, output: impl Into<String>) -> Self {
        let mut message = Self::new(Role::Tool, output.into());
        message.author.name = Some(name.into());
        message
    }

    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    pub fn with_recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipient = Some(recipient.into());
        self
    }

    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// An assistant's call of function `name` with JSON `arguments`, written the way gpt-oss
    /// writes one: `commentary` channel, recipient `functions.{name}`, content type
    /// `<|constrain|>json`.
    pub fn function_call(name: &str, arguments: impl Into<String>) -> Self {
        Self::new(Role::Assistant, arguments.into())
            .with_channel("commentary")
            .with_recipient(format!("functions.{name}"))
            .with_content_type("<|constrain|>json")
    }

    /// Function `name`'s output, for the assistant: author `functions.{name}`, recipient
    /// `assistant`, `commentary` channel.
    pub fn function_output(name: &str, output: impl Into<String>) -> Self {
        Self::from_tool(format!("functions.{name}"), output).with_recipient("assistant").with_channel("commentary")
    }

    /// The function an assistant message calls: the `NAME` of recipient `functions.NAME`.
    pub fn called_function(&self) -> Option<&str> {
        match self.author.role {
            Role::Assistant => self.recipient.as_deref()?.strip_prefix("functions."),
            _ => None,
        }
    }

    /// The message's text content, concatenated (structured content is skipped).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|content| match content {
                Content::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}
