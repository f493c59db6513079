//! GPT-2's byte-level alphabet: Hugging Face `tokenizer.json` files spell each token byte as one
//! printable character. Bytes `!`..`~`, `¡`..`¬` and `®`..`ÿ` stand for themselves; the other 68
//! bytes map, in order, to U+0100 onwards.

/// The character that spells `byte`.
pub(crate) fn byte_to_char(byte: u8) -> char {
    let b = u32::from(byte);
    let code = if is_printable(byte) {
        b
    } else {
        // The n-th non-printable byte maps to U+0100 + n.
        256 + (0..b).filter(|&x| !is_printable(x as u8)).count() as u32
    };
    char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn is_printable(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Both directions of the mapping, computed once.
pub(crate) struct ByteLevel {
    chars: [char; 256],
    /// The byte each of U+0100.. stands for.
    shifted: Vec<u8>,
}

impl ByteLevel {
    pub(crate) fn new() -> Self {
        let mut chars = ['\0'; 256];
        for (byte, c) in chars.iter_mut().enumerate() {
            *c = byte_to_char(byte as u8);
        }
        let shifted = (0..=255u8).filter(|&b| !is_printable(b)).collect();
        Self { chars, shifted }
    }

    /// Spells `bytes` in the byte-level alphabet.
    pub(crate) fn encode(&self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| self.chars[usize::from(b)]).collect()
    }

    /// The bytes a byte-level string spells, or `None` if it has a character outside the alphabet.
    pub(crate) fn decode(&self, text: &str) -> Option<Vec<u8>> {
        text.chars()
            .map(|c| {
                let code = u32::from(c);
                if code < 256 && is_printable(code as u8) {
                    Some(code as u8)
                } else {
                    let index = code.checked_sub(256)?;
                    self.shifted.get(index as usize).copied()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_gpt2_alphabet() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0), '\u{100}');
        assert_eq!(byte_to_char(0xAD), '\u{143}');
        let level = ByteLevel::new();
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(level.decode(&level.encode(&all)), Some(all));
        assert_eq!(level.decode("\u{2000}"), None);
    }
}
