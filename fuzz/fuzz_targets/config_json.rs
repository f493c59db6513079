//! Any bytes as config.json: problems, or a config that computes and writes back out. The body is
//! `gptoss_fuzz_targets::config_json`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gptoss_fuzz_targets::config_json::run(data));
