//! `POST /v1/completions`: a raw prompt continued, no harmony. The prompt is text (special
//! tokens such as `<|start|>` written out are special tokens) or token ids; generation ends at
//! the model's end-of-sequence ids, `max_tokens` (16 by default, as OpenAI's) or a stop string.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use gptoss_tokenizer::StreamDecoder;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::chat::fingerprint;
use super::error::{ApiError, ApiResult};
use super::http::{AppState, GenerationParams, Submitted, json_body};
use super::ids::{new_id, unix_now};
use super::reply::{FinishReason, StopMatcher};
use super::scheduler::{Event, Finish};
use super::step::TokenLogprobs;

/// OpenAI's default for this endpoint.
const DEFAULT_MAX_TOKENS: i64 = 16;

#[derive(Deserialize)]
pub struct CompletionRequest {
    pub prompt: Value,
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<Value>,
    pub n: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<super::chat::StreamOptions>,
    pub logprobs: Option<u32>,
    pub echo: Option<bool>,
    pub suffix: Option<Value>,
    pub best_of: Option<i64>,
}

/// The token ids of a `prompt`: a string, token ids, or a list holding one of either.
pub fn prompt_tokens(state: &AppState, prompt: &Value) -> ApiResult<Vec<u32>> {
    let ids = |items: &[Value]| -> ApiResult<Vec<u32>> {
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_u64()
                    .and_then(|id| u32::try_from(id).ok())
                    .ok_or_else(|| ApiError::param(format!("prompt[{i}]"), "expected a token id (a non-negative integer)"))
            })
            .collect()
    };
    let tokens = match prompt {
        Value::String(text) => state.tokenizer.encode_with_special_tokens(text),
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => ids(items)?,
        Value::Array(items) if items.len() == 1 => match &items[0] {
            Value::String(text) => state.tokenizer.encode_with_special_tokens(text),
            Value::Array(inner) => ids(inner)?,
            _ => return Err(ApiError::param("prompt[0]", "expected a string or token ids")),
        },
        Value::Array(items) if items.len() > 1 => {
            return Err(ApiError::param("prompt", "one prompt per request (send the others as separate requests)"));
        }
        _ => return Err(ApiError::param("prompt", "expected a string or token ids")),
    };
    if tokens.is_empty() {
        return Err(ApiError::param("prompt", "the prompt is empty"));
    }
    if let Some(&id) = tokens.iter().find(|&&t| t as usize >= state.vocab) {
        return Err(ApiError::param("prompt", format!("token id {id} is out of range (the vocabulary has {} ids)", state.vocab)));
    }
    Ok(tokens)
}

/// A token's legacy log-probability entry: its text, its log-probability, the alternatives.
type LegacyLogprob = (String, f32, Vec<(String, f32)>);

/// One choice's text, built token by token.
struct Choice {
    /// `None` once the choice has ended.
    decoder: Option<StreamDecoder<'static>>,
    stop: StopMatcher,
    text: String,
    tokens: usize,
    finish: Option<FinishReason>,
    error: Option<String>,
    logprobs: Vec<LegacyLogprob>,
}

impl Choice {
    /// Takes one event; returns the text it adds.
    fn on_event(&mut self, state: &AppState, event: Event) -> String {
        if self.finish.is_some() {
            return String::new();
        }
        match event {
            Event::Token { id, logprobs } => {
                self.tokens += 1;
                if state.eos.contains(&id) {
                    return self.end(FinishReason::Stop);
                }
                if let Some(lp) = logprobs {
                    self.record(state, id, &lp);
                }
                let piece = match &mut self.decoder {
                    Some(d) => d.push(id).unwrap_or_else(|_| char::REPLACEMENT_CHARACTER.to_string()),
                    None => String::new(),
                };
                let (shown, hit) = self.stop.push(&piece);
                self.text.push_str(&shown);
                if hit {
                    self.finish = Some(FinishReason::Stop);
                }
                shown
            }
            Event::Finished(Finish::Length) => self.end(FinishReason::Length),
            Event::Finished(_) => self.end(FinishReason::Stop),
            Event::Failed(message) => {
                self.error = Some(message);
                self.end(FinishReason::Stop)
            }
        }
    }

    fn end(&mut self, reason: FinishReason) -> String {
        let rest = self.decoder.take().map(StreamDecoder::finish).unwrap_or_default();
        let (mut tail, hit) = self.stop.push(&rest);
        if !hit {
            tail.push_str(&self.stop.flush());
        }
        self.text.push_str(&tail);
        self.finish = Some(reason);
        tail
    }

    fn record(&mut self, state: &AppState, id: u32, lp: &TokenLogprobs) {
        let text = |t: u32| String::from_utf8_lossy(state.tokenizer.token_bytes(t).unwrap_or_default()).into_owned();
        self.logprobs.push((text(id), lp.logprob, lp.top.iter().map(|&(t, l)| (text(t), l)).collect()));
    }

    /// OpenAI's legacy `logprobs` object for the tokens so far, offsets counted from `offset`.
    fn logprobs_json(&self, from: usize, offset: usize) -> Value {
        let entries = &self.logprobs[from..];
        let mut at = offset;
        let mut offsets = Vec::with_capacity(entries.len());
        for (text, _, _) in entries {
            offsets.push(at);
            at += text.len();
        }
        json!({
            "tokens": entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
            "token_logprobs": entries.iter().map(|e| e.1).collect::<Vec<_>>(),
            "top_logprobs": entries.iter().map(|e| e.2.iter().map(|(t, l)| (t.clone(), json!(l))).collect::<Map<_, _>>()).collect::<Vec<_>>(),
            "text_offset": offsets,
        })
    }
}

