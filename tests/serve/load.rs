//! Load: 64 concurrent streams over 8 slots, and memory over 1,000 requests.

use std::sync::Barrier;

use serde_json::{Value, json};

use crate::client::{EventStream, Server, chat};

/// What a finished chat stream adds up to: content, finish reason, completion tokens. Checks
/// that the stream is whole on the way.
fn whole_stream(stream: EventStream) -> (String, String, u64) {
    let events = stream.collect();
    let (done, rest) = events.split_last().expect("a stream has events");
    assert_eq!(done.data, "[DONE]", "the stream ends with [DONE]");
    let (usage, chunks) = rest.split_last().expect("a usage chunk");
    let usage = usage.json();
    assert_eq!(usage["choices"], json!([]));
    let first = chunks[0].json();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let mut content = String::new();
    let mut finish = None;
    for c in chunks {
        let c = c.json();
        assert_eq!(c["id"], first["id"], "one id per stream");
        let choice = &c["choices"][0];
        assert!(finish.is_none(), "a chunk after the finish reason");
        content += choice["delta"]["content"].as_str().unwrap_or("");
        finish = choice["finish_reason"].as_str().map(str::to_owned);
    }
    (content, finish.expect("a finish reason"), usage["usage"]["completion_tokens"].as_u64().unwrap())
}

#[test]
fn sixty_four_streams_over_eight_slots() {
    let server = Server::start(&["--parallel", "8", "--queue", "64"]);
    // Mixed prompt lengths (up to ~300 tokens, several prefill chunks) and reply lengths.
    let requests: Vec<Value> = (0..64)
        .map(|i| {
            let mut r = chat(&format!("Request {i}. {}", "Some words to read. ".repeat((i * 7) % 60)), 4 + (i as u32 * 13) % 37);
            r["stream"] = json!(true);
            r["stream_options"] = json!({"include_usage": true});
            r
        })
        .collect();
    // Every eighth client leaves after a few tokens of a long reply.
    let cancelled = |i: usize| i % 8 == 3;
    let requests: Vec<Value> = requests
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if cancelled(i) {
                r["max_tokens"] = json!(400);
            }
            r
        })
        .collect();
    let alone: Vec<Option<(String, String, u64)>> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (!cancelled(i)).then(|| whole_stream(EventStream::open(server.port, "/v1/chat/completions", r))))
        .collect();

    let start = Barrier::new(64);
    let together: Vec<Option<(String, String, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let start = &start;
                let port = server.port;
                s.spawn(move || {
                    start.wait();
                    let mut stream = EventStream::open(port, "/v1/chat/completions", r);
                    assert_eq!(stream.status, 200);
                    if cancelled(i) {
                        for _ in 0..4 {
                            stream.next_event().expect("a few tokens before leaving");
                        }
                        return None;
                    }
                    Some(whole_stream(stream))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "request {i}: its greedy reply changed with 63 others around");
    }
    // No slot leaks: everything back to zero.
    server.wait_metric("gptoss_sequences_running", 0.0);
    server.wait_metric("gptoss_queue_depth", 0.0);
    server.wait_metric("gptoss_batch_size", 0.0);
    assert_eq!(server.metric("gptoss_sequences_cancelled_total"), 8.0);
    assert_eq!(server.metric("gptoss_requests_rejected_total"), 0.0);
    assert!(
        server.metric("gptoss_decode_rows_total") / server.metric("gptoss_decode_steps_total") > 2.0,
        "steps decoded several sequences"
    );
}

/// Resident memory may grow by at most this much between the 100th and the 1,000th request.
const MEMORY_BOUND: f64 = 4.0 * 1024.0 * 1024.0;

#[test]
fn memory_is_flat_over_a_thousand_requests() {
    let server = Server::start(&["--parallel", "4", "--queue", "16"]);
    let run = |count: usize| {
        std::thread::scope(|s| {
            for t in 0..4 {
                let server = &server;
                s.spawn(move || {
                    for i in 0..count / 4 {
                        let body = if i % 2 == 0 {
                            json!({"prompt": format!("Hello {t} {i}"), "max_tokens": 2, "temperature": 0})
                        } else {
                            let mut r = chat(&format!("Hi {t} {i}"), 2);
                            r["stream"] = json!(i % 4 == 1);
                            r
                        };
                        let path = if i % 2 == 0 { "/v1/completions" } else { "/v1/chat/completions" };
                        let r = server.post(path, &body);
                        assert_eq!(r.status, 200, "{}", r.text());
                    }
                });
            }
        })
    };
    run(100);
    let warm = server.metric("process_resident_memory_bytes");
    run(900);
    let after = server.metric("process_resident_memory_bytes");
    eprintln!("resident memory after 100 requests: {warm} bytes, after 1000: {after} bytes");
    assert!(after - warm <= MEMORY_BOUND, "resident memory grew by {} bytes over 900 requests", after - warm);
    server.wait_metric("gptoss_sequences_running", 0.0);
    server.wait_metric("gptoss_queue_depth", 0.0);
}
