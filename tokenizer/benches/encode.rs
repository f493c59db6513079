//! Encoding throughput of gptoss-tokenizer alone (the comparison with tiktoken-rs lives in
//! `tokenizer/compat/benches/compare.rs`): typical text at 10 B .. 1 MB, and the inputs that
//! are quadratic for naive BPE.
//!
//! `cargo bench -p gptoss-tokenizer --bench encode`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gptoss_tokenizer::Tokenizer;
use std::hint::black_box;

/// Mixed prose and code, repeated to the requested length (cut at a character boundary).
fn text_of_len(len: usize) -> String {
    const SAMPLE: &str = "The quick brown fox doesn't jump over 1234 lazy dogs; \
        «Съешь же ещё этих мягких французских булок», 日本語のテキスト、 \
        fn main() {\n    println!(\"{}\", x + 42);\n}\n\t  indented   text  \n";
    let mut text = SAMPLE.repeat(len / SAMPLE.len() + 1);
    let mut cut = len.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

fn bench_encode(c: &mut Criterion) {
    let tokenizer = Tokenizer::o200k_harmony().expect("embedded vocabulary loads");
    let mut group = c.benchmark_group("encode_ordinary");
    for len in [10, 100, 1_000, 10_000, 100_000, 1_000_000] {
        let text = text_of_len(len);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &text, |b, text| b.iter(|| tokenizer.encode_ordinary(black_box(text))));
    }
    group.finish();

    let mut group = c.benchmark_group("pathological_1MB");
    group.sample_size(10);
    for (name, text) in [("dashes", "-".repeat(1 << 20)), ("one_cjk_char", "日".repeat((1 << 20) / 3)), ("spaces", " ".repeat(1 << 20))] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &text, |b, text| b.iter(|| tokenizer.encode_ordinary(black_box(text))));
    }
    group.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
