//! The per-character classes the o200k pre-tokenizer distinguishes, and a two-level lookup
//! table from code point to class built once from `char_class_table`.
//!
//! The seven regex alternatives only ever ask whether a character is in one of a few sets
//! (`\p{L}` split by case, `\p{M}`, `\p{N}`, `\s`, `[\r\n]`); every such set is a union of the
//! classes below, so one table lookup per character answers all of them.

use crate::char_class_table::CLASS_RANGES;
use std::sync::OnceLock;

/// A character's class for the o200k pattern. The classes partition all code points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum CharClass {
    /// Not a letter, mark, number or whitespace (punctuation, symbols, controls, unassigned).
    Other = 0,
    /// `\p{Lu}` or `\p{Lt}`: only in the "upper" letter set.
    Upper = 1,
    /// `\p{Ll}`: only in the "lower" letter set.
    Lower = 2,
    /// `\p{Lm}` or `\p{Lo}`: a letter in both the upper and the lower set.
    Both = 3,
    /// `\p{M}`: in both letter sets, but not `\p{L}`, so it may also be the optional prefix.
    Mark = 4,
    /// `\p{N}`.
    Number = 5,
    /// `\s` other than `\r` and `\n`.
    Space = 6,
    /// `\r` or `\n`.
    Newline = 7,
    /// Past the end of the text: in no set.
    End = 8,
}

/// A set of classes as a bit mask, so that membership is one shift and one AND.
#[derive(Clone, Copy)]
pub(crate) struct ClassSet(u16);

impl ClassSet {
    const fn of(classes: &[CharClass]) -> Self {
        let mut bits = 0u16;
        let mut i = 0;
        while i < classes.len() {
            bits |= 1 << classes[i] as u16;
            i += 1;
        }
        Self(bits)
    }

    #[inline(always)]
    pub(crate) fn contains(self, class: CharClass) -> bool {
        self.0 & (1 << class as u16) != 0
    }
}

/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`: the "upper" letter set.
pub(crate) const UPPERISH: ClassSet = ClassSet::of(&[CharClass::Upper, CharClass::Both, CharClass::Mark]);
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`: the "lower" letter set.
pub(crate) const LOWERISH: ClassSet = ClassSet::of(&[CharClass::Lower, CharClass::Both, CharClass::Mark]);
/// `[^\s\p{L}\p{N}]`: what alternative 4 repeats.
pub(crate) const PUNCTUATION: ClassSet = ClassSet::of(&[CharClass::Other, CharClass::Mark]);
/// `\s`.
pub(crate) const WHITESPACE: ClassSet = ClassSet::of(&[CharClass::Space, CharClass::Newline]);

const BLOCK_BITS: u32 = 8;
const BLOCK_LEN: usize = 1 << BLOCK_BITS;
const BLOCK_COUNT: usize = 0x11_0000 >> BLOCK_BITS;

/// Code point → class: a block index per 256 code points, then deduplicated blocks.
pub(crate) struct ClassTable {
    ascii: [CharClass; 128],
    block_of: Box<[u16]>,
    blocks: Vec<CharClass>,
}

impl ClassTable {
    fn build() -> Self {
        let mut flat = vec![CharClass::Other; 0x11_0000];
        for &(start, end, class) in CLASS_RANGES {
            flat[start as usize..=end as usize].fill(class);
        }
        let mut ascii = [CharClass::Other; 128];
        ascii.copy_from_slice(&flat[..128]);
        let mut block_of = vec![0u16; BLOCK_COUNT].into_boxed_slice();
        let mut blocks: Vec<CharClass> = Vec::new();
        let mut seen: rustc_hash::FxHashMap<&[CharClass], u16> = Default::default();
        for (index, block) in flat.chunks_exact(BLOCK_LEN).enumerate() {
            let next = (blocks.len() / BLOCK_LEN) as u16;
            let id = *seen.entry(block).or_insert_with(|| {
                blocks.extend_from_slice(block);
                next
            });
            block_of[index] = id;
        }
        Self { ascii, block_of, blocks }
    }

    /// The class of an ASCII byte.
    #[inline(always)]
    pub(crate) fn ascii(&self, byte: u8) -> CharClass {
        self.ascii[usize::from(byte & 0x7F)]
    }

    /// The class of any code point.
    #[inline(always)]
    pub(crate) fn of(&self, cp: u32) -> CharClass {
        let block = self.block_of[(cp >> BLOCK_BITS) as usize];
        self.blocks[(usize::from(block) << BLOCK_BITS) | (cp as usize & (BLOCK_LEN - 1))]
    }
}

/// The table, built on first use (a few milliseconds).
pub(crate) fn class_table() -> &'static ClassTable {
    static TABLE: OnceLock<ClassTable> = OnceLock::new();
    TABLE.get_or_init(ClassTable::build)
}
