//! The residency modes on the CUDA backend's emulated device: the expert pool and the streamed
//! layers live in device memory (misses read from disk into host buffers, then copied to their
//! slots), and the logits are bit-identical to the device's own with every weight resident,
//! through chunked prefill and decode, including the smallest pool. The `mmap` mode is refused:
//! a device computes from its own memory, not from a mapping.

#![cfg(feature = "cuda-sim")]

use std::path::Path;

use gptoss_engine::residency::Offload;
use gptoss_engine::{CausalLm, DType, Logits, SamplingParams, prefill_chunks};
use gptoss_kernels_cuda::CudaBackend;
use gptoss_model_gpt_oss::residency::StreamStats;
use gptoss_model_gpt_oss::residency::plan::ResidencyOptions;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource};

const PROMPT: [u32; 9] = [3, 17, 250, 9, 401, 77, 500, 12, 64];
const CHUNK: usize = 4;
const DECODE: usize = 3;

/// Every logit's bits (each prompt position, then each decode step), the greedy tokens, and
/// what streamed.
fn run(offload: Offload, smallest: bool) -> (Vec<u32>, Vec<u32>, StreamStats) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixture");
    let opened = ModelSource::Dir(dir).open().unwrap();
    let mut load = LoadOptions {
        max_batch: CHUNK,
        residency: ResidencyOptions { offload, io_threads: 2, ..Default::default() },
        ..Default::default()
    };
    if smallest {
        let plan = GptOss::plan_residency(&CudaBackend::sim().unwrap(), &opened, &load).unwrap();
        load.residency.budget = Some(plan.minimum());
    }
    let mut model = GptOss::load(CudaBackend::sim().unwrap(), &opened, load).unwrap();
    let mut ctx = model.new_context(ContextOptions { max_context: 32, kv_dtype: DType::F32 }).unwrap();
    let (mut bits, mut tokens) = (Vec::new(), Vec::new());
    {
        let mut lm = model.session(&mut ctx);
        let mut row = vec![0f32; lm.vocab_size()];
        prefill_chunks(&mut lm, &PROMPT, Logits::All, |lm, _, chunk| {
            for i in 0..chunk.len() {
                lm.logits(i, &mut row)?;
                bits.extend(row.iter().map(|v| v.to_bits()));
            }
            Ok::<(), gptoss_engine::EngineError>(())
        })
        .unwrap();
        let mut token = lm.sample((PROMPT.len() - 1) % CHUNK, &SamplingParams::GREEDY, 0.0).unwrap();
        for _ in 0..DECODE {
            lm.forward(&[token], 1).unwrap();
            lm.logits(0, &mut row).unwrap();
            bits.extend(row.iter().map(|v| v.to_bits()));
            token = lm.sample(0, &SamplingParams::GREEDY, 0.0).unwrap();
            tokens.push(token);
        }
    }
    (bits, tokens, model.stream_stats())
}

#[test]
fn streamed_modes_on_the_emulated_device_give_its_resident_logits() {
    let (want, want_tokens, _) = run(Offload::None, false);
    for (offload, smallest) in [(Offload::Layered, false), (Offload::Experts, false), (Offload::Experts, true)] {
        let (got, tokens, stats) = run(offload, smallest);
        assert_eq!(tokens, want_tokens, "{offload} (smallest {smallest})");
        assert!(got == want, "{offload} (smallest {smallest}): logits differ from the resident model's");
        match stats {
            StreamStats::Experts { cache, store } => assert!(cache.misses > 0 && store.bytes_read > 0, "{cache:?}"),
            StreamStats::Layered(l) => assert!(l.layers_read > 0),
            StreamStats::None => panic!("{offload} streamed nothing"),
        }
    }
}

#[test]
fn the_mmap_mode_is_refused_on_a_device() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixture");
    let opened = ModelSource::Dir(dir).open().unwrap();
    let load = LoadOptions { residency: ResidencyOptions { offload: Offload::Mmap, ..Default::default() }, ..Default::default() };
    let e = GptOss::load(CudaBackend::sim().unwrap(), &opened, load).err().unwrap().to_string();
    assert!(e.contains("mmap mode") && e.contains("copies weights"), "{e}");
}
