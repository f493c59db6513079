//! The HTTP side: shared state, the router, the API-key and metrics layer, request bodies and
//! JSON, admission (slots, queue, 429), and the small endpoints (health, models, metrics,
//! tokenize).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gptoss_engine::SamplingParams;
use gptoss_model_gpt_oss::harmony::HarmonyEncoding;
use gptoss_tokenizer::Tokenizer;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::error::{ApiError, ApiResult};
use super::ids::random_seed;
use super::metrics::{Endpoint, Metrics};
use super::scheduler::{Event, Job};
use super::script::Script;
use super::{chat, completions, responses};

/// Bytes read and thrown away after a body passes the limit, so the client can still read the
/// error (closing on unread data would reset the connection).
const DRAIN_AFTER_LIMIT: usize = 16 << 20;

/// Everything the handlers share.
pub struct AppState {
    pub harmony: HarmonyEncoding<'static>,
    pub tokenizer: &'static Tokenizer,
    pub model_name: String,
    /// Unix time the server started (the model's `created`).
    pub created: u64,
    pub api_key: Option<String>,
    /// Slots and tokens each slot's context holds.
    pub parallel: usize,
    pub context: usize,
    pub queue: usize,
    /// The model's vocabulary (token ids in `/v1/completions` must be below it).
    pub vocab: usize,
    /// Token ids that end a raw completion (the model's end-of-sequence ids).
    pub eos: Vec<u32>,
    pub max_body: usize,
    pub metrics: Arc<Metrics>,
    pub script: Option<Script>,
    pub draining: AtomicBool,
    inbox: Mutex<Option<Sender<Job>>>,
    /// `parallel + queue` permits: one per sequence admitted or waiting.
    admission: Arc<Semaphore>,
}

/// What is fixed when the server starts.
pub struct StateOptions {
    pub harmony: HarmonyEncoding<'static>,
    pub model_name: String,
    pub api_key: Option<String>,
    pub parallel: usize,
    pub context: usize,
    pub queue: usize,
    pub vocab: usize,
    pub eos: Vec<u32>,
    pub max_body: usize,
    pub script: Option<Script>,
}

impl AppState {
    pub fn new(o: StateOptions, inbox: Sender<Job>, metrics: Arc<Metrics>) -> Self {
        Self {
            tokenizer: o.harmony.tokenizer(),
            harmony: o.harmony,
            model_name: o.model_name,
            created: super::ids::unix_now(),
            api_key: o.api_key,
            parallel: o.parallel,
            context: o.context,
            queue: o.queue,
            vocab: o.vocab,
            eos: o.eos,
            max_body: o.max_body,
            metrics,
            script: o.script,
            draining: AtomicBool::new(false),
            inbox: Mutex::new(Some(inbox)),
            admission: Arc::new(Semaphore::new(o.parallel + o.queue)),
        }
    }

    /// Where a harmony reply stops: `<|return|>`, `<|call|>`, and the model's other
    /// end-of-sequence ids (`<|endoftext|>`).
    pub fn reply_stop_tokens(&self) -> Vec<u32> {
        let mut stops = self.harmony.stop_tokens_for_assistant_actions().to_vec();
        stops.extend(self.end_of_text());
        stops
    }

    /// End-of-sequence ids that are not harmony formatting tokens: they end a reply unseen.
    pub fn end_of_text(&self) -> Vec<u32> {
        let formatting = self.harmony.message_end_tokens();
        self.eos.iter().copied().filter(|t| !formatting.contains(t)).collect()
    }

