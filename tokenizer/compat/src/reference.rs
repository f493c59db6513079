//! The two tokenizers under comparison, loaded once per process.

use gptoss_tokenizer::Tokenizer;
use std::sync::LazyLock;

/// gptoss-tokenizer's o200k_harmony (embedded vocabulary).
pub fn ours() -> &'static Tokenizer {
    static OURS: LazyLock<Tokenizer> = LazyLock::new(|| match Tokenizer::o200k_harmony() {
        Ok(tokenizer) => tokenizer,
        Err(e) => panic!("embedded o200k_harmony does not load: {e}"),
    });
    &OURS
}

/// The multi-script corpus (see `corpus/assemble.py`).
pub const CORPUS: &str = include_str!("../corpus/corpus.txt");
