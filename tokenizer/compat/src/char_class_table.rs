//! Writes `tokenizer/src/char_class_table.rs`: the Unicode classes the o200k pre-tokenizer needs,
//! taken from regex-syntax, the same tables tiktoken's regex engines read, so the hand-written
//! scanner and the regex agree on every code point.

use regex_syntax::hir::{Class, HirKind};
use std::fmt::Write as _;

/// The scanner's classes, in the order of `gptoss_tokenizer`'s `CharClass` (index = discriminant).
const CLASS_NAMES: [&str; 8] = ["Other", "Upper", "Lower", "Both", "Mark", "Number", "Space", "Newline"];

/// Unicode property expressions for each class; earlier rows are overwritten by later ones.
const CLASS_PATTERNS: [(&str, usize); 8] = [
    (r"[\p{Lu}\p{Lt}]", 1),
    (r"\p{Ll}", 2),
    (r"[\p{Lm}\p{Lo}]", 3),
    (r"\p{M}", 4),
    (r"\p{N}", 5),
    (r"\s", 6),
    (r"[\r\n]", 7),
    (r"[^\s\p{L}\p{N}\p{M}]", 0),
];

/// The class of every code point (0..=0x10FFFF; surrogates are `Other`).
pub fn classify_all() -> Vec<u8> {
    let mut classes = vec![0u8; 0x11_0000];
    for (pattern, class) in CLASS_PATTERNS {
        let hir = match regex_syntax::parse(pattern) {
            Ok(hir) => hir,
            Err(e) => panic!("pattern {pattern} does not parse: {e}"),
        };
        let HirKind::Class(Class::Unicode(set)) = hir.kind() else {
            panic!("pattern {pattern} is not a Unicode class");
        };
        for range in set.ranges() {
            for cp in u32::from(range.start())..=u32::from(range.end()) {
                classes[cp as usize] = class as u8;
            }
        }
    }
    classes
}

/// The Rust source of the table: maximal ranges of one class, `Other` left implicit.
pub fn generate() -> String {
    let classes = classify_all();
    let mut out = String::new();
    out.push_str(
        "//! Unicode classes of the o200k pre-tokenizer, as ranges of code points (`Other` is implicit).\n\
         //! Generated from regex-syntax's Unicode tables by\n\
         //! `cargo run -p gptoss-tokenizer-compat --example generate_char_class_table`; do not edit.\n\n\
         use crate::char_class::CharClass::{self, *};\n\n\
         pub(crate) static CLASS_RANGES: &[(u32, u32, CharClass)] = &[\n",
    );
    let mut cp = 0usize;
    while cp < classes.len() {
        let class = classes[cp];
        let start = cp;
        while cp < classes.len() && classes[cp] == class {
            cp += 1;
        }
        if class != 0 {
            let _ = writeln!(out, "    (0x{start:X}, 0x{:X}, {}),", cp - 1, CLASS_NAMES[class as usize]);
        }
    }
    out.push_str("];\n");
    out
}
