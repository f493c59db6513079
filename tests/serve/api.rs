//! The endpoints over the wire: shapes, streaming, tool calls, reasoning, and the same engine as
//! the CLI.

use serde_json::{Value, json};

use crate::client::{EventStream, Server, SseEvent, chat};
use crate::{script, weather_tool};

/// Parses a chat stream: every chunk is JSON of the right object, `[DONE]` comes last and once.
/// Returns the chunks.
fn chat_chunks(events: Vec<SseEvent>) -> Vec<Value> {
    let (done, chunks) = events.split_last().expect("events");
    assert_eq!(done.data, "[DONE]");
    chunks
        .iter()
        .map(|e| {
            assert_ne!(e.data, "[DONE]", "[DONE] before the end");
            let c = e.json();
            assert_eq!(c["object"], "chat.completion.chunk", "{c}");
            assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
            c
        })
        .collect()
}

/// The content, reasoning and finish reason a chat stream adds up to.
fn stream_text(chunks: &[Value]) -> (String, String, Option<String>) {
    let (mut content, mut reasoning, mut finish) = (String::new(), String::new(), None);
    for c in chunks {
        for choice in c["choices"].as_array().unwrap() {
            content += choice["delta"]["content"].as_str().unwrap_or("");
            reasoning += choice["delta"]["reasoning_content"].as_str().unwrap_or("");
            if let Some(f) = choice["finish_reason"].as_str() {
                assert!(finish.is_none(), "two finish reasons");
                finish = Some(f.to_owned());
            }
        }
    }
    (content, reasoning, finish)
}

#[test]
fn chat_completion_has_the_openai_shape() {
    let server = Server::start(&[]);
    let r = server.post("/v1/chat/completions", &chat("Hello there", 12));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let body = r.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "synthetic:tiny");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    // A random model writes no harmony: its text comes back verbatim as content.
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert_eq!(choice["finish_reason"], "length");
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 12);
    assert_eq!(usage["total_tokens"], usage["prompt_tokens"].as_u64().unwrap() + 12);
    let tokenized = server.post("/tokenize", &chat("Hello there", 12)).json();
    assert_eq!(usage["prompt_tokens"], tokenized["count"]);
    // Greedy is reproducible.
    let again = server.post("/v1/chat/completions", &chat("Hello there", 12)).json();
    assert_eq!(again["choices"][0]["message"], choice["message"]);
}

#[test]
fn streamed_chat_parses_chunk_by_chunk_and_ends_with_usage_and_done() {
    let server = Server::start(&[]);
    let mut request = chat("Hello there", 16);
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let stream = EventStream::open(server.port, "/v1/chat/completions", &request);
    assert_eq!(stream.status, 200);
    assert!(stream.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("text/event-stream")));
    let chunks = chat_chunks(stream.collect());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let (usage_chunk, chunks) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 16);
    assert!(chunks.iter().all(|c| c["usage"].is_null()), "usage only in the last chunk");
    let (content, _, finish) = stream_text(chunks);
    assert_eq!(finish.as_deref(), Some("length"));
    let whole = server.post("/v1/chat/completions", &chat("Hello there", 16)).json();
    assert_eq!(content, whole["choices"][0]["message"]["content"].as_str().unwrap(), "streamed and whole replies agree");
}

