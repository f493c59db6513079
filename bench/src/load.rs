//! A load generator for an OpenAI-compatible server: at each concurrency level, that many
//! clients each send streamed `/v1/completions` requests back to back (a closed loop), and every
//! request's time to first token, time per output token and gaps between streamed chunks are
//! recorded, with the level's aggregate output tokens per second.
//!
//! Prompts are token ids (exact lengths, on any server that takes ids, as the OpenAI API does);
//! decoding is greedy and `max_tokens` long unless the model stops earlier: the tokens counted
//! are the server's own `usage.completion_tokens`.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::sse::{Endpoint, post_stream};
use crate::stats::percentile;

/// What every level runs.
#[derive(Clone, Debug)]
pub struct Load {
    /// The `model` field of each request.
    pub model: String,
    pub prompt_tokens: usize,
    pub max_tokens: usize,
    /// Requests each client sends, one after the other.
    pub requests_per_client: usize,
    /// The longest a request may take.
    pub timeout: Duration,
}

/// What one request measured.
#[derive(Clone, Debug)]
pub struct Request {
    /// Seconds from sending to the first streamed text.
    pub ttft: f64,
    /// Seconds per token after the first: (last chunk − first chunk) / (tokens − 1).
    pub tpot: Option<f64>,
    /// Seconds between consecutive chunks with text.
    pub gaps: Vec<f64>,
    pub completion_tokens: usize,
}

/// One level's figures (seconds; percentiles by nearest rank).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Level {
    pub concurrency: usize,
    pub completed: usize,
    pub failed: usize,
    /// The first failure's message, if any.
    pub failure: Option<String>,
    pub output_tokens: usize,
    pub wall_s: f64,
    pub output_tok_s: f64,
    pub ttft_p50: f64,
    pub ttft_p99: f64,
    pub tpot_p50: f64,
    pub tpot_p99: f64,
    pub itl_p50: f64,
    pub itl_p99: f64,
}

/// A distinct prompt of `len` token ids for request `i` (ordinary ids of the o200k vocabulary).
fn prompt(i: usize, len: usize) -> Vec<u32> {
    (0..len).map(|j| (1_000 + (i * 7_919 + j * 104_729) % 90_000) as u32).collect()
}

