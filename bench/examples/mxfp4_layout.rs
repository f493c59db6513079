//! What a repacked MXFP4 layout would give the int8-activation GEMV on AVX-512 (VNNI + VBMI),
//! before the engine changes its layout: the same decode loop over two layouts, hot (one core,
//! weights in L2) and cold (every thread, weights from DRAM), beside the read ceiling.
//!
//! - `blocks`: the checkpoint's layout, as the engine's q8 tile reads it: a 64-byte vector is 4
//!   blocks of 32 weights, so each i32 lane of `vpdpbusd` sums 8 weights of one block and every
//!   4 blocks need a conversion, the activation scale and the weight scale (3 µops) and a
//!   permute choosing the blocks' scales.
//! - `lanes`: 16 blocks side by side, lane b of the k-th 64-byte vector holding bytes 4k..4k+3 of
//!   block b, so one i32 lane accumulates a whole block over 4 vectors and those 3 µops (and the
//!   scales' 2) serve 16 blocks.
//!
//! cargo run --release -p gptoss-bench --example mxfp4_layout -- [--threads N] [--reps N]
//!
//! Columns are 2048 (64 blocks: 16 groups of 4, or 4 of 16); gpt-oss's 2880 (90 blocks) would
//! leave a remainder of 10 blocks per row in the `lanes` layout, run the `blocks` way.

use std::time::Instant;

use gptoss_bench::peak::{DEFAULT_BYTES, cpu_read_gb_s};

const COLS: usize = 2048;
const BLOCKS: usize = COLS / 32;
/// Bytes of one row: codes and E8M0 scales.
const ROW_BYTES: usize = COLS / 2 + BLOCKS;
/// Rows read ahead by software prefetch, as the engine's tiles.
const AHEAD_ROWS: usize = 4;
/// MXFP4 (e2m1) values times 2, plus 12 so that `vpdpbusd` takes them as unsigned bytes.
const OFFSET_VALUES: [u8; 16] = [12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0];

/// Int8 activations of one token in both layouts, with each block's scale (`da`, halved: the
/// table holds values × 2) and the correction for the offset (`12 · Σq · da`).
struct Acts {
    /// `blocks`: per group of 4 blocks, the even-indexed then the odd-indexed q of each block.
    blocks: Vec<u8>,
    /// `lanes`: per group of 16 blocks and k in 0..4, the even then the odd q's of lane order.
    lanes: Vec<u8>,
    da: Vec<f32>,
    corr: Vec<f32>,
    /// `da` and a quarter of `corr` in each of the 4 lanes of a block's i32 group (`blocks`).
    da4: Vec<f32>,
    corr4: Vec<f32>,
    /// The quantized values, for the reference.
    q: Vec<i8>,
}

fn quantize(x: &[f32]) -> Acts {
    let mut q = vec![0i8; COLS];
    let (mut da, mut corr) = (vec![0f32; BLOCKS], vec![0f32; BLOCKS]);
    for b in 0..BLOCKS {
        let xs = &x[32 * b..32 * b + 32];
        let d = xs.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let mut sum = 0i32;
        for (i, v) in xs.iter().enumerate() {
            let v = if d > 0.0 { (v / d).round() as i8 } else { 0 };
            q[32 * b + i] = v;
            sum += v as i32;
        }
        da[b] = d / 2.0;
        corr[b] = 12.0 * sum as f32 * da[b];
    }
    // Code byte j of a block holds weights 2j (low nibble) and 2j + 1 (high).
    // The q of weight 2j + parity of block b.
    let at = |b: usize, j: usize, parity: usize| q[32 * b + 2 * j + parity] as u8;
    let mut blocks = Vec::with_capacity(2 * COLS);
    for g in 0..BLOCKS / 4 {
        for parity in 0..2 {
            for b in 4 * g..4 * g + 4 {
                blocks.extend((0..16).map(|j| at(b, j, parity)));
            }
        }
    }
    let mut lanes = Vec::with_capacity(2 * COLS);
    for s in 0..BLOCKS / 16 {
        for k in 0..4 {
            for parity in 0..2 {
                for b in 16 * s..16 * s + 16 {
                    lanes.extend((4 * k..4 * k + 4).map(|j| at(b, j, parity)));
                }
            }
        }
    }
    // Each block's 4 lanes: its scale in each, a quarter of its correction in each (the lanes
    // are summed in the end, after the same weight scale).
    let spread = |v: &[f32], by: f32| v.iter().flat_map(|&d| [d / by; 4]).collect::<Vec<f32>>();
    Acts { blocks, lanes, da4: spread(&da, 1.0), corr4: spread(&corr, 4.0), da, corr, q }
}

