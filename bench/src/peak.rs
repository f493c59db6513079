//! The machine's own ceiling: multi-threaded read bandwidth of host memory, measured in the
//! same run as the benchmark so that "% of peak" compares like with like.

use std::time::Instant;

/// Bytes each measurement reads: far larger than any cache.
pub const DEFAULT_BYTES: usize = 1 << 30;

/// Reads a `bytes`-sized buffer with `threads` threads, `passes` times, and returns the best
/// rate in GB/s (1e9 bytes per second). The buffer is written once first so that every page
/// is backed by memory.
pub fn cpu_read_gb_s(threads: usize, bytes: usize, passes: usize) -> f64 {
    let threads = threads.max(1);
    let words = bytes / 8;
    let data: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads);
    let mut best = 0f64;
    for _ in 0..passes.max(1) {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = data.chunks(chunk).map(|part| s.spawn(move || read_all(part))).collect();
            handles.into_iter().map(|h| h.join().expect("reader thread")).fold(0, u64::wrapping_add)
        });
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(total);
        best = best.max((words * 8) as f64 / secs / 1e9);
    }
    best
}

/// Reads every word with the widest loads the CPU has (the baseline build only has 16-byte
/// ones, which leave bandwidth unused on one core).
fn read_all(words: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        return unsafe { sum_avx2(words) };
    }
    sum(words)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_avx2(words: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut blocks = words.chunks_exact(16);
    for b in &mut blocks {
        let p = b.as_ptr().cast::<__m256i>();
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `b` holds 16 words, four 32-byte vectors; unaligned loads are allowed.
            *a = _mm256_add_epi64(*a, unsafe { _mm256_loadu_si256(p.add(j)) });
        }
    }
    let mut lanes = [0u64; 4];
    let v = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
    // SAFETY: `lanes` has room for one 32-byte vector.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
    lanes.iter().fold(sum(blocks.remainder()), |a, &w| a.wrapping_add(w))
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
        assert_eq!(read_all(&words), 1000 * 1001 / 2);
        let gb_s = cpu_read_gb_s(2, 16 << 20, 2);
        assert!(gb_s.is_finite() && gb_s > 0.1, "{gb_s}");
    }
}
