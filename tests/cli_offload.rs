//! Models bigger than memory through the `gptoss` command: a streamed model's peak RSS stays
//! within its memory budget, a budget too small is refused naming both numbers, `cache-sim`
//! replays a recorded trace to the engine's own hit counts, and the bench runs the modes side
//! by side. Small models and budgets: a few seconds in all.

use std::path::Path;
use std::process::{Command, Output};

fn gptoss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gptoss")).args(args).output().expect("the binary runs")
}

fn ok(args: &[&str]) -> (String, String) {
    let out = gptoss(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gptoss {args:?} failed: {err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixture").display().to_string()
}

/// The number after `key` in `text` (digits and dots).
fn number_after(text: &str, key: &str) -> f64 {
    let at = text.find(key).unwrap_or_else(|| panic!("no '{key}' in {text}")) + key.len();
    let digits: String = text[at..].trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after '{key}' in {text}"))
}

/// The smallest budget the experts mode takes for `model`, from the refusal of a smaller one,
/// which must name both numbers.
fn minimum_budget(model: &str) -> u64 {
    let out = gptoss(&[
        "generate",
        "--model",
        model,
        "--prompt-tokens",
        "1,2,3",
        "--max-tokens",
        "2",
        "--memory-budget",
        "1MiB",
        "--offload",
        "experts",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a memory budget of 1.00 MiB (1048576 bytes) is too small"), "{err}");
    let needed = &err[err.find("it needs at least").unwrap()..];
    number_after(needed, "(") as u64
}

/// Slack allowed above the budget: none. The budget's own 192 MiB margin covers the program,
/// the tokenizer and the backend's scratch (bench/NOTES.md).
const SLACK: u64 = 0;

#[test]
fn a_streamed_model_stays_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().to_str().unwrap();
    ok(&["synth", "--preset", "tiny", "--out", model]);
    let budget = minimum_budget(model);
    let prompt: Vec<String> = (1..40).map(|t| (t * 997 % 5000).to_string()).collect();
    let (_, err) = ok(&[
        "generate",
        "--model",
        model,
        "--prompt-tokens",
        &prompt.join(","),
        "--max-tokens",
        "16",
        "--memory-budget",
        &budget.to_string(),
        "--offload",
        "experts",
    ]);
    assert!(err.contains("expert cache: 8 of 32 experts"), "the smallest pool: {err}");
    let rss = number_after(&err[err.find("peak RSS").unwrap()..], "(") as u64;
    assert!(rss <= budget + SLACK, "peak RSS {rss} bytes over the budget of {budget}: {err}");
}

#[test]
fn cache_sim_replays_a_recorded_trace_to_the_engine_s_counts() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("routing.trace");
    // Five slots above the smallest pool of 8.
    let budget = minimum_budget(&fixture()) + 5 * 7296;
    let (_, err) = ok(&[
        "generate",
        "--model",
        &fixture(),
        "--prompt-tokens",
        "5,6,7,8,9,10,11",
        "--max-tokens",
        "30",
        "--memory-budget",
        &budget.to_string(),
        "--offload",
        "experts",
        "--record-routing",
        trace.to_str().unwrap(),
    ]);
    // The plan's line comes first: "expert cache: N of 32 experts …".
    let slots = number_after(&err, "expert cache:") as usize;
    let line = err.lines().find(|l| l.starts_with("streamed")).unwrap();
    let hits = number_after(line, "expert cache:") as u64;
    let misses = number_after(line, "hits,") as u64;
    let (out, _) = ok(&["cache-sim", "--trace", trace.to_str().unwrap(), "--slots", &slots.to_string(), "--policy", "lru"]);
    let row = out.lines().last().unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cells[0], cells[1]), ("lru", slots.to_string().as_str()), "{out}");
    assert_eq!((cells[3].parse::<u64>().unwrap(), cells[4].parse::<u64>().unwrap()), (hits, misses), "{out}\n{err}");
    assert!(out.contains("36 tokens"), "{out}");
}

#[test]
fn bench_runs_the_modes_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ladder.json");
    let (out, _) = ok(&[
        "bench",
        "--model",
        &fixture(),
        "--memory-budget",
        "400MiB",
        "--offload",
        "none,mmap,layered,experts",
        "--cold",
        "none",
        "-p",
        "4",
        "-n",
        "3",
        "--json",
        json.to_str().unwrap(),
    ]);
    for mode in ["none", "mmap", "layered", "experts (lru)"] {
        assert!(out.lines().any(|l| l.starts_with(mode)), "{mode}: {out}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["failed"].is_null() && r["tg_tok_s"].as_f64().unwrap() > 0.0), "{v}");
    assert!(v["disk_before"]["gb_s"].as_f64().unwrap() > 0.0);
    assert!(rows[3]["hit_rate"].as_f64().is_some());
}
