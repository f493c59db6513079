//! Encoding and decoding with the embedded o200k_harmony: known ids, round trips, lookups,
//! errors, and the inputs that are quadratic for naive BPE.

mod common;

use common::o200k_harmony;
use gptoss_tokenizer::TokenizerError;
use proptest::prelude::*;

#[test]
fn known_ids() {
    let t = o200k_harmony();
    assert_eq!(t.encode_ordinary("assistant"), [173781]);
    assert_eq!(t.encode_ordinary("analysis"), [35644]);
    assert_eq!(t.encode_ordinary("final"), [17196]);
    assert_eq!(t.encode_with_special_tokens("<|start|>assistant"), [200006, 173781]);
    // As ordinary text, a special token's name is just characters.
    assert!(t.encode_ordinary("<|start|>").len() > 1);
    assert_eq!(t.special_token_id("<|call|>"), Some(200012));
    assert_eq!(t.special_token_id("<|endofprompt|>"), Some(200018));
    assert_eq!(t.token_id("<|return|>"), Some(200002));
    assert_eq!(t.token_id("assistant"), Some(173781));
    assert_eq!(t.ordinary_token_id(b" the"), Some(290));
    assert!(t.is_special(200007) && !t.is_special(290));
    assert_eq!(t.token_bytes(200007).unwrap(), b"<|end|>");
}

#[test]
fn unknown_id_is_an_error_naming_it() {
    let err = o200k_harmony().decode(&[1, 201_088]).unwrap_err();
    assert!(matches!(err, TokenizerError::UnknownTokenId(201_088)));
    assert!(err.to_string().contains("201088"));
}

#[test]
fn invalid_utf8_is_reported_by_decode_and_replaced_by_decode_lossy() {
    let t = o200k_harmony();
    // "é" is two bytes; its first byte alone is an ordinary token.
    let first_byte = t.ordinary_token_id(&[0xC3]).unwrap();
    let ids = [t.ordinary_token_id(b"a").unwrap(), first_byte];
    assert!(matches!(t.decode(&ids), Err(TokenizerError::InvalidUtf8 { offset: 1 })));
    assert_eq!(t.decode_lossy(&ids).unwrap(), "a\u{FFFD}");
}

#[test]
fn pathological_inputs_finish_and_round_trip() {
    let t = o200k_harmony();
    for text in ["-".repeat(1 << 20), "日".repeat((1 << 20) / 3), " ".repeat(1 << 20), "\u{301}".repeat((1 << 20) / 2), "a".repeat(1 << 20)]
    {
        let ids = t.encode_ordinary(&text);
        assert!(ids.len() < text.len());
        assert_eq!(t.decode(&ids).unwrap(), text);
    }
}

proptest! {
    #[test]
    fn decode_inverts_encode(text in any::<String>()) {
        let t = o200k_harmony();
        prop_assert_eq!(t.decode(&t.encode_ordinary(&text)).unwrap(), text.clone());
        prop_assert_eq!(t.decode(&t.encode_with_special_tokens(&text)).unwrap(), text);
    }
}
