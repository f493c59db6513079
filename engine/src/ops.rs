//! One argument struct per Backend op, written once and taken at every level: the `Backend`
//! trait and its profiling decorator, every backend, the CPU registries and kernels (scalar
//! reference and SIMD), the CUDA launchers and the tests.
//!
//! The structs are generic over [`Operands`], which says what an operand *is* at a given level:
//! a backend's buffers ([`Buffers`]), or, inside the CPU backend once the buffers are checked,
//! slices and typed views. The fields, their names, shapes and documentation stay the same at
//! every level, so adding an op (or a field) touches one struct. Shapes are checked once, by the
//! matching function of `checks`, before a backend runs anything.
//!
//! Conventions shared by every op: activations are f32, row-major, one row per token
//! (`[n, width]`); buffers may be longer than an op needs (sized once for the largest batch) and
//! ops touch only the first rows; `tokens` and `positions` are u32 and live with the backend, so
//! a recorded decode step can be replayed with new values.

use std::marker::PhantomData;

use crate::backend::{Rope, Swiglu};
use crate::kv::KvLayer;
use crate::sampling::SamplingParams;
use crate::weight::Weight;

/// What each kind of operand is at one level of the stack.
pub trait Operands<'a> {
    /// A weight matrix (or a stack of expert matrices).
    type Weight: 'a;
    /// f32 values read by the op.
    type Floats: 'a;
    /// f32 values written by the op.
    type FloatsMut: 'a;
    /// u32 values read (token ids, positions, expert ids).
    type Ids: 'a;
    /// u32 values written (expert ids).
    type IdsMut: 'a;
    /// One layer of the KV cache, read.
    type Kv: 'a;
    /// One layer of the KV cache, written.
    type KvMut: 'a;
    /// One KV-cache layer per row, each of a different sequence, read.
    type KvRows: 'a;
    /// One KV-cache layer per row, each of a different sequence, written.
    type KvRowsMut: 'a;
    /// The rotary embedding's frequencies.
    type Rope: 'a;
}

/// Operands as a backend holds them: its buffers (`Buf`), weights and cache layers.
pub struct Buffers<Buf>(PhantomData<Buf>);

impl<'a, Buf: 'static> Operands<'a> for Buffers<Buf> {
    type Weight = &'a Weight<Buf>;
    type Floats = &'a Buf;
    type FloatsMut = &'a mut Buf;
    type Ids = &'a Buf;
    type IdsMut = &'a mut Buf;
    type Kv = &'a KvLayer<Buf>;
    type KvMut = &'a mut KvLayer<Buf>;
    type KvRows = &'a [&'a KvLayer<Buf>];
    type KvRowsMut = &'a mut [&'a mut KvLayer<Buf>];
    type Rope = &'a Rope<Buf>;
}

/// `out[t, :] = table[tokens[t], :]` for `t < n`, widened to f32; out is `[n, table.cols]`.
pub struct EmbedArgs<'a, O: Operands<'a>> {
    pub table: O::Weight,
    /// u32 `[n]`, each below `table.rows`.
    pub tokens: O::Ids,
    pub n: usize,
    pub out: O::FloatsMut,
}

/// RMSNorm over rows of width `gain.len()`: `out = x / sqrt(mean(x²) + eps) · gain`.
pub struct RmsNormArgs<'a, O: Operands<'a>> {
    /// f32 `[n, d]`.
    pub x: O::Floats,
    /// f32 `[d]`.
    pub gain: O::Floats,
    pub n: usize,
    /// Finite and ≥ 0.
    pub eps: f32,
    /// f32 `[n, d]`.
    pub out: O::FloatsMut,
}

/// `out[t] = (accumulate ? out[t] : 0) + W · x[t] + b` for `t < n`; `w` is dense (one matrix).
pub struct MatmulArgs<'a, O: Operands<'a>> {
    pub w: O::Weight,
    /// f32 `[n, w.cols]`.
    pub x: O::Floats,
    pub n: usize,
    /// f32 `[n, w.rows]`.
    pub out: O::FloatsMut,
    pub accumulate: bool,
}

/// The attention input projections of `n` tokens: `q = Wq·x + bq`, `k = Wk·x + bk`,
/// `v = Wv·x + bv`; every head of q and k rotated by its token's position (split halves
/// `(u[i], u[i + d/2])`, angle `(pos as f32) · inv_freq[i]`, cos and sin scaled by the
/// concentration); k and v written to the cache at slot `pos % kv.capacity`, q to `q_out`.
pub struct QkvRopeArgs<'a, O: Operands<'a>> {
    /// `[q_heads · d, hidden]`, `[kv_heads · d, hidden]` twice; one format for the three.
    pub wq: O::Weight,
    pub wk: O::Weight,
    pub wv: O::Weight,
    /// f32 `[n, hidden]`.
    pub x: O::Floats,
    pub n: usize,
    /// u32 `[n]`.
    pub positions: O::Ids,
    pub rope: O::Rope,
    pub kv: O::KvMut,
    /// f32 `[n, q_heads · d]`.
    pub q_out: O::FloatsMut,
}

