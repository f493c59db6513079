//! The o200k pre-tokenizer written by hand: splits text into the same pieces as tiktoken's regex
//!
//! ```text
//! 1  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! 2  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! 3  \p{N}{1,3}
//! 4   ?[^\s\p{L}\p{N}]+[\r\n/]*
//! 5  \s*[\r\n]+
//! 6  \s+(?!\S)
//! 7  \s+
//! ```
//!
//! with leftmost-first (backtracking) semantics, in one forward pass and no backtracking: each
//! alternative's backtracking outcome is worked out in closed form below, so a piece costs time
//! proportional to its length plus one character of look-ahead.
//!
//! Write U = `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` ("upperish") and L = `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`
//! ("lowerish"); they share `\p{Lm}`, `\p{Lo}` and `\p{M}`.
//! * `U*L+` from s: take the maximal U run; if the next character is `\p{Ll}` (in L, not in U),
//!   L+ takes the maximal L run from there. Otherwise backtracking gives back U characters until
//!   one in L is next, so the match ends after the last character of the U run that is also in L;
//!   with none, it fails.
//! * `U+L*` from s: the maximal U run (at least one), then the maximal L run.
//! * The optional prefix `[^\r\n\p{L}\p{N}]` is tried first; without it the body can only match
//!   when the first character is itself in U or L, which for a prefix character means `\p{M}`.
//! * `\s*[\r\n]+` ends after the last `\r`/`\n` of the whitespace run; `\s+(?!\S)` ends one
//!   character before the end of a run of two or more that is followed by text, or at the end of
//!   text; `\s+` takes the single whitespace character that remains.

use crate::char_class::{CharClass, ClassTable, LOWERISH, PUNCTUATION, UPPERISH, WHITESPACE, class_table};

/// Iterator over the pre-tokenizer pieces of a text, in order; the pieces concatenate to the text.
pub(crate) struct Pieces<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    table: &'static ClassTable,
}

