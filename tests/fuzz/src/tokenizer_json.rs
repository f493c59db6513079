//! Any bytes as tokenizer.json: an error, or a tokenizer that encodes and decodes without
//! panicking.

use gptoss_tokenizer::Tokenizer;

pub fn run(data: &[u8]) {
    if let Ok(tokenizer) = Tokenizer::from_tokenizer_json(data) {
        let ids = tokenizer.encode_with_special_tokens("Hello, wörld! <|end|> 123");
        let _ = tokenizer.decode(&ids);
    }
}
