//! `gptoss tokenize`: the ordinary-encoding ids of stdin or a file, comma-separated on one
//! line; `gptoss detokenize`: ids in that form back to the exact original bytes.

use std::io::Write;

use gptoss::{Error, Result};

use super::args::parse_ids;
use super::text::{TextArgs, read_input};

pub fn tokenize(a: TextArgs) -> Result<()> {
    let tokenizer = a.tokenizer()?;
    let bytes = read_input(a.file.as_deref())?;
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::Usage(format!("the input is not UTF-8 (first bad byte at {})", e.utf8_error().valid_up_to())))?;
    let ids: Vec<String> = tokenizer.encode_ordinary(&text).iter().map(u32::to_string).collect();
    println!("{}", ids.join(","));
    Ok(())
}

pub fn detokenize(a: TextArgs) -> Result<()> {
    let tokenizer = a.tokenizer()?;
    let bytes = read_input(a.file.as_deref())?;
    let text = String::from_utf8_lossy(&bytes);
    // An empty input is the encoding of the empty text.
    let ids = if text.trim().is_empty() { Vec::new() } else { parse_ids(&text, "token ids")? };
    let mut out = std::io::stdout().lock();
    out.write_all(&tokenizer.decode_bytes(&ids)?)?;
    out.flush()?;
    Ok(())
}
