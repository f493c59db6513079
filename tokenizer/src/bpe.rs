//! Byte-pair merging of one pre-tokenizer piece, exactly as tiktoken defines it: start from
//! single bytes and repeatedly merge the adjacent pair whose concatenation has the lowest rank,
//! the leftmost pair on ties, until no adjacent pair is a token.
//!
//! Short pieces (almost all of them) use tiktoken's array scan: O(n·m) for n bytes and m merges,
//! but with everything in one small array. Pieces of 32 bytes or more (the threshold measured
//! best on CJK text, where pieces are long) use a linked list and a min-heap keyed by
//! (rank, position) with lazy deletion: O(n log n), so a megabyte of one repeated character
//! costs milliseconds, not hours. The first round of pairs is read from a byte-pair table.

use crate::vocabulary::Vocabulary;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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
    next: Vec<u32>,
    prev: Vec<u32>,
    token: Vec<u32>,
    pair_rank: Vec<u32>,
    heap: BinaryHeap<Reverse<u64>>,
}

/// Appends the tokens of `piece` (non-empty, not itself a token) to `out`.
pub(crate) fn merge_piece(
    vocabulary: &Vocabulary,
    piece: &[u8],
    scratch: &mut MergeScratch,
    out: &mut Vec<u32>,
) {
    match piece.len() {
        0 => {}
        1 => out.push(vocabulary.byte_rank(piece[0])),
        n if n < HEAP_THRESHOLD => merge_by_scan(vocabulary, piece, &mut scratch.parts, out),
        _ => merge_by_heap(vocabulary, piece, scratch, out),
    }
}

fn merge_by_scan(vocabulary: &Vocabulary, piece: &[u8], parts: &mut Vec<Part>, out: &mut Vec<u32>) {
    let rank_of = |a: u32, b: u32| {
        vocabulary
            .rank(&piece[a as usize..b as usize])
            .unwrap_or(NONE)
    };
    parts.clear();
    parts.extend(piece.iter().enumerate().map(|(i, &byte)| Part {
        start: i as u32,
        token: vocabulary.byte_rank(byte),
        pair_rank: NONE,
    }));
    // A sentinel part marks the end of the piece.
    parts.push(Part {
        start: piece.len() as u32,
        token: NONE,
        pair_rank: NONE,
    });
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

fn merge_by_heap(
    vocabulary: &Vocabulary,
    piece: &[u8],
    scratch: &mut MergeScratch,
    out: &mut Vec<u32>,
) {
    let n = piece.len();
    let end = n as u32;
    // Node `i` is the part starting at byte `i`; a merged-away node keeps stale links but its
    // pair rank is `NONE`, so its heap entries are skipped.
    let MergeScratch {
        next,
        prev,
        token,
        pair_rank,
        heap,
        ..
    } = scratch;
    next.clear();
    next.extend(1..=end);
    prev.clear();
    prev.extend((0..end).map(|i| i.wrapping_sub(1)));
    token.clear();
    token.extend(piece.iter().map(|&b| vocabulary.byte_rank(b)));
    pair_rank.clear();
    heap.clear();
    let rank_of = |a: u32, b: u32| {
        vocabulary
            .rank(&piece[a as usize..b as usize])
            .unwrap_or(NONE)
    };
    let entry = |rank: u32, node: u32| Reverse((u64::from(rank) << 32) | u64::from(node));
    for i in 0..n {
        let rank = match piece.get(i..i + 2) {
            Some(&[first, second]) => vocabulary.byte_pair_rank(first, second),
            _ => NONE,
        };
        pair_rank.push(rank);
        if rank != NONE {
            heap.push(entry(rank, i as u32));
        }
    }
    while let Some(Reverse(key)) = heap.pop() {
        let (rank, i) = ((key >> 32) as u32, key as u32);
        if pair_rank[i as usize] != rank {
            continue;
        }
        // Merge node i with its successor j.
        let j = next[i as usize];
        let after = next[j as usize];
        token[i as usize] = rank;
        pair_rank[j as usize] = NONE;
        next[i as usize] = after;
        if after < end {
            prev[after as usize] = i;
            let rank = rank_of(i, next[after as usize]);
            pair_rank[i as usize] = rank;
            if rank != NONE {
                heap.push(entry(rank, i));
            }
        } else {
            pair_rank[i as usize] = NONE;
        }
        let p = prev[i as usize];
        if p != NONE {
            let rank = rank_of(p, after);
            pair_rank[p as usize] = rank;
            if rank != NONE {
                heap.push(entry(rank, p));
            }
        }
    }
    let mut i = 0;
    while i < end {
        out.push(token[i as usize]);
        i = next[i as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{o200k_base_packed, split_tokens};

    /// The heap and the scan are two implementations of one definition: same tokens always.
    #[test]
    fn heap_and_scan_agree() {
        let packed = o200k_base_packed().unwrap();
        let vocabulary = Vocabulary::from_tokens(split_tokens(&packed).unwrap()).unwrap();
        let mut scratch = MergeScratch::default();
        let samples: [&[u8]; 6] = [
            "the quick brown foxes jumped".as_bytes(),
            "ааааааааааааааббббб".as_bytes(),
            "日本語のテキストと中文文本".as_bytes(),
            b"--------------------------------=====",
            &[
                0xF0, 0x9F, 0x99, 0x82, 0xE2, 0x80, 0x8D, 0x20, 0x20, 0x0A, 0xFF, 0x00,
            ],
            "ⵜⴰⵎⴰⵣⵉⵖⵜ ትግርኛ ᏣᎳᎩ".as_bytes(),
        ];
        for sample in samples {
            for start in 0..sample.len() {
                for end in start + 2..=sample.len() {
                    let piece = &sample[start..end];
                    let (mut by_scan, mut by_heap) = (Vec::new(), Vec::new());
                    merge_by_scan(&vocabulary, piece, &mut scratch.parts, &mut by_scan);
                    merge_by_heap(&vocabulary, piece, &mut scratch, &mut by_heap);
                    assert_eq!(by_scan, by_heap, "piece {piece:?}");
                }
            }
        }
    }
}
