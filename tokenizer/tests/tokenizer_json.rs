//! tokenizer.json: what we write loads back to the same tokenizer, and malformed files are
//! errors, never panics.

mod common;

use common::o200k_harmony;
use gptoss_tokenizer::{O200K_PATTERN, Tokenizer, TokenizerError};

/// A tiny byte-level vocabulary: all 256 bytes, then "ab", "abc", " x".
fn tiny_json(extra_vocab: &str, added: &str, pattern: &str) -> String {
    let mut vocab: Vec<String> = (0..=255u8)
        .map(|b| {
            let spelled = serde_json::Value::from(byte_char(b).to_string());
            format!("{spelled}: {b}")
        })
        .collect();
    vocab.push(r#""ab": 256, "abc": 257, "Ġx": 258"#.to_owned());
    if !extra_vocab.is_empty() {
        vocab.push(extra_vocab.to_owned());
    }
    format!(
        r#"{{"added_tokens": [{added}],
            "pre_tokenizer": {{"type": "Sequence", "pretokenizers": [{{"type": "Split",
                "pattern": {{"Regex": {pattern}}}}}]}},
            "model": {{"type": "BPE", "vocab": {{{}}}, "merges": []}}}}"#,
        vocab.join(", "),
        pattern = serde_json::Value::from(pattern)
    )
}

/// GPT-2's byte-level spelling of one byte.
fn byte_char(b: u8) -> char {
    let printable = |x: u8| matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        char::from(b)
    } else {
        let n = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(256 + n).unwrap()
    }
}

const END: &str = r#"{"id": 300, "content": "<|end|>", "special": true}"#;

#[test]
fn tiny_vocabulary_loads_and_encodes() {
    let t = Tokenizer::from_tokenizer_json(tiny_json("", END, O200K_PATTERN).as_bytes()).unwrap();
    assert_eq!(t.ordinary_token_count(), 259);
    assert_eq!(t.vocab_size(), 301);
    assert_eq!(t.encode_with_special_tokens("abc x<|end|>"), [257, 258, 300]);
    assert_eq!(t.encode_ordinary("abab"), [256, 256]);
    assert_eq!(t.decode(&[257, 258, 300]).unwrap(), "abc x<|end|>");
}

#[test]
fn written_o200k_harmony_loads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let original = o200k_harmony();
    original.write_tokenizer_json(dir.path()).unwrap();
    let loaded = Tokenizer::from_model_dir(dir.path()).unwrap();
    assert_eq!(loaded.vocab_size(), original.vocab_size());
    // One name per id, as gpt-oss's tokenizer.json has it: 200018 keeps only `<|endofprompt|>`.
    let one_per_id: Vec<_> = original.special_tokens().into_iter().filter(|(name, _)| *name != "<|reserved_200018|>").collect();
    assert_eq!(loaded.special_tokens(), one_per_id);
    for id in 0..original.vocab_size() as u32 {
        let want = if id == 200_018 { b"<|endofprompt|>" } else { original.token_bytes(id).unwrap() };
        assert_eq!(loaded.token_bytes(id).unwrap(), want);
    }
    let text = "<|start|>user<|message|>Ünïcödé, 日本語, don't\n\n  stop 12345!<|end|>";
    assert_eq!(loaded.encode_with_special_tokens(text), original.encode_with_special_tokens(text));
    // Merges are written the way Hugging Face's tiktoken converter orders them.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("tokenizer.json")).unwrap()).unwrap();
    let merges = json["model"]["merges"].as_array().unwrap();
    assert_eq!(merges[0], serde_json::json!(["Ġ", "Ġ"]));
    assert_eq!(json["added_tokens"][0]["content"], "<|startoftext|>");
    // Hugging Face's loaders need every added token's id and content to be unique.
    let added = json["added_tokens"].as_array().unwrap();
    let ids: std::collections::HashSet<u64> = added.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    let names: std::collections::HashSet<&str> = added.iter().map(|t| t["content"].as_str().unwrap()).collect();
    assert_eq!((ids.len(), names.len()), (added.len(), added.len()));
    assert_eq!(added.len(), 201_088 - 199_998);
}

