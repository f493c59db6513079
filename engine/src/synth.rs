//! Counter-based generation of synthetic tensors.
//!
//! Every synthetic value is a pure function of `(seed, tensor name, element index)`, so any
//! backend can materialise the same tensor wherever it lives (the CUDA backend writes it
//! straight into device memory) and get bit-identical values, in any order, on any thread.
//!
//! The recipe, which every implementation must follow exactly:
//! 1. `stream = mix(seed ^ fnv1a64(name))`
//! 2. `word(j) = mix(stream + (j + 1) · 0x9E3779B97F4A7C15)` (wrapping u64 arithmetic), where
//!    `mix` is the SplitMix64 finaliser.
//! 3. A byte tensor takes byte `i % 8` (little-endian) of `word(i / 8)`; a bf16 or f32 tensor
//!    takes `word(i)` for element `i`.
//! 4. The fill rule turns that into a value (see [`SynthFill`]); floats are computed in f32 with
//!    separate multiply and add roundings (no fused multiply-add) and rounded to bf16 with
//!    round-to-nearest-even.

use half::bf16;

/// How a synthetic tensor's elements are derived from the random words.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SynthFill {
    /// `bf16(center + half_width · (2u − 1))` with `u = (word >> 40) · 2^-24` in [0, 1).
    /// Stored as bf16, or widened exactly to f32 when the buffer is f32.
    Uniform { center: f32, half_width: f32 },
    /// Uniform random bytes (MXFP4 codes).
    Bytes,
    /// Bytes uniform in `lo..=hi`: `lo + (byte % (hi − lo + 1))`; E8M0 scales.
    ByteRange { lo: u8, hi: u8 },
}

/// A synthetic tensor: the name and seed that make it unique, and its fill rule.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthTensor {
    pub seed: u64,
    pub name: String,
    pub fill: SynthFill,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

impl SynthTensor {
    pub fn stream(&self) -> u64 {
        mix(self.seed ^ fnv1a64(self.name.as_bytes()))
    }

    /// Fills `out` with bf16 bits of elements `first .. first + out.len()`.
    pub fn fill_bf16(&self, first: usize, out: &mut [u16]) {
        let stream = self.stream();
        for (i, o) in out.iter_mut().enumerate() {
            *o = uniform_bf16(self.fill, word(stream, (first + i) as u64)).to_bits();
        }
    }

    /// Fills `out` with elements `first ..` as f32 (bf16 values widened exactly).
    pub fn fill_f32(&self, first: usize, out: &mut [f32]) {
        let stream = self.stream();
        for (i, o) in out.iter_mut().enumerate() {
            *o = uniform_bf16(self.fill, word(stream, (first + i) as u64)).to_f32();
        }
    }

    /// Fills `out` with bytes `first ..`.
    pub fn fill_bytes(&self, first: usize, out: &mut [u8]) {
        let stream = self.stream();
        // Byte `i` is byte `i % 8` of word `i / 8`: a ragged head, whole words, a ragged tail.
        let head = ((8 - first % 8) % 8).min(out.len());
        let (head_out, rest) = out.split_at_mut(head);
        if head > 0 {
            let w = word(stream, (first / 8) as u64).to_le_bytes();
            head_out.copy_from_slice(&w[first % 8..first % 8 + head]);
        }
        let first_word = (first + head) / 8;
        let whole = rest.len() / 8;
        let mut words = rest.chunks_exact_mut(8);
        for (j, chunk) in (&mut words).enumerate() {
            chunk.copy_from_slice(&word(stream, (first_word + j) as u64).to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let w = word(stream, (first_word + whole) as u64).to_le_bytes();
            let n = tail.len();
            tail.copy_from_slice(&w[..n]);
        }
        if let SynthFill::ByteRange { lo, hi } = self.fill {
            let span = hi as u16 - lo as u16 + 1;
            for b in out.iter_mut() {
                *b = lo + (*b as u16 % span) as u8;
            }
        }
    }
}

#[inline]
fn word(stream: u64, j: u64) -> u64 {
    mix(stream.wrapping_add(j.wrapping_add(1).wrapping_mul(GOLDEN)))
}

#[inline]
fn uniform_bf16(fill: SynthFill, w: u64) -> bf16 {
    let SynthFill::Uniform { center, half_width } = fill else {
        return bf16::from_bits(w as u16);
    };
    let u = (w >> 40) as f32 * (1.0 / 16_777_216.0);
    let t = u * 2.0 - 1.0; // exact: u has 24 significant bits
    let scaled = half_width * t; // rounded once
    bf16::from_f32(center + scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(fill: SynthFill) -> SynthTensor {
        SynthTensor { seed: 7, name: "model.layers.0.mlp.router.weight".into(), fill }
    }

    #[test]
    fn values_do_not_depend_on_the_chunking() {
        let t = tensor(SynthFill::Uniform { center: 0.0, half_width: 0.5 });
        let mut whole = vec![0u16; 1000];
        t.fill_bf16(0, &mut whole);
        let mut part = vec![0u16; 300];
        t.fill_bf16(500, &mut part);
        assert_eq!(&whole[500..800], &part[..]);

        let b = tensor(SynthFill::Bytes);
        let mut whole = vec![0u8; 1000];
        b.fill_bytes(0, &mut whole);
        let mut part = vec![0u8; 13];
        b.fill_bytes(77, &mut part);
        assert_eq!(&whole[77..90], &part[..]);
    }

    #[test]
    fn uniform_stays_in_range_and_is_spread() {
        let t = tensor(SynthFill::Uniform { center: 1.0, half_width: 0.25 });
        let mut v = vec![0f32; 10_000];
        t.fill_f32(0, &mut v);
        assert!(v.iter().all(|&x| (0.75..=1.25).contains(&x)));
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn byte_range_is_respected() {
        let t = tensor(SynthFill::ByteRange { lo: 118, hi: 121 });
        let mut v = vec![0u8; 4096];
        t.fill_bytes(0, &mut v);
        assert!(v.iter().all(|&b| (118..=121).contains(&b)));
        for want in 118..=121 {
            assert!(v.contains(&want));
        }
    }

    #[test]
    fn names_and_seeds_give_different_streams() {
        let a = tensor(SynthFill::Bytes);
        let mut b = a.clone();
        b.name.push('x');
        let mut c = a.clone();
        c.seed = 8;
        assert_ne!(a.stream(), b.stream());
        assert_ne!(a.stream(), c.stream());
    }

    #[test]
    fn known_values_are_stable() {
        // Pins the recipe: a CUDA implementation must reproduce these exact values.
        let t = SynthTensor { seed: 0, name: "t".into(), fill: SynthFill::Bytes };
        let mut v = [0u8; 4];
        t.fill_bytes(0, &mut v);
        let w = word(t.stream(), 0).to_le_bytes();
        assert_eq!(v, [w[0], w[1], w[2], w[3]]);
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161D_100B_05E5);
    }
}
