//! The engine against Hugging Face transformers (float32, eager attention) on the committed
//! fixture (tests/reference): layer by layer and at the logits, through the prefill path, the
//! token-by-token decode path, and uneven chunks that wrap the sliding-window ring.
//! Budget: max|ours − theirs| / max|theirs| ≤ 1e-4 per tensor; router ids and top-1 exact.
//!
//! With int8 activations on the CPU (the q8 kernels), on every SIMD instruction set this CPU
//! has: ≤ 6e-2 per tensor, top-1 at ≥ 30 of 32 positions, router ids reported. Why: rounding
//! an activation to int8 in its block of 32 moves a product by ~0.4 % RMS (the kernels' NMSE
//! 1.5e-5), so a layer's largest error among its 2,048 outputs is ~1.5 % of its largest
//! value; four layers compound it and near-ties in the router re-route a few of the 128
//! (token, expert) slots. Measured on AVX2: 3.6e-2 at the logits, 32 of 32 top-1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gptoss_engine::{CausalLm, DType};
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuBuffer, CpuOptions, Isa};
use gptoss_model_gpt_oss::safetensors::{StDtype, parse_header};
use gptoss_model_gpt_oss::{Context, ContextOptions, GptOss, LoadOptions, ModelSource, ProbeData};

const BUDGET: f64 = 1e-4;
/// With int8 activations: per tensor, and the top-1 agreements of 32 positions (see above).
const INT8_BUDGET: f64 = 6e-2;
const INT8_TOP1: usize = 30;

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference")
}

enum Expected {
    F32(Vec<f32>),
    Ids(Vec<u32>),
}

fn expected() -> HashMap<String, Expected> {
    let path = reference_dir().join("expected.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let mut out = HashMap::new();
    for (name, t) in parse_header(&path, &bytes).unwrap() {
        let raw = &bytes[t.start..t.end];
        let v = match t.dtype {
            StDtype::F32 => Expected::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()),
            StDtype::I32 => Expected::Ids(raw.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as u32).collect()),
            StDtype::I64 => Expected::Ids(raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32).collect()),
            other => panic!("unexpected dtype {other:?} for {name}"),
        };
        out.insert(name, v);
    }
    out
}

fn f32s<'a>(e: &'a HashMap<String, Expected>, name: &str) -> &'a [f32] {
    match &e[name] {
        Expected::F32(v) => v,
        Expected::Ids(_) => panic!("{name} is not f32"),
    }
}

fn ids<'a>(e: &'a HashMap<String, Expected>, name: &str) -> &'a [u32] {
    match &e[name] {
        Expected::Ids(v) => v,
        Expected::F32(_) => panic!("{name} is not ids"),
    }
}

/// max|a − b| / max|b|, with the index of the worst element.
fn rel_err(ours: &[f32], theirs: &[f32]) -> (f64, usize) {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let (worst, at) = ours.iter().zip(theirs).enumerate().fold((0f64, 0), |(w, at), (i, (&a, &b))| {
        let d = (a as f64 - b as f64).abs();
        if d > w || d.is_nan() { (d, i) } else { (w, at) }
    });
    (worst / scale, at)
}

fn check(name: &str, ours: &[f32], theirs: &[f32], budget: f64) -> f64 {
    let (err, at) = rel_err(ours, theirs);
    assert!(err <= budget, "{name}: relative error {err:.3e} > {budget:e} at element {at}: ours {} theirs {}", ours[at], theirs[at]);
    err
}

/// The default CPU backend (`GPTOSS_CPU_ISA` or the best ISA, f32 activations).
fn default_backend() -> CpuBackend {
    CpuBackend::new(Some(2)).unwrap()
}

/// The CPU backend on `isa` with int8 activations.
fn int8_backend(isa: Isa) -> CpuBackend {
    CpuBackend::with_options(CpuOptions { threads: Some(2), isa, set: None, activations: Activations::Int8 }).unwrap()
}

fn simd_isas() -> Vec<Isa> {
    Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar).collect()
}

fn load(backend: CpuBackend, max_batch: usize) -> (GptOss<CpuBackend>, Context<CpuBuffer>) {
    let model = ModelSource::Dir(reference_dir().join("fixture")).open().unwrap();
    let mut m = GptOss::load(backend, &model, LoadOptions { max_batch, ..LoadOptions::default() }).unwrap();
    let ctx = m.new_context(ContextOptions { max_context: 64, kv_dtype: DType::F32 }).unwrap();
    (m, ctx)
}

fn tokens(e: &HashMap<String, Expected>) -> Vec<u32> {
    ids(e, "tokens").to_vec()
}