/// Causal grouped-query attention with learned sinks. The number of query heads is
/// `sinks.len()`, a multiple of the cache's kv heads; query head `h` reads kv head
/// `h / (q_heads / kv_heads)`. Query `t` (at `positions[t]` = p) attends the cached keys at
/// positions `max(0, p + 1 − window) ..= p` (all of `0..=p` without a window) with logits
/// `q·k · scale`; a per-head sink logit joins the softmax's denominator only.
pub struct AttentionArgs<'a, O: Operands<'a>> {
    /// f32 `[n, q_heads · d]`.
    pub q: O::Floats,
    pub kv: O::Kv,
    pub n: usize,
    /// u32 `[n]`.
    pub positions: O::Ids,
    /// f32 `[q_heads]`.
    pub sinks: O::Floats,
    pub scale: f32,
    /// f32 `[n, q_heads · d]`.
    pub out: O::FloatsMut,
}

// ---- rows of several sequences ----------------------------------------------------------------
//
// A decode step over several sequences at once (continuous batching) runs the dense ops on all
// rows together and these two, the ops that depend on the sequence, with one cache layer per
// row. Row t is the next token of its own sequence, at `positions[t]` in that sequence; the
// rows' layers are distinct and share one geometry (slots, heads, head dim, window, element
// type). A row's results are those the single-sequence op gives for that row alone, bit for
// bit wherever the backend's single-sequence op is itself batch-independent (the CPU's always).

/// `qkv_rope` over rows of different sequences: row t's q goes to row t of `q_out`, its k and v
/// to its own cache layer `kv[t]` at slot `positions[t] % capacity`.
pub struct QkvRopeRowsArgs<'a, O: Operands<'a>> {
    /// As `QkvRopeArgs`: `[q_heads · d, hidden]`, `[kv_heads · d, hidden]` twice.
    pub wq: O::Weight,
    pub wk: O::Weight,
    pub wv: O::Weight,
    /// f32 `[n, hidden]`.
    pub x: O::Floats,
    pub n: usize,
    /// u32 `[n]`.
    pub positions: O::Ids,
    pub rope: O::Rope,
    /// `n` layers, row t's at `kv[t]`.
    pub kv: O::KvRowsMut,
    /// f32 `[n, q_heads · d]`.
    pub q_out: O::FloatsMut,
}

/// `attention` over rows of different sequences: query t attends the keys of its own cache
/// layer `kv[t]` at positions `max(0, p + 1 − window) ..= p` (p = `positions[t]`).
pub struct AttentionRowsArgs<'a, O: Operands<'a>> {
    /// f32 `[n, q_heads · d]`.
    pub q: O::Floats,
    /// `n` layers, row t's at `kv[t]`.
    pub kv: O::KvRows,
    pub n: usize,
    /// u32 `[n]`.
    pub positions: O::Ids,
    /// f32 `[q_heads]`.
    pub sinks: O::Floats,
    pub scale: f32,
    /// f32 `[n, q_heads · d]`.
    pub out: O::FloatsMut,
}

/// Router: logits `r = Wr·x + br` (`[n, experts]`), then per token the `top_k` largest logits
/// (descending, lowest expert id first on ties) and the softmax over those `top_k`.
pub struct MoeRouteArgs<'a, O: Operands<'a>> {
    /// Dense, `[experts, hidden]`.
    pub router: O::Weight,
    /// f32 `[n, hidden]`.
    pub x: O::Floats,
    pub n: usize,
    pub top_k: usize,
    /// u32 `[n, top_k]`.
    pub ids: O::IdsMut,
    /// f32 `[n, top_k]`.
    pub weights: O::FloatsMut,
}

/// The routed experts, fused: for each token and each of its `top_k` experts `e` with weight
/// `w`: `u = W1[e]·x + b1[e]` (gate at even rows, up at odd rows), `a = swiglu(u)`,
/// `y = W2[e]·a + b2[e]`; then `residual[t] += Σ w · y`.
pub struct MoeExpertsArgs<'a, O: Operands<'a>> {
    /// `[experts, 2 · intermediate, hidden]`, gate and up rows interleaved.
    pub gate_up: O::Weight,
    /// `[experts, hidden, intermediate]`, the same format as `gate_up`.
    pub down: O::Weight,
    /// f32 `[n, hidden]`.
    pub x: O::Floats,
    pub n: usize,
    /// u32 `[n, top_k]`, each below the expert count.
    pub ids: O::Ids,
    /// f32 `[n, top_k]`.
    pub weights: O::Floats,
    pub top_k: usize,
    pub swiglu: Swiglu,
    /// f32 `[n, hidden]`.
    pub residual: O::FloatsMut,
}

/// Draws a token from row `row` of `logits` (`[rows, vocab]`) by the rule in `sampling`, using
/// the uniform number `u`.
pub struct SampleArgs<'a, O: Operands<'a>> {
    pub logits: O::Floats,
    pub row: usize,
    pub vocab: usize,
    pub params: &'a SamplingParams,
    pub u: f32,
}
