//! Packs `o200k_base.tiktoken` into `tokenizer/data/o200k_base.tokens.deflate`: the tokens in rank
//! order, each as a length byte and its bytes, compressed with raw DEFLATE.
//!
//! Usage: `cargo run -p gptoss-tokenizer-compat --example pack_o200k_base -- PATH/o200k_base.tiktoken`
//! (the file ships in the tiktoken-rs crate's `assets/`, under `~/.cargo/registry/src/`).

use gptoss_tokenizer::Tokenizer;
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let source = std::env::args().nth(1).ok_or("usage: pack_o200k_base PATH/o200k_base.tiktoken")?;
    let tokenizer = Tokenizer::from_tiktoken(&std::fs::read(&source)?, [])?;
    let mut packed = Vec::new();
    for id in 0..tokenizer.ordinary_token_count() as u32 {
        let token = tokenizer.token_bytes(id)?;
        packed.push(u8::try_from(token.len()).map_err(|_| format!("token {id} is too long"))?);
        packed.extend_from_slice(token);
    }
    let compressed = miniz_oxide::deflate::compress_to_vec(&packed, 10);
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/o200k_base.tokens.deflate");
    std::fs::write(target, &compressed)?;
    println!(
        "{} tokens, {} bytes packed, {} bytes compressed -> {target}",
        tokenizer.ordinary_token_count(),
        packed.len(),
        compressed.len()
    );
    Ok(())
}
