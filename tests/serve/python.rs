//! The official Python packages against the server: OpenAI's `openai` client, and
//! `openai-harmony`'s rendering of the same conversations token for token. They run when
//! `GPTOSS_TEST_PYTHON` names an interpreter with the pinned packages (`.ci/run` makes one);
//! without it the tests say they skipped and why.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::client::Server;
use crate::script;

/// The exact packages (`.ci/run` installs this file into a venv).
const REQUIREMENTS: &str = include_str!("requirements.txt");

fn python() -> Option<String> {
    match std::env::var("GPTOSS_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            let pins: Vec<&str> = REQUIREMENTS.lines().filter(|l| l.starts_with("openai")).collect();
            eprintln!(
                "SKIPPED: GPTOSS_TEST_PYTHON is not set; point it at a Python with {} (tests/serve/requirements.txt; \
                 .ci/run creates one under $HOME/.cache/gptoss/venv-serve) to run the Python client tests",
                pins.join(" and ")
            );
            None
        }
    }
}

fn run_script(python: &str, script_name: &str, server: &Server, envs: &[(&str, &Path)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve").join(script_name);
    let out = Command::new(python)
        .arg(&path)
        .arg(format!("http://127.0.0.1:{}", server.port))
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap_or_else(|e| panic!("{python} does not run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "{script_name} failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.log.lock().unwrap());
}

#[test]
fn the_openai_python_client_works_against_the_server() {
    let Some(python) = python() else { return };
    let server = Server::start(&["--script", script(), "--parallel", "2", "--model-name", "gpt-oss-test"]);
    run_script(&python, "openai_client.py", &server, &[]);
}

/// Writes o200k_base in tiktoken's format from the embedded vocabulary: one line per token,
/// `base64(bytes) rank`. `openai-harmony` checks the file's SHA-256 against the published
/// one, so this also proves the embedded vocabulary is byte for byte OpenAI's.
fn write_tiktoken(dir: &Path) {
    let tokenizer = gptoss_tokenizer::Tokenizer::o200k_harmony().unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("o200k_base.tiktoken")).unwrap());
    for id in 0..tokenizer.ordinary_token_count() as u32 {
        let bytes = tokenizer.token_bytes(id).unwrap();
        writeln!(out, "{} {id}", base64(bytes)).unwrap();
    }
    out.flush().unwrap();
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= group.len() { TABLE[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
}

#[test]
fn prompt_tokens_equal_openai_harmony() {
    let Some(python) = python() else { return };
    let vocab = tempfile::tempdir().unwrap();
    write_tiktoken(vocab.path());
    let server = Server::start(&[]);
    run_script(&python, "harmony_render.py", &server, &[("TIKTOKEN_ENCODINGS_BASE", vocab.path())]);
}
