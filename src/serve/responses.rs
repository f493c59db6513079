//! `POST /v1/responses`: input items (messages, reasoning, function calls and their outputs) and
//! `instructions` in; output items (reasoning, message, function calls) out, whole or as the
//! Responses streaming events. Nothing is stored: `previous_response_id` is refused with a 400
//! that says to send the whole conversation.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use gptoss_model_gpt_oss::harmony::{JsonValue, Message, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::http::{AppState, GenerationParams, Submitted, parse_json};
use super::ids::{new_id, unix_now};
use super::prompt::{Conversation, FunctionTool, ToolChoice, check_tools, parse_effort, parse_tool_choice, text_content};
use super::reply::{Assembler, FinishReason, ItemKind, Out};

#[derive(Deserialize)]
pub struct ResponsesRequest {
    pub input: Value,
    pub instructions: Option<String>,
    pub reasoning: Option<ReasoningParam>,
    pub tools: Option<Vec<ResponsesTool>>,
    pub tool_choice: Option<Value>,
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stream: Option<bool>,
    pub previous_response_id: Option<String>,
}

#[derive(Deserialize)]
pub struct ReasoningParam {
    pub effort: Option<String>,
}

#[derive(Deserialize)]
pub struct ResponsesTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub parameters: Option<JsonValue>,
}

#[derive(Deserialize)]
struct InputItem {
    #[serde(rename = "type")]
    kind: Option<String>,
    role: Option<String>,
    content: Option<Value>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
    output: Option<Value>,
}

impl ResponsesRequest {
    fn conversation(&self) -> ApiResult<Conversation> {
        if self.previous_response_id.is_some() {
            return Err(ApiError::param(
                "previous_response_id",
                "not supported: this server stores no responses; send the whole conversation in `input`",
            ));
        }
        let mut tools = Vec::new();
        for (i, tool) in self.tools.iter().flatten().enumerate() {
            if tool.kind != "function" {
                return Err(ApiError::param(
                    format!("tools[{i}].type"),
                    format!("'{}' tools are not supported (only 'function')", tool.kind),
                ));
            }
            let Some(name) = &tool.name else {
                return Err(ApiError::param(format!("tools[{i}].name"), "a function tool needs a name"));
            };
            tools.push(FunctionTool { name: name.clone(), description: tool.description.clone(), parameters: tool.parameters.clone() });
        }
        check_tools(&tools, "tools")?;
        let tool_choice = parse_tool_choice(self.tool_choice.as_ref(), &tools)?;
        let effort = parse_effort(self.reasoning.as_ref().and_then(|r| r.effort.as_deref()), "reasoning.effort")?;
        let mut conversation = Conversation { instructions: Vec::new(), messages: Vec::new(), effort, tools, tool_choice };
        if let Some(instructions) = &self.instructions {
            conversation.instructions.push(instructions.clone());
        }
        match &self.input {
            Value::String(text) => conversation.messages.push(Message::new(Role::User, text.as_str())),
            Value::Array(_) => {
                let bytes = self.input.to_string();
                let items: Vec<InputItem> = parse_json(bytes.as_bytes()).map_err(|mut e| {
                    e.param = Some(format!("input{}", e.param.as_deref().unwrap_or("")));
                    e.message = format!("input{}", e.message);
                    e
                })?;
                add_items(&mut conversation, &items)?;
            }
            _ => return Err(ApiError::param("input", "expected a string or an array of input items")),
        }
        if conversation.messages.is_empty() {
            return Err(ApiError::param("input", "no input"));
        }
        Ok(conversation)
    }
}

fn add_items(conversation: &mut Conversation, items: &[InputItem]) -> ApiResult<()> {
    let mut calls: Vec<(String, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("input[{i}]");
        let kind = item.kind.as_deref().unwrap_or("message");
        match kind {
            "message" => {
                let content = item.content.as_ref().ok_or_else(|| ApiError::param(format!("{p}.content"), "a message needs content"))?;
                let text = text_content(content, &format!("{p}.content"))?;
                match item.role.as_deref() {
                    Some("user") => conversation.messages.push(Message::new(Role::User, text)),
                    Some("system" | "developer") => conversation.instructions.push(text),
                    Some("assistant") => conversation.messages.push(Message::new(Role::Assistant, text).with_channel("final")),
                    Some(other) => {
                        return Err(ApiError::param(
                            format!("{p}.role"),
                            format!("unknown role '{other}' (expected user, assistant, system or developer)"),
                        ));
                    }
                    None => return Err(ApiError::param(format!("{p}.role"), "a message needs a role")),
                }
            }
            "reasoning" => {
                let text = match &item.content {
                    Some(Value::Array(parts)) => {
                        parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect::<String>()
                    }
                    _ => String::new(),
                };
                if !text.is_empty() {
                    conversation.messages.push(Message::new(Role::Assistant, text).with_channel("analysis"));
                }
            }
            "function_call" => {
                let name = item.name.as_deref().unwrap_or("");
                if !conversation.tools.iter().any(|t| t.name == name) {
                    return Err(ApiError::param(
                        format!("{p}.name"),
                        format!("a call of function '{name}', which is not among the request's tools"),
                    ));
                }
                conversation.messages.push(Message::function_call(name, item.arguments.clone().unwrap_or_default()));
                if let Some(id) = &item.call_id {
                    calls.push((id.clone(), name.to_owned()));
                }
            }
            "function_call_output" => {
                let id = item.call_id.as_deref().unwrap_or("");
                let Some((_, name)) = calls.iter().rev().find(|(c, _)| c == id) else {
                    return Err(ApiError::param(format!("{p}.call_id"), format!("{id:?} answers no earlier function_call item")));
                };
                let output = match &item.output {
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ Value::Array(_)) => text_content(v, &format!("{p}.output"))?,
                    _ => return Err(ApiError::param(format!("{p}.output"), "expected a string")),
                };
                conversation.messages.push(Message::function_output(name, output));
            }
            other => return Err(ApiError::param(format!("{p}.type"), format!("input items of type '{other}' are not supported"))),
        }
    }
    Ok(())
}

