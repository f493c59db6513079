//! Encodes a prefix of the corpus many times with one implementation, for instruction counts
//! under valgrind (deterministic where wall-clock timing on a shared machine is not):
//!
//! ```text
//! cargo build --release -p gptoss-tokenizer-compat --features bpe-openai --example encode_loop
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/encode_loop gptoss 10000 20
//! ```
//!
//! Run it with 0 iterations too and subtract: that is the cost of loading the vocabulary.

use gptoss_tokenizer_compat::reference::{CORPUS, ours};
use std::hint::black_box;

fn main() -> Result<(), String> {
    let usage = "usage: encode_loop gptoss|tiktoken-rs|bpe-openai BYTES ITERATIONS";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [implementation, bytes, iterations] = args.as_slice() else {
        return Err(usage.into());
    };
    let bytes: usize = bytes.parse().map_err(|_| usage)?;
    let iterations: usize = iterations.parse().map_err(|_| usage)?;
    let mut text = CORPUS.repeat(bytes / CORPUS.len() + 1);
    let mut cut = bytes.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    let tokens = match implementation.as_str() {
        "gptoss" => {
            let t = ours();
            (0..iterations).map(|_| t.encode_ordinary(black_box(&text)).len()).sum::<usize>()
        }
        "tiktoken-rs" => {
            let t = tiktoken_rs::o200k_harmony().map_err(|e| e.to_string())?;
            (0..iterations).map(|_| t.encode_ordinary(black_box(&text)).len()).sum()
        }
        #[cfg(feature = "bpe-openai")]
        "bpe-openai" => {
            let t = bpe_openai::o200k_base();
            (0..iterations).map(|_| t.encode(black_box(text.as_str())).len()).sum()
        }
        _ => return Err(usage.into()),
    };
    println!("{implementation}: {} bytes x {iterations}: {tokens} tokens", text.len());
    Ok(())
}
