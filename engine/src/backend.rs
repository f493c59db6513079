//! The `Backend` trait: flat typed buffers and the coarse, fused operations of a MoE
//! transformer's forward pass. One implementation per device (`kernels-cpu`, `kernels-cuda`).
//!
//! Conventions shared by every op:
//! - Activations are f32, row-major, one row per token: `[n, width]`. Buffers may be longer than
//!   an op needs (they are sized for the largest batch once); ops touch only the first rows.
//! - `tokens` and `positions` are u32 buffers of at least `n` elements, living on the device so a
//!   captured decode step can be replayed with new values.
//! - Every op checks dtypes and lengths and returns an error instead of touching memory it
//!   should not.

use crate::dtype::DType;
use crate::error::{EngineError, Result};
use crate::host::HostBytes;
use crate::kernels::{KernelChoice, ModelPlan};
use crate::kv::KvLayer;
use crate::sampling::SamplingParams;
use crate::synth::SynthTensor;
use crate::weight::{Weight, WeightFormat};

/// A buffer owned by a backend: a fixed element type and length.
pub trait DeviceBuffer {
    fn dtype(&self) -> DType;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Describes a backend instance for reports: `cpu` + ISA, or `cuda` + device name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    pub name: &'static str,
    /// The instruction set (CPU) or device name (GPU).
    pub device: String,
    pub threads: usize,
}

/// The shape of one forward step, which decides whether a recording of it can be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Which context (KV cache and activation buffers) the step runs on.
    pub context: u64,
    pub tokens: usize,
    pub logits_rows: usize,
    /// False when the model must run the ops itself (e.g. to observe intermediate results).
    pub replayable: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepMode {
    /// The model must issue the step's ops.
    Run,
    /// The backend ran a recording of the step; the model issues nothing.
    Replayed,
}

/// Rotary embedding state on the device: one f32 inverse frequency per dimension pair.
pub struct Rope<Buf> {
    pub inv_freq: Buf,
    /// Multiplies both cos and sin (YaRN's attention scaling).
    pub concentration: f32,
}

/// The clamped SwiGLU of gpt-oss: `min(g, limit) · σ(alpha · min(g, limit)) · (clamp(u, ±limit) + 1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Swiglu {
    pub alpha: f32,
    pub limit: f32,
}

pub trait Backend {
    type Buffer: DeviceBuffer;

    fn info(&self) -> BackendInfo;

    /// Called once when a model is loaded, before any op: sizes the backend's scratch for the
    /// largest batch and chooses a kernel for every (op, weight format) the model will use.
    /// Fails if some case has no kernel. Returns the choices for reports.
    fn prepare(&mut self, plan: &ModelPlan) -> Result<Vec<KernelChoice>>;

    // ---- memory -------------------------------------------------------------------------

    /// A zero-filled buffer of `len` elements.
    fn alloc(&mut self, dtype: DType, len: usize) -> Result<Self::Buffer>;
    /// A buffer holding `bytes` (exactly `len` elements of `dtype`). A backend that can compute
    /// from host memory keeps a reference instead of copying.
    fn load_host(&mut self, dtype: DType, len: usize, bytes: HostBytes) -> Result<Self::Buffer>;
    /// A buffer materialised from a synthetic tensor's counter-based generator (see `synth`).
    fn load_synth(&mut self, dtype: DType, len: usize, tensor: &SynthTensor) -> Result<Self::Buffer>;
    /// Copies host bytes into `dst` starting at element `first`.
    fn write(&mut self, dst: &mut Self::Buffer, first: usize, bytes: &[u8]) -> Result<()>;
    /// Copies elements of `src`, starting at element `first`, into `out`.
    fn read(&mut self, src: &Self::Buffer, first: usize, out: &mut [u8]) -> Result<()>;
    /// Copies `len` elements from `src[src_first..]` to `dst[dst_first..]` (same dtype).
    fn copy(&mut self, src: &Self::Buffer, src_first: usize, dst: &mut Self::Buffer, dst_first: usize, len: usize) -> Result<()>;
    /// Waits for all queued work.
    fn synchronize(&mut self) -> Result<()>;
    /// A copy of `w` (every stacked matrix, bias included) in format `to`, quantized as
    /// `quant::quantize_rows` defines, from its values decoded to f32. Used to convert weights
    /// at load time, wherever they live; `w` is left as it was.
    fn convert_weight(&mut self, w: &Weight<Self::Buffer>, to: WeightFormat) -> Result<Weight<Self::Buffer>> {
        Err(EngineError::unsupported("convert_weight", format!("this backend cannot convert {} weights to {to}", w.format)))
    }

    // ---- measurement --------------------------------------------------------------------

    /// The device's own bandwidth ceiling in GB/s (1e9 bytes/s), measured now, if the backend
    /// has one to measure (a GPU: a large device-to-device copy, bytes read plus written).
    /// `None` means the host's memory is the device, which the caller measures itself.
    fn measure_peak_gb_s(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }

    /// Device memory in use and in all, in bytes, for devices with their own memory.
    fn device_memory(&self) -> Option<(u64, u64)> {
        None
    }

    /// Bytes this backend can still allocate, when it can tell (the host's available memory
    /// for the CPU, free device memory for a GPU). A model load checks its size against it
    /// first, so that a model that cannot fit is an error rather than an out-of-memory kill.
    fn memory_available(&self) -> Option<u64> {
        None
    }