/// What the response object repeats from the request.
struct Echo {
    id: String,
    created_at: u64,
    model: String,
    instructions: Option<String>,
    max_output_tokens: Option<i64>,
    effort: &'static str,
    temperature: f64,
    top_p: f64,
    tool_choice: Value,
    tools: Value,
}

pub async fn handle(State(state): State<Arc<AppState>>, body: Body) -> ApiResult<Response> {
    let bytes = super::http::read_body(body, state.max_body).await?;
    let request: ResponsesRequest = parse_json(&bytes)?;
    let conversation = request.conversation()?;
    let generation = GenerationParams {
        max_tokens: request.max_output_tokens.map(|m| ("max_output_tokens", m)),
        temperature: request.temperature,
        top_p: request.top_p,
        ..Default::default()
    }
    .check(state.parallel)?;
    let prompt = conversation.render(state.harmony)?;
    let script = state.script.as_ref().and_then(|s| s.find(&prompt.last_text));
    let stop_tokens = state.reply_stop_tokens();
    let submitted = state.submit(prompt.tokens.clone(), &generation, stop_tokens, script)?;
    let assembler =
        Assembler::new(state.harmony, prompt.forced_tokens(), prompt.tools.clone(), Vec::new()).with_end_of_text(state.end_of_text());
    // The request's tools as given (`parse_json` of the raw body keeps them for the echo).
    let raw: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let echo = Echo {
        id: new_id("resp"),
        created_at: unix_now(),
        model: state.model_name.clone(),
        instructions: request.instructions.clone(),
        max_output_tokens: request.max_output_tokens,
        effort: conversation.effort.as_str(),
        temperature: request.temperature.unwrap_or(1.0),
        top_p: request.top_p.unwrap_or(1.0),
        tool_choice: match &conversation.tool_choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "name": name}),
        },
        tools: raw.get("tools").cloned().filter(|t| !t.is_null()).unwrap_or(json!([])),
    };
    if request.stream.unwrap_or(false) {
        Ok(stream(submitted, assembler, echo).into_response())
    } else {
        Ok(collect(submitted, assembler, echo).await?.into_response())
    }
}

/// Feeds the next event to the assembler; `None` if the scheduler has gone.
async fn drive(submitted: &mut Submitted, a: &mut Assembler) -> Option<Vec<Out>> {
    let (_, event) = submitted.rx.recv().await?;
    Some(a.on_event(event))
}

async fn collect(mut submitted: Submitted, mut a: Assembler, echo: Echo) -> ApiResult<axum::Json<Value>> {
    let mut ids = Vec::new();
    while a.finish.is_none() {
        let outs =
            drive(&mut submitted, &mut a).await.ok_or_else(|| ApiError::internal("the scheduler stopped before the reply was complete"))?;
        ids.extend(outs.iter().filter(|o| matches!(o, Out::Open(_))).map(item_id));
    }
    if let Some(error) = &a.error {
        return Err(ApiError::internal(format!("generation failed: {error}")));
    }
    let output: Vec<Value> = a.items.iter().zip(&ids).map(|((kind, text), id)| item(kind, id, text, "completed")).collect();
    Ok(axum::Json(response(&echo, &a, submitted.prompt_tokens, output, status(&a))))
}

fn status(a: &Assembler) -> &'static str {
    match (&a.error, a.finish) {
        (Some(_), _) => "failed",
        (None, Some(FinishReason::Length)) => "incomplete",
        (None, None) => "in_progress",
        _ => "completed",
    }
}

/// An id for the item an `Open` starts.
fn item_id(out: &Out) -> String {
    match out {
        Out::Open(ItemKind::Reasoning) => new_id("rs"),
        Out::Open(ItemKind::Message) => new_id("msg"),
        _ => new_id("fc"),
    }
}

fn item(kind: &ItemKind, id: &str, text: &str, status: &str) -> Value {
    match kind {
        ItemKind::Reasoning => json!({
            "type": "reasoning", "id": id, "summary": [], "status": status,
            "content": [{"type": "reasoning_text", "text": text}],
        }),
        ItemKind::Message => json!({
            "type": "message", "id": id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }),
        ItemKind::FunctionCall { call_id, name } => json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": text, "status": status,
        }),
    }
}

