//! Byte-pair merging of one pre-tokenizer piece, exactly as tiktoken defines it: start from
//! single bytes and repeatedly merge the adjacent pair whose concatenation has the lowest rank,
//! the leftmost pair on ties, until no adjacent pair is a token.
//!
//! Short pieces (almost all of them) use tiktoken's array scan: O(n·m) for n bytes and m merges,
//! but with everything in one small array. Pieces of 32 bytes or more (the threshold measured
//! best on CJK text, where pieces are long) go to `long_piece`: O(n log n), so a megabyte of one
//! repeated character costs a fraction of a second, not hours. The first round of pairs is read
//! from a byte-pair table.

use crate::long_piece::{LongPieceScratch, merge_long_piece};
use crate::vocabulary::Vocabulary;

/// Pieces at least this long are merged with the heap.
const HEAP_THRESHOLD: usize = 32;

const NONE: u32 = u32::MAX;

/// One part of a piece during the array scan.
#[derive(Clone, Copy)]
struct Part {
    /// Byte offset of the part in the piece.
    start: u32,
    /// The part's token.
    token: u32,
    /// Rank of this part merged with the next one, or `NONE`.
    pair_rank: u32,
}

/// Buffers reused across pieces so that encoding a text allocates only its output.
#[derive(Default)]
pub(crate) struct MergeScratch {
    parts: Vec<Part>,
    long: LongPieceScratch,
}

/// Appends the tokens of `piece` (non-empty, not itself a token) to `out`.
pub(crate) fn merge_piece(vocabulary: &Vocabulary, piece: &[u8], scratch: &mut MergeScratch, out: &mut Vec<u32>) {
    match piece.len() {
        0 => {}
        1 => out.push(vocabulary.byte_rank(piece[0])),
        n if n < HEAP_THRESHOLD => merge_by_scan(vocabulary, piece, &mut scratch.parts, out),
        _ => merge_long_piece(vocabulary, piece, &mut scratch.long, out),
    }
}

fn merge_by_scan(vocabulary: &Vocabulary, piece: &[u8], parts: &mut Vec<Part>, out: &mut Vec<u32>) {
    let rank_of = |a: u32, b: u32| vocabulary.rank(&piece[a as usize..b as usize]).unwrap_or(NONE);
    parts.clear();
    parts.extend(piece.iter().enumerate().map(|(i, &byte)| Part { start: i as u32, token: vocabulary.byte_rank(byte), pair_rank: NONE }));
    // A sentinel part marks the end of the piece.
    parts.push(Part { start: piece.len() as u32, token: NONE, pair_rank: NONE });
    for (part, pair) in parts.iter_mut().zip(piece.windows(2)) {
        part.pair_rank = vocabulary.byte_pair_rank(pair[0], pair[1]);
    }
    loop {
        let mut best = (NONE, 0);
        for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
            if part.pair_rank < best.0 {
                best = (part.pair_rank, i);
            }
        }
        let (rank, i) = best;
        if rank == NONE {
            break;
        }
        parts[i].token = rank;
        parts.remove(i + 1);
        parts[i].pair_rank = match parts.get(i + 2) {
            Some(after) => rank_of(parts[i].start, after.start),
            None => NONE,
        };
        if i > 0 {
            parts[i - 1].pair_rank = rank_of(parts[i - 1].start, parts[i + 1].start);
        }
    }
    out.extend(parts[..parts.len() - 1].iter().map(|part| part.token));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{o200k_base_packed, split_tokens};

    fn both_ways(vocabulary: &Vocabulary, piece: &[u8]) -> (Vec<u32>, Vec<u32>) {
        let mut scratch = MergeScratch::default();
        let (mut by_scan, mut long) = (Vec::new(), Vec::new());
        merge_by_scan(vocabulary, piece, &mut scratch.parts, &mut by_scan);
        merge_long_piece(vocabulary, piece, &mut scratch.long, &mut long);
        (by_scan, long)
    }

    /// A vocabulary in which "abc" ranks before "ab": merging "ab" creates a pair of lower
    /// rank, which ends the long-piece fast path.
    #[test]
    fn long_pieces_fall_back_when_ranks_are_not_monotone() {
        let tokens = (0..=255u8).map(|b| vec![b]).chain([b"abc".to_vec(), b"ab".to_vec(), b"cab".to_vec()]);
        let vocabulary = Vocabulary::from_tokens(tokens).unwrap();
        for piece in [&b"abc"[..], b"abcabcabcabcabcabcabcabcabcabcabcabcab", b"xxabcabcxabcabcabcabcabcabcabcabcabc"] {
            let (by_scan, long) = both_ways(&vocabulary, piece);
            assert_eq!(by_scan, long, "piece {piece:?}");
        }
        let (by_scan, _) = both_ways(&vocabulary, b"abcabc");
        assert_eq!(by_scan, [256, 256]);
    }

    /// The scan and the long-piece path are two implementations of one definition.
    #[test]
    fn long_piece_path_and_scan_agree() {
        let packed = o200k_base_packed().unwrap();
        let vocabulary = Vocabulary::from_tokens(split_tokens(&packed).unwrap()).unwrap();
        let samples: [&[u8]; 6] = [
            "the quick brown foxes jumped".as_bytes(),
            "ааааааааааааааббббб".as_bytes(),
            "日本語のテキストと中文文本".as_bytes(),
            b"--------------------------------=====",
            &[0xF0, 0x9F, 0x99, 0x82, 0xE2, 0x80, 0x8D, 0x20, 0x20, 0x0A, 0xFF, 0x00],
            "ⵜⴰⵎⴰⵣⵉⵖⵜ ትግርኛ ᏣᎳᎩ".as_bytes(),
        ];
        let long_samples =
            ["-".repeat(1500), " ".repeat(1100), "日本語の".repeat(100), "Съешь же ещё этих мягких французских булок".repeat(30)];
        for sample in long_samples {
            let (by_scan, long) = both_ways(&vocabulary, sample.as_bytes());
            assert_eq!(by_scan, long, "long sample {sample:.40}");
        }
        for sample in samples {
            for start in 0..sample.len() {
                for end in start + 2..=sample.len() {
                    let piece = &sample[start..end];
                    let (by_scan, long) = both_ways(&vocabulary, piece);
                    assert_eq!(by_scan, long, "piece {piece:?}");
                }
            }
        }
    }
}
