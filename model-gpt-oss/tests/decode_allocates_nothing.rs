//! The decode step allocates nothing: after the first token, generating more tokens (forward,
//! sampling with top-k/top-p, the generator loop) makes no heap allocation on any thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gptoss_engine::{CausalLm, GenerateOptions, SamplingParams, generate};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_steps_allocate_nothing() {
    let model = "synthetic:tiny".parse::<ModelSource>().unwrap().open().unwrap();
    let mut m = GptOss::load(CpuBackend::new(Some(2)).unwrap(), &model, LoadOptions::default()).unwrap();
    let mut ctx = m.new_context(ContextOptions { max_context: 256, ..Default::default() }).unwrap();
    let mut lm = m.session(&mut ctx);
    for sampling in [SamplingParams::GREEDY, SamplingParams { temperature: 0.8, top_k: 50, top_p: 0.9 }, SamplingParams::default()] {
        let opts = GenerateOptions { max_tokens: 40, stop_tokens: vec![], sampling, seed: 3 };
        let mut tokens = Vec::with_capacity(64);
        ALLOCATIONS.store(0, Ordering::SeqCst);
        lm.rollback(0).unwrap();
        generate(&mut lm, &[1, 2, 3, 4, 5], &opts, |t| {
            // Count from the first sampled token on: everything after it is decode.
            COUNTING.store(true, Ordering::SeqCst);
            tokens.push(t);
            true
        })
        .unwrap();
        COUNTING.store(false, Ordering::SeqCst);
        assert_eq!(tokens.len(), 40);
        assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "allocations during 39 decode steps with {sampling:?}");
    }
}
