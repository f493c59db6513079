//! Activations quantized to int8 for the q8 tiles (`q8_tile`), once per op, not per row.
//!
//! Each block of 32 activations becomes 32 int8 values `q = round(x · 127 / max|x|)` (to
//! nearest, ties to even) with one f32 scale `d = max|x| / 127` (llama.cpp's q8_0): an
//! activation moves by at most `d / 2`.
//!
//! A row is stored as groups of `group` blocks, each laid out as the ISA's integer dot reads it:
//! the int8 values, then `lanes` f32 (the scale of the block each i32 lane of the dot belongs
//! to), then, where 4-bit codes decode to unsigned `value + offset`, `lanes` f32 correction
//! terms `offset · Σ q · d` over the values each lane sums. The 4-bit formats hold element 2i
//! of a block in a byte's low nibble and 2i+1 in its high nibble, so for them a group stores
//! the even elements of each of its blocks, then the odd ones (`split`). The last group is
//! padded with zero blocks, so kernels never test for a partial group of activations.
//!
//! Parallel strategy: one row per call; the drivers spread rows over the pool.

use gptoss_engine::WeightFormat;

use crate::simd::{MAX_GROUP, Q8};

/// Bytes of one row of `cols` activations in the widest layout of any ISA and format (see
/// `Layout::row_bytes`): workspaces are sized with this.
pub fn max_row_bytes(cols: usize) -> usize {
    cols.div_ceil(32 * MAX_GROUP) * 2 * 32 * MAX_GROUP
}

/// How one ISA's q8 kernels read a row of activations for one weight format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// f32 (i32) lanes of the ISA's vectors.
    pub lanes: usize,
    /// Blocks of 32 per group: `lanes / 4` for the 4-bit formats, `lanes / 8` (at least 1) for int8.
    pub group: usize,
    /// Evens of each block of the group, then odds (4-bit formats).
    pub split: bool,
    /// The unsigned offset of the decoded 4-bit codes (0: signed codes, no correction terms).
    pub offset: i32,
}

impl Layout {
    /// The layout for `format` on an ISA of `lanes` lanes whose 4-bit decoders are unsigned or not.
    pub const fn new(format: WeightFormat, lanes: usize, unsigned_nibbles: bool) -> Layout {
        match format {
            WeightFormat::Mxfp4 => Layout { lanes, group: lanes / 4, split: true, offset: if unsigned_nibbles { 12 } else { 0 } },
            WeightFormat::Int4 { .. } => Layout { lanes, group: lanes / 4, split: true, offset: if unsigned_nibbles { 8 } else { 0 } },
            _ => Layout { lanes, group: if lanes >= 8 { lanes / 8 } else { 1 }, split: false, offset: 0 },
        }
    }

    /// Bytes of one group: values, lane scales, correction terms.
    pub const fn group_bytes(&self) -> usize {
        32 * self.group + 4 * self.lanes * if self.offset != 0 { 2 } else { 1 }
    }

    /// Bytes of a row of `cols` activations.
    pub const fn row_bytes(&self, cols: usize) -> usize {
        cols.div_ceil(32 * self.group) * self.group_bytes()
    }
}