#[test]
fn tool_calls_round_trip_with_reasoning_kept() {
    let server = Server::start(&["--script", script()]);
    let mut request = json!({
        "model": "gpt-oss",
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [weather_tool()],
    });
    let body = server.post("/v1/chat/completions", &request).json();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{body}");
    let message = &choice["message"];
    assert!(message["content"].is_null());
    assert_eq!(message["reasoning_content"], "The user wants the weather; call get_weather.");
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
    assert!(body["usage"]["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap() > 0);

    // The streamed call: a first delta with the id and name, then the arguments in pieces.
    request["stream"] = json!(true);
    let chunks = chat_chunks(EventStream::open(server.port, "/v1/chat/completions", &request).collect());
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"].get("tool_calls")).collect();
    assert_eq!(calls[0][0]["function"]["name"], "get_weather");
    assert!(calls[0][0]["id"].as_str().unwrap().starts_with("call_"));
    let streamed_args: String = calls.iter().map(|c| c[0]["function"]["arguments"].as_str().unwrap()).collect();
    assert_eq!(streamed_args, call["function"]["arguments"].as_str().unwrap());
    assert_eq!(stream_text(&chunks).2.as_deref(), Some("tool_calls"));
    assert_eq!(stream_text(&chunks).1, "The user wants the weather; call get_weather.");

    // Send the call and its result back: the next prompt keeps the analysis before the call,
    // the call and the result in harmony's form, and the scripted answer comes back.
    let mut messages = request["messages"].as_array().unwrap().clone();
    messages.push(message.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 20, \"sky\": \"sunny\"}"}));
    let follow_up = json!({"model": "gpt-oss", "messages": messages, "tools": [weather_tool()]});
    let prompt = server.post("/tokenize", &follow_up).json()["prompt"].as_str().unwrap().to_owned();
    assert!(
        prompt.ends_with(
            "<|start|>assistant<|channel|>analysis<|message|>The user wants the weather; call get_weather.<|end|>\
             <|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>\
             {\"city\": \"Paris\", \"unit\": \"celsius\"}<|call|>\
             <|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\
             {\"temperature\": 20, \"sky\": \"sunny\"}<|end|><|start|>assistant"
        ),
        "{prompt}"
    );
    assert!(prompt.contains("namespace functions {\n\n// Current weather in a city.\ntype get_weather = (_: {"), "{prompt}");
    let answer = server.post("/v1/chat/completions", &follow_up).json();
    assert_eq!(answer["choices"][0]["message"]["content"], "It is sunny and 20 °C in Paris.");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
}

#[test]
fn tool_choice_forces_the_start_of_a_call() {
    let server = Server::start(&[]);
    let request = json!({
        "messages": [{"role": "user", "content": "anything"}],
        "tools": [weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 6,
        "temperature": 0,
    });
    let prompt = server.post("/tokenize", &request).json()["prompt"].as_str().unwrap().to_owned();
    assert!(prompt.ends_with("<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"));
    // Whatever the random model writes is the call's arguments.
    let body = server.post("/v1/chat/completions", &request).json();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{body}");
    assert!(!call["function"]["arguments"].as_str().unwrap().is_empty());
    // `required`: the reply starts as a call of some function; the model names it.
    let mut required = request.clone();
    required["tool_choice"] = json!("required");
    let prompt = server.post("/tokenize", &required).json()["prompt"].as_str().unwrap().to_owned();
    assert!(prompt.ends_with("<|start|>assistant<|channel|>commentary to=functions."), "{prompt}");
    assert_eq!(server.post("/v1/chat/completions", &required).status, 200);
    // `none` leaves the tools out of the prompt.
    let none = json!({"messages": [{"role": "user", "content": "x"}], "tools": [weather_tool()], "tool_choice": "none"});
    assert!(!server.post("/tokenize", &none).json()["prompt"].as_str().unwrap().contains("get_weather"));
}

#[test]
fn reasoning_effort_is_rendered_in_the_system_message() {
    let server = Server::start(&["--script", script()]);
    for effort in ["low", "medium", "high"] {
        let mut request = chat("Think first.", 64);
        request["reasoning_effort"] = json!(effort);
        let prompt = server.post("/tokenize", &request).json()["prompt"].as_str().unwrap().to_owned();
        assert!(prompt.starts_with("<|start|>system<|message|>"), "{prompt}");
        let system = &prompt[..prompt.find("<|end|>").unwrap()];
        assert!(system.contains(&format!("\n\nReasoning: {effort}\n\n")), "{system}");
    }
    let mut request = chat("Think first.", 64);
    request["reasoning_effort"] = json!("high");
    let body = server.post("/v1/chat/completions", &request).json();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "Let me think about this.");
    assert_eq!(message["content"], "Done thinking.");
    // `system` messages are the developer message's instructions.
    let request = json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]});
    let prompt = server.post("/tokenize", &request).json()["prompt"].as_str().unwrap().to_owned();
    assert!(prompt.contains("<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>"), "{prompt}");
}

