//! `--draft` and `--speculate` on the `gptoss` command: greedy output unchanged by every kind of
//! draft, what speculation did on stderr, and drafts that cannot work refused before loading.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gptoss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gptoss")).args(args).output().expect("the binary runs")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixture")
}

/// Greedy ids for a fixed prompt (two prefill chunks of 8), with `extra` arguments; and stderr.
fn greedy(model: &str, extra: &[&str]) -> (String, String) {
    let base = ["generate", "--model", model, "--prompt-tokens", "3,1,4,1,5,9,2,6,5,3,5,8,9", "--max-tokens", "32"];
    let args = [&base[..], &["--temperature", "0", "--batch", "8", "--context", "64"], extra].concat();
    let out = gptoss(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gptoss {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The command fails with one line on stderr containing every part.
fn fails(args: &[&str], parts: &[&str]) {
    let out = gptoss(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "gptoss {args:?} should fail: {err}");
    let last = err.lines().last().unwrap_or_default();
    for p in parts {
        assert!(last.contains(p), "expected '{p}' in '{last}'");
    }
}

#[test]
fn every_draft_leaves_greedy_output_unchanged_and_reports_what_it_did() {
    let model = fixture();
    let model = model.to_str().unwrap();
    let (want, _) = greedy(model, &[]);
    // Another model: the fixture with int8 attention and unembedding, written to disk.
    let other = tempfile::tempdir().unwrap();
    let quantize = gptoss(&["quantize", "--model", model, "--weights", "int8", "--out", other.path().to_str().unwrap()]);
    assert!(quantize.status.success(), "{}", String::from_utf8_lossy(&quantize.stderr));
    for extra in [
        &["--draft", "ngram:3"][..],
        &["--draft", "self:int8", "--speculate", "4"],
        &["--draft", "self:int4:top2", "--speculate", "auto"],
        &["--draft", other.path().to_str().unwrap(), "--speculate", "7"],
        &["--draft", "random", "--speculate", "2"],
    ] {
        let (got, stderr) = greedy(model, extra);
        assert_eq!(got, want, "{extra:?}");
        let report = stderr.lines().find(|l| l.starts_with("speculation (")).unwrap_or_else(|| panic!("{extra:?}: {stderr}"));
        for part in ["steps", "acceptance by position", "a verify step read", "a plain decode step reads"] {
            assert!(report.contains(part), "{extra:?}: '{part}' in {report}");
        }
    }
}

#[test]
fn drafts_that_cannot_draft_are_refused_before_loading() {
    let model = fixture();
    let model = model.to_str().unwrap();
    let run = ["generate", "--model", model, "--prompt-tokens", "1,2", "--max-tokens", "4"];
    // Another vocabulary: both models and both sizes named.
    fails(&[&run[..], &["--draft", "synthetic:tiny"]].concat(), &["synthetic:tiny", "201088", model, "512"]);
    // The same vocabulary size with another tokenizer: both tokenizers named.
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixture()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    let bytes = gptoss_tokenizer::Tokenizer::from_parts((0..=255u8).map(|b| [b]), [("<|x|>".to_string(), 511)]).unwrap();
    bytes.write_tokenizer_json(dir.path()).unwrap();
    let other = dir.path().to_str().unwrap();
    fails(&[&run[..], &["--draft", other]].concat(), &["tokenizer.json", "o200k_harmony", other, model]);
    fails(&[&run[..], &["--speculate", "3"]].concat(), &["--speculate needs a --draft"]);
    fails(&[&run[..], &["--draft", "ngram:3", "--speculate", "0"]].concat(), &["--speculate", "'0'"]);
    fails(&[&run[..], &["--draft", "ngram:x"]].concat(), &["draft ngram:x", "n-gram size"]);
    fails(&[&run[..], &["--draft", "self:int3"]].concat(), &["self:int3", "not a weight format"]);
    fails(&[&run[..], &["--draft", "self:int8:top9"]].concat(), &["9 experts per token", "the model's 4"]);
}

#[test]
fn chat_speculates_turn_after_turn() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gptoss"))
        .args([
            "chat",
            "--model",
            "synthetic:tiny",
            "--max-tokens",
            "8",
            "--reasoning",
            "low",
            "--temperature",
            "0",
            "--draft",
            "self:native",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"What is 2 + 2?\nAnd 3 + 3?\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // One report per turn, every proposal of the model drafting for itself accepted.
    let reports: Vec<&str> = err.lines().filter(|l| l.starts_with("speculation (self:native)")).collect();
    assert_eq!(reports.len(), 2, "{err}");
    assert!(reports.iter().all(|r| r.contains("(100%)")), "{err}");
}
