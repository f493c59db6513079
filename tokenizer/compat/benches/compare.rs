//! Encoding throughput side by side in one run: gptoss-tokenizer, tiktoken-rs and bpe-openai
//! (o200k; bpe-openai has no harmony special tokens, which ordinary encoding does not use), on
//! prefixes of the multi-script corpus from 10 B to 1 MB, single thread.
//!
//! `cargo bench -p gptoss-tokenizer-compat --features bpe-openai --bench compare`
//! (without the feature, bpe-openai is left out).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gptoss_tokenizer_compat::reference::{CORPUS, ours};
use std::hint::black_box;

/// The first `len` bytes of the corpus (repeated as needed), cut at a character boundary.
fn corpus_prefix(len: usize) -> String {
    let mut text = CORPUS.repeat(len / CORPUS.len() + 1);
    let mut cut = len.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

fn bench_compare(c: &mut Criterion) {
    let ours = ours();
    let tiktoken = tiktoken_rs::o200k_harmony().expect("tiktoken-rs loads");
    #[cfg(feature = "bpe-openai")]
    let bpe = bpe_openai::o200k_base();
    for len in [10, 100, 1_000, 10_000, 100_000, 1_000_000] {
        let text = corpus_prefix(len);
        assert_eq!(ours.encode_ordinary(&text), tiktoken.encode_ordinary(&text));
        let mut group = c.benchmark_group(format!("encode_ordinary/{len}"));
        group.throughput(Throughput::Bytes(text.len() as u64));
        if len >= 100_000 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::from_parameter("gptoss"), &text, |b, text| b.iter(|| ours.encode_ordinary(black_box(text))));
        group.bench_with_input(BenchmarkId::from_parameter("tiktoken-rs"), &text, |b, text| {
            b.iter(|| tiktoken.encode_ordinary(black_box(text)))
        });
        #[cfg(feature = "bpe-openai")]
        group.bench_with_input(BenchmarkId::from_parameter("bpe-openai"), &text, |b, text| b.iter(|| bpe.encode(black_box(text.as_str()))));
        group.finish();
    }
}

criterion_group!(benches, bench_compare);
criterion_main!(benches);