    /// Stops taking jobs: the scheduler finishes what it has, then exits.
    pub fn close_inbox(&self) {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.api_key else { return true };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Constant time in the key's bytes (a wrong length fails without comparing).
        given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(key.as_bytes())))
    }

    /// Checks that `prompt` plus `max_tokens` fit a slot's context; returns the budget of
    /// generated tokens (what is left of the context when the request gave none).
    pub fn room(&self, prompt: usize, max_tokens: Option<usize>) -> ApiResult<usize> {
        let context = self.context;
        match max_tokens {
            Some(max) if prompt + max > context => Err(ApiError::invalid(format!(
                "the prompt's {prompt} tokens plus max_tokens {max} make {} tokens, more than the {context} a slot's context holds",
                prompt + max
            ))
            .with_code("context_length_exceeded")),
            Some(max) => Ok(max),
            None if prompt >= context => {
                Err(ApiError::invalid(format!("the prompt's {prompt} tokens leave no room in the {context} tokens a slot's context holds"))
                    .with_code("context_length_exceeded"))
            }
            None => Ok(context - prompt),
        }
    }

    /// Admits a request's sequences (one per choice): checks room, takes a place per sequence
    /// (429 when there are not enough), and hands them to the scheduler.
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        generation: &Generation,
        stop_tokens: Vec<u32>,
        script: Option<Arc<[u32]>>,
    ) -> ApiResult<Submitted> {
        let max_tokens = self.room(prompt.len(), generation.max_tokens)?;
        if let Some(&id) = prompt.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(ApiError::param("prompt", format!("token id {id} is out of range (the vocabulary has {} ids)", self.vocab)));
        }
        if self.draining.load(Ordering::Relaxed) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        let mut permits = Vec::with_capacity(generation.n);
        for _ in 0..generation.n {
            match self.admission.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => {
                    self.metrics.rejected();
                    return Err(ApiError::busy(self.parallel, self.queue));
                }
            }
        }
        let (events, rx) = unbounded_channel();
        let inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(inbox) = inbox else {
            return Err(ApiError::unavailable("the server is shutting down"));
        };
        let seed = generation.seed.unwrap_or_else(random_seed);
        let received = Instant::now();
        let mut cancels = Vec::with_capacity(generation.n);
        for (choice, permit) in permits.into_iter().enumerate() {
            let cancel = Arc::new(AtomicBool::new(false));
            cancels.push(cancel.clone());
            let job = Job {
                choice,
                prompt: prompt.clone(),
                max_tokens,
                stop_tokens: stop_tokens.clone(),
                sampling: generation.sampling,
                seed: seed.wrapping_add(choice as u64),
                top_logprobs: generation.top_logprobs,
                script: script.clone(),
                events: events.clone(),
                cancel,
                _permit: Some(permit),
                received,
            };
            inbox.send(job).map_err(|_| ApiError::unavailable("the scheduler has stopped"))?;
        }
        Ok(Submitted { rx, cancels, prompt_tokens: prompt.len() })
    }
}

/// A request in the scheduler's hands.
pub struct Submitted {
    /// (choice, event); dropping it cancels every choice.
    pub rx: UnboundedReceiver<(usize, Event)>,
    /// Stops one choice (a stop string was found).
    pub cancels: Vec<Arc<AtomicBool>>,
    pub prompt_tokens: usize,
}

impl Submitted {
    pub fn cancel(&self, choice: usize) {
        if let Some(c) = self.cancels.get(choice) {
            c.store(true, Ordering::Relaxed);
        }
    }
}

/// Sampling and length parameters common to the endpoints, checked.
#[derive(Clone, Debug)]
pub struct Generation {
    pub max_tokens: Option<usize>,
    pub sampling: SamplingParams,
    pub seed: Option<u64>,
    pub n: usize,
    pub stop: Vec<String>,
    pub top_logprobs: Option<usize>,
}

/// The raw values of those parameters, as a request gives them.
#[derive(Default)]
pub struct GenerationParams<'a> {
    pub max_tokens: Option<(&'a str, i64)>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub n: Option<i64>,
    pub stop: Option<&'a Value>,
    pub top_logprobs: Option<usize>,
}

impl GenerationParams<'_> {
    pub fn check(self, parallel: usize) -> ApiResult<Generation> {
        let max_tokens = match self.max_tokens {
            Some((param, m)) if m < 1 => return Err(ApiError::param(param, format!("{m} is less than 1"))),
            Some((_, m)) => Some(usize::try_from(m).unwrap_or(usize::MAX)),
            None => None,
        };
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::param("temperature", format!("{temperature} is not in [0, 2]")));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::param("top_p", format!("{top_p} is not in (0, 1]")));
        }
        let n = self.n.unwrap_or(1);
        if n < 1 || n as usize > parallel {
            return Err(ApiError::param("n", format!("{n} choices: this server runs 1 to {parallel} (its --parallel slots)")));
        }
        let stop = match self.stop {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::param(format!("stop[{i}]"), "expected a string")))
                .collect::<ApiResult<_>>()?,
            Some(_) => return Err(ApiError::param("stop", "expected a string or an array of strings")),
        };
        if stop.len() > 4 {
            return Err(ApiError::param("stop", format!("{} stop sequences; at most 4", stop.len())));
        }
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::param("stop", "an empty stop sequence"));
        }
        if self.top_logprobs.is_some_and(|k| k > 20) {
            return Err(ApiError::param("top_logprobs", "at most 20"));
        }
        Ok(Generation {
            max_tokens,
            sampling: SamplingParams { temperature: temperature as f32, top_k: 0, top_p: top_p as f32 },
            seed: self.seed.map(|s| s as u64),
            n: n as usize,
            stop,
            top_logprobs: self.top_logprobs,
        })
    }
}

