//! Harmony tests against the embedded o200k_harmony tokenizer. Expected renderings are the
//! fixtures of OpenAI's harmony library (`test-data/*.txt`, v0.0.8).

mod parse;
mod render;
mod reply;

use super::HarmonyEncoding;
use gptoss_tokenizer::Tokenizer;
use std::sync::LazyLock;

fn encoding() -> HarmonyEncoding<'static> {
    static TOKENIZER: LazyLock<Tokenizer> = LazyLock::new(|| Tokenizer::o200k_harmony().expect("embedded vocabulary loads"));
    HarmonyEncoding::new(&TOKENIZER).expect("o200k_harmony has the harmony tokens")
}