impl<'t> Pieces<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Self { text, bytes: text.as_bytes(), pos: 0, table: class_table() }
    }

    /// The class of the character starting at byte `i`, and its length in bytes.
    #[inline(always)]
    fn class_at(&self, i: usize) -> (CharClass, usize) {
        let Some(&b0) = self.bytes.get(i) else {
            return (CharClass::End, 0);
        };
        if b0 < 0x80 {
            return (self.table.ascii(b0), 1);
        }
        // `text` is valid UTF-8, so `i` starts a sequence whose continuation bytes follow.
        let cont = |k: usize| u32::from(self.bytes.get(i + k).copied().unwrap_or(0x80) & 0x3F);
        let (cp, len) = if b0 < 0xE0 {
            ((u32::from(b0 & 0x1F) << 6) | cont(1), 2)
        } else if b0 < 0xF0 {
            ((u32::from(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3)
        } else {
            ((u32::from(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3), 4)
        };
        (self.table.of(cp), len)
    }

    /// End of the piece that starts at `i` (`i` < text length).
    fn piece_end(&self, i: usize) -> usize {
        let (class, len) = self.class_at(i);
        match class {
            CharClass::Upper | CharClass::Lower | CharClass::Both => self.word_body(i).unwrap_or(i + len),
            CharClass::Mark => {
                // Alternative 1 with the mark as prefix, else with the mark as its first letter
                // (a mark is in both letter sets, so the latter always matches).
                let end = self.lower_body(i + len).or_else(|| self.lower_body(i));
                end.map_or(i + len, |e| e + self.contraction_len(e))
            }
            CharClass::Number => self.number_end(i),
            CharClass::Newline | CharClass::End => self.whitespace_end(i),
            CharClass::Space | CharClass::Other => {
                if let Some(end) = self.word_body(i + len) {
                    end
                } else if class == CharClass::Other {
                    self.punctuation_end(i)
                } else if self.bytes[i] == b' ' && PUNCTUATION.contains(self.class_at(i + 1).0) {
                    self.punctuation_end(i + 1)
                } else {
                    self.whitespace_end(i)
                }
            }
        }
    }

    /// Alternatives 1 then 2 without their prefix, plus the optional contraction.
    fn word_body(&self, s: usize) -> Option<usize> {
        let end = self.lower_body(s).or_else(|| self.upper_body(s))?;
        Some(end + self.contraction_len(end))
    }

    /// `U*L+` anchored at `s`.
    fn lower_body(&self, s: usize) -> Option<usize> {
        let mut j = s;
        let mut last_lowerish_end = None;
        loop {
            let (class, len) = self.class_at(j);
            if UPPERISH.contains(class) {
                j += len;
                if LOWERISH.contains(class) {
                    last_lowerish_end = Some(j);
                }
            } else if class == CharClass::Lower {
                return Some(self.lowerish_run_end(j));
            } else {
                return last_lowerish_end;
            }
        }
    }

    /// `U+L*` anchored at `s`.
    fn upper_body(&self, s: usize) -> Option<usize> {
        let mut j = s;
        loop {
            let (class, len) = self.class_at(j);
            if !UPPERISH.contains(class) {
                break;
            }
            j += len;
        }
        (j > s).then(|| self.lowerish_run_end(j))
    }

    fn lowerish_run_end(&self, mut j: usize) -> usize {
        loop {
            let (class, len) = self.class_at(j);
            if !LOWERISH.contains(class) {
                return j;
            }
            j += len;
        }
    }

    /// Length of `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `e`, or 0. Under Unicode case folding `s`
    /// also matches `ſ` (U+017F, UTF-8 C5 BF).
    fn contraction_len(&self, e: usize) -> usize {
        let b = self.bytes;
        if b.get(e) != Some(&b'\'') {
            return 0;
        }
        let at = |k: usize| b.get(e + k).map_or(0, |c| c.to_ascii_lowercase());
        match at(1) {
            b's' | b't' | b'm' | b'd' => 2,
            b'r' | b'v' if at(2) == b'e' => 3,
            b'l' if at(2) == b'l' => 3,
            0xC5 if b.get(e + 2) == Some(&0xBF) => 3,
            _ => 0,
        }
    }

    /// `\p{N}{1,3}`.
    fn number_end(&self, i: usize) -> usize {
        let mut j = i;
        for _ in 0..3 {
            let (class, len) = self.class_at(j);
            if class != CharClass::Number {
                break;
            }
            j += len;
        }
        j
    }

    /// `[^\s\p{L}\p{N}]+[\r\n/]*` from `j` (the optional leading space already consumed).
    fn punctuation_end(&self, mut j: usize) -> usize {
        loop {
            let (class, len) = self.class_at(j);
            if !PUNCTUATION.contains(class) {
                break;
            }
            j += len;
        }
        while matches!(self.bytes.get(j), Some(b'\r' | b'\n' | b'/')) {
            j += 1;
        }
        j
    }

    /// Alternatives 5, 6 and 7 on the whitespace run starting at `i`.
    fn whitespace_end(&self, i: usize) -> usize {
        let mut j = i;
        let mut last_start = i;
        let mut last_newline_end = None;
        loop {
            let (class, len) = self.class_at(j);
            if !WHITESPACE.contains(class) {
                break;
            }
            if class == CharClass::Newline {
                last_newline_end = Some(j + len);
            }
            last_start = j;
            j += len;
        }
        match last_newline_end {
            Some(end) => end,
            None if j == self.bytes.len() || last_start == i => j.max(i + 1),
            None => last_start,
        }
    }
}

impl<'t> Iterator for Pieces<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        let start = self.pos;
        if start >= self.bytes.len() {
            return None;
        }
        // Every branch of `piece_end` advances by at least one whole character.
        let end = self.piece_end(start).min(self.bytes.len());
        self.pos = end;
        self.text.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::Pieces;

    fn pieces(text: &str) -> Vec<&str> {
        Pieces::new(text).collect()
    }

    #[test]
    fn splits_like_the_o200k_regex() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("don't DON'T"), ["don't", " DON'T"]);
        assert_eq!(pieces("it'ſ"), ["it'ſ"]);
        assert_eq!(pieces("HTTPServer"), ["HTTPServer"]);
        assert_eq!(pieces("helloWORLD"), ["hello", "WORLD"]);
        assert_eq!(pieces("12345"), ["123", "45"]);
        assert_eq!(pieces("a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces("a \n\n b"), ["a", " \n\n", " b"]);
        assert_eq!(pieces("x  "), ["x", "  "]);
        assert_eq!(pieces(" !!/\n\nz"), [" !!/\n\n", "z"]);
        assert_eq!(pieces("\tx"), ["\tx"]);
        assert_eq!(pieces("\t!"), ["\t", "!"]);
        // A combining mark after a space is a one-letter word; before an upper-case letter
        // it is matched alone by the first alternative.
        assert_eq!(pieces(" \u{301}"), [" \u{301}"]);
        assert_eq!(pieces("\u{301}A"), ["\u{301}", "A"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }
}
