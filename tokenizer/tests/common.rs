//! The embedded o200k_harmony, loaded once per test binary.

use gptoss_tokenizer::Tokenizer;
use std::sync::LazyLock;

pub fn o200k_harmony() -> &'static Tokenizer {
    static TOKENIZER: LazyLock<Tokenizer> = LazyLock::new(|| Tokenizer::o200k_harmony().expect("embedded vocabulary loads"));
    &TOKENIZER
}
