//! The whole model on the CUDA backend against the CPU backend: logits of a prefill and of
//! decode steps (which exercise the recorded decode graph), and greedy tokens. Skips, saying
//! why, without a GPU. The synthetic 20b / 120b comparisons need a lot of host memory for the
//! CPU side and are ignored by default; kernels-cuda/scripts/gpu-check.sh runs them.

#![cfg(feature = "cuda")]

use std::path::Path;

use gptoss_engine::{CausalLm, DType, SamplingParams};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_kernels_cuda::CudaBackend;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource, OpenedModel};

/// Budget on max|gpu − cpu| / max|cpu| of a row of logits.
const LOGITS_BUDGET: f64 = 1e-3;

fn gpu() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            None
        }
    }
}

fn open(source: &str) -> OpenedModel {
    let src: ModelSource = if source.starts_with("synthetic:") {
        source.parse().unwrap()
    } else {
        // GPTOSS_REPO_DIR: where the repository is when the test binary runs elsewhere.
        let root = std::env::var_os("GPTOSS_REPO_DIR").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(), Into::into);
        ModelSource::Dir(root.join(source))
    };
    src.open().unwrap()
}

fn logits(m: &mut dyn CausalLm, row: usize) -> Vec<f32> {
    let mut out = vec![0f32; m.vocab_size()];
    m.logits(row, &mut out).unwrap();
    out
}

fn check(what: &str, gpu: &[f32], cpu: &[f32]) {
    let scale = cpu.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let (worst, at) = gpu.iter().zip(cpu).enumerate().fold((0f64, 0), |(w, at), (i, (&g, &c))| {
        let d = (g as f64 - c as f64).abs();
        if d > w || d.is_nan() { (d, i) } else { (w, at) }
    });
    let err = worst / scale;
    assert!(err <= LOGITS_BUDGET, "{what}: relative error {err:.3e} > {LOGITS_BUDGET:e} at {at}: gpu {} cpu {}", gpu[at], cpu[at]);
    eprintln!("{what}: relative error {err:.2e}");
}

/// Prefill `prompt`, compare the last logits, then `steps` greedy decode steps on both
/// backends, comparing logits each step and requiring the same tokens.
fn compare(source: &str, kv: DType, prompt: &[u32], steps: usize, threads: Option<usize>) {
    let Some(g) = gpu() else { return };
    let model = open(source);
    let max_batch = prompt.len().min(64);
    let ctx = ContextOptions { max_context: prompt.len() + steps + 1, kv_dtype: kv };
    let mut gm = GptOss::load(g, &model, LoadOptions { max_batch, ..Default::default() }).unwrap();
    let mut cm = GptOss::load(CpuBackend::new(threads).unwrap(), &model, LoadOptions { max_batch, ..Default::default() }).unwrap();
    let (mut gc, mut cc) = (gm.new_context(ctx).unwrap(), cm.new_context(ctx).unwrap());
    let (mut gs, mut cs) = (gm.session(&mut gc), cm.session(&mut cc));
    let (gl, cl): (&mut dyn CausalLm, &mut dyn CausalLm) = (&mut gs, &mut cs);
    for chunk in prompt.chunks(max_batch) {
        gl.forward(chunk, 1).unwrap();
        cl.forward(chunk, 1).unwrap();
    }
    check(&format!("{source} prefill"), &logits(gl, 0), &logits(cl, 0));
    for step in 0..steps {
        let gt = gl.sample(0, &SamplingParams::GREEDY, 0.0).unwrap();
        let ct = cl.sample(0, &SamplingParams::GREEDY, 0.0).unwrap();
        assert_eq!(gt, ct, "{source}: greedy token {step} differs");
        gl.forward(&[gt], 1).unwrap();
        cl.forward(&[ct], 1).unwrap();
        check(&format!("{source} decode {step}"), &logits(gl, 0), &logits(cl, 0));
    }
}

#[test]
fn fixture_logits_and_64_greedy_tokens_match_the_cpu() {
    let prompt: Vec<u32> = (0..32).map(|i| (i * 37 + 11) % 512).collect();
    compare("tests/reference/fixture", DType::F32, &prompt, 64, Some(4));
}

#[test]
fn fixture_with_a_bf16_cache_matches_the_cpu() {
    let prompt: Vec<u32> = (0..20).map(|i| (i * 53 + 5) % 512).collect();
    compare("tests/reference/fixture", DType::Bf16, &prompt, 8, Some(4));
}

#[test]
#[ignore = "needs a GPU and ~16 GB of host memory; run by kernels-cuda/scripts/gpu-check.sh"]
fn synthetic_20b_matches_the_cpu() {
    compare("synthetic:20b", DType::Bf16, &[1, 2, 3, 4, 5, 6, 7, 8], 3, None);
}

#[test]
#[ignore = "needs a GPU with ~70 GB and ~70 GB of host memory; run by kernels-cuda/scripts/gpu-check.sh"]
fn synthetic_120b_matches_the_cpu() {
    compare("synthetic:120b", DType::Bf16, &[1, 2, 3, 4], 2, None);
}
