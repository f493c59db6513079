//! The `gptoss` command end to end: generate, logits, inspect, synth, and its errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gptoss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gptoss")).args(args).output().expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = gptoss(args);
    assert!(out.status.success(), "gptoss {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The command fails with exit code 1 and one line on stderr containing every part.
fn fails(args: &[&str], parts: &[&str]) {
    let out = gptoss(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "gptoss {args:?} should fail: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{err}");
    for p in parts {
        assert!(last.contains(p), "expected '{p}' in '{last}'");
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixture")
}

fn logits_of(model: &str, tokens: &str) -> Vec<Vec<f64>> {
    logits_on(model, tokens, &[])
}

/// The logits `gptoss logits` prints for `tokens`, with `extra` arguments.
fn logits_on(model: &str, tokens: &str, extra: &[&str]) -> Vec<Vec<f64>> {
    let args = [&["logits", "--model", model, "--tokens", tokens], extra].concat();
    let v: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    v["logits"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

#[test]
fn generate_streams_the_requested_tokens_reproducibly() {
    let args =
        ["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1,2,3", "--max-tokens", "12", "--seed", "7", "--stop-tokens", "0"];
    let a = ok(&args);
    let ids: Vec<u32> = a.trim().split(',').map(|t| t.parse().unwrap()).collect();
    assert!(ids.len() <= 12 && !ids.is_empty());
    assert!(ids.iter().all(|&t| t < 201_088));
    assert_eq!(a, ok(&args), "same seed, same tokens");
    let out = gptoss(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("decode") && err.contains("tok/s"), "{err}");
}

#[test]
fn logits_prints_one_row_per_position_matching_transformers() {
    let tokens = std::fs::read_to_string(fixture().join("../tokens.txt")).unwrap();
    let rows = logits_of(fixture().to_str().unwrap(), tokens.trim());
    assert_eq!(rows.len(), 32);
    assert!(rows.iter().all(|r| r.len() == 512));
    // Compare with the transformers logits stored next to the fixture.
    let path = fixture().join("../expected.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let t = &gptoss_model_gpt_oss::safetensors::parse_header(&path, &bytes).unwrap()["logits"];
    let theirs: Vec<f64> = bytes[t.start..t.end].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect();
    let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = rows.iter().flatten().zip(&theirs).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst / scale <= 1e-4, "relative error {}", worst / scale);
}

/// `--backend cuda-sim` runs the CUDA kernels on the emulated device (prefill in chunks of 16
/// on the tensor-core kernels, the last chunk's tokens through the same chunking): the same
/// logits as the CPU within the fixture's tolerance. Without the feature it is a clear error.
#[test]
fn the_emulated_cuda_device_is_a_backend_of_the_command() {
    let tokens = std::fs::read_to_string(fixture().join("../tokens.txt")).unwrap();
    let fx = fixture();
    let fx = fx.to_str().unwrap();
    if !cfg!(feature = "cuda-sim") {
        fails(&["logits", "--model", fx, "--tokens", "1", "--backend", "cuda-sim"], &["cuda-sim"]);
        return;
    }
    let sim = logits_on(fx, tokens.trim(), &["--backend", "cuda-sim", "--batch", "16"]);
    let cpu = logits_on(fx, tokens.trim(), &["--backend", "cpu", "--batch", "16"]);
    assert_eq!(sim.len(), 32);
    let scale = cpu.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let worst = sim.iter().flatten().zip(cpu.iter().flatten()).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst / scale <= 1e-4, "relative difference {}", worst / scale);
}

#[test]
fn int8_activations_are_a_cpu_option_of_every_command() {
    let args = ["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1,2,3", "--max-tokens", "4", "--backend", "cpu"];
    let out = gptoss(&[&args[..], &["--cpu-activations", "int8"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("int8 activations"), "{err}");
    let tokens = std::fs::read_to_string(fixture().join("../tokens.txt")).unwrap();
    let f = fixture();
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["logits", "--model", f.to_str().unwrap(), "--tokens", tokens.trim(), "--cpu-activations", "int8"]))
            .unwrap();
    assert_eq!(v["logits"].as_array().unwrap().len(), 32);
    let bench = ok(&["bench", "--model", "synthetic:tiny", "-p", "4", "-n", "2", "--repetitions", "1", "--cpu-activations", "int8"]);
    assert_eq!(bench.lines().filter(|l| l.contains("pp4 tg2 @d0")).count(), 1, "{bench}");
    assert!(bench.contains("int8 activations"), "{bench}");
    fails(&[&args[..], &["--cpu-activations", "int4"]].concat(), &["--cpu-activations", "expected f32 or int8"]);
    // int8 is generate's default; f32 asks for the exact products.
    let err = |extra: &[&str]| String::from_utf8_lossy(&gptoss(&[&args[..], extra].concat()).stderr).into_owned();
    assert!(err(&[]).contains("int8 activations"), "{}", err(&[]));
    assert!(!err(&["--cpu-activations", "f32"]).contains("int8 activations"));
}

#[test]
fn inspect_reports_the_20b_byte_counts() {
    let out = ok(&["inspect", "synthetic:20b"]);
    assert!(out.contains("13,761,264,768 tensor bytes"), "{out}");
    assert!(out.contains("3.708 GB"), "{out}");
    assert!(out.contains("459: 363 BF16"), "{out}");
}

#[test]
fn synth_writes_a_directory_that_loads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("tiny");
    ok(&["synth", "--preset", "tiny", "--out", d.to_str().unwrap(), "--seed", "3"]);
    for f in ["config.json", "model.safetensors.index.json", "model-00001-of-00001.safetensors", "tokenizer.json", "tokenizer_config.json"]
    {
        assert!(d.join(f).exists(), "{f} missing");
    }
    let inspect = ok(&["inspect", d.to_str().unwrap()]);
    assert!(inspect.contains("files"), "{inspect}");
    let from_disk = logits_of(d.to_str().unwrap(), "5,6,7");
    let in_memory = logits_of("synthetic:tiny@3", "5,6,7");
    assert_eq!(from_disk, in_memory);
    assert_ne!(in_memory, logits_of("synthetic:tiny@4", "5,6,7"));
}

#[test]
fn errors_are_one_clear_line() {
    fails(&["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1,201088"], &["token id 201088 is out of range"]);
    fails(
        &["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1,2", "--context", "8", "--max-tokens", "8"],
        &["context overflow", "9 tokens"],
    );
    fails(&["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1,x"], &["'x' is not a token id"]);
    fails(&["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1", "--top-p", "0"], &["top-p"]);
    fails(&["generate", "--model", "synthetic:9b", "--prompt-tokens", "1"], &["unknown model 'synthetic:9b'"]);
    fails(&["logits", "--model", "/no/such/dir", "--tokens", "1"], &["/no/such/dir"]);
    fails(&["logits", "--model", fixture().to_str().unwrap(), "--tokens", "1,512"], &["token id 512"]);
    fails(&["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1", "--backend", "tpu"], &["unknown backend 'tpu'"]);
    fails(&["synth", "--preset", "7b", "--out", "/tmp/x"], &["--preset 7b"]);
}

/// The host's MemAvailable in GB (Linux).
fn available_gb() -> Option<f64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb * 1024.0 / 1e9)
}