/// Quantizes `x` into `out` (at least `lay.row_bytes(x.len())` bytes) in layout `lay`, with
/// `Q`'s block quantizer.
///
/// # Safety
/// The CPU supports `Q`; `lay` is `Q`'s layout for some weight format.
#[inline(always)]
pub unsafe fn quantize_row<Q: Q8>(x: &[f32], lay: Layout, out: &mut [u8]) {
    let (per_group, half) = (32 * lay.group, 16 * lay.group);
    let lanes_per_block = lay.lanes / lay.group;
    for (g, out) in out[..lay.row_bytes(x.len())].chunks_exact_mut(lay.group_bytes()).enumerate() {
        let (q, rest) = out.split_at_mut(per_group);
        let (mut d, mut sums) = ([0f32; MAX_GROUP], [0i32; 4 * MAX_GROUP]);
        for b in 0..lay.group {
            let start = (g * per_group + 32 * b).min(x.len());
            let src = &x[start..(start + 32).min(x.len())];
            // SAFETY: 32 floats at the pointer (the row's, or the zero-padded copy's).
            let (v, step) = unsafe {
                if src.len() == 32 {
                    Q::quantize_block(src.as_ptr())
                } else {
                    let mut pad = [0f32; 32];
                    pad[..src.len()].copy_from_slice(src);
                    Q::quantize_block(pad.as_ptr())
                }
            };
            d[b] = step;
            if lay.split {
                // Element 2i to the evens half, 2i+1 to the odds half, at the block's place.
                for i in 0..16 {
                    q[16 * b + i] = v[2 * i] as u8;
                    q[half + 16 * b + i] = v[2 * i + 1] as u8;
                }
                // Lane 4b + k of a dot sums elements 8k..8k+8 of block b (4 evens, 4 odds).
                for k in 0..4 {
                    sums[4 * b + k] = v[8 * k..8 * k + 8].iter().map(|&v| v as i32).sum();
                }
            } else {
                for (o, &v) in q[32 * b..32 * b + 32].iter_mut().zip(&v) {
                    *o = v as u8;
                }
            }
        }
        let (scales, corr) = rest.split_at_mut(4 * lay.lanes);
        for l in 0..lay.lanes {
            let dl = d[l / lanes_per_block];
            scales[4 * l..4 * l + 4].copy_from_slice(&dl.to_le_bytes());
            if lay.offset != 0 {
                corr[4 * l..4 * l + 4].copy_from_slice(&((lay.offset * sums[l]) as f32 * dl).to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_at(q: &[u8], at: usize) -> f32 {
        f32::from_le_bytes(q[at..at + 4].try_into().unwrap())
    }

    /// The activation each stored value stands for, `d · q`, in the row's order.
    fn dequantize_row(q: &[u8], lay: Layout, cols: usize) -> Vec<f32> {
        let per_group = 32 * lay.group;
        (0..cols)
            .map(|c| {
                let (g, b, j) = (c / per_group, c % per_group / 32, c % 32);
                let base = g * lay.group_bytes();
                let at = if lay.split { (j % 2) * 16 * lay.group + 16 * b + j / 2 } else { 32 * b + j };
                f32_at(q, base + per_group + 4 * b * (lay.lanes / lay.group)) * q[base + at] as i8 as f32
            })
            .collect()
    }

    #[test]
    fn every_layout_fits_the_workspace_bound() {
        for lanes in [4, 8, 16] {
            for unsigned in [false, true] {
                for f in [WeightFormat::Int8, WeightFormat::Int4 { group: 32 }, WeightFormat::Mxfp4] {
                    let lay = Layout::new(f, lanes, unsigned);
                    for cols in [1, 31, 32, 33, 64, 100, 128, 129, 2880, 4096] {
                        assert!(lay.row_bytes(cols) <= max_row_bytes(cols), "{lay:?} {cols}");
                    }
                }
            }
        }
    }

    /// Runs `check` for every compiled set this CPU has and every integer format, on a row of
    /// `x` quantized by that set in that format's layout.
    fn each_quantized(x: &[f32], check: &mut dyn FnMut(&str, Layout, &[u8])) {
        use super::super::block_row::{I4Row, I8Row, Mf4Row};
        use super::super::format::IntFormat;
        use crate::compiled::{Compiled, Visit, each_available};
        struct Each<'a> {
            x: &'a [f32],
            check: &'a mut dyn FnMut(&str, Layout, &[u8]),
        }
        impl Each<'_> {
            fn format<H: Compiled, F: IntFormat>(&mut self) {
                let lay = F::layout::<H::Q>();
                let mut q = vec![0u8; lay.row_bytes(self.x.len())];
                // SAFETY: `each_available` visits only sets this CPU runs; `q` holds the row.
                unsafe { H::quantize::<F>(self.x, &mut q) };
                (self.check)(H::NAME, lay, &q);
            }
        }
        impl Visit for Each<'_> {
            fn visit<H: Compiled>(&mut self) {
                self.format::<H, I8Row>();
                self.format::<H, I4Row>();
                self.format::<H, Mf4Row>();
            }
        }
        each_available(&mut Each { x, check });
    }

    #[test]
    fn rounding_moves_each_activation_by_at_most_half_a_step() {
        let x: Vec<f32> = (0..100).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013 * (1 + i / 32) as f32).collect();
        each_quantized(&x, &mut |isa, lay, q| {
            let back = dequantize_row(q, lay, x.len());
            for (c, (&a, &b)) in x.iter().zip(&back).enumerate() {
                let blk = &x[c / 32 * 32..(c / 32 * 32 + 32).min(x.len())];
                let d = blk.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                assert!((a - b).abs() <= d * 0.5001, "{isa} {lay:?} [{c}] {a} → {b} (step {d})");
            }
        });
    }

    #[test]
    fn corrections_sum_the_values_of_each_lane() {
        let x: Vec<f32> = (0..200).map(|i| (i as f32 - 20.0) * if i % 3 == 0 { -1.0 } else { 0.5 }).collect();
        each_quantized(&x, &mut |isa, lay, q| {
            if lay.offset == 0 {
                return;
            }
            let (per_group, half) = (32 * lay.group, 16 * lay.group);
            for (g, q) in q.chunks_exact(lay.group_bytes()).enumerate() {
                for l in 0..lay.lanes {
                    // Lane l of a dot sums bytes 4l..4l+4 of the evens half and of the odds half.
                    let s: i32 = (0..4).map(|j| q[4 * l + j] as i8 as i32 + q[half + 4 * l + j] as i8 as i32).sum();
                    let d = f32_at(q, per_group + 4 * l);
                    assert_eq!(
                        f32_at(q, per_group + 4 * lay.lanes + 4 * l),
                        (lay.offset * s) as f32 * d,
                        "{isa} {lay:?} group {g} lane {l}"
                    );
                }
            }
        });
    }
}
