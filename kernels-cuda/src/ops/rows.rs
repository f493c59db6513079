//! Launchers for the forms of `cuda/qkv_rope.cu` and `cuda/attention.cu` over rows of several
//! sequences (a decode step of several contexts): the GEMV projection and the split attention
//! passes with each row's cache addresses in the launch's arguments (`GptossKvRows`).
//!
//! Why addresses in the arguments rather than a table in device memory: a recorded step then
//! carries its rows' caches with it, so replaying it needs nothing rewritten and cannot read a
//! stale table; the model keys a recording on which contexts its rows are (see
//! `model-gpt-oss/src/batch.rs`), so a step is replayed only for the same rows. At most
//! `GPTOSS_MAX_ROWS` rows per launch (2 KiB of addresses): a step over more rows runs as
//! launches over consecutive groups of at most that many (rows are independent, so the
//! grouping changes no result; the attention partials are reused group after group, in stream
//! order).
//!
//! Results: a row computes exactly what the single-sequence op computes for it alone at decode
//! (n = 1): the same GEMV kernel body (its per-token sums do not depend on the batch) and the
//! same split count, `splits(1, capacity)`, whatever the number of rows.

use std::ptr;

use gptoss_engine::checks::{self, buffer as need};
use gptoss_engine::{AttentionRowsArgs, Buffers, DType, DeviceBuffer, EngineError, QkvRopeRowsArgs, Result};

use super::attention::{Partials, splits};
use super::{On, blocks, dense, u32_of};
use crate::args::{
    GPTOSS_ATTENTION_WARPS, GPTOSS_MAX_GROUP, GPTOSS_MAX_ROWS, GPTOSS_QKV_WARPS, GPTOSS_WARP_THREADS, GptossAttentionArgs,
    GptossAttentionRowsArgs, GptossKvRows, GptossQkvRopeArgs, GptossQkvRopeRowsArgs, GptossSplit,
};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::Resolved;

/// The launches of a step over `n` rows: consecutive ranges of at most `GPTOSS_MAX_ROWS` rows
/// (one launch's table of cache addresses).
fn row_groups(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(GPTOSS_MAX_ROWS as usize).map(move |r| r..n.min(r + GPTOSS_MAX_ROWS as usize))
}

/// The addresses of each row's keys and values, in row order.
fn kv_rows<'l, D: Device + 'l>(layers: impl Iterator<Item = (&'l CudaBuffer<D>, &'l CudaBuffer<D>)>) -> GptossKvRows {
    let mut table = GptossKvRows { k: [ptr::null_mut(); GPTOSS_MAX_ROWS as usize], v: [ptr::null_mut(); GPTOSS_MAX_ROWS as usize] };
    for (t, (k, v)) in layers.enumerate() {
        table.k[t] = k.ptr() as *mut _;
        table.v[t] = v.ptr() as *mut _;
    }
    table
}

pub fn qkv_rope_rows<D: Device>(on: &On<D>, kernels: &Resolved<D>, a: QkvRopeRowsArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
    const OP: &str = "qkv_rope_rows";
    let s = checks::qkv_rope_rows(&a)?;
    let Resolved::Batched { rows: Some(kernel), .. } = kernels else {
        return Err(EngineError::Backend { backend: D::BACKEND, detail: format!("{OP}: kernel table mismatch") });
    };
    let kv = &*a.kv[0];
    let f = kernel.for_kv(kv.k.dtype(), OP)?;
    let (hidden, q_row) = (a.wq.cols, s.q_heads * s.head_dim);
    let pairs = (s.q_heads + 2 * s.kv_heads) * s.head_dim / 2;
    let cfg = Launch::linear([blocks(pairs, GPTOSS_QKV_WARPS, OP)?, 1, 1], GPTOSS_QKV_WARPS * GPTOSS_WARP_THREADS);
    let whole = GptossQkvRopeArgs {
        q: dense(a.wq, OP)?,
        k: dense(a.wk, OP)?,
        v: dense(a.wv, OP)?,
        x: a.x.ptr() as *const f32,
        positions: a.positions.ptr() as *const u32,
        inv_freq: a.rope.inv_freq.ptr() as *const f32,
        k_cache: ptr::null_mut(),
        v_cache: ptr::null_mut(),
        q_out: a.q_out.ptr() as *mut f32,
        n: u32_of(a.n, OP, "rows")?,
        head_dim: u32_of(s.head_dim, OP, "head_dim")?,
        q_heads: u32_of(s.q_heads, OP, "q heads")?,
        kv_heads: u32_of(s.kv_heads, OP, "kv heads")?,
        capacity: u32_of(kv.capacity, OP, "capacity")?,
        concentration: a.rope.concentration,
        xs: GptossSplit::default(),
    };
    for rows in row_groups(a.n) {
        let args = GptossQkvRopeRowsArgs {
            // Device addresses of the group's first row (never dereferenced on the host).
            a: GptossQkvRopeArgs {
                x: whole.x.wrapping_add(rows.start * hidden),
                positions: whole.positions.wrapping_add(rows.start),
                q_out: whole.q_out.wrapping_add(rows.start * q_row),
                n: rows.len() as u32,
                ..whole
            },
            kv: kv_rows(a.kv[rows.clone()].iter().map(|l| (&l.k, &l.v))),
        };
        // SAFETY: the weights match their formats and the caches' geometry, x / positions /
        // inv_freq / q_out are long enough for all n rows (`checks::qkv_rope_rows`), and this
        // launch's rows are rows.start..rows.end of them; row t of the group writes only its
        // own cache (at most GPTOSS_MAX_ROWS addresses, every one of a live layer of the checked
        // geometry) at slot pos % capacity, always in bounds.
        unsafe { on.dev.launch(f, cfg, &args)? };
    }
    Ok(())
}

