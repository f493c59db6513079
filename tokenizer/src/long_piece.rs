//! Merging long pieces (a run of one character, a line of CJK without spaces) in
//! O(n log n), with the same result as tiktoken's definition: repeatedly merge the leftmost
//! adjacent pair of lowest rank.
//!
//! The piece is a linked list of parts; part `i` starts at byte `i`, and a part merged into its
//! left neighbour keeps stale links but gets pair rank `NONE`.
//!
//! Fast path for pieces of 1 KiB or more, rank buckets: in a trained BPE vocabulary such as o200k, a token ranks after the
//! tokens it is made of, so merging never creates a pair of lower rank than the one just merged.
//! Then the merges can go rank by rank: each rank's parts, sorted once, in position order. One
//! sort per rank and a hash-map push per new pair replace a million-entry heap's pops and
//! pushes. A new pair of lower rank (a vocabulary without that property) ends the fast path,
//! and the general path finishes from the same state.
//!
//! General path: a min-heap of (rank, position) with lazy deletion of stale entries.

use crate::vocabulary::Vocabulary;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const NONE: u32 = u32::MAX;

/// Pieces at least this long try the rank buckets first; below it, their hash map and
/// per-rank vectors cost more than the heap they save (measured on CJK text).
const BUCKETS_THRESHOLD: usize = 1024;

/// Buffers reused across pieces.
#[derive(Default)]
pub(crate) struct LongPieceScratch {
    /// Start of the next live part (`n` after the last).
    next: Vec<u32>,
    /// Start of the previous live part (`NONE` before the first).
    prev: Vec<u32>,
    /// Each part's token.
    token: Vec<u32>,
    /// Rank of each part merged with the next one, or `NONE`.
    pair_rank: Vec<u32>,
    /// Fast path: parts waiting to merge, by pair rank.
    buckets: FxHashMap<u32, Vec<u32>>,
    /// Fast path: ranks that have a bucket.
    pending_ranks: BinaryHeap<Reverse<u32>>,
    /// General path: `rank << 32 | part`.
    heap: BinaryHeap<Reverse<u64>>,
}

/// Appends the tokens of `piece` to `out`.
pub(crate) fn merge_long_piece(vocabulary: &Vocabulary, piece: &[u8], scratch: &mut LongPieceScratch, out: &mut Vec<u32>) {
    scratch.start(vocabulary, piece);
    let finished = piece.len() >= BUCKETS_THRESHOLD && scratch.merge_by_rank_buckets(vocabulary, piece);
    if !finished {
        scratch.merge_by_heap(vocabulary, piece);
    }
    let mut i = 0;
    while (i as usize) < piece.len() {
        out.push(scratch.token[i as usize]);
        i = scratch.next[i as usize];
    }
}

impl LongPieceScratch {
    /// One part per byte; the first pairs' ranks come from the byte-pair table.
    fn start(&mut self, vocabulary: &Vocabulary, piece: &[u8]) {
        let n = piece.len() as u32;
        self.next.clear();
        self.next.extend(1..=n);
        self.prev.clear();
        self.prev.extend((0..n).map(|i| i.wrapping_sub(1)));
        self.token.clear();
        self.token.extend(piece.iter().map(|&b| vocabulary.byte_rank(b)));
        self.pair_rank.clear();
        self.pair_rank.extend(piece.windows(2).map(|pair| vocabulary.byte_pair_rank(pair[0], pair[1])));
        self.pair_rank.push(NONE);
    }

    /// Merges part `i` with the next one into token `rank`; returns the two pairs whose rank
    /// changed, as (part, new rank) with `NONE` for pairs that no longer merge.
    fn merge(&mut self, vocabulary: &Vocabulary, piece: &[u8], i: u32, rank: u32) -> [(u32, u32); 2] {
        let end = piece.len() as u32;
        let rank_of = |a: u32, b: u32| vocabulary.rank(&piece[a as usize..b as usize]).unwrap_or(NONE);
        let j = self.next[i as usize];
        let after = self.next[j as usize];
        self.token[i as usize] = rank;
        self.pair_rank[j as usize] = NONE;
        self.next[i as usize] = after;
        let right = if after < end {
            self.prev[after as usize] = i;
            rank_of(i, self.next[after as usize])
        } else {
            NONE
        };
        self.pair_rank[i as usize] = right;
        let p = self.prev[i as usize];
        let left = if p != NONE {
            let left = rank_of(p, after);
            self.pair_rank[p as usize] = left;
            left
        } else {
            NONE
        };
        [(i, right), (p, left)]
    }

    /// The fast path; `false` if a merge created a pair of lower rank than its own, in which
    /// case the merges so far stand and the general path must finish.
    fn merge_by_rank_buckets(&mut self, vocabulary: &Vocabulary, piece: &[u8]) -> bool {
        let mut buckets = std::mem::take(&mut self.buckets);
        let mut pending = std::mem::take(&mut self.pending_ranks);
        buckets.clear();
        pending.clear();
        for (i, &rank) in self.pair_rank.iter().enumerate() {
            if rank != NONE {
                buckets.entry(rank).or_default().push(i as u32);
            }
        }
        pending.extend(buckets.keys().map(|&rank| Reverse(rank)));
        let mut monotone = true;
        'ranks: while let Some(Reverse(rank)) = pending.pop() {
            let Some(mut parts) = buckets.remove(&rank) else {
                continue;
            };
            // Popped from the end: leftmost first.
            parts.sort_unstable_by(|a, b| b.cmp(a));
            while let Some(i) = parts.pop() {
                if self.pair_rank[i as usize] != rank {
                    continue; // stale: the part merged or its neighbour changed
                }
                for (part, new_rank) in self.merge(vocabulary, piece, i, rank) {
                    if new_rank == NONE {
                        continue;
                    }
                    if new_rank < rank {
                        monotone = false;
                        break 'ranks;
                    }
                    let bucket = buckets.entry(new_rank).or_insert_with(|| {
                        pending.push(Reverse(new_rank));
                        Vec::new()
                    });
                    bucket.push(part);
                }
            }
        }
        self.buckets = buckets;
        self.pending_ranks = pending;
        monotone
    }

    /// The general path, from whatever state the linked list is in.
    fn merge_by_heap(&mut self, vocabulary: &Vocabulary, piece: &[u8]) {
        let entry = |rank: u32, part: u32| Reverse((u64::from(rank) << 32) | u64::from(part));
        let mut heap = std::mem::take(&mut self.heap);
        heap.clear();
        heap.extend(self.pair_rank.iter().enumerate().filter(|&(_, &rank)| rank != NONE).map(|(i, &rank)| entry(rank, i as u32)));
        while let Some(Reverse(key)) = heap.pop() {
            let (rank, i) = ((key >> 32) as u32, key as u32);
            // A part's pair only ever grows into a longer byte string, hence another rank, so
            // an entry whose rank is still the part's current one is not stale.
            if self.pair_rank[i as usize] != rank {
                continue;
            }
            for (part, new_rank) in self.merge(vocabulary, piece, i, rank) {
                if new_rank != NONE {
                    heap.push(entry(new_rank, part));
                }
            }
        }
        self.heap = heap;
    }
}