/// Reads a body of at most `limit` bytes (400 beyond it).
pub async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    let mut body = body;
    let mut bytes = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::invalid(format!("the request body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total <= limit {
            bytes.extend_from_slice(&data);
        } else if total > limit + DRAIN_AFTER_LIMIT {
            break;
        }
    }
    if total > limit {
        return Err(ApiError::invalid(format!("the request body is larger than the server's limit of {limit} bytes (--max-body-bytes)"))
            .with_code("body_too_large"));
    }
    Ok(Bytes::from(bytes))
}

/// Parses JSON into `T`: 400 for bad JSON, and 400 naming the field for a wrong type.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("the body is not valid JSON: {inner}")).with_code("invalid_json")
        } else if path == "." {
            ApiError::invalid(format!("the body: {inner}"))
        } else {
            ApiError::param(path, inner.to_string())
        }
    })?;
    de.end().map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")).with_code("invalid_json"))?;
    Ok(value)
}

/// Reads and parses a JSON body.
pub async fn json_body<T: DeserializeOwned>(state: &AppState, body: Body) -> ApiResult<T> {
    let bytes = read_body(body, state.max_body).await?;
    parse_json(&bytes)
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/responses", post(responses::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/tokenize", post(tokenize))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Checks the API key (every path but `/health` and `/metrics`) and counts the response.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let endpoint = Endpoint::of_path(path);
    let open = matches!(endpoint, Endpoint::Health | Endpoint::Metrics);
    let response =
        if open || state.authorized(request.headers()) { next.run(request).await } else { ApiError::unauthorized().into_response() };
    state.metrics.http(endpoint, response.status().as_u16());
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!("no endpoint {} {}", request.method(), request.uri().path()))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "draining"}))).into_response()
    } else {
        axum::Json(json!({"status": "ok"})).into_response()
    }
}

fn model_object(state: &AppState) -> Value {
    json!({
        "id": state.model_name,
        "object": "model",
        "created": state.created,
        "owned_by": "gptoss",
        "max_model_len": state.context,
    })
}

async fn models(State(state): State<Arc<AppState>>) -> axum::Json<Value> {
    axum::Json(json!({"object": "list", "data": [model_object(&state)]}))
}

async fn model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult<axum::Json<Value>> {
    if id == state.model_name {
        Ok(axum::Json(model_object(&state)))
    } else {
        Err(ApiError::not_found(format!("the model '{id}' does not exist; this server runs '{}'", state.model_name)))
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

/// `POST /tokenize`: the prompt tokens a request renders to, without running it. Takes a Chat
/// Completions body (`messages`, `tools`, `tool_choice`, `reasoning_effort`) or `{"prompt"}`.
async fn tokenize(State(state): State<Arc<AppState>>, body: Body) -> ApiResult<axum::Json<Value>> {
    let bytes = read_body(body, state.max_body).await?;
    let value: Value = parse_json(&bytes)?;
    let tokens = if let Some(prompt) = value.get("prompt") {
        completions::prompt_tokens(&state, prompt)?
    } else {
        // Parsed from the bytes, not from `value`: tool schemas keep their key order.
        let request: chat::ChatRequest = parse_json(&bytes)?;
        request.conversation()?.render(state.harmony)?.tokens
    };
    let text = state.tokenizer.decode_lossy(&tokens).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(axum::Json(json!({"tokens": tokens, "count": tokens.len(), "max_model_len": state.context, "prompt": text})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            a: Vec<Inner>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            b: u32,
        }
        let e = parse_json::<R>(br#"{"a": [{"b": 1}, {"b": "x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("a[1].b"), "{e:?}");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse_json::<R>(b"{\"a\": [").unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
        let e = parse_json::<R>(br#"{"a": []} x"#).unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
    }

    #[test]
    fn generation_parameters_are_checked() {
        let ok = GenerationParams { temperature: Some(0.0), n: Some(2), ..Default::default() }.check(2).unwrap();
        assert!(ok.sampling.is_greedy());
        let bad = |p: GenerationParams, param: &str| {
            let e = p.check(2).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{e:?}");
        };
        bad(GenerationParams { temperature: Some(2.5), ..Default::default() }, "temperature");
        bad(GenerationParams { top_p: Some(0.0), ..Default::default() }, "top_p");
        bad(GenerationParams { n: Some(3), ..Default::default() }, "n");
        bad(GenerationParams { max_tokens: Some(("max_tokens", 0)), ..Default::default() }, "max_tokens");
        let stops = json!(["a", "b", "c", "d", "e"]);
        bad(GenerationParams { stop: Some(&stops), ..Default::default() }, "stop");
        let stops = json!([1]);
        bad(GenerationParams { stop: Some(&stops), ..Default::default() }, "stop[0]");
    }
}