#[test]
fn a_model_larger_than_memory_is_refused_up_front() {
    // synthetic:120b is generated in memory (65.3 GB); where that much is available the load
    // would go ahead, which is not this test's business.
    match available_gb() {
        Some(gb) if gb < 60.0 => fails(
            &["generate", "--model", "synthetic:120b", "--prompt-tokens", "1"],
            &["synthetic:120b needs 65.", "weights 65.25 GB", "available", "gptoss synth"],
        ),
        other => eprintln!("skipped: available memory {other:?} GB (the refusal needs < 60 GB, or Linux)"),
    }
}

#[test]
fn working_buffers_and_contexts_larger_than_memory_are_refused_up_front() {
    match available_gb() {
        // synthetic:20b's 13.8 GB of weights plus the 24.7 GB one forward over 131072 tokens
        // holds at least.
        Some(gb) if gb < 38.0 => fails(
            &["generate", "--model", "synthetic:20b", "--prompt-tokens", "1", "--batch", "131072"],
            &["synthetic:20b needs 38.", "weights 13.76 GB", "working buffers for 131072 tokens 24.71 GB", "available"],
        ),
        other => eprintln!("skipped: available memory {other:?} GB (the refusal needs < 38 GB, or Linux)"),
    }
    match available_gb() {
        // 131072 rows of 201088 logits: 105 GB of activations for a tiny model.
        Some(gb) if gb < 100.0 => fails(
            &["generate", "--model", "synthetic:tiny", "--prompt-tokens", "1", "--batch", "131072", "--context", "131072"],
            &["a context of 131072 tokens needs 105.", "KV cache 0.07 GB", "activations 105.", "available"],
        ),
        other => eprintln!("skipped: available memory {other:?} GB (the refusal needs < 100 GB, or Linux)"),
    }
}

