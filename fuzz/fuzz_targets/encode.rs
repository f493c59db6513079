//! Any text encodes, with and without special tokens, and decodes back to itself.

#![no_main]

use gptoss_tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static TOKENIZER: LazyLock<Tokenizer> =
    LazyLock::new(|| Tokenizer::o200k_harmony().expect("embedded vocabulary loads"));

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ordinary = TOKENIZER.encode_ordinary(&text);
    assert_eq!(TOKENIZER.decode(&ordinary).ok().as_deref(), Some(&*text));
    let with_specials = TOKENIZER.encode_with_special_tokens(&text);
    assert_eq!(TOKENIZER.decode(&with_specials).ok().as_deref(), Some(&*text));
});
