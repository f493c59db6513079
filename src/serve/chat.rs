//! `POST /v1/chat/completions`: messages in, the harmony reply out as `reasoning_content`,
//! `content` and `tool_calls`, whole or streamed as server-sent events.

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
use super::http::{AppState, Generation, GenerationParams, Submitted, json_body};
use super::ids::{new_id, unix_now};
use super::prompt::{Conversation, FunctionTool, check_tools, parse_effort, parse_tool_choice, text_content};
use super::reply::{Assembler, ItemKind, Out};
use super::step::TokenLogprobs;

#[derive(Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Option<Vec<ChatTool>>,
    pub tool_choice: Option<Value>,
    pub reasoning_effort: Option<String>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<Value>,
    pub n: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
}

#[derive(Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

#[derive(Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Value>,
    /// The reasoning of an earlier assistant turn (`reasoning` is accepted too).
    pub reasoning_content: Option<String>,
    pub reasoning: Option<String>,
    pub tool_calls: Option<Vec<ToolCallIn>>,
    pub tool_call_id: Option<String>,
    pub name: Option<String>,
}

#[derive(Deserialize)]
pub struct ToolCallIn {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub function: FunctionCallIn,
}

#[derive(Deserialize)]
pub struct FunctionCallIn {
    pub name: String,
    pub arguments: Option<String>,
}

#[derive(Deserialize)]
pub struct ChatTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Deserialize)]
pub struct FunctionDef {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<JsonValue>,
}

impl ChatRequest {
    /// The conversation in harmony terms (see `prompt`), with every message checked.
    pub fn conversation(&self) -> ApiResult<Conversation> {
        let mut tools = Vec::new();
        for (i, tool) in self.tools.iter().flatten().enumerate() {
            if tool.kind != "function" {
                return Err(ApiError::param(
                    format!("tools[{i}].type"),
                    format!("'{}' tools are not supported (only 'function')", tool.kind),
                ));
            }
            let f = &tool.function;
            tools.push(FunctionTool { name: f.name.clone(), description: f.description.clone(), parameters: f.parameters.clone() });
        }
        check_tools(&tools, "tools")?;
        let tool_choice = parse_tool_choice(self.tool_choice.as_ref(), &tools)?;
        let effort = parse_effort(self.reasoning_effort.as_deref(), "reasoning_effort")?;
        if self.messages.is_empty() {
            return Err(ApiError::param("messages", "at least one message is needed"));
        }
        let mut conversation = Conversation { instructions: Vec::new(), messages: Vec::new(), effort, tools, tool_choice };
        // Tool calls seen so far: (id, function name), to name the tool messages answering them.
        let mut calls: Vec<(Option<String>, String)> = Vec::new();
        for (i, m) in self.messages.iter().enumerate() {
            let p = format!("messages[{i}]");
            let content = || -> ApiResult<String> {
                match &m.content {
                    None | Some(Value::Null) => Err(ApiError::param(format!("{p}.content"), "a content is needed")),
                    Some(c) => text_content(c, &format!("{p}.content")),
                }
            };
            match m.role.as_str() {
                "system" | "developer" => conversation.instructions.push(content()?),
                "user" => conversation.messages.push(Message::new(Role::User, content()?)),
                "assistant" => {
                    let reasoning = m.reasoning_content.as_ref().or(m.reasoning.as_ref()).filter(|r| !r.is_empty());
                    if let Some(r) = reasoning {
                        conversation.messages.push(Message::new(Role::Assistant, r.as_str()).with_channel("analysis"));
                    }
                    let tool_calls = m.tool_calls.as_deref().unwrap_or_default();
                    let text = match &m.content {
                        None | Some(Value::Null) => None,
                        Some(c) => Some(text_content(c, &format!("{p}.content"))?),
                    };
                    match text {
                        Some(text) if tool_calls.is_empty() => {
                            conversation.messages.push(Message::new(Role::Assistant, text).with_channel("final"));
                        }
                        Some(text) if !text.is_empty() => {
                            conversation.messages.push(Message::new(Role::Assistant, text).with_channel("commentary"));
                        }
                        None if tool_calls.is_empty() && reasoning.is_none() => {
                            return Err(ApiError::param(format!("{p}.content"), "an assistant message needs content or tool_calls"));
                        }
                        _ => {}
                    }
                    for (j, call) in tool_calls.iter().enumerate() {
                        let q = format!("{p}.tool_calls[{j}]");
                        if call.kind.as_deref().is_some_and(|k| k != "function") {
                            return Err(ApiError::param(format!("{q}.type"), "only 'function' tool calls are supported"));
                        }
                        let name = &call.function.name;
                        if !conversation.tools.iter().any(|t| &t.name == name) {
                            return Err(ApiError::param(
                                format!("{q}.function.name"),
                                format!("a call of function '{name}', which is not among the request's tools"),
                            ));
                        }
                        conversation.messages.push(Message::function_call(name, call.function.arguments.clone().unwrap_or_default()));
                        calls.push((call.id.clone(), name.clone()));
                    }
                }
                "tool" => {
                    let by_id = m.tool_call_id.as_ref().and_then(|id| calls.iter().rev().find(|(c, _)| c.as_ref() == Some(id)));
                    let name = match (by_id, &m.name) {
                        (Some((_, name)), _) => name.clone(),
                        (None, Some(name)) if conversation.tools.iter().any(|t| &t.name == name) => name.clone(),
                        _ => {
                            return Err(ApiError::param(
                                format!("{p}.tool_call_id"),
                                format!(
                                    "{:?} answers no tool call of an earlier assistant message",
                                    m.tool_call_id.as_deref().unwrap_or("")
                                ),
                            ));
                        }
                    };
                    conversation.messages.push(Message::function_output(&name, content()?));
                }
                other => {
                    return Err(ApiError::param(
                        format!("{p}.role"),
                        format!("unknown role '{other}' (expected system, developer, user, assistant or tool)"),
                    ));
                }
            }
        }
        Ok(conversation)
    }

