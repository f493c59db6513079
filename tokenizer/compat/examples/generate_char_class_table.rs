//! Regenerates `tokenizer/src/char_class_table.rs` from regex-syntax's Unicode tables.

fn main() -> std::io::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../src/char_class_table.rs");
    std::fs::write(path, gptoss_tokenizer_compat::char_class_table::generate())?;
    println!("wrote {path}");
    Ok(())
}