#[test]
fn quantize_writes_a_model_that_inspect_and_eval_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int8");
    let (fx, out_s) = (fixture(), out.to_str().unwrap().to_string());
    let report = ok(&["quantize", "--model", fx.to_str().unwrap(), "--weights", "int8", "--out", &out_s]);
    assert!(report.contains("quantized     17 matrices (attention, unembedding)"), "{report}");
    assert!(report.contains("tensor bytes  457,440 →") && report.contains("per token"), "{report}");
    let inspect = ok(&["inspect", &out_s]);
    assert!(inspect.contains("quantized   int8 attention, unembedding (experts mxfp4)"), "{inspect}");

    let tokens = fx.join("../tokens.txt");
    let tokens = tokens.to_str().unwrap();
    let same = ok(&["eval", "--model", &out_s, "--reference", &out_s, "--tokens", tokens]);
    assert!(same.contains("mean 0.0000e0 nats, max 0.0000e0") && same.contains("32/32 positions agree (100.00 %)"), "{same}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "--model", &out_s, "--reference", fx.to_str().unwrap(), "--tokens", tokens, "--json"])).unwrap();
    let (kl, top1) = (v["kl_mean"].as_f64().unwrap(), v["top1_rate"].as_f64().unwrap());
    assert!(kl > 0.0 && kl < 0.01 && top1 >= 0.9, "{v}");
    assert!(v["perplexity_model"].as_f64().unwrap() > 1.0);
    // Load-time conversion gives the same report as the written directory.
    let loaded: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        fx.to_str().unwrap(),
        "--weights",
        "int8",
        "--reference",
        fx.to_str().unwrap(),
        "--tokens",
        tokens,
        "--json",
    ]))
    .unwrap();
    assert_eq!((loaded["kl_mean"].clone(), loaded["top1_agree"].clone()), (v["kl_mean"].clone(), v["top1_agree"].clone()));
    let synthetic = ok(&["eval", "--model", "synthetic:tiny", "--reference", "synthetic:tiny", "--synthetic-text", "9", "--batch", "4"]);
    assert!(synthetic.contains("9/9 positions agree") && !synthetic.contains("perplexity"), "{synthetic}");
}

#[test]
fn quantization_options_are_checked() {
    let fx = fixture();
    let fx = fx.to_str().unwrap();
    fails(&["quantize", "--model", fx, "--weights", "int8", "--group", "64", "--out", "/tmp/never"], &["--group", "int4"]);
    fails(&["quantize", "--model", fx, "--weights", "int4", "--include", "experts", "--out", "/tmp/never"], &["experts stay MXFP4"]);
    fails(&["quantize", "--model", fx, "--weights", "int4:128", "--out", "/tmp/never"], &["group size 128 does not divide"]);
    fails(&["logits", "--model", fx, "--tokens", "1", "--weights", "int3"], &["--weights int3", "not a weight format"]);
    fails(&["logits", "--model", fx, "--tokens", "1", "--weights", "int4:48"], &["--weights int4:48", "48 is not one of"]);
    // bench checks every listed format before it measures anything.
    fails(&["bench", "--model", "synthetic:tiny", "--weights", "native,int3"], &["--weights int3", "not a weight format"]);
}