pub fn attention_rows<D: Device>(
    on: &On<D>,
    kernels: &Resolved<D>,
    part: &mut Partials<D>,
    a: AttentionRowsArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    const OP: &str = "attention_rows";
    let s = checks::attention_rows(&a)?;
    let (d, q_heads, kv) = (s.head_dim, s.q_heads, a.kv[0]);
    if s.group > GPTOSS_MAX_GROUP as usize {
        return Err(EngineError::unsupported(OP, format!("{} query heads per kv head (at most {GPTOSS_MAX_GROUP} on CUDA)", s.group)));
    }
    let Resolved::Attention { rows: (split, combine), .. } = kernels else {
        return Err(EngineError::Backend { backend: D::BACKEND, detail: format!("{OP}: kernel table mismatch") });
    };
    let dtype = kv.k.dtype();
    if !matches!(d, 16 | 64 | 128) {
        return Err(EngineError::unsupported(OP, format!("head_dim {d} (the CUDA kernels take 16, 64 or 128)")));
    }
    // Each row split as a decode token alone is: the same partial sums, merged in the same order.
    let sp = splits(1, kv.capacity);
    let group_rows = a.n.min(GPTOSS_MAX_ROWS as usize);
    need(&part.acc, DType::F32, group_rows * sp * q_heads * d, OP, "partials (prepared batch)")?;
    need(&part.ml, DType::F32, group_rows * sp * q_heads * 2, OP, "partials (prepared batch)")?;
    let q_row = q_heads * d;
    let whole = GptossAttentionArgs {
        q: a.q.ptr() as *const f32,
        k_cache: ptr::null(),
        v_cache: ptr::null(),
        positions: a.positions.ptr() as *const u32,
        sinks: a.sinks.ptr() as *const f32,
        out: a.out.ptr() as *mut f32,
        part_acc: part.acc.ptr() as *mut f32,
        part_ml: part.ml.ptr() as *mut f32,
        status: on.status as *mut u32,
        n: u32_of(a.n, OP, "rows")?,
        q_heads: q_heads as u32,
        kv_heads: kv.kv_heads as u32,
        head_dim: d as u32,
        capacity: u32_of(kv.capacity, OP, "capacity")?,
        window: u32_of(kv.window.unwrap_or(0), OP, "window")?,
        splits: sp as u32,
        scale: a.scale,
    };
    for rows in row_groups(a.n) {
        let args = GptossAttentionRowsArgs {
            // Device addresses of the group's first row (never dereferenced on the host).
            a: GptossAttentionArgs {
                q: whole.q.wrapping_add(rows.start * q_row),
                positions: whole.positions.wrapping_add(rows.start),
                out: whole.out.wrapping_add(rows.start * q_row),
                n: rows.len() as u32,
                ..whole
            },
            kv: kv_rows(a.kv[rows.clone()].iter().map(|l| (&l.k, &l.v))),
        };
        let split_cfg = Launch::linear([kv.kv_heads as u32, sp as u32, args.a.n], GPTOSS_ATTENTION_WARPS * GPTOSS_WARP_THREADS);
        let combine_cfg = Launch::linear([q_heads as u32, args.a.n, 1], d as u32);
        // SAFETY: q / out hold n × q_heads × d floats, each row's cache matches the one
        // geometry, positions hold n ids (checked above), and this group's rows are
        // rows.start..rows.end of them; the partials hold the group's rows × splits (the
        // previous group's combine has read them: one stream); row t of the group reads only
        // its own cache (at most GPTOSS_MAX_ROWS addresses) at pos % capacity, and positions past
        // what the ring holds are reported by the kernel, not read out of bounds.
        unsafe {
            on.dev.launch(split.for_kv(dtype, OP)?, split_cfg, &args)?;
            on.dev.launch(combine, combine_cfg, &args.a)?;
        }
    }
    Ok(())
}