    pub fn generation(&self, parallel: usize) -> ApiResult<Generation> {
        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => Some(("max_completion_tokens", m)),
            (None, Some(m)) => Some(("max_tokens", m)),
            (None, None) => None,
        };
        let top_logprobs = match (self.logprobs.unwrap_or(false), self.top_logprobs) {
            (false, Some(_)) => return Err(ApiError::param("top_logprobs", "needs logprobs: true")),
            (false, None) => None,
            (true, k) => Some(k.unwrap_or(0) as usize),
        };
        GenerationParams {
            max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            n: self.n,
            stop: self.stop.as_ref(),
            top_logprobs,
        }
        .check(parallel)
    }
}

/// Fields every response and chunk repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
}

pub async fn handle(State(state): State<Arc<AppState>>, body: Body) -> ApiResult<Response> {
    let request: ChatRequest = json_body(&state, body).await?;
    let conversation = request.conversation()?;
    let generation = request.generation(state.parallel)?;
    let prompt = conversation.render(state.harmony)?;
    let script = state.script.as_ref().and_then(|s| s.find(&prompt.last_text));
    let stop_tokens = state.reply_stop_tokens();
    let submitted = state.submit(prompt.tokens.clone(), &generation, stop_tokens, script)?;
    let assemblers = (0..generation.n)
        .map(|_| {
            Assembler::new(state.harmony, prompt.forced_tokens(), prompt.tools.clone(), generation.stop.clone())
                .with_end_of_text(state.end_of_text())
        })
        .collect();
    let meta = Meta { id: new_id("chatcmpl"), created: unix_now(), model: state.model_name.clone() };
    let logprobs = generation.top_logprobs.is_some();
    if request.stream.unwrap_or(false) {
        let include_usage = request.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false);
        Ok(stream(state, submitted, assemblers, meta, include_usage, logprobs).into_response())
    } else {
        Ok(collect(&state, submitted, assemblers, meta, logprobs).await?.into_response())
    }
}

/// Feeds the next event to its choice's assembler: the choice, what changed, and whether the
/// choice has just finished. `None` if the scheduler has gone.
async fn next_change(submitted: &mut Submitted, assemblers: &mut [Assembler]) -> Option<(usize, Vec<Out>, bool)> {
    let (choice, event) = submitted.rx.recv().await?;
    let a = assemblers.get_mut(choice)?;
    let was_done = a.finish.is_some();
    let outs = a.on_event(event);
    if a.stopped() {
        submitted.cancel(choice);
    }
    Some((choice, outs, !was_done && a.finish.is_some()))
}

async fn collect(
    state: &AppState,
    mut submitted: Submitted,
    mut assemblers: Vec<Assembler>,
    meta: Meta,
    logprobs: bool,
) -> ApiResult<axum::Json<Value>> {
    let mut done = 0;
    while done < assemblers.len() {
        let Some((_, _, finished)) = next_change(&mut submitted, &mut assemblers).await else {
            return Err(ApiError::internal("the scheduler stopped before the reply was complete"));
        };
        done += usize::from(finished);
    }
    if let Some(error) = assemblers.iter().find_map(|a| a.error.clone()) {
        return Err(ApiError::internal(format!("generation failed: {error}")));
    }
    let choices: Vec<Value> = assemblers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let calls: Vec<Value> = a
                .calls()
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            let content = a.content();
            let reasoning = a.reasoning();
            let mut message = json!({
                "role": "assistant",
                "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { Value::from(content) },
                "reasoning_content": if reasoning.is_empty() { Value::Null } else { Value::from(reasoning) },
            });
            if !calls.is_empty() {
                message["tool_calls"] = Value::from(calls);
            }
            json!({
                "index": i,
                "message": message,
                "logprobs": if logprobs { json!({"content": logprob_entries(state, &a.logprobs)}) } else { Value::Null },
                "finish_reason": a.finish.map(|f| f.as_str()),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": fingerprint(),
        "choices": choices,
        "usage": usage(submitted.prompt_tokens, &assemblers),
    })))
}

