//! How fast one core issues the 512-bit multiply-adds the bf16 tiles choose between: `vfmadd231ps`
//! (the widened f32 tile) and `vdpbf16ps` (AVX512-BF16, `fast::matmul::bf16_dot`), each over 12
//! independent accumulators (throughput) and over one (latency).
//!
//! cargo run --release -p gptoss-bench --example cpu_issue_rate
//!
//! Per 32 bf16 weights and token the f32 tile issues 2 FMAs (plus 4 widening µops shared by its
//! tokens), the bf16-dot tile 2 `vdpbf16ps`: which is faster follows from these two rates.

use std::time::Instant;

/// Instructions per measurement.
const N: usize = 120_000_000;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    use super::N;

    /// Makes the accumulators opaque to the compiler (no instruction): the loops stay loops.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn opaque(acc: &mut [__m512; 12]) {
        for v in acc.iter_mut() {
            // SAFETY: an empty template; the register is read and written in place.
            unsafe { std::arch::asm!("/* {0} */", inout(zmm_reg) * v, options(nomem, nostack)) };
        }
    }

    /// `N` FMAs over 12 accumulators, or over one when `chain`.
    #[target_feature(enable = "avx512f,fma")]
    pub fn fma(chain: bool) -> f32 {
        let (a, b) = (_mm512_set1_ps(1.0), _mm512_set1_ps(1e-9));
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..N / 12 {
            for k in 0..12 {
                let i = if chain { 0 } else { k };
                acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
            }
            opaque(&mut acc);
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)))
    }

    /// `N` `vdpbf16ps` over 12 accumulators, or over one when `chain`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub fn dpbf16(chain: bool) -> f32 {
        // bf16 1.0 in every lane: each instruction adds 2 per lane.
        // SAFETY: 64 bytes of bits as 32 bf16 values.
        let a: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi16(0x3f80)) };
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..N / 12 {
            for k in 0..12 {
                let i = if chain { 0 } else { k };
                acc[i] = _mm512_dpbf16_ps(acc[i], a, a);
            }
            opaque(&mut acc);
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)))
    }
}

/// Billions of instructions per second and ns per dependent instruction of `f`.
fn rate(f: impl Fn(bool) -> f32) -> (f64, f64) {
    let run = |chain| {
        let s = Instant::now();
        std::hint::black_box(f(chain));
        s.elapsed().as_secs_f64()
    };
    let best = |chain| (0..3).map(|_| run(chain)).fold(f64::INFINITY, f64::min);
    (N as f64 / best(false) / 1e9, best(true) / N as f64 * 1e9)
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        println!("{:12} {:>16} {:>14}", "instruction", "G/s (12 chains)", "ns (1 chain)");
        if has!("avx512f") && has!("fma") {
            // SAFETY: the CPU has the features each function enables (checked).
            let (g, ns) = rate(|c| unsafe { x86::fma(c) });
            println!("{:12} {:>16.2} {:>14.2}", "vfmadd231ps", g, ns);
        }
        if has!("avx512f") && has!("avx512bf16") {
            // SAFETY: as above.
            let (g, ns) = rate(|c| unsafe { x86::dpbf16(c) });
            println!("{:12} {:>16.2} {:>14.2}", "vdpbf16ps", g, ns);
        } else {
            println!("no AVX512-BF16 on this CPU");
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("x86-64 only");
}