#[test]
fn bench_runs_one_row_per_weight_format_and_activation() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let args = ["bench", "--model", "synthetic:tiny", "-p", "4", "-n", "2", "--repetitions", "1", "--profile-tokens", "1"];
    let out = ok(&[&args[..], &["--weights", "native,int8", "--json", json.to_str().unwrap()]].concat());
    // The rows as the JSON states them: no guessing at the table's punctuation.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{out}");
    let int8: Vec<_> = rows.iter().filter(|r| r["weights"] == "int8").collect();
    assert_eq!(int8.len(), 2, "{out}");
    assert_eq!(int8.iter().filter(|r| r["isa_or_device"].as_str().unwrap().contains("int8 activations")).count(), 1, "{out}");
    // The bytes split once per format, and int8 reads fewer.
    let bytes = |w: &str| rows.iter().find(|r| r["weights"] == w).unwrap()["bytes_per_token"].as_f64().unwrap();
    assert!(bytes("int8") < bytes("native"), "{out}");
    assert!(out.contains("synthetic:tiny (native) @d0: MB/token") && out.contains("synthetic:tiny (int8) @d0: MB/token"), "{out}");
    // The per-op rows name the format.
    assert!(
        v["ops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["model"].as_str().unwrap().contains("int8") && o["op"].as_str().unwrap().contains("moe_experts")),
        "{}",
        v["ops"]
    );
}

#[test]
fn bench_concurrency_compares_batched_decode_with_one_forward_per_sequence() {
    let args = ["bench", "--model", "synthetic:tiny", "--backend", "cpu", "--threads", "1", "-n", "3", "--repetitions", "2"];
    let out = ok(&[&args[..], &["--concurrency", "1,3", "--profile"]].concat());
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| 1 |") || l.starts_with("| 3 |")).collect();
    assert_eq!(rows.len(), 2, "one row per level: {out}");
    assert!(out.contains("3 decode steps") && out.contains("2 rounds"), "{out}");
    // Each row ends with the step times of both ways (p50 / p99).
    assert!(rows.iter().all(|r| r.matches(" / ").count() == 2), "{out}");
    // Batched decoding gives each sequence the tokens it gets alone.
    assert!(out.contains("identical: yes"), "{out}");
    // --profile: ms per step of every op at each level, and their total.
    for op in ["| moe_experts |", "| matmul (unembedding) |", "| total |"] {
        let row = out.lines().find(|l| l.starts_with(op)).unwrap_or_else(|| panic!("no {op} row: {out}"));
        assert_eq!(row.matches(" | ").count(), 2, "{row}");
    }
    fails(&[&args[..], &["--concurrency", "2,0"]].concat(), &["--concurrency", "at least 1"]);
}

