//! A request's conversation in harmony terms, shared by Chat Completions and Responses, and its
//! rendering to prompt tokens by the shared harmony renderer.
//!
//! The mapping (the same one OpenAI documents for gpt-oss):
//! - the system message: harmony's default identity, knowledge cutoff and channels, with the
//!   request's reasoning effort (`Reasoning: low|medium|high`);
//! - OpenAI `system` and `developer` messages (and Responses `instructions`): the developer
//!   message's `# Instructions`, in order, joined by blank lines;
//! - `tools`: the developer message's `functions` namespace, as TypeScript types (left out for
//!   `tool_choice: none`);
//! - an assistant turn: its reasoning as an `analysis` message, its text as a `final` message (a
//!   `commentary` preamble when the turn also calls tools), each tool call as a `commentary`
//!   message to `functions.NAME` with `<|constrain|>json` content;
//! - a tool result: a message from `functions.NAME` to the assistant on `commentary`.
//!
//! Earlier analysis is dropped once a later final answer exists, as harmony's renderer does.

use gptoss_model_gpt_oss::harmony::{
    DeveloperContent, HarmonyEncoding, JsonValue, Message, ReasoningEffort, RenderOptions, Role, SystemContent, ToolDescription,
};
use serde_json::Value;

use super::error::{ApiError, ApiResult};

/// A function the client offers.
#[derive(Clone, Debug)]
pub struct FunctionTool {
    pub name: String,
    pub description: Option<String>,
    /// A JSON schema, key order kept (it is rendered property by property).
    pub parameters: Option<JsonValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    /// The tools are left out of the prompt.
    None,
    /// The reply starts as a call of some function.
    Required,
    /// The reply starts as a call of this function.
    Function(String),
}

/// A conversation to continue.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub instructions: Vec<String>,
    /// User, assistant and tool messages in order.
    pub messages: Vec<Message>,
    pub effort: ReasoningEffort,
    pub tools: Vec<FunctionTool>,
    pub tool_choice: ToolChoice,
}

/// A rendered prompt.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub tokens: Vec<u32>,
    /// How many of the last tokens are a forced start of the reply (for `tool_choice`).
    pub forced: usize,
    /// The request's function names.
    pub tools: Vec<String>,
    /// The text of the last message (what a test script is matched against).
    pub last_text: String,
}

impl Prompt {
    pub fn forced_tokens(&self) -> &[u32] {
        &self.tokens[self.tokens.len() - self.forced..]
    }
}

impl Conversation {
    /// The whole harmony conversation: system, developer (if any), then the messages.
    pub fn harmony_messages(&self) -> Vec<Message> {
        let mut out = vec![Message::new(Role::System, SystemContent::default().with_reasoning_effort(self.effort))];
        let mut developer = DeveloperContent::default();
        if !self.instructions.is_empty() {
            developer = developer.with_instructions(self.instructions.join("\n\n"));
        }
        if !self.tools.is_empty() && self.tool_choice != ToolChoice::None {
            let tools = self
                .tools
                .iter()
                .map(|t| ToolDescription {
                    name: t.name.clone(),
                    description: t.description.clone().unwrap_or_default(),
                    parameters: t.parameters.clone(),
                })
                .collect();
            developer = developer.with_function_tools(tools);
        }
        if developer != DeveloperContent::default() {
            out.push(Message::new(Role::Developer, developer));
        }
        out.extend(self.messages.iter().cloned());
        out
    }

    /// The prompt: the conversation, `<|start|>assistant`, and the forced start of a tool call
    /// when `tool_choice` asks for one.
    pub fn render(&self, harmony: HarmonyEncoding<'_>) -> ApiResult<Prompt> {
        let messages = self.harmony_messages();
        let mut tokens = harmony
            .render_for_completion(&messages, Role::Assistant, RenderOptions::default())
            .map_err(|e| ApiError::invalid(format!("the conversation cannot be rendered: {e}")))?;
        let forced_text = match &self.tool_choice {
            ToolChoice::Required if !self.tools.is_empty() => Some("<|channel|>commentary to=functions.".to_owned()),
            ToolChoice::Function(name) => Some(format!("<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>")),
            _ => None,
        };
        let forced = forced_text.map(|t| harmony.tokenizer().encode_with_special_tokens(&t)).unwrap_or_default();
        tokens.extend_from_slice(&forced);
        Ok(Prompt {
            tokens,
            forced: forced.len(),
            tools: self.tools.iter().map(|t| t.name.clone()).collect(),
            last_text: self.messages.last().map(Message::text).unwrap_or_default(),
        })
    }
}

