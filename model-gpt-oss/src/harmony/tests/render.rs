//! Rendering matches harmony's fixtures token for token.

use super::encoding;
use crate::harmony::{
    DeveloperContent, HarmonyError, JsonValue, Message, ReasoningEffort, RenderOptions, Role, SystemContent, ToolDescription,
};

const KEEP_ANALYSIS: RenderOptions = RenderOptions { drop_earlier_analysis: false };

fn completion(messages: &[Message], options: RenderOptions) -> Vec<u32> {
    encoding().render_for_completion(messages, Role::Assistant, options).unwrap()
}

fn decoded(tokens: &[u32]) -> String {
    encoding().tokenizer().decode(tokens).unwrap()
}

#[test]
fn simple_conversation_token_for_token() {
    let messages = [Message::new(Role::System, SystemContent::default()), Message::new(Role::User, "What is 2 + 2?")];
    let expected = "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n\
        Knowledge cutoff: 2024-06\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. \
        Channel must be included for every message.<|end|><|start|>user<|message|>What is 2 + 2?<|end|>\
        <|start|>assistant";
    let tokens = completion(&messages, RenderOptions::default());
    let tokenizer = encoding().tokenizer();
    assert_eq!(tokens, tokenizer.encode_with_special_tokens(expected));
    assert_eq!(tokens[..2], [200006, 17360]);
    assert_eq!(tokens[tokens.len() - 2..], [200006, 173781]);
}

#[test]
fn reasoning_effort_and_dates() {
    let mut system = SystemContent::default().with_reasoning_effort(ReasoningEffort::High).with_conversation_start_date("2021-01-01");
    system.knowledge_cutoff = Some("2021-01".into());
    system.channel_config.as_mut().unwrap().valid_channels = vec!["analysis".into(), "final".into()];
    let messages = [Message::new(Role::System, system), Message::new(Role::User, "What is 42 * pi?")];
    assert_eq!(
        decoded(&completion(&messages, RenderOptions::default())),
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n\
         Knowledge cutoff: 2021-01\nCurrent date: 2021-01-01\n\nReasoning: high\n\n\
         # Valid channels: analysis, final. Channel must be included for every message.<|end|>\
         <|start|>user<|message|>What is 42 * pi?<|end|><|start|>assistant"
    );
}

#[test]
fn earlier_analysis_is_dropped_once_a_final_answer_exists() {
    let messages = [
        Message::new(Role::User, "What is 2 + 2?"),
        Message::new(Role::Assistant, "User asks: “What is 2 + 2?” Simple arithmetic. Provide answer.").with_channel("analysis"),
        Message::new(Role::Assistant, "2 + 2 equals 4.").with_channel("final"),
        Message::new(Role::User, "What about 9 / 2?"),
    ];
    assert_eq!(
        decoded(&completion(&messages, RenderOptions::default())),
        "<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant<|channel|>final<|message|>\
         2 + 2 equals 4.<|end|><|start|>user<|message|>What about 9 / 2?<|end|><|start|>assistant"
    );
    let kept = decoded(&completion(&messages, KEEP_ANALYSIS));
    assert!(kept.contains("<|channel|>analysis<|message|>User asks"));
}

#[test]
fn analysis_before_a_tool_call_is_kept() {
    let messages = [
        Message::new(Role::User, "What is the weather in SF?"),
        Message::new(Role::Assistant, "User asks: “What is the weather in SF?” We need to use lookup_weather tool.")
            .with_channel("analysis"),
        Message::new(Role::Assistant, "{\"location\": \"San Francisco\"}")
            .with_channel("commentary")
            .with_recipient("functions.lookup_weather")
            .with_content_type("<|constrain|>json"),
        Message::from_tool("functions.lookup_weather", "{\"temperature\": 20, \"description\": \"sunny\"}"),
    ];
    let tokens = completion(&messages, RenderOptions::default());
    assert_eq!(
        decoded(&tokens),
        "<|start|>user<|message|>What is the weather in SF?<|end|><|start|>assistant<|channel|>analysis\
         <|message|>User asks: “What is the weather in SF?” We need to use lookup_weather tool.<|end|>\
         <|start|>assistant to=functions.lookup_weather<|channel|>commentary <|constrain|>json<|message|>\
         {\"location\": \"San Francisco\"}<|call|><|start|>functions.lookup_weather<|message|>\
         {\"temperature\": 20, \"description\": \"sunny\"}<|end|><|start|>assistant"
    );
    // `<|constrain|>` is one special token and a tool call ends in `<|call|>`.
    assert!(tokens.contains(&200003) && tokens.contains(&200012));
}

