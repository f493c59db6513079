//! Any bytes as a safetensors file: an error, or tensors inside the file, sized by their shape,
//! disjoint. The body is `gptoss_fuzz_targets::safetensors_header`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gptoss_fuzz_targets::safetensors_header::run(data));