fn response(echo: &Echo, a: &Assembler, prompt_tokens: usize, output: Vec<Value>, status: &str) -> Value {
    json!({
        "id": echo.id,
        "object": "response",
        "created_at": echo.created_at,
        "status": status,
        "model": echo.model,
        "output": output,
        "error": a.error.as_ref().map(|m| json!({"code": "server_error", "message": m})),
        "incomplete_details": (status == "incomplete").then(|| json!({"reason": "max_output_tokens"})),
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": echo.effort, "summary": null},
        "store": false,
        "temperature": echo.temperature,
        "top_p": echo.top_p,
        "text": {"format": {"type": "text"}},
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "truncation": "disabled",
        "metadata": {},
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": a.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
            "total_tokens": prompt_tokens + a.completion_tokens,
        },
    })
}

fn stream(mut submitted: Submitted, mut a: Assembler, echo: Echo) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = async_stream::stream! {
        let mut sequence = 0u64;
        let mut event = |kind: &str, mut data: Value| {
            data["type"] = json!(kind);
            data["sequence_number"] = json!(sequence);
            sequence += 1;
            SseEvent::default().event(kind).data(data.to_string())
        };
        let initial = response(&echo, &a, submitted.prompt_tokens, Vec::new(), "in_progress");
        yield Ok(event("response.created", json!({"response": initial})));
        yield Ok(event("response.in_progress", json!({"response": initial})));
        // The open item: its index, id and kind; the finished items so far.
        let mut open: Option<(usize, String, ItemKind)> = None;
        let mut output: Vec<Value> = Vec::new();
        while a.finish.is_none() {
            let Some(outs) = drive(&mut submitted, &mut a).await else {
                a.error = Some("the scheduler stopped before the reply was complete".into());
                break;
            };
            for out in outs {
                match out {
                    Out::Open(kind) => {
                        let id = item_id(&Out::Open(kind.clone()));
                        let index = output.len();
                        let mut added = item(&kind, &id, "", "in_progress");
                        if !matches!(kind, ItemKind::FunctionCall { .. }) {
                            // Parts are added by their own events.
                            added["content"] = json!([]);
                        }
                        yield Ok(event("response.output_item.added", json!({"output_index": index, "item": added})));
                        match kind {
                            ItemKind::Reasoning => yield Ok(event("response.content_part.added", json!({
                                "item_id": id, "output_index": index, "content_index": 0,
                                "part": {"type": "reasoning_text", "text": ""},
                            }))),
                            ItemKind::Message => yield Ok(event("response.content_part.added", json!({
                                "item_id": id, "output_index": index, "content_index": 0,
                                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                            }))),
                            ItemKind::FunctionCall { .. } => {}
                        }
                        open = Some((index, id, kind));
                    }
                    Out::Delta(delta) => {
                        let Some((index, id, kind)) = &open else { continue };
                        let (kind_name, mut data) = match kind {
                            ItemKind::Reasoning => ("response.reasoning_text.delta", json!({"content_index": 0})),
                            ItemKind::Message => ("response.output_text.delta", json!({"content_index": 0, "logprobs": []})),
                            ItemKind::FunctionCall { .. } => ("response.function_call_arguments.delta", json!({})),
                        };
                        data["item_id"] = json!(id);
                        data["output_index"] = json!(index);
                        data["delta"] = json!(delta);
                        yield Ok(event(kind_name, data));
                    }
                    Out::Close(text) => {
                        let Some((index, id, kind)) = open.take() else { continue };
                        let done = item(&kind, &id, &text, "completed");
                        match &kind {
                            ItemKind::Reasoning => {
                                yield Ok(event("response.reasoning_text.done", json!({
                                    "item_id": id, "output_index": index, "content_index": 0, "text": text,
                                })));
                                yield Ok(event("response.content_part.done", json!({
                                    "item_id": id, "output_index": index, "content_index": 0,
                                    "part": {"type": "reasoning_text", "text": text},
                                })));
                            }
                            ItemKind::Message => {
                                yield Ok(event("response.output_text.done", json!({
                                    "item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": [],
                                })));
                                yield Ok(event("response.content_part.done", json!({
                                    "item_id": id, "output_index": index, "content_index": 0,
                                    "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []},
                                })));
                            }
                            ItemKind::FunctionCall { name, .. } => {
                                yield Ok(event("response.function_call_arguments.done", json!({
                                    "item_id": id, "output_index": index, "name": name, "arguments": text,
                                })));
                            }
                        }
                        yield Ok(event("response.output_item.done", json!({"output_index": index, "item": done})));
                        output.push(done);
                    }
                }
            }
        }
        let status = status(&a);
        let last = match status {
            "failed" => "response.failed",
            "incomplete" => "response.incomplete",
            _ => "response.completed",
        };
        let final_response = response(&echo, &a, submitted.prompt_tokens, output, status);
        yield Ok(event(last, json!({"response": final_response})));
    };
    Sse::new(events).keep_alive(KeepAlive::default())
}
