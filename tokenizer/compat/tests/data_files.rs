//! The library's generated data files are what their generators produce today.

use gptoss_tokenizer_compat::char_class_table;
use gptoss_tokenizer_compat::reference::ours;

#[test]
fn char_class_table_matches_regex_syntax() {
    let checked_in = include_str!("../../src/char_class_table.rs");
    assert!(
        checked_in == char_class_table::generate(),
        "tokenizer/src/char_class_table.rs is stale: run \
         `cargo run -p gptoss-tokenizer-compat --example generate_char_class_table`"
    );
}

#[test]
fn embedded_vocabulary_equals_tiktoken_rs() {
    let tiktoken = tiktoken_rs::o200k_harmony().expect("tiktoken-rs loads");
    let ours = ours();
    assert_eq!(ours.ordinary_token_count(), 199_998);
    assert_eq!(ours.vocab_size(), 201_088);
    for id in 0..ours.vocab_size() as u32 {
        assert_eq!(ours.token_bytes(id).ok(), tiktoken.decode_bytes(&[id]).ok().as_deref(), "token {id}");
    }
}

#[test]
fn tiktoken_ranks_file_loads_to_the_embedded_vocabulary() {
    use base64::Engine as _;
    let ours = ours();
    let mut ranks = String::new();
    for id in 0..ours.ordinary_token_count() as u32 {
        let token = ours.token_bytes(id).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(token);
        ranks.push_str(&format!("{encoded} {id}\n"));
    }
    let loaded = gptoss_tokenizer::Tokenizer::from_tiktoken(ranks.as_bytes(), gptoss_tokenizer::harmony_special_tokens()).unwrap();
    assert_eq!(loaded.vocab_size(), ours.vocab_size());
    for id in 0..ours.vocab_size() as u32 {
        assert_eq!(loaded.token_bytes(id).unwrap(), ours.token_bytes(id).unwrap());
    }
}
