//! Checks `gptoss-tokenizer` against tiktoken-rs and regenerates its data files.
//! Nothing here ships: the comparison dependencies stay out of the library's tree.

pub mod char_class_table;
pub mod reference;
pub mod synthetic_text;
