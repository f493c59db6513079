//! The streaming parser: harmony's completion fixtures, and round trips of rendered
//! conversations.

use super::encoding;
use crate::harmony::{HarmonyError, MAX_HEADER_TOKENS, Message, RenderOptions, Role, StreamParser, SystemContent};

fn parse(tokens: &[u32], role: Option<Role>) -> Vec<Message> {
    let mut parser = StreamParser::new(encoding(), role);
    for &token in tokens {
        parser.push(token).unwrap();
    }
    parser.finish().unwrap()
}

#[test]
fn tool_call_completion_fixture() {
    let response = [
        200005, 35644, 200008, 1844, 31064, 25, 392, 4827, 382, 290, 11122, 306, 40510, 16842, 1416, 1309, 316, 1199, 37342, 170154, 4584,
        13, 200007, 200006, 173781, 200005, 35644, 316, 28, 29712, 170154, 3490, 200008, 10848, 7693, 1243, 392, 173844, 18583,
    ];
    let expected = vec![
        Message::new(Role::Assistant, "User asks: \"What is the weather in Tokyo?\" We need to use lookup_weather tool.")
            .with_channel("analysis"),
        Message::new(Role::Assistant, "{\"location\": \"Tokyo\"}")
            .with_channel("analysis")
            .with_recipient("lookup_weather")
            .with_content_type("code"),
    ];
    assert_eq!(parse(&response, Some(Role::Assistant)), expected);
}

#[test]
fn rendered_conversations_round_trip() {
    let conversations = vec![
        vec![
            Message::new(Role::User, "What is 2 + 2?"),
            Message::new(Role::Assistant, "Simple arithmetic.").with_channel("analysis"),
            Message::new(Role::Assistant, "2 + 2 = 4 🙂, naïve café, 日本語").with_channel("final"),
        ],
        vec![
            Message::new(Role::Developer, "# Instructions\n\nBe terse."),
            Message::new(Role::User, "Weather in Paris? <|end|> is just text here"),
            Message::new(Role::Assistant, "{\"latitude\":48.8566}")
                .with_channel("commentary")
                .with_recipient("functions.get_weather")
                .with_content_type("<|constrain|>json"),
            Message::from_tool("functions.get_weather", "{\"sunny\": true}").with_recipient("assistant").with_channel("commentary"),
            Message::new(Role::Assistant, "").with_channel("final"),
        ],
    ];
    for messages in conversations {
        let options = RenderOptions { drop_earlier_analysis: false };
        let tokens = encoding().render_conversation(&messages, options).unwrap();
        assert_eq!(parse(&tokens, None), messages);
    }
}

#[test]
fn system_message_text_survives_the_round_trip() {
    let messages = [Message::new(Role::System, SystemContent::default())];
    let tokens = encoding().render_conversation(&messages, RenderOptions::default()).unwrap();
    let parsed = parse(&tokens, None);
    assert_eq!(parsed[0].author.role, Role::System);
    assert!(parsed[0].text().starts_with("You are ChatGPT"));
}

#[test]
fn content_streams_without_splitting_characters() {
    let tokenizer = encoding().tokenizer();
    let mut parser = StreamParser::new(encoding(), None);
    for token in tokenizer.encode_with_special_tokens("<|start|>assistant<|message|>") {
        parser.push(token).unwrap();
    }
    let heart = "💖".as_bytes();
    let bytes: Vec<u32> = heart.iter().map(|&b| tokenizer.ordinary_token_id(&[b]).unwrap()).collect();
    for &token in &bytes[..3] {
        parser.push(token).unwrap();
        assert_eq!(parser.last_content_delta(), "");
    }
    parser.push(bytes[3]).unwrap();
    assert_eq!(parser.last_content_delta(), "💖");
    assert_eq!(parser.current_content(), "💖");
    assert_eq!(parser.current_header().unwrap().author.role, Role::Assistant);
    // An incomplete character at the end of a message does not leak into the next one.
    parser.push(bytes[0]).unwrap();
    for token in tokenizer.encode_with_special_tokens("<|end|><|start|>assistant<|message|>Hi<|end|>") {
        parser.push(token).unwrap();
    }
    let messages = parser.finish().unwrap();
    assert_eq!(messages[0].text(), "💖\u{FFFD}");
    assert_eq!(messages[1].text(), "Hi");
}

#[test]
fn malformed_streams_are_errors() {
    let tokenizer = encoding().tokenizer();
    let mut parser = StreamParser::new(encoding(), None);
    assert!(matches!(parser.push(35644), Err(HarmonyError::ExpectedStart(35644))));

    let mut parser = StreamParser::new(encoding(), Some(Role::Assistant));
    for token in tokenizer.encode_with_special_tokens("<|channel|>analysis") {
        parser.push(token).unwrap();
    }
    assert!(matches!(parser.finish(), Err(HarmonyError::EndInsideHeader)));

    let mut parser = StreamParser::new(encoding(), None);
    let mut result = Ok(());
    for token in tokenizer.encode_with_special_tokens("<|start|>assistant to=x y z<|message|>") {
        result = result.and(parser.push(token));
    }
    assert!(matches!(result, Err(HarmonyError::MalformedHeader { .. })));
}

#[test]
fn endless_headers_are_errors() {
    let mut parser = StreamParser::new(encoding(), Some(Role::Assistant));
    let word = encoding().tokenizer().encode_ordinary(" x")[0];
    for _ in 0..MAX_HEADER_TOKENS {
        parser.push(word).unwrap();
    }
    assert!(matches!(parser.push(word), Err(HarmonyError::HeaderTooLong(MAX_HEADER_TOKENS))));
}