/// Rows of random codes and scales in the checkpoint's layout, and repacked into `lanes`.
fn weights(rows: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut plain = vec![0u8; rows * ROW_BYTES];
    for r in 0..rows {
        let row = &mut plain[r * ROW_BYTES..(r + 1) * ROW_BYTES];
        for c in row[..COLS / 2].chunks_mut(8) {
            c.copy_from_slice(&next().to_le_bytes()[..c.len()]);
        }
        for e in &mut row[COLS / 2..] {
            *e = 120 + (next() % 15) as u8;
        }
    }
    let mut lanes = vec![0u8; rows * ROW_BYTES];
    for r in 0..rows {
        let (src, dst) = (&plain[r * ROW_BYTES..(r + 1) * ROW_BYTES], &mut lanes[r * ROW_BYTES..(r + 1) * ROW_BYTES]);
        for s in 0..BLOCKS / 16 {
            for k in 0..4 {
                for b in 0..16 {
                    let from = (16 * s + b) * 16 + 4 * k;
                    let to = s * 256 + k * 64 + 4 * b;
                    dst[to..to + 4].copy_from_slice(&src[from..from + 4]);
                }
            }
        }
        dst[COLS / 2..].copy_from_slice(&src[COLS / 2..]);
    }
    (plain, lanes)
}

/// Row `r` times the activations, in f64 from the checkpoint's layout.
fn reference(plain: &[u8], r: usize, a: &Acts) -> f64 {
    let row = &plain[r * ROW_BYTES..(r + 1) * ROW_BYTES];
    let mut y = 0f64;
    for b in 0..BLOCKS {
        let scale = 2f64.powi(row[COLS / 2 + b] as i32 - 127);
        let mut dot = 0i64;
        for i in 0..32 {
            let byte = row[16 * b + i / 2];
            let nib = if i % 2 == 0 { byte & 15 } else { byte >> 4 };
            dot += (OFFSET_VALUES[nib as usize] as i64 - 12) * a.q[32 * b + i] as i64;
        }
        y += scale * a.da[b] as f64 * dot as f64;
    }
    y
}

