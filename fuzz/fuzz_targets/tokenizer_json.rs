//! Any bytes as tokenizer.json: an error, or a tokenizer that encodes and decodes. The body is
//! `gptoss_fuzz_targets::tokenizer_json`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gptoss_fuzz_targets::tokenizer_json::run(data));