pub async fn handle(State(state): State<Arc<AppState>>, body: Body) -> ApiResult<Response> {
    let request: CompletionRequest = json_body(&state, body).await?;
    if request.suffix.as_ref().is_some_and(|s| !s.is_null()) {
        return Err(ApiError::param("suffix", "not supported"));
    }
    if request.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::param("best_of", "only 1 is supported"));
    }
    if request.logprobs.is_some_and(|k| k > 20) {
        return Err(ApiError::param("logprobs", "at most 20"));
    }
    let prompt = prompt_tokens(&state, &request.prompt)?;
    let generation = GenerationParams {
        max_tokens: Some(("max_tokens", request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS))),
        temperature: request.temperature,
        top_p: request.top_p,
        seed: request.seed,
        n: request.n,
        stop: request.stop.as_ref(),
        top_logprobs: request.logprobs.map(|k| k as usize),
    }
    .check(state.parallel)?;
    let prompt_text = state.tokenizer.decode_lossy(&prompt).map_err(|e| ApiError::internal(e.to_string()))?;
    let script = state.script.as_ref().and_then(|s| s.find(&prompt_text));
    let submitted = state.submit(prompt, &generation, state.eos.clone(), script)?;
    let choices: Vec<Choice> = (0..generation.n)
        .map(|_| Choice {
            decoder: Some(state.tokenizer.stream_decoder()),
            stop: StopMatcher::new(generation.stop.clone()),
            text: String::new(),
            tokens: 0,
            finish: None,
            error: None,
            logprobs: Vec::new(),
        })
        .collect();
    let echo = request.echo.unwrap_or(false).then_some(prompt_text);
    let meta = (new_id("cmpl"), unix_now(), state.model_name.clone());
    let logprobs = generation.top_logprobs.is_some();
    if request.stream.unwrap_or(false) {
        let include_usage = request.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false);
        Ok(stream(state, submitted, choices, meta, echo, include_usage, logprobs).into_response())
    } else {
        Ok(collect(state, submitted, choices, meta, echo, logprobs).await?.into_response())
    }
}

async fn collect(
    state: Arc<AppState>,
    mut submitted: Submitted,
    mut choices: Vec<Choice>,
    (id, created, model): (String, u64, String),
    echo: Option<String>,
    logprobs: bool,
) -> ApiResult<axum::Json<Value>> {
    let mut done = 0;
    while done < choices.len() {
        let Some((i, event)) = submitted.rx.recv().await else {
            return Err(ApiError::internal("the scheduler stopped before the reply was complete"));
        };
        let c = &mut choices[i];
        let was_done = c.finish.is_some();
        c.on_event(&state, event);
        if !was_done && c.finish.is_some() {
            done += 1;
            submitted.cancel(i);
        }
    }
    if let Some(error) = choices.iter().find_map(|c| c.error.clone()) {
        return Err(ApiError::internal(format!("generation failed: {error}")));
    }
    let echo = echo.unwrap_or_default();
    let out: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "index": i,
                "text": format!("{echo}{}", c.text),
                "logprobs": if logprobs { c.logprobs_json(0, echo.len()) } else { Value::Null },
                "finish_reason": c.finish.map(|f| f.as_str()),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint(),
        "choices": out,
        "usage": usage(submitted.prompt_tokens, &choices),
    })))
}

fn usage(prompt_tokens: usize, choices: &[Choice]) -> Value {
    let completion: usize = choices.iter().map(|c| c.tokens).sum();
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion})
}

fn stream(
    state: Arc<AppState>,
    mut submitted: Submitted,
    mut choices: Vec<Choice>,
    (id, created, model): (String, u64, String),
    echo: Option<String>,
    include_usage: bool,
    logprobs: bool,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = async_stream::stream! {
        let chunk = |choice: Value| {
            let mut c = json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "system_fingerprint": fingerprint(), "choices": [choice],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            SseEvent::default().data(c.to_string())
        };
        if let Some(echo) = &echo {
            for i in 0..choices.len() {
                yield Ok(chunk(json!({"index": i, "text": echo, "logprobs": null, "finish_reason": null})));
            }
        }
        let mut done = 0;
        while done < choices.len() {
            let Some((i, event)) = submitted.rx.recv().await else {
                let error = ApiError::internal("the scheduler stopped before the reply was complete");
                yield Ok(SseEvent::default().data(error.body().to_string()));
                break;
            };
            let c = &mut choices[i];
            let (was_done, lp_before, offset) = (c.finish.is_some(), c.logprobs.len(), c.text.len());
            let text = c.on_event(&state, event);
            let lp = if logprobs && c.logprobs.len() > lp_before { c.logprobs_json(lp_before, offset) } else { Value::Null };
            if !text.is_empty() || !lp.is_null() {
                yield Ok(chunk(json!({"index": i, "text": text, "logprobs": lp, "finish_reason": null})));
            }
            if !was_done && c.finish.is_some() {
                done += 1;
                submitted.cancel(i);
                if let Some(error) = &c.error {
                    yield Ok(SseEvent::default().data(ApiError::internal(format!("generation failed: {error}")).body().to_string()));
                }
                let reason = c.finish.map(|f| f.as_str());
                yield Ok(chunk(json!({"index": i, "text": "", "logprobs": null, "finish_reason": reason})));
            }
        }
        if include_usage {
            let c = json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "system_fingerprint": fingerprint(), "choices": [], "usage": usage(submitted.prompt_tokens, &choices),
            });
            yield Ok(SseEvent::default().data(c.to_string()));
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    Sse::new(events).keep_alive(KeepAlive::default())
}
