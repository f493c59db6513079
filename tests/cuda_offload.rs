//! The residency modes on the CUDA backend (the emulated device, and a GPU where there is one,
//! skipping without): the expert pool and the streamed
//! layers live in device memory (misses read from disk into host buffers, then copied to their
//! slots), and the logits are bit-identical to the device's own with every weight resident,
//! through chunked prefill and decode, including the smallest pool. The `host` mode reads every
//! expert through a table, from host memory or a device slot, with decode steps recorded and
//! replayed while experts move between them. With the experts on the CPU beside the device
//! (`--cpu-experts`) the logits are the device's within the CPU kernels' rounding. The `mmap`
//! mode is refused: a device computes from its own memory, not from a mapping.

#![cfg(any(feature = "cuda", feature = "cuda-sim"))]

#[cfg(feature = "cuda")]
#[path = "support/gpu.rs"]
mod support;

use std::path::Path;

use gptoss_engine::residency::Offload;
use gptoss_engine::{CausalLm, DType, Logits, SamplingParams, prefill_chunks};
use gptoss_kernels_cpu::{Activations, CpuBackend, CpuOptions};
use gptoss_kernels_cuda::CudaBackend;
use gptoss_kernels_cuda::device::Device;
use gptoss_model_gpt_oss::residency::StreamStats;
use gptoss_model_gpt_oss::residency::plan::ResidencyOptions;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource};

const PROMPT: [u32; 9] = [3, 17, 250, 9, 401, 77, 500, 12, 64];
const CHUNK: usize = 4;
const DECODE: usize = 6;

/// Every logit's bits (each prompt position, then each decode step), the greedy tokens, and
/// what streamed.
/// Makes the device's backend (a fresh one per model).
type Make<'a, D> = &'a dyn Fn() -> CudaBackend<D>;

fn run<D: Device>(make: Make<D>, offload: Offload, smallest: bool) -> (Vec<u32>, Vec<u32>, StreamStats) {
    run_on(make, fixture(), &PROMPT, DECODE, offload, smallest)
}

fn fixture() -> ModelSource {
    ModelSource::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixture"))
}

fn run_on<D: Device>(
    make: Make<D>,
    source: ModelSource,
    prompt: &[u32],
    decode: usize,
    offload: Offload,
    smallest: bool,
) -> (Vec<u32>, Vec<u32>, StreamStats) {
    let opened = source.open().unwrap();
    let mut load = LoadOptions {
        max_batch: CHUNK,
        residency: ResidencyOptions { offload, io_threads: 2, ..Default::default() },
        ..Default::default()
    };
    if smallest {
        let plan = GptOss::plan_residency(&make(), &opened, &load).unwrap();
        load.residency.budget = Some(plan.minimum());
    }
    drive(GptOss::load(make(), &opened, load).unwrap(), prompt, decode)
}

/// Prefills `prompt` in chunks and decodes `decode` greedy tokens: every logit's bits, the
/// tokens, and what streamed.
fn drive<D: Device>(mut model: GptOss<CudaBackend<D>>, prompt: &[u32], decode: usize) -> (Vec<u32>, Vec<u32>, StreamStats) {
    let mut ctx = model.new_context(ContextOptions { max_context: 32, kv_dtype: DType::F32 }).unwrap();
    let (mut bits, mut tokens) = (Vec::new(), Vec::new());
    {
        let mut lm = model.session(&mut ctx);
        let mut row = vec![0f32; lm.vocab_size()];
        prefill_chunks(&mut lm, prompt, Logits::All, |lm, _, chunk| {
            for i in 0..chunk.len() {
                lm.logits(i, &mut row)?;
                bits.extend(row.iter().map(|v| v.to_bits()));
            }
            Ok::<(), gptoss_engine::EngineError>(())
        })
        .unwrap();
        let mut token = lm.sample((prompt.len() - 1) % CHUNK, &SamplingParams::GREEDY, 0.0).unwrap();
        for _ in 0..decode {
            lm.forward(&[token], 1).unwrap();
            lm.logits(0, &mut row).unwrap();
            bits.extend(row.iter().map(|v| v.to_bits()));
            token = lm.sample(0, &SamplingParams::GREEDY, 0.0).unwrap();
            tokens.push(token);
        }
    }
    (bits, tokens, model.stream_stats())
}

fn streamed_modes_give_the_resident_logits<D: Device>(make: Make<D>) {
    let (want, want_tokens, _) = run(make, Offload::None, false);
    let modes =
        [(Offload::Layered, false), (Offload::Experts, false), (Offload::Experts, true), (Offload::Host, false), (Offload::Host, true)];
    for (offload, smallest) in modes {
        let (got, tokens, stats) = run(make, offload, smallest);
        assert_eq!(tokens, want_tokens, "{offload} (smallest {smallest})");
        assert!(got == want, "{offload} (smallest {smallest}): logits differ from the resident model's");
        match stats {
            StreamStats::Experts { cache, store } => assert!(cache.misses > 0 && store.bytes_read > 0, "{cache:?}"),
            StreamStats::Layered(l) => assert!(l.layers_read > 0),
            StreamStats::Host { host, cache } => {
                // Steps read experts from host memory, and from slots once copies landed (the
                // smallest pool, one slot, evicts its expert at nearly every step).
                assert!(host.from_host > 0 && host.landed > 0 && (smallest || host.from_slots > 0), "{host:?}");
                assert_eq!(host.steps as usize, PROMPT.len().div_ceil(CHUNK) + DECODE, "{host:?}");
                assert!(!smallest || cache.evictions > 0, "{cache:?}");
            }
            StreamStats::None => panic!("{offload} streamed nothing"),
        }
    }
}

