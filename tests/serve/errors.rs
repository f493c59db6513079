//! Bad requests: each a 400 (401, 404) with an OpenAI error object, and the server carries on.

use serde_json::json;

use crate::client::{Server, chat, request};
use crate::weather_tool;

/// After a bad request the server still answers a good one.
fn still_serves(server: &Server) {
    assert_eq!(server.post("/v1/chat/completions", &chat("Hi", 2)).status, 200);
}

#[test]
fn malformed_json_is_a_400() {
    let server = Server::start(&[]);
    for body in [&b"{\"messages\": [{\"role\": \"user\""[..], b"not json", b"{\"messages\": []} trailing", b""] {
        let e = server.post_raw("/v1/chat/completions", body).error(400);
        assert_eq!(e["code"], "invalid_json", "{e}");
        assert!(e["message"].as_str().unwrap().contains("not valid JSON"), "{e}");
    }
    server.post_raw("/v1/responses", b"{").error(400);
    server.post_raw("/v1/completions", b"[1,").error(400);
    still_serves(&server);
}

#[test]
fn wrong_types_name_the_field() {
    let server = Server::start(&[]);
    let cases = [
        (json!({"messages": "hello"}), "messages"),
        (json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}), "temperature"),
        (json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}), "max_tokens"),
        (json!({"messages": [{"role": "user", "content": 42}]}), "messages[0].content"),
        (json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}), "messages[0].content[0].type"),
        (json!({"messages": [{"role": "user", "content": "x"}], "stop": [1]}), "stop[0]"),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a b"}}]}),
            "tools[0].name",
        ),
        (json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3}), "temperature"),
        (json!({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"}), "reasoning_effort"),
        (json!({"messages": [{"role": "user", "content": "x"}], "n": 9}), "n"),
    ];
    for (body, param) in cases {
        let e = server.post("/v1/chat/completions", &body).error(400);
        assert_eq!(e["param"], param, "{body} → {e}");
        assert!(e["message"].as_str().unwrap().starts_with(param), "{e}");
    }
    let e = server.post("/v1/completions", &json!({"prompt": {"a": 1}})).error(400);
    assert_eq!(e["param"], "prompt");
    let e = server.post("/v1/responses", &json!({"input": [{"role": "user", "content": 7}]})).error(400);
    assert_eq!(e["param"], "input[0].content");
    still_serves(&server);
}

#[test]
fn unknown_roles_are_a_400() {
    let server = Server::start(&[]);
    let body = json!({"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]});
    let e = server.post("/v1/chat/completions", &body).error(400);
    assert_eq!(e["param"], "messages[1].role");
    assert!(e["message"].as_str().unwrap().contains("unknown role 'robot'"), "{e}");
    let e = server.post("/v1/responses", &json!({"input": [{"role": "robot", "content": "y"}]})).error(400);
    assert_eq!(e["param"], "input[0].role");
    still_serves(&server);
}

#[test]
fn a_tool_call_to_an_unknown_function_is_a_400() {
    let server = Server::start(&[]);
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "launch_rocket", "arguments": "{}"}});
    let body = json!({
        "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "done"}],
        "tools": [weather_tool()],
    });
    let e = server.post("/v1/chat/completions", &body).error(400);
    assert_eq!(e["param"], "messages[1].tool_calls[0].function.name");
    assert!(e["message"].as_str().unwrap().contains("launch_rocket"), "{e}");
    // A named tool_choice of an unknown function; a tool result answering no call.
    let body = json!({"messages": [{"role": "user", "content": "x"}], "tools": [weather_tool()],
                      "tool_choice": {"type": "function", "function": {"name": "launch_rocket"}}});
    assert_eq!(server.post("/v1/chat/completions", &body).error(400)["param"], "tool_choice");
    let body = json!({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}],
                      "tools": [weather_tool()]});
    assert_eq!(server.post("/v1/chat/completions", &body).error(400)["param"], "messages[1].tool_call_id");
    let body = json!({"input": [{"type": "function_call", "call_id": "c", "name": "launch_rocket", "arguments": "{}"}],
                      "tools": [{"type": "function", "name": "get_weather"}]});
    assert_eq!(server.post("/v1/responses", &body).error(400)["param"], "input[0].name");
    still_serves(&server);
}

