//! Any stream of token ids parses into harmony messages or fails with an error. The body is
//! `gptoss_fuzz_targets::harmony_parser`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gptoss_fuzz_targets::harmony_parser::run(data));