// Indexed loops over register arrays: closures (and iterator adaptors' closures) would not
// inherit the kernels' target features.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod kernels {
    use std::arch::x86_64::*;

    use super::{AHEAD_ROWS, Acts, BLOCKS, COLS, OFFSET_VALUES, ROW_BYTES};

    /// The offset table repeated 4 times: `vpermb` reads 6 bits of each index, so neither
    /// nibble needs masking.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    fn table() -> __m512i {
        let t: [u8; 64] = std::array::from_fn(|i| OFFSET_VALUES[i % 16]);
        unsafe { _mm512_loadu_si512(t.as_ptr() as *const _) }
    }

    /// 16 E8M0 bytes as the f32 scales 2^(e − 127).
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    unsafe fn e8m0(p: *const u8) -> __m512 {
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const _)), 23)) }
    }

    /// `y[r] = row r · x` for 4 rows at a time, the checkpoint's layout.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub unsafe fn blocks(w: &[u8], a: &Acts, y: &mut [f32]) {
        let tab = table();
        let rows = y.len();
        // The lane → block pick of group k within 4 groups' 16 converted scales. (Loops, not
        // closures: a closure does not inherit this function's target features.)
        let picks: [[i32; 16]; 4] = std::array::from_fn(|k| std::array::from_fn(|l| (4 * k + l / 4) as i32));
        let mut pick = [_mm512_setzero_si512(); 4];
        for k in 0..4 {
            pick[k] = unsafe { _mm512_loadu_si512(picks[k].as_ptr() as *const _) };
        }
        unsafe {
            for r0 in (0..rows).step_by(4) {
                let base = w.as_ptr().add(r0 * ROW_BYTES);
                let mut acc = [_mm512_setzero_ps(); 4];
                for g4 in 0..BLOCKS / 16 {
                    let mut sc = [_mm512_setzero_ps(); 4];
                    for i in 0..4 {
                        sc[i] = e8m0(base.add(i * ROW_BYTES + COLS / 2 + 16 * g4));
                    }
                    for k in 0..4 {
                        let g = 4 * g4 + k;
                        let x = a.blocks.as_ptr().add(128 * g);
                        let (xlo, xhi) = (_mm512_loadu_si512(x as *const _), _mm512_loadu_si512(x.add(64) as *const _));
                        let da = _mm512_loadu_ps(a.da4.as_ptr().add(16 * g));
                        let corr = _mm512_loadu_ps(a.corr4.as_ptr().add(16 * g));
                        for i in 0..4 {
                            let p = base.add(i * ROW_BYTES + 64 * g);
                            _mm_prefetch::<_MM_HINT_T0>(p.add(AHEAD_ROWS * ROW_BYTES) as *const i8);
                            let codes = _mm512_loadu_si512(p as *const _);
                            let lo = _mm512_permutexvar_epi8(codes, tab);
                            let hi = _mm512_permutexvar_epi8(_mm512_srli_epi16(codes, 4), tab);
                            let dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);
                            let v = _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), da, corr);
                            acc[i] = _mm512_fmadd_ps(v, _mm512_permutexvar_ps(pick[k], sc[i]), acc[i]);
                        }
                    }
                }
                for i in 0..4 {
                    y[r0 + i] = _mm512_reduce_add_ps(acc[i]);
                }
            }
        }
    }

    /// As `blocks`, the `lanes` layout: one i32 lane per block, 16 blocks per 4 vectors.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub unsafe fn lanes(w: &[u8], a: &Acts, y: &mut [f32]) {
        let tab = table();
        let rows = y.len();
        unsafe {
            for r0 in (0..rows).step_by(4) {
                let base = w.as_ptr().add(r0 * ROW_BYTES);
                let mut acc = [_mm512_setzero_ps(); 4];
                for s in 0..BLOCKS / 16 {
                    let x = a.lanes.as_ptr().add(512 * s);
                    let mut xs = [_mm512_setzero_si512(); 8];
                    for v in 0..8 {
                        xs[v] = _mm512_loadu_si512(x.add(64 * v) as *const _);
                    }
                    let da = _mm512_loadu_ps(a.da.as_ptr().add(16 * s));
                    let corr = _mm512_loadu_ps(a.corr.as_ptr().add(16 * s));
                    for i in 0..4 {
                        let p = base.add(i * ROW_BYTES + 256 * s);
                        let mut dot = _mm512_setzero_si512();
                        for k in 0..4 {
                            _mm_prefetch::<_MM_HINT_T0>(p.add(64 * k + AHEAD_ROWS * ROW_BYTES) as *const i8);
                            let codes = _mm512_loadu_si512(p.add(64 * k) as *const _);
                            let lo = _mm512_permutexvar_epi8(codes, tab);
                            let hi = _mm512_permutexvar_epi8(_mm512_srli_epi16(codes, 4), tab);
                            dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(dot, lo, xs[2 * k]), hi, xs[2 * k + 1]);
                        }
                        let v = _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), da, corr);
                        let sc = e8m0(base.add(i * ROW_BYTES + COLS / 2 + 16 * s));
                        acc[i] = _mm512_fmadd_ps(v, sc, acc[i]);
                    }
                }
                for i in 0..4 {
                    y[r0 + i] = _mm512_reduce_add_ps(acc[i]);
                }
            }
        }
    }
}