fn body(load: &Load, i: usize) -> String {
    json!({
        "model": load.model,
        "prompt": prompt(i, load.prompt_tokens),
        "max_tokens": load.max_tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
    .to_string()
}

/// Sends request `i` and measures it.
pub fn request(to: &Endpoint, load: &Load, i: usize) -> Result<Request, String> {
    let sent = Instant::now();
    let mut chunks: Vec<Instant> = Vec::with_capacity(load.max_tokens);
    let mut usage = None;
    let mut error = None;
    post_stream(to, "/v1/completions", &body(load, i), load.timeout, |at, data| {
        if data == "[DONE]" {
            return false;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            error = Some(format!("an event that is not JSON: {data}"));
            return false;
        };
        if let Some(e) = v.get("error") {
            error = Some(format!("the server reported an error mid-stream: {e}"));
            return false;
        }
        if v["choices"].as_array().is_some_and(|c| c.iter().any(|c| c["text"].as_str().is_some_and(|t| !t.is_empty()))) {
            chunks.push(at);
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            usage = Some(n as usize);
        }
        true
    })?;
    if let Some(e) = error {
        return Err(e);
    }
    let completion_tokens = usage.ok_or("the stream ended without usage (stream_options.include_usage)")?;
    let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
        return Err(format!("no text in {completion_tokens} completion tokens"));
    };
    Ok(Request {
        ttft: (*first - sent).as_secs_f64(),
        tpot: (completion_tokens > 1).then(|| (*last - *first).as_secs_f64() / (completion_tokens - 1) as f64),
        gaps: chunks.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect(),
        completion_tokens,
    })
}

/// Runs `clients` clients at once, each sending `load.requests_per_client` requests in turn;
/// request ids start at `first_id` so every request of a run has its own prompt.
pub fn level(to: &Endpoint, load: &Load, clients: usize, first_id: usize) -> Level {
    let results: Arc<Mutex<Vec<Result<Request, String>>>> = Arc::default();
    let start = Instant::now();
    thread::scope(|s| {
        for c in 0..clients {
            let results = results.clone();
            s.spawn(move || {
                for r in 0..load.requests_per_client {
                    let measured = request(to, load, first_id + c * load.requests_per_client + r);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(measured);
                }
            });
        }
    });
    let wall_s = start.elapsed().as_secs_f64();
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    summarize(clients, wall_s, results)
}

fn summarize(concurrency: usize, wall_s: f64, results: Vec<Result<Request, String>>) -> Level {
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let ok: Vec<Request> = ok.into_iter().flatten().collect();
    let ttft: Vec<f64> = ok.iter().map(|r| r.ttft).collect();
    let tpot: Vec<f64> = ok.iter().filter_map(|r| r.tpot).collect();
    let gaps: Vec<f64> = ok.iter().flat_map(|r| r.gaps.iter().copied()).collect();
    let output_tokens = ok.iter().map(|r| r.completion_tokens).sum();
    let p = |v: &[f64], q: f64| percentile(v, q).unwrap_or(f64::NAN);
    Level {
        concurrency,
        completed: ok.len(),
        failed: failed.len(),
        failure: failed.into_iter().find_map(Result::err),
        output_tokens,
        wall_s,
        output_tok_s: output_tokens as f64 / wall_s,
        ttft_p50: p(&ttft, 0.50),
        ttft_p99: p(&ttft, 0.99),
        tpot_p50: p(&tpot, 0.50),
        tpot_p99: p(&tpot, 0.99),
        itl_p50: p(&gaps, 0.50),
        itl_p99: p(&gaps, 0.99),
    }
}

/// The levels as a markdown table; aggregate tok/s also as a ratio to the first level.
pub fn markdown(levels: &[Level]) -> String {
    let mut s = String::from(
        "| clients | requests ok / failed | output tok/s | × first level | TTFT p50 / p99 ms | TPOT p50 / p99 ms | ITL p50 / p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let base = levels.first().map_or(f64::NAN, |l| l.output_tok_s);
    for l in levels {
        s.push_str(&format!(
            "| {} | {} / {} | {:.2} | {:.2}× | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} |\n",
            l.concurrency,
            l.completed,
            l.failed,
            l.output_tok_s,
            l.output_tok_s / base,
            l.ttft_p50 * 1e3,
            l.ttft_p99 * 1e3,
            l.tpot_p50 * 1e3,
            l.tpot_p99 * 1e3,
            l.itl_p50 * 1e3,
            l.itl_p99 * 1e3,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_distinct_ordinary_ids_of_the_asked_length() {
        let (a, b) = (prompt(0, 32), prompt(1, 32));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.iter().chain(&b).all(|&t| (1_000..91_000).contains(&t)));
    }

    #[test]
    fn a_level_sums_tokens_and_keeps_the_first_failure() {
        let r = |ttft: f64, tokens: usize| Ok(Request { ttft, tpot: Some(0.1), gaps: vec![0.1; tokens - 1], completion_tokens: tokens });
        let l = summarize(2, 2.0, vec![r(0.5, 4), Err("HTTP 429: busy".into()), r(1.5, 6)]);
        assert_eq!((l.completed, l.failed, l.output_tokens), (2, 1, 10));
        assert_eq!(l.output_tok_s, 5.0);
        assert_eq!((l.ttft_p50, l.ttft_p99), (0.5, 1.5));
        assert_eq!(l.failure.as_deref(), Some("HTTP 429: busy"));
        assert!(markdown(&[l]).contains("| 2 | 2 / 1 | 5.00 | 1.00× | 500 / 1500 | 100.0 / 100.0 | 100.0 / 100.0 |"));
    }
}