fn the_mmap_mode_is_refused<D: Device>(make: Make<D>) {
    let opened = fixture().open().unwrap();
    let load = LoadOptions { residency: ResidencyOptions { offload: Offload::Mmap, ..Default::default() }, ..Default::default() };
    let e = GptOss::load(make(), &opened, load).err().unwrap().to_string();
    assert!(e.contains("mmap mode") && e.contains("copies weights"), "{e}");
}

fn the_host_mode_moves_a_generated_model_out_of_device_memory<D: Device>(make: Make<D>) {
    // One prefill chunk and two decode steps: copies queued after the first step land by the third.
    let tiny = || "synthetic:tiny".parse::<ModelSource>().unwrap();
    let prompt = &PROMPT[..CHUNK];
    let (want, want_tokens, _) = run_on(make, tiny(), prompt, 2, Offload::None, false);
    let (got, tokens, stats) = run_on(make, tiny(), prompt, 2, Offload::Host, true);
    assert_eq!(tokens, want_tokens);
    assert!(got == want, "host mode: logits differ from the resident model's");
    assert!(matches!(stats, StreamStats::Host { host, .. } if host.landed > 0), "{stats:?}");
}

#[test]
fn the_host_mode_is_refused_where_host_memory_is_the_device_memory() {
    let opened = fixture().open().unwrap();
    let load = LoadOptions { residency: ResidencyOptions { offload: Offload::Host, ..Default::default() }, ..Default::default() };
    let e = GptOss::load(CpuBackend::new(Some(1)).unwrap(), &opened, load).err().unwrap().to_string();
    assert!(e.contains("host mode") && e.contains("none or mmap"), "{e}");
}

fn experts_on_the_cpu_beside_the_device_give_its_logits<D: Device>(make: Make<D>) {
    let (want, want_tokens, _) = run(make, Offload::None, false);
    let opened = fixture().open().unwrap();
    let load = LoadOptions { max_batch: CHUNK, ..Default::default() };
    let cpu = CpuBackend::with_options(CpuOptions { activations: Activations::F32, ..CpuOptions::from_env(Some(1)).unwrap() }).unwrap();
    let model = GptOss::load_with_experts_on(make(), cpu, &opened, load, &mut |_, _| {}).unwrap();
    let (got, tokens, stats) = drive(model, &PROMPT, DECODE);
    assert_eq!(tokens, want_tokens);
    assert_eq!(stats, StreamStats::None);
    // The CPU's expert kernels sum in another order than the device's: the budget of the whole
    // model on the CPU against the device (tests/cuda_backend.rs).
    let (want, got): (Vec<f32>, Vec<f32>) = (want.into_iter().map(f32::from_bits).collect(), got.into_iter().map(f32::from_bits).collect());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = want.iter().zip(&got).fold(0f32, |m, (w, g)| m.max((w - g).abs()));
    assert!(worst <= 1e-3 * scale, "largest logit difference {worst} against a largest logit of {scale}");
    let refused = GptOss::load_with_experts_on(
        make(),
        CpuBackend::new(Some(1)).unwrap(),
        &opened,
        LoadOptions { residency: ResidencyOptions { budget: Some(1 << 30), ..Default::default() }, ..load },
        &mut |_, _| {},
    );
    let e = refused.err().unwrap().to_string();
    assert!(e.contains("memory budget"), "{e}");
}

#[cfg(feature = "cuda-sim")]
mod emulated {
    use super::*;

    fn sim() -> CudaBackend<gptoss_kernels_cuda::Sim> {
        CudaBackend::sim().unwrap()
    }

    #[test]
    fn streamed_modes_give_the_emulated_device_s_resident_logits() {
        streamed_modes_give_the_resident_logits(&sim);
    }

    #[test]
    fn the_mmap_mode_is_refused_on_the_emulated_device() {
        the_mmap_mode_is_refused(&sim);
    }

    #[test]
    fn the_host_mode_moves_a_generated_model_out_of_device_memory_layer_by_layer() {
        the_host_mode_moves_a_generated_model_out_of_device_memory(&sim);
    }

    #[test]
    fn experts_on_the_cpu_beside_the_emulated_device() {
        experts_on_the_cpu_beside_the_device_give_its_logits(&sim);
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use crate::support::gpu;

    fn make() -> CudaBackend<gptoss_kernels_cuda::Gpu> {
        gpu().expect("a GPU (checked by the test)")
    }

    #[test]
    fn streamed_modes_give_the_gpu_s_resident_logits() {
        if gpu().is_some() {
            streamed_modes_give_the_resident_logits(&make);
        }
    }

    #[test]
    fn the_mmap_mode_is_refused_on_a_gpu() {
        if gpu().is_some() {
            the_mmap_mode_is_refused(&make);
        }
    }

    #[test]
    fn the_host_mode_moves_a_generated_model_out_of_gpu_memory() {
        if gpu().is_some() {
            the_host_mode_moves_a_generated_model_out_of_device_memory(&make);
        }
    }

    #[test]
    fn experts_on_the_cpu_beside_a_gpu() {
        if gpu().is_some() {
            experts_on_the_cpu_beside_the_device_give_its_logits(&make);
        }
    }
}
