//! The `Backend` trait: flat typed buffers and the coarse, fused operations of a MoE
//! transformer's forward pass. One implementation per device (`kernels-cpu`, `kernels-cuda`).
//! Each op takes one argument struct (`ops`, where its shapes and numerics are documented) and
//! checks it with `checks` before touching memory.

use crate::dtype::DType;
use crate::error::{EngineError, Result};
use crate::host::HostBytes;
use crate::kernels::{KernelChoice, ModelPlan};
use crate::ops::{
    AttentionArgs, AttentionRowsArgs, Buffers, EmbedArgs, MatmulArgs, MoeExpertsArgs, MoeRouteArgs, QkvRopeArgs, QkvRopeRowsArgs,
    RmsNormArgs, SampleArgs,
};
use crate::synth::SynthTensor;
use crate::weight::{Weight, WeightFormat};

/// A buffer owned by a backend: a fixed element type and length.
pub trait DeviceBuffer: 'static {
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

    /// Expert tables over host memory the device reads in place (the `host` residency mode),
    /// for a backend with memory of its own that has them.
    fn expert_tables(&mut self) -> Option<&mut dyn crate::residency::ExpertTables<Self::Buffer>> {
        None
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

    // ---- the forward pass: one argument struct per op (`ops`), checked by `checks` ----------

    fn embed(&mut self, a: EmbedArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    fn rms_norm(&mut self, a: RmsNormArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    fn matmul(&mut self, a: MatmulArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    fn qkv_rope(&mut self, a: QkvRopeArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    fn attention(&mut self, a: AttentionArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    /// `qkv_rope` and `attention` over rows of several sequences, one cache layer per row (a
    /// decode step of several contexts): the chosen `qkv_rope` / `attention` kernel's form for
    /// rows, so a row computes what it would alone.
    fn qkv_rope_rows(&mut self, a: QkvRopeRowsArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    fn attention_rows(&mut self, a: AttentionRowsArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    fn moe_route(&mut self, a: MoeRouteArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    fn moe_experts(&mut self, a: MoeExpertsArgs<'_, Buffers<Self::Buffer>>) -> Result<()>;
    /// Returns the sampled token id.
    fn sample(&mut self, a: SampleArgs<'_, Buffers<Self::Buffer>>) -> Result<u32>;
}