fn stream(
    state: Arc<AppState>,
    mut submitted: Submitted,
    mut assemblers: Vec<Assembler>,
    meta: Meta,
    include_usage: bool,
    logprobs: bool,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let n = assemblers.len();
    let events = async_stream::stream! {
        let chunk = |choice: Value| {
            let mut c = json!({
                "id": meta.id,
                "object": "chat.completion.chunk",
                "created": meta.created,
                "model": meta.model,
                "system_fingerprint": fingerprint(),
                "choices": [choice],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            SseEvent::default().data(c.to_string())
        };
        for i in 0..n {
            yield Ok(chunk(json!({"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})));
        }
        // Per choice: the open item, and how many tool calls it has started.
        let mut open: Vec<Option<ItemKind>> = vec![None; n];
        let mut calls = vec![0usize; n];
        let mut done = 0;
        while done < n {
            let before: Vec<usize> = assemblers.iter().map(|a| a.logprobs.len()).collect();
            let Some((i, outs, finished)) = next_change(&mut submitted, &mut assemblers).await else {
                let error = ApiError::internal("the scheduler stopped before the reply was complete");
                yield Ok(SseEvent::default().data(error.body().to_string()));
                break;
            };
            let mut deltas = chat_deltas(outs, &mut open[i], &mut calls[i]);
            let new_logprobs = &assemblers[i].logprobs[before[i]..];
            if logprobs && !new_logprobs.is_empty() {
                if !deltas.iter().any(|d| d.get("content").is_some()) {
                    deltas.push(json!({"content": ""}));
                }
                let entries = logprob_entries(&state, new_logprobs);
                for d in &mut deltas {
                    if d.get("content").is_some() {
                        d["logprobs"] = json!({"content": entries});
                        break;
                    }
                }
            }
            for mut delta in deltas {
                let lp = delta.as_object_mut().and_then(|o| o.remove("logprobs")).unwrap_or(Value::Null);
                yield Ok(chunk(json!({"index": i, "delta": delta, "logprobs": lp, "finish_reason": null})));
            }
            if finished {
                done += 1;
                if let Some(error) = &assemblers[i].error {
                    yield Ok(SseEvent::default().data(ApiError::internal(format!("generation failed: {error}")).body().to_string()));
                }
                let reason = assemblers[i].finish.map(|f| f.as_str());
                yield Ok(chunk(json!({"index": i, "delta": {}, "logprobs": null, "finish_reason": reason})));
            }
        }
        if include_usage {
            let c = json!({
                "id": meta.id,
                "object": "chat.completion.chunk",
                "created": meta.created,
                "model": meta.model,
                "system_fingerprint": fingerprint(),
                "choices": [],
                "usage": usage(submitted.prompt_tokens, &assemblers),
            });
            yield Ok(SseEvent::default().data(c.to_string()));
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The chunk deltas for what changed in one choice.
fn chat_deltas(outs: Vec<Out>, open: &mut Option<ItemKind>, calls: &mut usize) -> Vec<Value> {
    let mut deltas = Vec::new();
    for out in outs {
        match out {
            Out::Open(kind) => {
                if let ItemKind::FunctionCall { call_id, name } = &kind {
                    deltas.push(json!({"tool_calls": [{
                        "index": *calls, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}
                    }]}));
                    *calls += 1;
                }
                *open = Some(kind);
            }
            Out::Delta(text) => deltas.push(match open {
                Some(ItemKind::Reasoning) => json!({"reasoning_content": text}),
                Some(ItemKind::FunctionCall { .. }) => json!({"tool_calls": [{"index": *calls - 1, "function": {"arguments": text}}]}),
                _ => json!({"content": text}),
            }),
            Out::Close(_) => *open = None,
        }
    }
    deltas
}

fn usage(prompt_tokens: usize, assemblers: &[Assembler]) -> Value {
    let completion: usize = assemblers.iter().map(|a| a.completion_tokens).sum();
    let reasoning: usize = assemblers.iter().map(|a| a.reasoning_tokens).sum();
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    })
}

/// `logprobs.content` entries: token text, log-probability, bytes and alternatives.
fn logprob_entries(state: &AppState, logprobs: &[(u32, TokenLogprobs)]) -> Vec<Value> {
    let token = |id: u32| {
        let bytes = state.tokenizer.token_bytes(id).unwrap_or_default();
        (String::from_utf8_lossy(bytes).into_owned(), bytes.to_vec())
    };
    logprobs
        .iter()
        .map(|(id, lp)| {
            let (text, bytes) = token(*id);
            let top: Vec<Value> = lp
                .top
                .iter()
                .map(|&(t, l)| {
                    let (text, bytes) = token(t);
                    json!({"token": text, "logprob": l, "bytes": bytes})
                })
                .collect();
            json!({"token": text, "logprob": lp.logprob, "bytes": bytes, "top_logprobs": top})
        })
        .collect()
}

pub fn fingerprint() -> String {
    format!("gptoss-{}", env!("CARGO_PKG_VERSION"))
}
