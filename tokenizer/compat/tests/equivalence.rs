//! gptoss-tokenizer against tiktoken-rs's o200k_harmony and fancy-regex's o200k pattern: equal
//! pieces and ids on the corpus, hand-made corner cases and random strings, and exact
//! round trips.

use gptoss_tokenizer::{O200K_PATTERN, pretokenize};
use gptoss_tokenizer_compat::reference::{CORPUS, ours};
use gptoss_tokenizer_compat::synthetic_text::corner_cases;
use proptest::prelude::*;
use std::sync::LazyLock;
use tiktoken_rs::CoreBPE;

fn tiktoken() -> &'static CoreBPE {
    static TIKTOKEN: LazyLock<CoreBPE> = LazyLock::new(|| match tiktoken_rs::o200k_harmony() {
        Ok(bpe) => bpe,
        Err(e) => panic!("tiktoken-rs o200k_harmony does not load: {e}"),
    });
    &TIKTOKEN
}

fn regex_pieces(text: &str) -> Vec<&str> {
    static REGEX: LazyLock<fancy_regex::Regex> = LazyLock::new(|| fancy_regex::Regex::new(O200K_PATTERN).expect("o200k pattern compiles"));
    REGEX.find_iter(text).map(|m| m.expect("regex match").as_str()).collect()
}

/// Asserts equal pieces, equal ids both ways, and exact round trips.
fn check(text: &str) {
    let ours_pieces: Vec<&str> = pretokenize(text).collect();
    assert_eq!(ours_pieces, regex_pieces(text), "pieces of {text:?}");
    let ids = ours().encode_ordinary(text);
    assert_eq!(ids, tiktoken().encode_ordinary(text), "ordinary ids of {text:?}");
    assert_eq!(ours().decode(&ids).unwrap(), text);
    let special = ours().encode_with_special_tokens(text);
    // tiktoken-rs leaves out o200k_base's `<|endofprompt|>`, which openai/tiktoken's
    // o200k_harmony keeps as a second name of 200018.
    let aliased = text.replace("<|endofprompt|>", "<|reserved_200018|>");
    assert_eq!(special, tiktoken().encode_with_special_tokens(&aliased), "ids with special tokens of {text:?}");
    assert_eq!(ours().decode(&special).unwrap(), aliased);
}

#[test]
fn corpus_whole() {
    check(CORPUS);
}

#[test]
fn corpus_line_by_line() {
    for line in CORPUS.lines() {
        check(line);
    }
    // Windows of the text that start and end mid-line.
    let chars: Vec<(usize, char)> = CORPUS.char_indices().collect();
    for window in chars.chunks(997) {
        let start = window[0].0;
        let end = window.last().map_or(start, |&(i, c)| i + c.len_utf8());
        check(&CORPUS[start..end]);
    }
}

#[test]
fn corner_cases_match() {
    for text in corner_cases() {
        check(&text);
    }
}

#[test]
fn special_tokens_are_split_out_when_allowed() {
    let text = "<|start|>user<|message|>hi <|endofprompt|> <|reserved_200018|><|call|><|start|>";
    check(text);
    let ids = ours().encode_with_special_tokens("<|start|>assistant");
    assert_eq!(ids, [200006, 173781]);
    assert_eq!(ours().decode(&[200018]).unwrap(), "<|reserved_200018|>");
    for id in 199_998..201_088 {
        assert_eq!(ours().decode_bytes(&[id]).unwrap(), tiktoken().decode_bytes(&[id]).unwrap(), "special id {id}");
    }
    assert!(ours().decode_bytes(&[201_088]).is_err());
}

/// Characters the pre-tokenizer treats differently, to make collisions between classes likely.
fn tricky_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        ' ', ' ', '\n', '\r', '\t', '\u{a0}', '\u{3000}', 'a', 'Z', 'ǅ', 'ʰ', '日', 'ſ', 's', 'S', 't', 'l', 'L', 'e', 'r', 'v', 'm', 'D',
        '\'', '\u{301}', '\u{93f}', '1', '٣', '½', '!', '/', '-', '🙂', '\u{200d}', '<', '|', '>', 'é', 'Я', 'ا',
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_match(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn tricky_strings_match(chars in prop::collection::vec(tricky_char(), 0..64)) {
        let text: String = chars.into_iter().collect();
        check(&text);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_utf8_match(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&String::from_utf8_lossy(&bytes));
    }
}
