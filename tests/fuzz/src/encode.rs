//! Any text encodes as ordinary text and decodes back to itself; encoded with special tokens,
//! it decodes to a text that encodes to the same ids (an id with two names, such as 200018 —
//! `<|endofprompt|>` and `<|reserved_200018|>` — decodes to one of them).

use std::sync::LazyLock;

use gptoss_tokenizer::Tokenizer;

static TOKENIZER: LazyLock<Tokenizer> = LazyLock::new(|| Tokenizer::o200k_harmony().expect("embedded vocabulary loads"));

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let ordinary = TOKENIZER.encode_ordinary(&text);
    assert_eq!(TOKENIZER.decode(&ordinary).ok().as_deref(), Some(&*text));
    let with_specials = TOKENIZER.encode_with_special_tokens(&text);
    let decoded = TOKENIZER.decode(&with_specials).expect("ids of a text decode to a text");
    assert_eq!(TOKENIZER.encode_with_special_tokens(&decoded), with_specials, "{text:?} → {decoded:?}");
}