#[test]
fn malformed_files_are_errors() {
    type IsExpected = fn(&TokenizerError) -> bool;
    let cases: Vec<(String, IsExpected)> = vec![
        ("not json".into(), |e| matches!(e, TokenizerError::MalformedTokenizerJson(_))),
        (r#"{"model": {"vocab": 3}}"#.into(), |e| matches!(e, TokenizerError::MalformedTokenizerJson(_))),
        (r#"{"model": {"type": "WordPiece", "vocab": {}}}"#.into(), |e| matches!(e, TokenizerError::UnsupportedTokenizerJson(_))),
        (tiny_json("", END, r"\w+"), |e| matches!(e, TokenizerError::UnsupportedTokenizerJson(_))),
        (tiny_json(r#""abcd": 260"#, END, O200K_PATTERN), |e| matches!(e, TokenizerError::OrdinaryIdOutOfRange { id: 260, .. })),
        (tiny_json(r#""abcd": 258"#, END, O200K_PATTERN), |e| matches!(e, TokenizerError::MalformedTokenizerJson(_))),
        (tiny_json(r#""a b": 259"#, END, O200K_PATTERN), |e| matches!(e, TokenizerError::MalformedTokenizerJson(_))),
        (tiny_json(r#""ba": 259, "": 260"#, END, O200K_PATTERN), |e| matches!(e, TokenizerError::EmptyToken(260))),
        (tiny_json(r#""ĠĠ": 259, "ba": 4294967295"#, END, O200K_PATTERN), |e| {
            matches!(e, TokenizerError::OrdinaryIdOutOfRange { id: 4294967295, count: 261, .. })
        }),
        (tiny_json("", r#"{"id": 400, "content": "<|x|>"}, {"id": 401, "content": ""}"#, O200K_PATTERN), |e| {
            matches!(e, TokenizerError::EmptySpecialToken(_))
        }),
        (tiny_json(r#""a\u0000": 259"#, r#"{"id": 7, "content": "<|x|>"}"#, O200K_PATTERN), |e| {
            matches!(e, TokenizerError::MalformedTokenizerJson(_) | TokenizerError::OrdinaryIdOutOfRange { .. })
        }),
    ];
    for (json, expected) in cases {
        match Tokenizer::from_tokenizer_json(json.as_bytes()) {
            Ok(_) => panic!("accepted {json:.200}"),
            Err(e) => assert!(expected(&e), "unexpected error {e} for {json:.200}"),
        }
    }
}

#[test]
fn vocabulary_must_cover_every_byte_and_be_unique() {
    let missing_byte = Tokenizer::from_parts((1..=255u8).map(|b| vec![b]), []);
    assert!(matches!(missing_byte, Err(TokenizerError::MissingByte(0))));
    let duplicate = Tokenizer::from_parts((0..=255u8).map(|b| vec![b]).chain([vec![0]]), []);
    assert!(matches!(duplicate, Err(TokenizerError::DuplicateToken { first: 0, second: 256, .. })));
    let collision = Tokenizer::from_parts((0..=255u8).map(|b| vec![b]), [("<|x|>".into(), 3)]);
    assert!(matches!(collision, Err(TokenizerError::SpecialIdCollision { id: 3, .. })));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = Tokenizer::from_model_dir(std::path::Path::new("/nonexistent/model")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/model/tokenizer.json"));
}

#[test]
fn an_ordinary_id_out_of_range_is_named_with_its_token_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, tiny_json(r#""ba": 4294967295"#, END, O200K_PATTERN)).unwrap();
    let err = Tokenizer::from_model_dir(dir.path()).unwrap_err().to_string();
    for part in [path.to_str().unwrap(), "\"ba\"", "4294967295", "ids 0..260"] {
        assert!(err.contains(part), "expected {part} in: {err}");
    }
}

#[cfg(unix)]
#[test]
fn only_regular_files_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    // A named pipe would block the read forever; a directory is no file either.
    let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success());
    let err = Tokenizer::from_model_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("not a regular file"), "{err}");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = Tokenizer::from_model_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    std::fs::remove_dir(&path).unwrap();
    std::os::unix::fs::symlink("tokenizer.json", &path).unwrap();
    let err = Tokenizer::from_model_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("symbolic links"), "{err}");
}

#[test]
fn an_oversized_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::File::create(&path).unwrap().set_len(gptoss_tokenizer::MAX_FILE_BYTES + 1).unwrap();
    let err = Tokenizer::from_model_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("more than the 268435456"), "{err}");
}