#[test]
fn a_body_over_the_limit_is_a_400() {
    let server = Server::start(&["--max-body-bytes", "65536"]);
    let big = chat(&"a".repeat(100_000), 2).to_string();
    let e = server.post_raw("/v1/chat/completions", big.as_bytes()).error(400);
    assert_eq!(e["code"], "body_too_large");
    assert!(e["message"].as_str().unwrap().contains("65536 bytes"), "{e}");
    // Just under the limit is fine (the prompt still fits the context: 1 token per 8 'a's).
    let fits = chat(&"a ".repeat(200), 2).to_string();
    assert!(fits.len() < 65536);
    assert_eq!(server.post_raw("/v1/chat/completions", fits.as_bytes()).status, 200);
    still_serves(&server);
}

#[test]
fn a_prompt_plus_max_tokens_beyond_the_context_is_a_400_naming_both() {
    let server = Server::start(&[]);
    let prompt = server.post("/tokenize", &chat("Hello", 1)).json()["count"].as_u64().unwrap();
    let e = server.post("/v1/chat/completions", &chat("Hello", 1000)).error(400);
    assert_eq!(e["code"], "context_length_exceeded");
    let message = e["message"].as_str().unwrap();
    for part in [format!("{prompt} tokens"), "max_tokens 1000".to_owned(), "1024".to_owned()] {
        assert!(message.contains(&part), "{part:?} not in {message:?}");
    }
    // Exactly full is accepted.
    let exact = server.post("/v1/completions", &json!({"prompt": vec![1; 1020], "max_tokens": 4, "temperature": 0}));
    assert_eq!(exact.status, 200, "{}", exact.text());
    let e = server.post("/v1/completions", &json!({"prompt": vec![1; 1030], "max_tokens": 1})).error(400);
    assert!(e["message"].as_str().unwrap().contains("1030"), "{e}");
    let e = server.post("/v1/completions", &json!({"prompt": [201088], "max_tokens": 1})).error(400);
    assert!(e["message"].as_str().unwrap().contains("201088"), "{e}");
    still_serves(&server);
}

#[test]
fn previous_response_id_is_refused_clearly() {
    let server = Server::start(&[]);
    let e = server.post("/v1/responses", &json!({"input": "hi", "previous_response_id": "resp_123"})).error(400);
    assert_eq!(e["param"], "previous_response_id");
    assert!(e["message"].as_str().unwrap().contains("whole conversation"), "{e}");
}

#[test]
fn the_api_key_is_required_when_set() {
    let server = Server::start(&["--api-key", "sekret-key"]);
    let body = chat("Hi", 2).to_string();
    let post = |headers: &[(&str, &str)]| request(server.port, "POST", "/v1/chat/completions", headers, body.as_bytes());
    let e = post(&[]).error(401);
    assert_eq!(e["code"], "invalid_api_key");
    post(&[("Authorization", "Bearer sekret-kex")]).error(401);
    post(&[("Authorization", "Bearer sekret-key-and-more")]).error(401);
    post(&[("Authorization", "sekret-key")]).error(401);
    assert_eq!(post(&[("Authorization", "Bearer sekret-key")]).status, 200);
    request(server.port, "GET", "/v1/models", &[], b"").error(401);
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/metrics").status, 200);
}

#[test]
fn unknown_paths_are_a_404_object() {
    let server = Server::start(&[]);
    let e = server.get("/v1/embeddings").error(404);
    assert!(e["message"].as_str().unwrap().contains("/v1/embeddings"));
}
