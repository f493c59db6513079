//! Any stream of token ids parses into messages or fails with an error. Ids are drawn mostly
//! from the harmony formatting tokens and short words, so that headers and contents form.

use std::sync::LazyLock;

use gptoss_model_gpt_oss::harmony::{HarmonyEncoding, Role, StreamParser};
use gptoss_tokenizer::Tokenizer;

static TOKENIZER: LazyLock<Tokenizer> = LazyLock::new(|| Tokenizer::o200k_harmony().expect("embedded vocabulary loads"));

/// <|start|> <|message|> <|end|> <|return|> <|call|> <|channel|> <|constrain|>, "assistant",
/// "user", " to", "=", "functions", ".", "analysis", "final", " ", "json", "\xF0" (a partial
/// character).
const INTERESTING: [u32; 18] =
    [200006, 200008, 200007, 200002, 200012, 200005, 200003, 173781, 1428, 316, 28, 44580, 13, 35644, 17196, 220, 4108, 172];

pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let encoding = HarmonyEncoding::new(&TOKENIZER).expect("harmony tokens exist");
    let role = (first & 1 == 1).then_some(Role::Assistant);
    let mut parser = StreamParser::new(encoding, role);
    for pair in rest.chunks(2) {
        let token = match pair {
            [selector, index] if selector & 0x80 == 0 => INTERESTING[usize::from(*index) % INTERESTING.len()],
            [selector, index] => u32::from_le_bytes([*index, *selector, 0, 0]) * 7 % 201_100,
            [index] => INTERESTING[usize::from(*index) % INTERESTING.len()],
            _ => continue,
        };
        if parser.push(token).is_err() {
            return;
        }
    }
    let _ = parser.finish();
}