#[test]
fn stop_strings_and_several_choices() {
    let server = Server::start(&["--script", script(), "--parallel", "3"]);
    let mut request = chat("Count to five.", 64);
    request["stop"] = json!(["STOP"]);
    request["n"] = json!(3);
    let body = server.post("/v1/chat/completions", &request).json();
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"]["content"], "one two three ", "{body}");
        assert_eq!(c["finish_reason"], "stop");
    }
    request["stream"] = json!(true);
    let chunks = chat_chunks(EventStream::open(server.port, "/v1/chat/completions", &request).collect());
    for i in 0..3 {
        let mine: Vec<Value> = chunks.iter().filter(|c| c["choices"][0]["index"] == i).cloned().collect();
        assert_eq!(stream_text(&mine).0, "one two three ");
        assert_eq!(stream_text(&mine).2.as_deref(), Some("stop"));
    }
    // Stopped sequences leave their slots.
    server.wait_metric("gptoss_sequences_running", 0.0);
}

#[test]
fn end_of_text_ends_a_reply_unseen() {
    let server = Server::start(&["--script", script()]);
    let body = server.post("/v1/chat/completions", &chat("Say bye.", 64)).json();
    assert_eq!(body["choices"][0]["message"]["content"], "Bye.", "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    server.wait_metric("gptoss_sequences_running", 0.0);
}

#[test]
fn logprobs_come_with_the_content_tokens() {
    let server = Server::start(&["--script", script()]);
    let mut request = chat("Count to five.", 64);
    request["logprobs"] = json!(true);
    request["top_logprobs"] = json!(3);
    let body = server.post("/v1/chat/completions", &request).json();
    let entries = body["choices"][0]["logprobs"]["content"].as_array().unwrap();
    let text: String = entries.iter().map(|e| e["token"].as_str().unwrap()).collect();
    assert_eq!(text, body["choices"][0]["message"]["content"].as_str().unwrap());
    for e in entries {
        assert!(e["logprob"].as_f64().unwrap() <= 0.0);
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(top[0]["logprob"].as_f64() >= top[2]["logprob"].as_f64());
    }
}

#[test]
fn responses_stream_events_in_order() {
    let server = Server::start(&["--script", script()]);
    let request = json!({
        "model": "gpt-oss",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]}],
        "instructions": "Use the tools.",
        "reasoning": {"effort": "low"},
        "tools": [{"type": "function", "name": "get_weather", "description": "Current weather in a city.",
                   "parameters": weather_tool()["function"]["parameters"]}],
        "stream": true,
    });
    let events = EventStream::open(server.port, "/v1/responses", &request).collect();
    let types: Vec<String> = events.iter().map(|e| e.event.clone().expect("named events")).collect();
    for (i, e) in events.iter().enumerate() {
        let data = e.json();
        assert_eq!(data["type"], types[i], "the event name and its type agree");
        assert_eq!(data["sequence_number"], i, "sequence numbers count up");
    }
    assert_eq!(&types[..2], ["response.created", "response.in_progress"]);
    assert_eq!(types.last().unwrap(), "response.completed");
    let reasoning: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.reasoning_text.delta"))
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasoning, "The user wants the weather; call get_weather.");
    let args: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.function_call_arguments.delta"))
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, "{\"city\": \"Paris\", \"unit\": \"celsius\"}");
    for t in
        ["response.output_item.added", "response.reasoning_text.done", "response.function_call_arguments.done", "response.output_item.done"]
    {
        assert!(types.iter().any(|x| x == t), "no {t} in {types:?}");
    }
    let done = events.last().unwrap().json();
    let output = done["response"]["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["name"], "get_weather");
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(done["response"]["reasoning"]["effort"], "low");
    // Text and reasoning stream as their own items.
    let events = EventStream::open(server.port, "/v1/responses", &json!({"input": "Think first.", "stream": true})).collect();
    let text: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.output_text.delta"))
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Done thinking.");
    let done = events.iter().find(|e| e.event.as_deref() == Some("response.output_text.done")).expect("output_text.done").json();
    assert_eq!(done["text"], "Done thinking.");
    let items = &events.last().unwrap().json()["response"]["output"];
    assert_eq!(items[0]["content"][0]["text"], "Let me think about this.");
    assert_eq!(items[1]["content"][0]["text"], "Done thinking.");
    // The result goes back as a function_call_output item; the answer is a message item.
    let call = &output[1];
    let follow_up = json!({
        "input": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "{\"temperature\": 20}"},
        ],
        "tools": request["tools"],
    });
    let body = server.post("/v1/responses", &follow_up).json();
    let message = body["output"].as_array().unwrap().iter().find(|o| o["type"] == "message").expect("a message item").clone();
    assert_eq!(message["content"][0]["text"], "It is sunny and 20 °C in Paris.");
    assert_eq!(body["usage"]["output_tokens_details"]["reasoning_tokens"].as_u64().map(|n| n > 0), Some(true));
}

