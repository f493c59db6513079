//! `gptoss serve` end to end: the server is started on 127.0.0.1 (synthetic:tiny) by each test
//! and spoken to over HTTP. `python.rs` runs the official `openai` and `openai-harmony` Python
//! packages against it when `GPTOSS_TEST_PYTHON` names an interpreter that has them.

mod api;
mod client;
mod errors;
mod load;
mod python;
mod slots;

use serde_json::{Value, json};

/// The test hook's replies (see src/serve/script.rs).
fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve/script.json")
}

/// A function tool, as Chat Completions takes it.
fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city's name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                },
                "required": ["city"],
            },
        },
    })
}
