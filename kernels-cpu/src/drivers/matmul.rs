//! Dense matmul driver: `out[t] = (accumulate ? out[t] : 0) + W · x[t] + b` for `t < n`.
//!
//! Parallel strategy: output rows are split into tasks of `rows_per_task` rows; every task
//! computes its rows for all n tokens (`fast::matmul::tile`), so a task's weights are read from
//! memory once and reused from cache across token groups. The activations are prepared first,
//! once per matmul, spread over tokens: reordered for the 4-bit formats
//! (`fast::matmul::prepare`), quantized to int8 blocks for the q8 tiles (`fast::matmul::q8`), or
//! split into two bf16 planes for the bf16 dot products (`fast::matmul::bf16_dot`).
//! qkv_rope, moe_route and moe_experts prepare and run their projections through the same
//! functions.

use gptoss_engine::MatmulArgs;

use crate::compiled::Compiled;
use crate::fast::matmul::bf16_dot::SplitRows;
use crate::fast::matmul::format::{Format, IntFormat};
use crate::fast::matmul::q8::max_row_bytes;
use crate::fast::matmul::tile::{Bf16Row, F32Rows, Q8Rows, Tile};
use crate::host::Host;
use crate::pool::{SendPtr, current_threads, for_each_task};
use crate::view::WeightView;
use crate::workspace::{ActScratch, Workspace};

/// What the tiles of format `F` multiply the weights by, and how those activations are made.
pub trait Products<F: Format>: 'static {
    /// Inserted before the ISA in kernel names (`f32_mf4w_matmul_q8_avx2`); empty for exact.
    const VARIANT: &'static str;
    /// The activations as the tiles read them.
    type Act<'a>: Copy + Sync;

    /// `n` rows of `cols` activations prepared once for this matmul, in `s`.
    fn prepare<'a, H: Compiled>(x: &'a [f32], cols: usize, n: usize, s: &'a mut ActScratch) -> Self::Act<'a>;
    /// One tile.
    ///
    /// # Safety
    /// The CPU runs `H`; the activations were prepared by [`Products::prepare`] with `H` and hold
    /// every row the tile names; `t.out` is valid for its rows and tokens (see `Tile`).
    unsafe fn tile<H: Compiled>(t: &Tile<Self::Act<'_>>);
}

/// The stored weights exactly, times f32 activations.
pub struct Exact;

impl<F: Format> Products<F> for Exact {
    const VARIANT: &'static str = "";
    type Act<'a> = F32Rows<'a>;

    fn prepare<'a, H: Compiled>(x: &'a [f32], cols: usize, n: usize, s: &'a mut ActScratch) -> F32Rows<'a> {
        if !F::NIBBLES {
            return F32Rows { x, stride: cols };
        }
        let scratch = &mut s.xp;
        assert!(cols.is_multiple_of(32) && scratch.len() >= n * cols, "workspace too small for {n} rows of {cols}");
        let sp = SendPtr(scratch.as_mut_ptr());
        for_each_task(n, |t| {
            // SAFETY: each task writes its own row of `scratch` (long enough, asserted); the
            // registry listed `H` only because this CPU runs it.
            unsafe { H::prepare(&x[t * cols..(t + 1) * cols], std::slice::from_raw_parts_mut(sp.get().add(t * cols), cols)) }
        });
        F32Rows { x: &scratch[..n * cols], stride: cols }
    }

    unsafe fn tile<H: Compiled>(t: &Tile<F32Rows>) {
        unsafe { H::tile_exact::<F>(t) }
    }
}

/// int8, int4 and MXFP4 weights times activations quantized to int8 blocks of 32
/// (`fast::matmul::q8`), by integer dot products.
pub struct Quantized;

impl<F: IntFormat> Products<F> for Quantized {
    const VARIANT: &'static str = "q8";
    type Act<'a> = Q8Rows<'a>;

    fn prepare<'a, H: Compiled>(x: &'a [f32], cols: usize, n: usize, s: &'a mut ActScratch) -> Q8Rows<'a> {
        let stride = F::layout::<H::Q>().row_bytes(cols);
        let scratch = &mut s.q8;
        let skip = scratch.as_ptr().align_offset(64);
        assert!(
            stride <= max_row_bytes(cols) && scratch.len() >= skip + n * stride,
            "workspace too small for {n} quantized rows of {cols}"
        );
        let scratch = &mut scratch[skip..skip + n * stride];
        let sp = SendPtr(scratch.as_mut_ptr());
        for_each_task(n, |t| {
            // SAFETY: each task writes its own row of `scratch` (long enough, asserted); the
            // registry listed `H` only because this CPU runs it.
            unsafe { H::quantize::<F>(&x[t * cols..(t + 1) * cols], std::slice::from_raw_parts_mut(sp.get().add(t * stride), stride)) }
        });
        Q8Rows { q: scratch, stride }
    }

