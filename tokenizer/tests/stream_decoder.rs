//! The streaming decoder yields exactly the decoded text, never a partial character.

mod common;

use common::o200k_harmony;
use proptest::prelude::*;

fn stream(ids: &[u32]) -> Vec<String> {
    let mut decoder = o200k_harmony().stream_decoder();
    let mut chunks: Vec<String> = ids.iter().map(|&id| decoder.push(id).unwrap()).collect();
    chunks.push(decoder.finish());
    chunks
}

#[test]
fn holds_back_a_character_split_across_tokens() {
    let t = o200k_harmony();
    let smile = "🙂".as_bytes();
    let ids: Vec<u32> = smile.iter().map(|&b| t.ordinary_token_id(&[b]).unwrap()).collect();
    assert_eq!(stream(&ids), ["", "", "", "🙂", ""]);
}

#[test]
fn invalid_bytes_become_replacement_characters() {
    let t = o200k_harmony();
    let byte = |b: u8| t.ordinary_token_id(&[b]).unwrap();
    // A lone continuation byte is invalid at once; a truncated sequence only at the end.
    assert_eq!(stream(&[byte(0x80), byte(b'x')]), ["\u{FFFD}", "x", ""]);
    assert_eq!(stream(&[byte(b'x'), byte(0xF0), byte(0x9F)]), ["x", "", "", "\u{FFFD}"]);
    // A sequence interrupted by ASCII: the incomplete start is replaced, the ASCII kept.
    assert_eq!(stream(&[byte(0xE6), byte(b'y')]), ["", "\u{FFFD}y", ""]);
}

#[test]
fn unknown_id_is_an_error() {
    let mut decoder = o200k_harmony().stream_decoder();
    assert!(decoder.push(300_000).is_err());
    assert!(!decoder.has_pending());
}

proptest! {
    #[test]
    fn chunks_concatenate_to_the_text(text in any::<String>()) {
        let ids = o200k_harmony().encode_with_special_tokens(&text);
        prop_assert_eq!(stream(&ids).concat(), text);
    }

    #[test]
    fn chunks_equal_lossy_decoding_of_any_ids(ids in prop::collection::vec(0u32..201_088, 0..40)) {
        let expected = o200k_harmony().decode_lossy(&ids).unwrap();
        prop_assert_eq!(stream(&ids).concat(), expected);
    }
}