type Kernel = unsafe fn(&[u8], &Acts, &mut [f32]);

/// GB/s of weights read by `k` over `w` on `threads` threads (rows split in halves, ...), the
/// best of `reps`.
fn timed(k: Kernel, w: &[u8], a: &Acts, y: &mut [f32], threads: usize, reps: usize) -> f64 {
    let rows = y.len();
    let per = rows.div_ceil(threads).next_multiple_of(4);
    let mut best = 0f64;
    for _ in 0..reps {
        let start = Instant::now();
        std::thread::scope(|s| {
            for (t, ys) in y.chunks_mut(per).enumerate() {
                let ws = &w[t * per * ROW_BYTES..(t * per + ys.len()) * ROW_BYTES];
                // SAFETY: the CPU was checked for the kernels' features.
                s.spawn(move || unsafe { k(ws, a, ys) });
            }
        });
        best = best.max((rows * ROW_BYTES) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

fn main() {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut reps = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v: usize = args.next().and_then(|v| v.parse().ok()).expect("a number after the option");
        match a.as_str() {
            "--threads" => threads = v,
            "--reps" => reps = v,
            other => panic!("unknown option {other}"),
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        let f = ["avx512f", "avx512bw", "avx512vbmi", "avx512vnni"];
        if !(is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
            && is_x86_feature_detected!("avx512vnni"))
        {
            eprintln!("this CPU lacks one of {f:?}: nothing to measure");
            return;
        }
        let x: Vec<f32> = (0..COLS).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 13) as f32)).collect();
        let a = quantize(&x);
        let kernels: [(&str, Kernel); 2] = [("blocks", kernels::blocks), ("lanes", kernels::lanes)];

        // Both layouts against the f64 reference.
        let (plain, lanes) = weights(64, 7);
        for ((name, k), w) in kernels.iter().zip([&plain, &lanes]) {
            let mut y = vec![0f32; 64];
            // SAFETY: checked above.
            unsafe { k(w, &a, &mut y) };
            for (r, &got) in y.iter().enumerate() {
                let want = reference(&plain, r, &a);
                assert!((got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "{name} row {r}: {got} against {want}");
            }
        }

        // Hot: 256 rows (278 KB) on one core, 2000 passes.
        let (plain, lanes) = weights(256, 11);
        let mut y = vec![0f32; 256];
        for ((name, k), w) in kernels.iter().zip([&plain, &lanes]) {
            let passes = 2000;
            let start = Instant::now();
            for _ in 0..passes {
                // SAFETY: checked above.
                unsafe { k(w, &a, &mut y) };
            }
            let gb_s = (passes * 256 * ROW_BYTES) as f64 / start.elapsed().as_secs_f64() / 1e9;
            println!("hot  {name:6}  1 thread   {gb_s:6.1} GB/s");
        }

        // Cold: 1 GiB of rows per layout, alternated, the read ceiling measured before each pair.
        let rows = ((1usize << 30) / ROW_BYTES).next_multiple_of(4 * threads);
        let (plain, lanes) = weights(rows, 13);
        let mut y = vec![0f32; rows];
        for round in 0..2 {
            let ceiling = cpu_read_gb_s(threads, DEFAULT_BYTES, 2);
            let got: Vec<f64> = kernels.iter().zip([&plain, &lanes]).map(|((_, k), w)| timed(*k, w, &a, &mut y, threads, reps)).collect();
            println!(
                "cold round {round}: ceiling {ceiling:5.1} GB/s on {threads} threads; blocks {:5.1} GB/s ({:.0} %), lanes {:5.1} GB/s ({:.0} %); lanes / blocks {:.2}×",
                got[0],
                100.0 * got[0] / ceiling,
                got[1],
                100.0 * got[1] / ceiling,
                got[1] / got[0]
            );
        }
    }
}