#[test]
fn bench_serve_measures_the_server_it_starts_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("serve.json");
    let args = ["bench", "--serve", "--model", "synthetic:tiny", "--backend", "cpu", "--threads", "1", "-p", "5", "-n", "6"];
    let out = ok(&[&args[..], &["--concurrency", "1,3", "--repetitions", "2", "--json", json.to_str().unwrap()]].concat());
    // Every request of each level completed: 2 per client.
    assert!(out.contains("| 1 | 2 / 0 |") && out.contains("| 3 | 6 / 0 |"), "{out}");
    assert!(out.contains("5-token prompts, 6 tokens per request"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let levels = v["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for l in levels {
        // Each request's tokens are the server's own count (greedy, a random model: it may
        // stop early on an end token, never run past max_tokens).
        let (done, tokens) = (l["completed"].as_u64().unwrap(), l["output_tokens"].as_u64().unwrap());
        assert!(tokens <= 6 * done && tokens >= done, "{l}");
        assert!(l["ttft_p50"].as_f64().unwrap() > 0.0 && l["ttft_p99"].as_f64() >= l["ttft_p50"].as_f64(), "{l}");
    }
    fails(&["bench", "--url", "127.0.0.1:1/v1", "--model", "x"], &["--url", "HOST:PORT"]);
    fails(&["bench", "--url", "127.0.0.1:1", "--model", "x", "--concurrency", "1"], &["did not answer a warm-up request", "127.0.0.1:1"]);
}

#[test]
fn bench_writes_the_table_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("r.json"), dir.path().join("r.svg"));
    let out = ok(&[
        "bench",
        "--model",
        "synthetic:tiny",
        "-p",
        "8",
        "-n",
        "4",
        "--depth",
        "0,20",
        "--repetitions",
        "1",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.contains("pp8 tg4 @d0") && out.contains("pp8 tg4 @d20") && out.contains("moe_experts"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    // On the CPU, f32 and int8 activations side by side.
    assert_eq!(rows.len(), 4);
    let int8 = rows.iter().filter(|r| r["isa_or_device"].as_str().unwrap().ends_with(", int8 activations")).count();
    assert_eq!(int8, 2, "{rows:?}");
    // Every stable key is measured in a CPU run of this shape; the byte and bandwidth ones are
    // positive numbers.
    for key in gptoss_bench::results::STABLE_KEYS {
        assert!(!rows[0][key].is_null(), "{key} is null");
    }
    for key in ["bytes_per_token", "gb_s", "peak_gb_s", "pct_of_peak", "peak_rss_bytes"] {
        assert!(rows[0][key].as_f64().is_some_and(|x| x > 0.0), "{key}: {}", rows[0][key]);
    }
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<polyline"));
    let cmp = ok(&["bench", "--compare", json.to_str().unwrap(), json.to_str().unwrap()]);
    assert!(cmp.contains("tg 1.000×"), "{cmp}");
}

#[test]
fn bench_repetitions_start_from_an_empty_context_whatever_the_batch() {
    // synthetic:tiny slides over 16 tokens: with --batch 8 its rings keep 24 positions, fewer
    // than a repetition's 40 + 8, so the next repetition must empty the cache, not rewind it.
    let out =
        ok(&["bench", "--model", "synthetic:tiny", "-p", "40", "-n", "8", "--batch", "8", "--repetitions", "2", "--profile-tokens", "0"]);
    assert!(out.contains("pp40 tg8 @d0"), "{out}");
}

/// Runs the command with `input` on stdin.
fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gptoss"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn tokenize_and_detokenize_round_trip_exact_bytes() {
    let text = "Hello, world!\n  naïve café — 你好 🙂\r\n\tfn main() { 12345 }   \n";
    let ids = with_stdin(&["tokenize"], text.as_bytes());
    assert!(ids.status.success());
    let line = String::from_utf8(ids.stdout).unwrap();
    assert!(line.starts_with("13225,11,2375,"), "{line}");
    let back = with_stdin(&["detokenize"], line.as_bytes());
    assert!(back.status.success());
    assert_eq!(back.stdout, text.as_bytes());
    let bad = with_stdin(&["detokenize"], b"1,999999");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("999999"));
}

/// A copy of the reference fixture in a temporary directory.
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

#[cfg(unix)]
#[test]
fn hostile_model_directories_fail_in_one_line() {
    // A layer count of 2^40 with no layer_types: refused before anything is built per layer
    // (it aborted on a terabyte allocation).
    let dir = fixture_copy();
    let config = dir.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("layer_types");
    v["num_hidden_layers"] = 1_099_511_627_776u64.into();
    std::fs::write(&config, v.to_string()).unwrap();
    let model = dir.path().to_str().unwrap();
    fails(&["inspect", model], &["num_hidden_layers = 1099511627776", "tensors of 4 layers"]);
    fails(&["logits", "--model", model, "--tokens", "1"], &["num_hidden_layers = 1099511627776"]);
    // A shard that is a named pipe: refused before opening (opening it blocked forever).
    let dir = fixture_copy();
    let shard = dir.path().join("model-00001-of-00002.safetensors");
    std::fs::remove_file(&shard).unwrap();
    assert!(Command::new("mkfifo").arg(&shard).status().unwrap().success());
    fails(&["inspect", dir.path().to_str().unwrap()], &["model-00001-of-00002.safetensors", "not a regular file"]);
}