/// The whole prompt in one forward pass, probed: every tensor's error against transformers
/// (within `budget`), and per layer how many router ids differ.
fn prefill_layer_by_layer(backend: CpuBackend, budget: f64) -> (Vec<(String, f64)>, Vec<usize>) {
    let e = expected();
    let toks = tokens(&e);
    let (mut m, mut ctx) = load(backend, toks.len());
    let seen: Arc<Mutex<HashMap<String, Vec<f32>>>> = Arc::default();
    let seen_ids: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let (s, si) = (seen.clone(), seen_ids.clone());
    m.set_probe(Some(Box::new(move |name, data| match data {
        ProbeData::F32(v) => drop(s.lock().unwrap().insert(name.to_string(), v.to_vec())),
        ProbeData::U32(v) => drop(si.lock().unwrap().insert(name.to_string(), v.to_vec())),
    })));
    m.forward(&mut ctx, &toks, toks.len()).unwrap();
    let seen = seen.lock().unwrap();
    let layers = m.config().num_hidden_layers;

    let mut report = vec![("embeddings".to_string(), check("embeddings", &seen["embeddings"], f32s(&e, "embeddings"), budget))];
    let mut rerouted = vec![];
    let mut prev = seen["embeddings"].clone();
    for l in 0..layers {
        let after_attn = &seen[&format!("layers.{l}.attention_residual")];
        let output = &seen[&format!("layers.{l}.output")];
        let attention: Vec<f32> = after_attn.iter().zip(&prev).map(|(a, b)| a - b).collect();
        let moe: Vec<f32> = output.iter().zip(after_attn).map(|(a, b)| a - b).collect();
        for (what, ours) in [("attention", &attention), ("moe", &moe), ("output", output)] {
            let name = format!("layers.{l}.{what}");
            report.push((name.clone(), check(&name, ours, f32s(&e, &name), budget)));
        }
        let name = format!("layers.{l}.router_weights");
        report.push((name.clone(), check(&name, &seen[&name], f32s(&e, &name), budget)));
        let name = format!("layers.{l}.router_ids");
        rerouted.push(seen_ids.lock().unwrap()[&name].iter().zip(ids(&e, &name)).filter(|(a, b)| a != b).count());
        prev = output.clone();
    }
    for name in ["final_norm", "logits"] {
        report.push((name.to_string(), check(name, &seen[name], f32s(&e, name), budget)));
    }
    (report, rerouted)
}

#[test]
fn prefill_matches_transformers_layer_by_layer() {
    let (report, rerouted) = prefill_layer_by_layer(default_backend(), BUDGET);
    assert!(rerouted.iter().all(|&r| r == 0), "router ids differ: {rerouted:?}");
    for (name, err) in &report {
        println!("{name:28} {err:.2e}");
    }
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Feeds the tokens in chunks of `chunk`, checking every position's logits within `budget`:
/// the worst error, and the positions whose top-1 token agrees, of all.
fn run_in_chunks(backend: CpuBackend, chunk: usize, budget: f64) -> (f64, usize, usize) {
    let e = expected();
    let toks = tokens(&e);
    let want = f32s(&e, "logits");
    let vocab = want.len() / toks.len();
    let (mut m, mut ctx) = load(backend, chunk);
    let mut lm = m.session(&mut ctx);
    let mut row = vec![0f32; vocab];
    let (mut worst, mut agree) = (0f64, 0);
    for (c, part) in toks.chunks(chunk).enumerate() {
        lm.forward(part, part.len()).unwrap();
        for i in 0..part.len() {
            let t = c * chunk + i;
            lm.logits(i, &mut row).unwrap();
            let theirs = &want[t * vocab..(t + 1) * vocab];
            worst = worst.max(check(&format!("logits at position {t} (chunks of {chunk})"), &row, theirs, budget));
            agree += usize::from(argmax(&row) == argmax(theirs));
        }
    }
    (worst, agree, toks.len())
}

#[test]
fn decode_token_by_token_matches_transformers() {
    let (worst, agree, all) = run_in_chunks(default_backend(), 1, BUDGET);
    assert_eq!(agree, all, "top-1");
    println!("token by token: worst logits error {worst:.2e}");
}

#[test]
fn uneven_chunks_wrap_the_sliding_window_ring() {
    // Window 8 + batch 5 gives a 13-slot ring on sliding layers, overwritten twice by 32 tokens.
    let (worst, agree, all) = run_in_chunks(default_backend(), 5, BUDGET);
    assert_eq!(agree, all, "top-1");
    println!("chunks of 5: worst logits error {worst:.2e}");
}

#[test]
fn int8_activations_stay_within_their_budget_on_every_isa() {
    for isa in simd_isas() {
        let (report, rerouted) = prefill_layer_by_layer(int8_backend(isa), INT8_BUDGET);
        let worst = report.iter().fold(("", 0f64), |w, (n, e)| if *e > w.1 { (n, *e) } else { w });
        println!(
            "{isa}, int8 activations: prefill worst {:.2e} ({}); router ids differing per layer {rerouted:?} of 128",
            worst.1, worst.0
        );
        for chunk in [1, 5] {
            let (worst, agree, all) = run_in_chunks(int8_backend(isa), chunk, INT8_BUDGET);
            println!("{isa}, int8 activations, chunks of {chunk}: worst logits error {worst:.2e}, top-1 {agree} of {all}");
            assert!(agree >= INT8_TOP1, "{isa}: top-1 agrees at {agree} of {all} positions (budget {INT8_TOP1})");
        }
    }
}
