//! `gptoss serve`: an OpenAI-compatible HTTP server over the same model, contexts, generator
//! rules and harmony renderer and parser as the CLI and the C API.
//!
//! ```text
//!  HTTP (tokio + axum, 2 threads)                     scheduler thread (owns the model)
//!  ───────────────────────────────                    ─────────────────────────────────
//!  http.rs       router, API key, body limit,  Job ──▶ scheduler.rs  slots (a context each),
//!                JSON errors, admission (429)   (mpsc)               queue, chunked prefill
//!  chat.rs       /v1/chat/completions                                interleaved with decode
//!  responses.rs  /v1/responses              ◀── Event  step.rs       the model calls: prefill,
//!  completions.rs /v1/completions        (per request)               decode (one step for all
//!  prompt.rs     request → harmony conversation                      running sequences)
//!  reply.rs      events → reasoning / content / tool calls (harmony::ReplyParser)
//!  metrics.rs    Prometheus text (/metrics)     script.rs  the test hook (--script, hidden)
//! ```
//!
//! A request is checked and rendered on the HTTP side (errors are 400s with OpenAI's error
//! object), takes one admission permit per choice (none left: 429 with `Retry-After`), and is
//! sent to the scheduler as one [`scheduler::Job`] per choice. The scheduler sends back the
//! sampled ids; the handler turns them into the API's JSON or server-sent events. Dropping the
//! event receiver (a client that disconnects) cancels the sequences, and the scheduler frees
//! their slots at its next step. SIGINT or SIGTERM stops accepting connections, lets running
//! and queued requests finish, then exits; a second signal exits at once.
//!
//! [`step::decode`] runs every running sequence's next token in one batched forward
//! (`Model::forward_rows` over a [`gptoss::Batch`] of min(--parallel, --batch) rows, allocated
//! at start-up with the slots); the scheduler calls it once per step.

mod chat;
mod completions;
mod error;
mod http;
mod ids;
mod metrics;
mod prompt;
mod reply;
mod responses;
mod scheduler;
mod script;
mod step;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use gptoss::{Error, Model, Result, RuntimeOptions};
use gptoss_model_gpt_oss::OpenedModel;
use gptoss_model_gpt_oss::harmony::HarmonyEncoding;
use gptoss_tokenizer::Tokenizer;

use http::{AppState, StateOptions};
use metrics::Metrics;
use scheduler::Scheduler;
use script::Script;

/// How the server runs (besides the model's own options).
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub api_key: Option<String>,
    /// Sequence slots, each with its own KV cache.
    pub parallel: usize,
    /// Requests that may wait for a slot before the server answers 429.
    pub queue: usize,
    /// The model's name in `/v1/models` and in responses.
    pub model_name: String,
    pub max_body: usize,
    pub script: Option<PathBuf>,
    /// Print the residency plan before loading.
    pub show_plan: bool,
    /// Write a routing trace of every step here.
    pub record_routing: Option<PathBuf>,
}

/// Loads the model, allocates the slots, and serves until SIGINT or SIGTERM.
pub fn run(model: &OpenedModel, runtime: &RuntimeOptions, tokenizer: Tokenizer, opts: ServeOptions) -> Result<()> {
    if opts.parallel == 0 {
        return Err(Error::Usage("--parallel must be at least 1".into()));
    }
    // The server lives as long as the process; its tokenizer too (handlers and streams borrow it).
    let tokenizer: &'static Tokenizer = Box::leak(Box::new(tokenizer));
    let harmony = HarmonyEncoding::new(tokenizer)?;
    let script = opts.script.as_deref().map(|path| Script::load(path, tokenizer)).transpose()?;

    let show_plan = opts.show_plan;
    let mut loaded = Model::load_observed(
        model,
        runtime,
        &mut |plan| {
            if show_plan {
                eprintln!("{plan}");
            }
        },
        &mut |_, _| {},
    )?;
    if let Some(path) = &opts.record_routing {
        loaded.record_routing(path, &model.source.to_string())?;
    }
    let contexts = (0..opts.parallel).map(|_| loaded.new_context(runtime.context)).collect::<Result<Vec<_>>>()?;
    let kv_bytes: usize = contexts.iter().map(|c| c.kv_cache_bytes()).sum();
    // A decode step takes every running slot, in forwards of at most --batch rows.
    let batch = loaded.new_batch(opts.parallel.min(loaded.max_batch()))?;
    let info = loaded.backend_info();
    let config = loaded.config();
    let (vocab, eos) = (config.vocab_size, config.eos_token_ids.clone());
    let context = runtime.context.max_context;

    let metrics = Arc::new(Metrics::new(opts.parallel));
    let (inbox, jobs) = std::sync::mpsc::channel();
    let scheduler = Scheduler::new(loaded, batch, contexts, jobs, metrics.clone());
    let thread = std::thread::Builder::new().name("gptoss-scheduler".into()).spawn(move || scheduler.run())?;

    let state = Arc::new(AppState::new(
        StateOptions {
            harmony,
            model_name: opts.model_name.clone(),
            api_key: opts.api_key.clone(),
            parallel: opts.parallel,
            context,
            queue: opts.queue,
            vocab,
            eos,
            max_body: opts.max_body,
            script,
        },
        inbox,
        metrics,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("gptoss-http").enable_all().build()?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((opts.host.as_str(), opts.port)).await?;
        let address = listener.local_addr()?;
        eprintln!(
            "gptoss serve: {} on {} ({}); {} slots of {context} tokens (KV caches {:.1} MB); queue {}",
            opts.model_name,
            info.name,
            info.device,
            opts.parallel,
            kv_bytes as f64 / 1e6,
            opts.queue
        );
        eprintln!("listening on http://{address}");
        axum::serve(listener, http::router(state.clone())).with_graceful_shutdown(shutdown(state.clone())).await
    });
    // No request is left: let the scheduler finish what it holds and stop.
    state.close_inbox();
    drop(state);
    let joined = thread.join();
    served?;
    joined.map_err(|_| Error::Usage("the scheduler thread panicked".into()))?;
    eprintln!("gptoss serve: stopped");
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM and starts draining; a second one exits at once.
async fn shutdown(state: Arc<AppState>) {
    signal().await;
    state.draining.store(true, Ordering::Relaxed);
    eprintln!("gptoss serve: draining (finishing running and queued requests; a second signal stops at once)");
    tokio::spawn(async {
        signal().await;
        eprintln!("gptoss serve: stopped without draining");
        std::process::exit(130);
    });
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
