//! Throughput of gptoss-tokenizer, tiktoken-rs and bpe-openai measured in interleaved rounds,
//! keeping each one's best round: on a shared machine, load from other processes only ever
//! slows a round down, so the best of many interleaved rounds compares the implementations
//! under the same conditions where a sequential benchmark (criterion) cannot.
//!
//! `cargo run --release -p gptoss-tokenizer-compat --features bpe-openai --example compare_best_of`

use gptoss_tokenizer_compat::reference::{CORPUS, ours};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ROUNDS: usize = 15;
/// Time spent per implementation per round.
const ROUND_TIME: Duration = Duration::from_millis(30);

fn corpus_prefix(len: usize) -> String {
    let mut text = CORPUS.repeat(len / CORPUS.len() + 1);
    let mut cut = len.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// Seconds per call of `encode`, timed over at least `ROUND_TIME`.
fn time_round(encode: &dyn Fn() -> usize) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < ROUND_TIME {
        black_box(encode());
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

fn main() {
    let gptoss = ours();
    let tiktoken = tiktoken_rs::o200k_harmony().expect("tiktoken-rs loads");
    #[cfg(feature = "bpe-openai")]
    let bpe = bpe_openai::o200k_base();
    println!("| bytes | gptoss MiB/s | tiktoken-rs MiB/s | bpe-openai MiB/s | gptoss / tiktoken-rs |");
    println!("|---:|---:|---:|---:|---:|");
    for len in [10, 100, 1_000, 10_000, 100_000, 1_000_000] {
        let text = corpus_prefix(len);
        // gptoss, tiktoken-rs, then bpe-openai when built with it.
        let encoders: Vec<Box<dyn Fn() -> usize + '_>> = vec![
            Box::new(|| gptoss.encode_ordinary(black_box(&text)).len()),
            Box::new(|| tiktoken.encode_ordinary(black_box(&text)).len()),
            #[cfg(feature = "bpe-openai")]
            Box::new(|| bpe.encode(black_box(text.as_str())).len()),
        ];
        let mut best = vec![f64::INFINITY; encoders.len()];
        for _ in 0..ROUNDS {
            for (slot, encode) in best.iter_mut().zip(&encoders) {
                *slot = slot.min(time_round(encode.as_ref()));
            }
        }
        let mib_s = |seconds: f64| text.len() as f64 / seconds / (1024.0 * 1024.0);
        let bpe_cell = best.get(2).map_or("-".to_owned(), |&s| format!("{:.1}", mib_s(s)));
        println!("| {} | {:.1} | {:.1} | {bpe_cell} | {:.2}× |", text.len(), mib_s(best[0]), mib_s(best[1]), best[1] / best[0]);
    }
}
