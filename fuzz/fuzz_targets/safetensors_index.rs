//! Any bytes as model.safetensors.index.json: an error, or shard names inside the directory. The
//! body is `gptoss_fuzz_targets::safetensors_index`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gptoss_fuzz_targets::safetensors_index::run(data));