#[test]
fn completions_continue_raw_text_as_generate_does() {
    let server = Server::start(&[]);
    let body = server.post("/v1/completions", &json!({"prompt": [1, 2, 3], "max_tokens": 10, "temperature": 0})).json();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let text = body["choices"][0]["text"].as_str().unwrap().to_owned();
    // The same engine as `gptoss generate`: same prompt, same greedy tokens.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gptoss"))
        .args(["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1,2,3", "--max-tokens", "10", "--temperature", "0"])
        .args(["--context", "1024", "--threads", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: Vec<u32> = String::from_utf8(out.stdout).unwrap().trim().split(',').map(|t| t.parse().unwrap()).collect();
    let tokenizer = gptoss_tokenizer::Tokenizer::o200k_harmony().unwrap();
    assert_eq!(text, tokenizer.decode_lossy(&ids).unwrap());
    // Text prompts (special tokens written out are special), echo and legacy logprobs.
    let body = server.post("/v1/completions", &json!({"prompt": "<|start|>user", "max_tokens": 3, "echo": true, "logprobs": 2})).json();
    let choice = &body["choices"][0];
    assert!(choice["text"].as_str().unwrap().starts_with("<|start|>user"));
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(choice["logprobs"]["tokens"].as_array().unwrap().len(), 3);
    assert_eq!(choice["logprobs"]["top_logprobs"][0].as_object().unwrap().len(), 2);
    // Streamed.
    let events = EventStream::open(
        server.port,
        "/v1/completions",
        &json!({"prompt": [1, 2, 3], "max_tokens": 10, "temperature": 0, "stream": true}),
    )
    .collect();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let streamed: String = events[..events.len() - 1].iter().map(|e| e.json()["choices"][0]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(streamed, text);
}

#[test]
fn models_health_and_metrics() {
    let server = Server::start(&["--model-name", "gpt-oss-test"]);
    let models = server.get("/v1/models").json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "gpt-oss-test");
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(server.get("/v1/models/gpt-oss-test").json()["id"], "gpt-oss-test");
    server.get("/v1/models/other").error(404);
    assert_eq!(server.get("/health").json(), json!({"status": "ok"}));
    server.post("/v1/chat/completions", &chat("Hello", 5));
    let metrics = server.get("/metrics");
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    let text = metrics.text();
    for name in [
        "gptoss_generated_tokens_total 5",
        "gptoss_slots 4",
        "gptoss_sequences_running 0",
        "gptoss_queue_depth 0",
        "gptoss_http_requests_total{endpoint=\"chat_completions\",code=\"200\"} 1",
        "gptoss_time_to_first_token_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == name), "no {name:?} in\n{text}");
    }
    for family in ["gptoss_batch_size", "gptoss_generated_tokens_per_second", "gptoss_prompt_tokens_total", "process_resident_memory_bytes"]
    {
        assert!(text.contains(&format!("# TYPE {family} ")), "no {family}");
    }
}

#[test]
fn serve_help_lists_the_options_but_not_the_test_hook() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gptoss")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for option in ["--host", "--port", "--api-key", "--parallel", "--queue", "--max-body-bytes", "--context"] {
        assert!(help.contains(option), "no {option} in\n{help}");
    }
    assert!(!help.contains("--script"), "the test hook shows in --help");
}
