//! Any bytes given as tokenizer.json load or fail with an error; a tokenizer that loads
//! encodes and decodes without panicking.

#![no_main]

use gptoss_tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tokenizer) = Tokenizer::from_tokenizer_json(data) {
        let ids = tokenizer.encode_with_special_tokens("Hello, wörld! <|end|> 123");
        let _ = tokenizer.decode(&ids);
    }
});