/// Overwrites element `index` of tensor `name` in a model directory with `bytes`.
fn poke(dir: &Path, name: &str, index: usize, bytes: &[u8]) {
    let index_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    let shard = dir.join(index_json["weight_map"][name].as_str().unwrap());
    let mut data = std::fs::read(&shard).unwrap();
    let start = gptoss_model_gpt_oss::safetensors::parse_header(&shard, &data).unwrap()[name].start + index * bytes.len();
    data[start..start + bytes.len()].copy_from_slice(bytes);
    std::fs::write(shard, data).unwrap();
}

#[test]
fn non_finite_weights_are_found_by_inspect_check_and_stop_generation() {
    let fx = fixture();
    assert!(ok(&["inspect", fx.to_str().unwrap(), "--check"]).contains("every weight is finite"));
    // A bf16 NaN in row 3 of the unembedding: logit 3 is NaN whatever the input.
    let dir = fixture_copy();
    let model = dir.path().to_str().unwrap();
    // bf16 NaN 0x7fc0 and +inf 0x7f80, little-endian.
    poke(dir.path(), "lm_head.weight", 3 * 64 + 17, &[0xc0, 0x7f]);
    fails(&["inspect", model, "--check"], &["tensor 'lm_head.weight' holds NaN at index [3, 17]"]);
    fails(
        &["generate", "--model", model, "--prompt-tokens", "1,2", "--max-tokens", "4"],
        &["logits after position 2 are not finite", "logit 3 is NaN"],
    );
    // An infinity in a norm gain and the E8M0 scale that is NaN come first in checkpoint order.
    poke(dir.path(), "model.layers.1.post_attention_layernorm.weight", 5, &[0x80, 0x7f]);
    fails(&["inspect", model, "--check"], &["'model.layers.1.post_attention_layernorm.weight' holds inf at index [5]"]);
    poke(dir.path(), "model.layers.0.mlp.experts.down_proj_scales", 9, &[0xFF]);
    fails(
        &["inspect", model, "--check"],
        &["'model.layers.0.mlp.experts.down_proj_scales' holds NaN (E8M0 scale 0xff) at index [0, 4, 1]"],
    );
}

#[cfg(unix)]
#[test]
fn a_broken_tokenizer_json_is_an_error_not_the_embedded_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = (dir.path().join("tokenizer.json"), dir.path().join("text"));
    std::fs::write(&text, "hello").unwrap();
    let args = ["tokenize", "--model", dir.path().to_str().unwrap(), "--file", text.to_str().unwrap()];
    for (target, why) in [("tokenizer.json", "symbolic links"), ("missing.json", "No such file")] {
        std::os::unix::fs::symlink(target, &path).unwrap();
        fails(&args, &[path.to_str().unwrap(), why]);
        std::fs::remove_file(&path).unwrap();
    }
    // With nothing at that name the embedded o200k_harmony is the tokenizer.
    assert_eq!(ok(&args).trim(), "24912");
}

#[test]
fn generate_takes_text_and_chat_runs_the_harmony_loop() {
    let out = ok(&["generate", "--model", "synthetic:tiny", "--prompt", "Once upon a time", "--max-tokens", "6", "--seed", "1"]);
    assert!(!out.trim().is_empty() && !out.contains(','), "text, not ids: {out}");
    let ids = ok(&[
        "generate",
        "--model",
        "synthetic:tiny",
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "6",
        "--seed",
        "1",
        "--output",
        "ids",
    ]);
    assert_eq!(ids.trim().split(',').count(), 6);
    let chat =
        with_stdin(&["chat", "--model", "synthetic:tiny", "--max-tokens", "8", "--reasoning", "low"], b"What is 2 + 2?\nAnd 3 + 3?\n");
    let err = String::from_utf8_lossy(&chat.stderr);
    assert!(chat.status.success(), "{err}");
    // Random weights never produce a harmony reply; both turns say so instead of failing.
    assert_eq!(err.matches("not in the harmony format").count(), 2, "{err}");
}