#[test]
fn training_rendering_ends_a_final_answer_with_return() {
    let messages = [Message::new(Role::User, "hi"), Message::new(Role::Assistant, "hello").with_channel("final")];
    let tokens = encoding().render_for_training(&messages, RenderOptions::default()).unwrap();
    assert_eq!(tokens.last(), Some(&200002));
    let history = encoding().render_conversation(&messages, RenderOptions::default()).unwrap();
    assert_eq!(history.last(), Some(&200007));
    assert_eq!(encoding().stop_tokens_for_assistant_actions(), [200002, 200012]);
}

#[test]
fn misplaced_content_and_nameless_tools_are_errors() {
    let misplaced = [Message::new(Role::User, SystemContent::default())];
    assert!(matches!(encoding().render_conversation(&misplaced, RenderOptions::default()), Err(HarmonyError::MisplacedContent { .. })));
    let nameless = [Message::new(Role::Tool, "output")];
    assert!(matches!(encoding().render_conversation(&nameless, RenderOptions::default()), Err(HarmonyError::ToolWithoutName)));
}

#[test]
fn function_tools_render_as_typescript() {
    let schema = |text: &str| Some(JsonValue::parse(text).unwrap());
    let developer = DeveloperContent::default()
        .with_instructions("Always respond in riddles")
        .with_function_tools(vec![
            ToolDescription {
                name: "get_location".into(),
                description: "Gets the location of the user.".into(),
                parameters: None,
            },
            ToolDescription {
                name: "get_current_weather".into(),
                description: "Gets the current weather in the provided location.".into(),
                parameters: schema(
                    r#"{"type": "object", "properties": {
                        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                        "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
                        "required": ["location"]}"#,
                ),
            },
            ToolDescription {
                name: "get_multiple_weathers".into(),
                description: "Gets the current weather in the provided list of locations.".into(),
                parameters: schema(
                    r#"{"type": "object", "properties": {
                        "locations": {"type": "array", "items": {"type": "string"},
                            "description": "List of city and state, e.g. [\"San Francisco, CA\", \"New York, NY\"]"},
                        "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
                        "required": ["locations"]}"#,
                ),
            },
            ToolDescription {
                name: "kitchensink".into(),
                description: "A function with various complex schemas.".into(),
                parameters: schema(
                    r#"{"description": "params object", "type": "object", "properties": {
                        "string": {"type": "string", "title": "STRING", "description": "A string", "examples": ["hello", "world"]},
                        "string_nullable": {"type": "string", "nullable": true, "description": "A nullable string", "default": "the default"},
                        "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
                        "oneof_string_or_number": {"oneOf": [
                            {"type": "string", "default": "default_string_in_oneof"},
                            {"type": "number", "description": "numbers can happen too"}],
                            "description": "a oneof", "default": 20}}}"#,
                ),
            },
        ]);
    let messages = [
        Message::new(
            Role::System,
            SystemContent::default().with_reasoning_effort(ReasoningEffort::High).with_conversation_start_date("2025-06-28"),
        ),
        Message::new(Role::Developer, developer),
        Message::new(Role::User, "What is the weather like in SF?"),
    ];
    let expected = r#"<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Current date: 2025-06-28

Reasoning: high

# Valid channels: analysis, commentary, final. Channel must be included for every message.
Calls to these tools must go to the commentary channel: 'functions'.<|end|><|start|>developer<|message|># Instructions

Always respond in riddles

# Tools

## functions

namespace functions {

// Gets the location of the user.
type get_location = () => any;

// Gets the current weather in the provided location.
type get_current_weather = (_: {
// The city and state, e.g. San Francisco, CA
location: string,
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

// Gets the current weather in the provided list of locations.
type get_multiple_weathers = (_: {
// List of city and state, e.g. ["San Francisco, CA", "New York, NY"]
locations: string[],
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

// A function with various complex schemas.
type kitchensink = (_: // params object
{
// STRING
//
// A string
// Examples:
// - "hello"
// - "world"
string?: string,
// A nullable string
string_nullable?: string | null, // default: "the default"
string_enum?: "a" | "b" | "c",
// a oneof
// default: 20
oneof_string_or_number?:
 | string // default: "default_string_in_oneof"
 | number // numbers can happen too
,
}) => any;

} // namespace functions<|end|><|start|>user<|message|>What is the weather like in SF?<|end|><|start|>assistant"#;
    assert_eq!(decoded(&completion(&messages, RenderOptions::default())), expected);
}
