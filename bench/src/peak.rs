//! The machine's own ceiling: multi-threaded read bandwidth of host memory, measured in the
//! same run as the benchmark so that "% of peak" compares like with like.

use std::time::Instant;

/// Bytes each measurement reads: far larger than any cache.
pub const DEFAULT_BYTES: usize = 1 << 30;

/// Streams per thread tried: one sequential stream leaves bandwidth unused on some machines
/// (the hardware prefetchers keep few streams ahead per core); the kernels read several rows
/// at once, so the ceiling they are measured against must too.
const STREAMS: [usize; 4] = [1, 4, 6, 8];

/// Reads a `bytes`-sized buffer with `threads` threads, `passes` times for each number of
/// interleaved streams per thread, and returns the best rate in GB/s (1e9 bytes per second).
/// The buffer is written once first so that every page is backed by memory.
pub fn cpu_read_gb_s(threads: usize, bytes: usize, passes: usize) -> f64 {
    let threads = threads.max(1);
    let words = bytes / 8;
    let data: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads);
    let mut best = 0f64;
    for streams in STREAMS {
        for _ in 0..passes.max(1) {
            let start = Instant::now();
            let total: u64 = std::thread::scope(|s| {
                let handles: Vec<_> = data.chunks(chunk).map(|part| s.spawn(move || read_streams(part, streams))).collect();
                handles.into_iter().map(|h| h.join().expect("reader thread")).fold(0, u64::wrapping_add)
            });
            let secs = start.elapsed().as_secs_f64();
            std::hint::black_box(total);
            best = best.max((words * 8) as f64 / secs / 1e9);
        }
    }
    best
}

/// Words per step of one stream: two cache lines.
const STEP: usize = 16;

/// Sums `words` read as `streams` equal parts side by side, a step of each in turn, then the
/// words left over; the result is the plain wrapping sum of every word.
fn read_streams(words: &[u64], streams: usize) -> u64 {
    let len = words.len() / streams / STEP * STEP;
    let (parts, rest) = words.split_at(streams * len);
    let rest = sum(rest);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        return rest.wrapping_add(unsafe { streams_avx2(parts, streams, len) });
    }
    let mut total = rest;
    for i in (0..len).step_by(STEP) {
        for s in 0..streams {
            total = total.wrapping_add(sum(&parts[s * len + i..s * len + i + STEP]));
        }
    }
    total
}

/// The streams with the widest loads the CPU has (the baseline build only has 16-byte ones,
/// which leave bandwidth unused on one core), hinting each stream's next lines; one vector
/// accumulator, reduced once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn streams_avx2(parts: &[u64], streams: usize, len: usize) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_si256();
    for i in (0..len).step_by(STEP) {
        for s in 0..streams {
            let step = &parts[s * len + i..s * len + i + STEP];
            let p = step.as_ptr().cast::<__m256i>();
            // 512 bytes ahead: a hint, so an address past the buffer is harmless.
            let ahead = step.as_ptr().cast::<i8>().wrapping_add(512);
            // SAFETY: prefetches never fault; `step` holds four 32-byte vectors.
            unsafe {
                _mm_prefetch(ahead, _MM_HINT_T0);
                _mm_prefetch(ahead.wrapping_add(64), _MM_HINT_T0);
                let a = _mm256_add_epi64(_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)));
                let b = _mm256_add_epi64(_mm256_loadu_si256(p.add(2)), _mm256_loadu_si256(p.add(3)));
                acc = _mm256_add_epi64(acc, _mm256_add_epi64(a, b));
            }
        }
    }
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` has room for one 32-byte vector.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    lanes.iter().fold(0, |a, &w| a.wrapping_add(w))
}

/// A wrapping sum with four independent accumulators.
fn sum(words: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    let mut quads = words.chunks_exact(4);
    for q in &mut quads {
        for (a, &w) in acc.iter_mut().zip(q) {
            *a = a.wrapping_add(w);
        }
    }
    let tail = quads.remainder().iter().fold(0u64, |a, &w| a.wrapping_add(w));
    acc.iter().fold(tail, |a, &w| a.wrapping_add(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_exact_and_rate_is_plausible() {
        assert_eq!(sum(&[1, 2, 3, 4, 5, 6, 7]), 28);
        let words: Vec<u64> = (0..1001).collect();
        for streams in STREAMS {
            assert_eq!(read_streams(&words, streams), 1000 * 1001 / 2, "{streams} streams");
        }
        let gb_s = cpu_read_gb_s(2, 16 << 20, 2);
        assert!(gb_s.is_finite() && gb_s > 0.1, "{gb_s}");
    }
}
