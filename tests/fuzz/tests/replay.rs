//! Every fuzz target on the stable toolchain: each committed seed in `fuzz/seeds/TARGET/`
//! (inputs a fuzzer once crashed on are kept there too), then a fixed set of byte-level
//! mutations of each seed, the same on every run. cargo-fuzz explores far more (`fuzz/`); this
//! keeps every target and every past crash exercised wherever the tests run.

use std::path::{Path, PathBuf};

use gptoss_engine::Rng;
use gptoss_fuzz_targets::TARGETS;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds").join(target);
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One random edit of `input`, as libFuzzer's simplest mutators make them: a byte changed, a
/// run of bytes deleted, duplicated or replaced by an interesting value.
fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    const INTERESTING: [&[u8]; 8] = [b"0", b"-1", b"4294967296", b"1099511627776", b"1e309", b"null", b"\"\"", b"[]"];
    let mut out = input.to_vec();
    let mut pick = |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    let at = pick(out.len() + 1);
    match pick(4) {
        0 if !out.is_empty() => {
            let (i, byte) = (at.min(out.len() - 1), pick(256) as u8);
            out[i] = byte;
        }
        1 => {
            let end = (at + pick(16)).min(out.len());
            out.drain(at..end);
        }
        2 => {
            let end = (at + pick(64)).min(out.len());
            let copy = out[at..end].to_vec();
            out.splice(at..at, copy);
        }
        _ => {
            let end = (at + pick(8)).min(out.len());
            out.splice(at..end, INTERESTING[pick(INTERESTING.len())].iter().copied());
        }
    }
    out
}

/// Mutations run per seed: the model-directory target writes and loads a model each time.
fn mutations_per_seed(target: &str) -> usize {
    if target == "model_dir" { 24 } else { 256 }
}

#[test]
fn every_seed_and_its_mutations_run_without_a_panic() {
    for (target, run) in TARGETS {
        let mut rng = Rng::new(0x5eed);
        for (path, seed) in seeds(target) {
            run(&seed);
            let mut input = seed.clone();
            for i in 0..mutations_per_seed(target) {
                // Stack edits on the last input, starting again from the seed now and then.
                input = mutate(if i % 4 == 0 { &seed } else { &input }, &mut rng);
                let result = std::panic::catch_unwind(|| run(&input));
                assert!(result.is_ok(), "{target}: mutation {i} of {} panicked on {input:?}", path.display());
            }
        }
    }
}