    /// Whether `load_host` copies the bytes into memory of its own (true for a device with its
    /// own memory) rather than computing from them where they are.
    fn copies_host_bytes(&self) -> bool {
        true
    }

    // ---- steps --------------------------------------------------------------------------

    /// Called before the ops of one forward step. A backend that records steps (CUDA graphs)
    /// may answer `Replayed` when it has just run a recording of an identical step: the model
    /// then skips the ops (their inputs — token ids, positions — were written to the same
    /// device buffers before the call). Otherwise the model issues the ops, then `end_step`.
    fn begin_step(&mut self, _step: Step) -> Result<StepMode> {
        Ok(StepMode::Run)
    }
    /// Called after the ops of a step that `begin_step` answered `Run` for.
    fn end_step(&mut self) -> Result<()> {
        Ok(())
    }

    // ---- the forward pass ---------------------------------------------------------------

    /// `out[t, :] = table[tokens[t], :]` for `t < n`; out is f32 `[n, table.cols]`.
    fn embed(&mut self, table: &Weight<Self::Buffer>, tokens: &Self::Buffer, n: usize, out: &mut Self::Buffer) -> Result<()>;

    /// RMSNorm over rows of width `gain.len()`: `out = x / sqrt(mean(x²) + eps) · gain`.
    fn rms_norm(&mut self, x: &Self::Buffer, gain: &Self::Buffer, n: usize, eps: f32, out: &mut Self::Buffer) -> Result<()>;

    /// `out[t] = (accumulate ? out[t] : 0) + W · x[t] + b` for `t < n`; x is `[n, w.cols]`, out
    /// `[n, w.rows]`. `w` must be dense (`experts == 1`).
    fn matmul(&mut self, w: &Weight<Self::Buffer>, x: &Self::Buffer, n: usize, out: &mut Self::Buffer, accumulate: bool) -> Result<()>;

    /// The attention input projections of `n` tokens: `q = Wq·x + bq`, `k = Wk·x + bk`,
    /// `v = Wv·x + bv`; rotates every head of q and k by its token's position (split halves
    /// `(u[i], u[i + d/2])`, angle `(pos as f32) · inv_freq[i]`, cos and sin scaled by the
    /// concentration); writes k and v to the cache at slot `pos % kv.capacity` and q to
    /// `q_out` `[n, q_heads · head_dim]`.
    #[allow(clippy::too_many_arguments)]
    fn qkv_rope(
        &mut self,
        wq: &Weight<Self::Buffer>,
        wk: &Weight<Self::Buffer>,
        wv: &Weight<Self::Buffer>,
        x: &Self::Buffer,
        n: usize,
        positions: &Self::Buffer,
        rope: &Rope<Self::Buffer>,
        kv: &mut KvLayer<Self::Buffer>,
        q_out: &mut Self::Buffer,
    ) -> Result<()>;

    /// Causal grouped-query attention with learned sinks; the number of query heads is
    /// `sinks.len()`, a multiple of the cache's kv heads, and query head `h` reads kv head
    /// `h / (q_heads / kv_heads)`. Query `t` (at `positions[t]` = p)
    /// attends the cached keys at positions `max(0, p + 1 − window) ..= p` (all of `0..=p`
    /// without a window), with logits `q·k · scale`, and a per-head sink logit that joins the
    /// softmax's denominator only. `q` is `[n, q_heads · d]`, `sinks` f32 `[q_heads]`, `out`
    /// `[n, q_heads · d]`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        q: &Self::Buffer,
        kv: &KvLayer<Self::Buffer>,
        n: usize,
        positions: &Self::Buffer,
        sinks: &Self::Buffer,
        scale: f32,
        out: &mut Self::Buffer,
    ) -> Result<()>;

    /// Router: logits `r = Wr·x + br` (`[n, experts]`), then per token the `top_k` largest
    /// logits (descending, lowest expert id first on ties) and the softmax over those `top_k`.
    /// Writes u32 `ids` and f32 `weights`, both `[n, top_k]`.
    fn moe_route(
        &mut self,
        router: &Weight<Self::Buffer>,
        x: &Self::Buffer,
        n: usize,
        top_k: usize,
        ids: &mut Self::Buffer,
        weights: &mut Self::Buffer,
    ) -> Result<()>;

    /// The routed experts, fused: for each token and each of its `top_k` experts `e` with
    /// weight `w`: `u = W1[e]·x + b1[e]` (gate at even rows, up at odd rows), `a = swiglu(u)`,
    /// `y = W2[e]·a + b2[e]`; then `residual[t] += Σ w · y`.
    #[allow(clippy::too_many_arguments)]
    fn moe_experts(
        &mut self,
        gate_up: &Weight<Self::Buffer>,
        down: &Weight<Self::Buffer>,
        x: &Self::Buffer,
        n: usize,
        ids: &Self::Buffer,
        weights: &Self::Buffer,
        top_k: usize,
        swiglu: Swiglu,
        residual: &mut Self::Buffer,
    ) -> Result<()>;

    /// Draws a token from row `row` of `logits` (`[rows, vocab]`) by the rule in `sampling`,
    /// using the uniform number `u`.
    fn sample(&mut self, logits: &Self::Buffer, row: usize, vocab: usize, params: &SamplingParams, u: f32) -> Result<u32>;
}