/// `low`, `medium` or `high`.
pub fn parse_effort(value: Option<&str>, param: &str) -> ApiResult<ReasoningEffort> {
    match value {
        None => Ok(ReasoningEffort::default()),
        Some(s) => s.parse().map_err(|e: String| ApiError::param(param, e)),
    }
}

/// Function names go into the harmony header, so they must be one word: letters, digits, `_`
/// and `-`, at most 64 (as OpenAI requires).
pub fn check_function_name(name: &str, param: &str) -> ApiResult<()> {
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(ApiError::param(param, format!("function name {name:?} must be 1 to 64 letters, digits, '_' or '-'"))) }
}

/// Checks a tool list: valid, distinct names.
pub fn check_tools(tools: &[FunctionTool], param: &str) -> ApiResult<()> {
    for (i, tool) in tools.iter().enumerate() {
        check_function_name(&tool.name, &format!("{param}[{i}].name"))?;
        if tools[..i].iter().any(|t| t.name == tool.name) {
            return Err(ApiError::param(format!("{param}[{i}].name"), format!("function '{}' is defined twice", tool.name)));
        }
        if let Some(p) = &tool.parameters
            && !matches!(p, JsonValue::Object(_))
        {
            return Err(ApiError::param(format!("{param}[{i}].parameters"), "expected a JSON schema object"));
        }
    }
    Ok(())
}

/// `tool_choice`: `auto`, `none`, `required`, or a named function, in either API's shape
/// (`{"type": "function", "function": {"name"}}` or `{"type": "function", "name"}`).
pub fn parse_tool_choice(value: Option<&Value>, tools: &[FunctionTool]) -> ApiResult<ToolChoice> {
    let param = "tool_choice";
    let choice = match value {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(ApiError::param(param, format!("'{other}' is not auto, none, required or a function"))),
        },
        Some(Value::Object(o)) => {
            if o.get("type").and_then(Value::as_str) != Some("function") {
                return Err(ApiError::param(param, "expected {\"type\": \"function\", ...}"));
            }
            let name = o.get("function").and_then(|f| f.get("name")).or_else(|| o.get("name")).and_then(Value::as_str);
            let Some(name) = name else {
                return Err(ApiError::param(param, "a named tool choice needs the function's name"));
            };
            ToolChoice::Function(name.to_owned())
        }
        Some(_) => return Err(ApiError::param(param, "expected a string or an object")),
    };
    match &choice {
        ToolChoice::Function(name) if !tools.iter().any(|t| &t.name == name) => {
            Err(ApiError::param(param, format!("function '{name}' is not among the request's tools")))
        }
        ToolChoice::Required if tools.is_empty() => Err(ApiError::param(param, "'required' needs at least one tool")),
        _ => Ok(choice),
    }
}

/// Text content: a string, or an array of text parts (`text`, `input_text`, `output_text`).
pub fn text_content(value: &Value, param: &str) -> ApiResult<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                match (kind, part.get("text")) {
                    ("text" | "input_text" | "output_text", Some(Value::String(t))) => text.push_str(t),
                    ("text" | "input_text" | "output_text", _) => {
                        return Err(ApiError::param(format!("{param}[{i}].text"), "expected a string"));
                    }
                    _ => {
                        return Err(ApiError::param(
                            format!("{param}[{i}].type"),
                            format!("content of type '{kind}' is not supported (text only)"),
                        ));
                    }
                }
            }
            Ok(text)
        }
        _ => Err(ApiError::param(param, "expected a string or an array of text parts")),
    }
}
