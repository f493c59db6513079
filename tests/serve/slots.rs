//! Slots and admission: disconnects free slots, a full server answers 429, batch-mates do not
//! change a greedy reply, and SIGTERM drains before exiting.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{EventStream, Server, chat, send};

fn streamed(content: &str, max_tokens: u32) -> Value {
    let mut r = chat(content, max_tokens);
    r["stream"] = json!(true);
    r
}

#[test]
fn a_client_that_disconnects_frees_its_slot() {
    let server = Server::start(&["--parallel", "1", "--queue", "1"]);
    let mut running = EventStream::open(server.port, "/v1/chat/completions", &streamed("Hello", 900));
    for _ in 0..3 {
        running.next_event().expect("tokens arrive");
    }
    assert_eq!(server.metric("gptoss_sequences_running"), 1.0);
    // A second request waits for the slot; it leaves before getting one.
    let mut queued = EventStream::open(server.port, "/v1/chat/completions", &streamed("Hello", 900));
    assert_eq!(queued.status, 200);
    queued.next_event().expect("the role chunk comes at once");
    server.wait_metric("gptoss_queue_depth", 1.0);
    drop(queued);
    server.wait_metric("gptoss_queue_depth", 0.0);
    assert_eq!(server.metric("gptoss_sequences_running"), 1.0);
    drop(running);
    server.wait_metric("gptoss_sequences_running", 0.0);
    assert_eq!(server.metric("gptoss_sequences_cancelled_total"), 2.0);
    // Far fewer than 900 tokens were made: the sequence stopped when its client left.
    assert!(server.metric("gptoss_generated_tokens_total") < 900.0);
    assert_eq!(server.post("/v1/chat/completions", &chat("Hi", 3)).status, 200);
    // A client waiting for a whole (not streamed) reply that hangs up frees its slot too.
    let connection = send(server.port, "/v1/chat/completions", &chat("Hello", 900));
    server.wait_metric("gptoss_sequences_running", 1.0);
    drop(connection);
    server.wait_metric("gptoss_sequences_running", 0.0);
    assert_eq!(server.metric("gptoss_sequences_cancelled_total"), 3.0);
}

#[test]
fn a_full_server_answers_429_with_retry_after() {
    let server = Server::start(&["--parallel", "1", "--queue", "1"]);
    let mut first = EventStream::open(server.port, "/v1/chat/completions", &streamed("Hello", 900));
    for _ in 0..3 {
        first.next_event().expect("tokens arrive");
    }
    let mut second = EventStream::open(server.port, "/v1/chat/completions", &streamed("Hello", 900));
    second.next_event().unwrap();
    server.wait_metric("gptoss_queue_depth", 1.0);
    let third = server.post("/v1/chat/completions", &chat("Hello", 3));
    let e = third.error(429);
    assert_eq!(third.header("retry-after"), Some("1"));
    assert_eq!(e["type"], "rate_limit_error");
    assert_eq!(e["code"], "server_busy");
    assert_eq!(server.metric("gptoss_requests_rejected_total"), 1.0);
    // n choices take n places.
    drop(second);
    server.wait_metric("gptoss_queue_depth", 0.0);
    let mut two = chat("Hello", 3);
    two["n"] = json!(2);
    let e = server.post("/v1/chat/completions", &two).error(400);
    assert_eq!(e["param"], "n", "more choices than slots is a bad request, not a busy server");
    drop(first);
    server.wait_metric("gptoss_sequences_running", 0.0);
    assert_eq!(server.post("/v1/chat/completions", &chat("Hello", 3)).status, 200);
}

#[test]
fn batch_mates_do_not_change_a_greedy_reply() {
    let server = Server::start(&["--parallel", "16", "--queue", "0"]);
    let requests: Vec<Value> = (0..16).map(|i| chat(&format!("Request {i}: {}", "more words ".repeat(i * 3)), 8 + i as u32)).collect();
    let alone: Vec<Value> = requests.iter().map(|r| server.post("/v1/chat/completions", r).json()["choices"][0].clone()).collect();
    let together: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> =
            requests.iter().map(|r| s.spawn(|| server.post("/v1/chat/completions", r).json()["choices"][0].clone())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(server.metric("gptoss_decode_rows_total") > server.metric("gptoss_decode_steps_total"), "requests ran side by side");
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "request {i}: alone and with 15 others differ");
    }
}

/// Sends `signal` while a request streams: it finishes whole, then the server exits.
fn drains_on(signal: &str) {
    let mut server = Server::start(&["--parallel", "2"]);
    let mut request = streamed("Hello", 120);
    request["stream_options"] = json!({"include_usage": true});
    let mut stream = EventStream::open(server.port, "/v1/chat/completions", &request);
    stream.next_event().unwrap();
    stream.next_event().unwrap();
    let status = std::process::Command::new("kill").args([signal, &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    // The running request is finished whole.
    let events = stream.collect();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let usage = events[events.len() - 2].json();
    assert_eq!(usage["usage"]["completion_tokens"], 120, "the reply was not cut short");
    let exit = server.wait_exit(Duration::from_secs(20)).expect("the server exits after draining");
    assert!(exit.success(), "{exit:?}");
    assert!(server.log.lock().unwrap().contains("draining"));
    assert!(TcpStream::connect(("127.0.0.1", server.port)).is_err(), "no new connections after the drain");
}

#[test]
fn sigterm_drains_running_requests_then_exits() {
    drains_on("-TERM");
}

#[test]
fn sigint_drains_running_requests_then_exits() {
    drains_on("-INT");
}
