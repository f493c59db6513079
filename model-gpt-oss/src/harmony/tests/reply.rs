//! Replies as an API shows them: reasoning, content and function calls, streamed and whole,
//! and ids that are not harmony given back verbatim.

use super::encoding;
use crate::harmony::{Message, ReplyEvent, ReplyItem, ReplyParser, ReplyPart, Role};

fn ids(text: &str) -> Vec<u32> {
    encoding().tokenizer().encode_with_special_tokens(text)
}

/// Every event of `text`'s ids, then the finished items.
fn run(text: &str) -> (Vec<ReplyEvent>, Vec<ReplyItem>) {
    let mut reply = ReplyParser::new(encoding());
    let mut events: Vec<ReplyEvent> = ids(text).into_iter().flat_map(|id| reply.push(id)).collect();
    events.extend(reply.finish());
    (events, reply.items().to_vec())
}

/// The deltas between each `Started` and `Ended`, joined, must equal the ended text.
fn check_deltas(events: &[ReplyEvent]) {
    let mut open: Option<String> = None;
    for event in events {
        match event {
            ReplyEvent::Started(_) => open = Some(String::new()),
            ReplyEvent::Delta(d) => open.as_mut().expect("a delta inside a message").push_str(d),
            ReplyEvent::Ended { text, .. } => assert_eq!(&open.take().expect("an end after a start"), text),
        }
    }
    assert!(open.is_none(), "a message left open");
}

fn item(part: ReplyPart, text: &str) -> ReplyItem {
    ReplyItem { part, text: text.to_owned() }
}

#[test]
fn reasoning_then_a_final_answer() {
    let (events, items) = run("<|channel|>analysis<|message|>Think 🙂.<|end|><|start|>assistant<|channel|>final<|message|>Four.<|return|>");
    check_deltas(&events);
    assert_eq!(items, [item(ReplyPart::Reasoning, "Think 🙂."), item(ReplyPart::Content, "Four.")]);
    assert_eq!(events[0], ReplyEvent::Started(ReplyPart::Reasoning));
}

#[test]
fn a_function_call_on_the_commentary_channel() {
    let (events, items) = run("<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary \
         to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>");
    check_deltas(&events);
    let call = ReplyPart::Call { recipient: "functions.get_weather".into() };
    assert_eq!(call.function_name(), Some("get_weather"));
    assert_eq!(items[1], item(call, "{\"city\":\"Paris\"}"));
    // The recipient before the channel, as the model also writes it.
    let (_, items) = run(" to=functions.f<|channel|>commentary json<|message|>{}<|call|>");
    assert_eq!(items[0].part.function_name(), Some("f"));
    // A preamble on the commentary channel is content.
    let (_, items) = run("<|channel|>commentary<|message|>Checking.<|end|>");
    assert_eq!(items, [item(ReplyPart::Content, "Checking.")]);
}

#[test]
fn ids_that_are_not_harmony_come_back_verbatim() {
    // Plain text where a header should be: endless header, given back once it is too long.
    let text = "word ".repeat(200);
    let (events, items) = run(&text);
    check_deltas(&events);
    assert_eq!(items, [item(ReplyPart::Content, &text)]);
    // Short and cut off inside the header.
    let (events, items) = run("hello there");
    check_deltas(&events);
    assert_eq!(items, [item(ReplyPart::Content, "hello there")]);
    // A message, then something other than <|start|>.
    let (events, items) = run("<|channel|>final<|message|>Hi<|end|>oops <|message|>");
    check_deltas(&events);
    assert_eq!(items, [item(ReplyPart::Content, "Hi"), item(ReplyPart::Content, "oops <|message|>")]);
    // A malformed header.
    let (_, items) = run("<|channel|>final to=x y z<|message|>text");
    assert_eq!(items, [item(ReplyPart::Content, "<|channel|>final to=x y z<|message|>text")]);
}

#[test]
fn a_message_cut_short_ends_with_what_it_has() {
    let mut reply = ReplyParser::new(encoding());
    let mut events = Vec::new();
    for id in ids("<|channel|>final<|message|>caf") {
        events.extend(reply.push(id));
    }
    // Half of "é": held back until the end, then U+FFFD.
    let e_acute = encoding().tokenizer().encode_ordinary("é");
    let bytes: Vec<u32> = (0..=255u8).filter_map(|b| encoding().tokenizer().ordinary_token_id(&[b])).collect();
    assert!(!e_acute.is_empty() && bytes.len() == 256);
    events.extend(reply.push(bytes[0xC3]));
    events.extend(reply.finish());
    check_deltas(&events);
    assert_eq!(reply.items(), [item(ReplyPart::Content, "caf\u{FFFD}")]);
}

#[test]
fn function_call_messages_render_as_the_model_writes_them() {
    let call = Message::function_call("get_weather", "{\"city\":\"Paris\"}");
    assert_eq!(call.called_function(), Some("get_weather"));
    let tokens = encoding().render_conversation(&[call], Default::default()).unwrap();
    assert_eq!(
        encoding().tokenizer().decode(&tokens).unwrap(),
        "<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>"
    );
    let output = Message::function_output("get_weather", "sunny");
    assert_eq!(output.called_function(), None);
    assert_eq!(output.author.role, Role::Tool);
    let tokens = encoding().render_conversation(&[output], Default::default()).unwrap();
    assert_eq!(
        encoding().tokenizer().decode(&tokens).unwrap(),
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny<|end|>"
    );
}
