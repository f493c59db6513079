//! Soak: one million tokens on synthetic:tiny, half through `generate` with the context
//! emptied between conversations, half through the C API with a session created and released
//! per conversation. The process's resident memory must stay flat and no file descriptor may
//! leak. Ignored by default (about two hours on two cores: synthetic:tiny's 201,088-row
//! unembedding and sampler dominate each token):
//!
//!     cargo test --release --test soak -- --ignored --nocapture
//!
//! `GPTOSS_SOAK_TOKENS=N` runs N tokens instead (`.ci/run` runs a short form).

use std::ffi::CString;
use std::ptr::{null, null_mut};

use gptoss::capi::*;
use gptoss::{RuntimeOptions, Session};
use gptoss_engine::{DType, GenerateOptions, Rng, SamplingParams, generate};
use gptoss_model_gpt_oss::{ContextOptions, ModelSource};

/// Tokens in all, split evenly between the two paths.
const DEFAULT_TOKENS: usize = 1_000_000;
/// Tokens generated per conversation; each starts from an empty context.
const PER_CONVERSATION: usize = 200;
/// How much resident memory may grow from the end of the warm-up (a tenth of each path's
/// conversations) to the end: a leak of even one small buffer per conversation exceeds it.
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

/// VmRSS of this process, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

/// Open file descriptors of this process (the listing's own descriptor included, every time).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("Linux /proc").count()
}

/// Watches memory and descriptors of one path: a baseline after warm-up, the peak after it.
struct Watch {
    name: &'static str,
    baseline: Option<(u64, usize)>,
    peak_kib: u64,
}

impl Watch {
    fn new(name: &'static str) -> Self {
        Watch { name, baseline: None, peak_kib: 0 }
    }

    /// Called after each conversation; `warm` once the warm-up is over.
    fn sample(&mut self, warm: bool) {
        if !warm {
            return;
        }
        let rss = rss_kib();
        let (base, _) = *self.baseline.get_or_insert((rss, open_fds()));
        self.peak_kib = self.peak_kib.max(rss);
        assert!(rss <= base + RSS_GROWTH_BOUND_KIB, "{}: RSS grew from {base} to {rss} KiB", self.name);
    }

    fn finish(&self, tokens: usize, seconds: f64) {
        let (base, fds) = self.baseline.expect("the run went past its warm-up");
        let (rss, fds_now) = (rss_kib(), open_fds());
        eprintln!(
            "{}: {tokens} tokens in {seconds:.0} s; RSS after warm-up {base} KiB, peak {} KiB, at the end {rss} KiB \
             (bound +{RSS_GROWTH_BOUND_KIB} KiB); open fds {fds} → {fds_now}",
            self.name, self.peak_kib
        );
        assert!(rss <= base + RSS_GROWTH_BOUND_KIB, "{}: RSS grew from {base} to {rss} KiB", self.name);
        assert_eq!(fds_now, fds, "{}: file descriptors leaked", self.name);
    }
}

fn prompt(rng: &mut Rng, vocab: usize) -> Vec<u32> {
    (0..8).map(|_| (rng.next_u64() % vocab as u64) as u32).collect()
}

/// `conversations` conversations through the engine's `generate`, the context emptied before
/// each.
fn through_generate(conversations: usize) {
    let model = "synthetic:tiny".parse::<ModelSource>().unwrap().open().unwrap();
    let opts = RuntimeOptions { context: ContextOptions { max_context: 256, kv_dtype: DType::Bf16 }, ..RuntimeOptions::default() };
    let mut session = Session::load(&model, &opts).unwrap();
    let mut lm = session.lm().unwrap();
    let (mut rng, mut watch, start) = (Rng::new(1), Watch::new("generate"), std::time::Instant::now());
    let mut tokens = 0;
    for i in 0..conversations {
        lm.rollback(0).unwrap();
        let p = prompt(&mut rng, lm.vocab_size());
        let o = GenerateOptions { max_tokens: PER_CONVERSATION, stop_tokens: vec![], sampling: SamplingParams::default(), seed: i as u64 };
        tokens += generate(lm.as_mut(), &p, &o, |_| true).unwrap().generated_tokens;
        watch.sample(i >= conversations / 10);
    }
    watch.finish(tokens, start.elapsed().as_secs_f64());
}

/// `conversations` conversations through the C API, each in a session of its own.
fn through_the_c_api(conversations: usize) {
    let name = CString::new("synthetic:tiny").unwrap();
    let (mut model, mut rng, mut watch, start) = (null_mut(), Rng::new(2), Watch::new("C API"), std::time::Instant::now());
    let mut tokens = 0;
    // SAFETY: valid arguments throughout; every handle is released once.
    unsafe {
        assert_eq!(gptoss_model_load(name.as_ptr(), null(), &mut model), gptoss_status::GPTOSS_SUCCESS);
        // No stop tokens: a non-NULL list of none.
        let no_stops: [u32; 0] = [];
        for i in 0..conversations {
            let mut session = null_mut();
            assert_eq!(gptoss_session_create(model, 256, &mut session), gptoss_status::GPTOSS_SUCCESS);
            let p = prompt(&mut rng, 201_088);
            let sampler = gptoss_sampler { temperature: 1.0, top_k: 0, top_p: 1.0, seed: i as u64 };
            let mut stats = gptoss_stats::default();
            let st = gptoss_session_generate(
                session,
                p.as_ptr(),
                p.len(),
                PER_CONVERSATION as u32,
                &sampler,
                no_stops.as_ptr(),
                0,
                None,
                null_mut(),
                &mut stats,
            );
            assert_eq!(st, gptoss_status::GPTOSS_SUCCESS);
            tokens += stats.generated_tokens as usize;
            assert_eq!(gptoss_session_release(session), gptoss_status::GPTOSS_SUCCESS);
            watch.sample(i >= conversations / 10);
        }
        watch.finish(tokens, start.elapsed().as_secs_f64());
        assert_eq!(gptoss_model_release(model), gptoss_status::GPTOSS_SUCCESS);
    }
}

#[test]
#[ignore = "about two hours on two cores; run with --ignored (GPTOSS_SOAK_TOKENS=N for N tokens)"]
fn a_million_tokens_leave_memory_and_file_descriptors_flat() {
    let tokens: usize = std::env::var("GPTOSS_SOAK_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_TOKENS);
    // Ten conversations at least, so that the warm-up (a tenth) ends before the last.
    let conversations = (tokens / 2 / PER_CONVERSATION).max(10);
    through_generate(conversations);
    through_the_c_api(conversations);
}
