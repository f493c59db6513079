//! The reference fixture mutated (config, headers, lengths, truncations, index, file types), then
//! opened, scanned, loaded and run. The body is `gptoss_fuzz_targets::model_dir`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gptoss_fuzz_targets::model_dir::run(data));