    unsafe fn tile<H: Compiled>(t: &Tile<Q8Rows>) {
        unsafe { H::tile_q8::<F>(t) }
    }
}

/// bf16 weights times the activations split into two bf16 planes, by bf16 dot products
/// (`fast::matmul::bf16_dot`: ~2⁻¹⁸ of each product left out, inside the exact budget); only
/// on the sets with [`Compiled::BF16_DOT`].
pub struct Bf16Dot;

impl Products<Bf16Row> for Bf16Dot {
    const VARIANT: &'static str = "dpbf16";
    type Act<'a> = SplitRows<'a>;

    fn prepare<'a, H: Compiled>(x: &'a [f32], cols: usize, n: usize, s: &'a mut ActScratch) -> SplitRows<'a> {
        let planes = s.planes(2 * n * cols);
        assert!(H::BF16_DOT && x.len() >= n * cols, "bf16 planes of {n} rows of {cols} on the {} kernels", H::NAME);
        let pp = SendPtr(planes.as_mut_ptr());
        for_each_task(n, |t| {
            // SAFETY: each task writes its own row of `planes` (long enough, see `planes`); the
            // registry listed `H`'s bf16 dot products only because this CPU runs them.
            unsafe { H::split_bf16(&x[t * cols..(t + 1) * cols], std::slice::from_raw_parts_mut(pp.get().add(2 * t * cols), 2 * cols)) }
        });
        SplitRows { planes, x, cols }
    }

    unsafe fn tile<H: Compiled>(t: &Tile<SplitRows>) {
        unsafe { H::tile_bf16_dot(t) }
    }
}

/// Fewest rows in a task: enough to amortise the task's start and the tile's edges.
const MIN_ROWS_PER_TASK: usize = 16;
/// Tasks per thread when rows allow: several, so that two cores finish together even when
/// one is interrupted.
const TASKS_PER_THREAD: usize = 8;
/// Most rows per task when several tokens share a weight read (prefill): a task's block of
/// 64 rows × 2880 bf16 (368 KB) stays in a 1 MB L2 while every token group passes over it.
const MAX_ROWS_PER_TASK_GEMM: usize = 64;

/// Rows per task for a matrix of `rows` outputs and `n` tokens: a multiple of 4 (the tiles'
/// row group), at least `MIN_ROWS_PER_TASK`.
pub fn rows_per_task(rows: usize, n: usize, threads: usize) -> usize {
    let even = rows.div_ceil(threads * TASKS_PER_THREAD).next_multiple_of(4).max(MIN_ROWS_PER_TASK);
    if n > 1 { even.min(MAX_ROWS_PER_TASK_GEMM) } else { even }
}

/// Runs `w` over activations already prepared, for the tokens listed in `xrows` / `orows`.
#[allow(clippy::too_many_arguments)]
pub fn run<H: Compiled, F: Format, P: Products<F>>(
    w: &WeightView,
    act: P::Act<'_>,
    xrows: &[u32],
    orows: &[u32],
    out: &mut [f32],
    ostride: usize,
    accumulate: bool,
) {
    let per = rows_per_task(w.rows, xrows.len(), current_threads());
    let need = orows.iter().map(|&o| o as usize * ostride + w.rows).max().unwrap_or(0);
    assert!(out.len() >= need && ostride >= w.rows, "output of {} floats cannot hold the tile's rows", out.len());
    let outp = SendPtr(out.as_mut_ptr());
    for_each_task(w.rows.div_ceil(per), |i| {
        let tile = Tile { w, rows: i * per..((i + 1) * per).min(w.rows), act, xrows, orows, out: outp.get(), ostride, accumulate };
        // SAFETY: tasks write disjoint row ranges of the output rows checked above; the
        // activations were prepared by `P` with `H`, which this CPU runs.
        unsafe { P::tile::<H>(&tile) }
    });
}

/// The whole dense matmul on `H`, weights of format `F`, products `P`.
pub fn matmul<H: Compiled, F: Format, P: Products<F>>(a: MatmulArgs<Host>, ws: &mut Workspace) {
    let Workspace { act: scratch, iota, .. } = ws;
    let rows = &iota[..a.n];
    let act = P::prepare::<H>(a.x, a.w.cols, a.n, scratch);
    run::<H, F, P>(&a.w, act, rows, rows, a.out, a.w.rows, a.accumulate);
}
