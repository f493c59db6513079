//! Any text encodes and decodes back (with special tokens: to the same ids). The body is
//! `gptoss_fuzz_targets::encode`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gptoss_fuzz_targets::encode::run(data));
