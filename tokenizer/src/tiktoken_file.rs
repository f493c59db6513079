//! Reads tiktoken `.tiktoken` ranks files: one line per token, `base64(bytes) rank`.

use crate::error::{Result, TokenizerError};

/// The tokens of a ranks file in rank order. Ranks must be exactly 0..n (in any line order).
pub(crate) fn parse_ranks(text: &[u8]) -> Result<Vec<Vec<u8>>> {
    let lines = text.split(|&b| b == b'\n');
    let count = lines.clone().filter(|line| !line.is_empty() && *line != b"\r").count();
    let mut by_rank: Vec<Option<Vec<u8>>> = vec![None; count];
    for (index, line) in lines.enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let malformed = |reason: &str| TokenizerError::MalformedTiktoken { line: index + 1, reason: reason.to_owned() };
        let space = line.iter().position(|&b| b == b' ').ok_or_else(|| malformed("expected `base64 rank`"))?;
        let token = decode_base64(&line[..space]).ok_or_else(|| malformed("invalid base64"))?;
        let rank: u32 = std::str::from_utf8(&line[space + 1..])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| malformed("rank is not a number"))?;
        let slot = by_rank.get_mut(rank as usize).ok_or_else(|| malformed("rank is not below the number of tokens"))?;
        if slot.replace(token).is_some() {
            return Err(malformed("rank appears twice"));
        }
    }
    // `count` tokens with distinct ranks below `count`: every slot is filled.
    Ok(by_rank.into_iter().flatten().collect())
}

/// Standard base64 with optional `=` padding; `None` on any other byte.
fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let input = input.strip_suffix(b"==").or_else(|| input.strip_suffix(b"=")).unwrap_or(input);
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in input {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // A single leftover sextet cannot encode a byte.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(decode_base64(b"IQ==").as_deref(), Some(&b"!"[..]));
        assert_eq!(decode_base64(b"aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64(b"IGhl").as_deref(), Some(&b" he"[..]));
        assert_eq!(decode_base64(b"a"), None);
        assert_eq!(decode_base64(b"a*=="), None);
    }

    #[test]
    fn ranks_must_be_dense_and_unique() {
        assert_eq!(parse_ranks(b"IQ== 0\nIg== 1\n").unwrap().len(), 2);
        assert!(parse_ranks(b"IQ== 0\nIg== 2\n").is_err());
        assert!(parse_ranks(b"IQ== 0\nIg== 0\n").is_err());
        assert!(parse_ranks(b"IQ==0\n").is_err());
        assert!(parse_ranks(b"IQ== 4294967295\n").is_err());
    }
}
