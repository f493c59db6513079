//! `CudaBackend<D>`: the engine's ops on one CUDA device, real (`Gpu`) or emulated (`Sim`).
//! Every op validates its buffers on the host (`checks`), then launches its kernels; nothing
//! allocates after `prepare`. Kernels report bad device-side inputs (token ids, expert ids,
//! positions the ring no longer holds) in a status word that every synchronize reads.

use gptoss_engine::residency::ExpertTables;
use gptoss_engine::{
    AttentionArgs, AttentionRowsArgs, Backend, BackendInfo, Buffers, DType, EmbedArgs, EngineError, HostBytes, KernelChoice,
    KernelOverrides, MatmulArgs, ModelPlan, MoeExpertsArgs, MoeRouteArgs, OpKind, QkvRopeArgs, QkvRopeRowsArgs, Result, RmsNormArgs,
    SampleArgs, Step, StepMode, SynthTensor,
};

use crate::args::{GPTOSS_STATUS_EXPERT_RANGE, GPTOSS_STATUS_RING_OVERRUN, GPTOSS_STATUS_TOKEN_RANGE};
use crate::buffer::CudaBuffer;
use crate::device::Device;
use crate::graph::Recorder;
use crate::ops::attention::{Partials, scratch_rows};
use crate::ops::moe_experts::{Grouping, MoeScratch};
use crate::ops::moe_route::RouteScratch;
use crate::ops::sample::{MAX_BLOCKS, SampleScratch};
use crate::ops::split::{self, Planes, Tiles};
use crate::ops::synth::SynthKernels;
use crate::ops::{On, attention, embed, matmul, moe_experts, moe_route, qkv_rope, rms_norm, rows, sample, synth};
use crate::registry::{Chosen, Resolved, one};

/// The smallest batch the batched ops run on the tensor cores by default: below it the GEMV
/// kernels, which stream the weights once per 2–4 tokens, read less than a 64-token tile wastes
/// (attention: the split kernel, whose blocks fill the GPU when the tensor-core kernel's few
/// row tiles would not). A prediction until measured per GPU (bench/NOTES.md);
/// `GPTOSS_MMA_FROM` sets it.
pub const MMA_FROM_DEFAULT: usize = 16;
/// The environment variable that sets the crossover (tokens).
pub const MMA_FROM_ENV: &str = "GPTOSS_MMA_FROM";

pub struct CudaBackend<D: Device> {
    pub(crate) dev: D,
    kernels: Chosen<D>,
    /// Kernel choices made by the caller, instead of `GPTOSS_KERNELS`.
    overrides: Option<KernelOverrides>,
    /// The smallest batch that takes the tensor-core form of a batched op.
    mma_from: usize,
    synth: SynthKernels<D>,
    /// f32 activations to bf16 planes, for the tensor-core kernels.
    split: D::Function,
    /// moe_experts' routing sort and combine, around its grouped GEMM.
    moe_grouping: Grouping<D>,
    /// u32: bits of `GPTOSS_STATUS_*` set by kernels since the last synchronize.
    status: CudaBuffer<D>,
    scratch: Option<Scratch<D>>,
    pub(crate) steps: Recorder<D>,
}

/// Per-op scratch, sized once by `prepare` for the model's largest batch.
struct Scratch<D: Device> {
    route: RouteScratch<D>,
    moe: MoeScratch<D>,
    partials: Partials<D>,
    sample: SampleScratch<D>,
    /// bf16 planes of the widest activations of the largest batch.
    planes: Planes<D>,
}

impl<D: Device> CudaBackend<D> {
    /// A backend on `dev`.
    pub fn new(dev: D) -> Result<Self> {
        let synth = SynthKernels {
            bf16: dev.function("synth", "synth_bf16")?,
            f32: dev.function("synth", "synth_f32")?,
            bytes: dev.function("synth", "synth_bytes")?,
        };
        let status = CudaBuffer::zeroed(&dev, DType::U32, 1)?;
        let mma_from = match std::env::var(MMA_FROM_ENV) {
            Ok(v) => v.trim().parse::<usize>().map_err(|_| EngineError::invalid(format!("{MMA_FROM_ENV}={v}: not a number of tokens")))?,
            Err(_) => MMA_FROM_DEFAULT,
        };
        let split = dev.function("split", "f32_split_bf16")?;
        let moe_grouping = Grouping::load(&dev)?;
        Ok(CudaBackend {
            dev,
            kernels: Chosen::default(),
            overrides: None,
            mma_from,
            synth,
            split,
            moe_grouping,
            status,
            scratch: None,
            steps: Recorder::from_env(),
        })
    }

    /// Kernel choices for the next `prepare`, in place of `GPTOSS_KERNELS`'s.
    pub fn with_kernels(mut self, overrides: KernelOverrides) -> Self {
        self.overrides = Some(overrides);
        self
    }

    /// The smallest batch that runs the batched ops (matmul, qkv_rope, attention, moe_experts)
    /// on the tensor cores, in place of `GPTOSS_MMA_FROM`'s.
    pub fn with_mma_from(mut self, tokens: usize) -> Self {
        self.mma_from = tokens;
        self
    }

    /// The device, for tests that launch kernels of their own.
    pub fn device(&self) -> &D {
        &self.dev
    }

    fn on(&self) -> On<'_, D> {
        On { dev: &self.dev, status: self.status.ptr() }
    }

    /// Waits for the device, then reports (and clears) what kernels flagged meanwhile.
    fn sync_status(&mut self) -> Result<()> {
        self.dev.synchronize()?;
        let mut word = [0u8; 4];
        self.status.read(&self.dev, 0, &mut word)?;
        let bits = u32::from_le_bytes(word);
        if bits == 0 {
            return Ok(());
        }
        self.status.write(&self.dev, 0, &[0; 4])?;
        Err(status_error(D::BACKEND, bits))
    }
}

/// The bad inputs a status word reports.
fn status_error(backend: &'static str, bits: u32) -> EngineError {
    let mut what = Vec::new();
    if bits & GPTOSS_STATUS_TOKEN_RANGE != 0 {
        what.push("a token id beyond the embedding table");
    }
    if bits & GPTOSS_STATUS_EXPERT_RANGE != 0 {
        what.push("an expert id beyond the layer's experts");
    }
    if bits & GPTOSS_STATUS_RING_OVERRUN != 0 {
        what.push("a position needing keys the sliding-window ring no longer holds");
    }
    EngineError::Backend { backend, detail: format!("kernels reported bad inputs: {}", what.join("; ")) }
}

/// The scratch, once `prepare` has sized it.
fn prepared<'a, D: Device>(scratch: &'a mut Option<Scratch<D>>, op: &'static str) -> Result<&'a mut Scratch<D>> {
    scratch.as_mut().ok_or_else(|| EngineError::invalid(format!("{op}: the {} backend was not prepared for a model", D::BACKEND)))
}

impl<D: Device> Backend for CudaBackend<D> {
    type Buffer = CudaBuffer<D>;

    fn info(&self) -> BackendInfo {
        BackendInfo { name: D::BACKEND, device: self.dev.name().to_string(), threads: 1 }
    }

    fn prepare(&mut self, plan: &ModelPlan) -> Result<Vec<KernelChoice>> {
        let overrides = match &self.overrides {
            Some(o) => o.clone(),
            None => KernelOverrides::from_env()?,
        };
        self.kernels = Chosen::new(&self.dev, plan, &overrides)?;
        let dev = &self.dev;
        let alloc = |dtype, len| CudaBuffer::zeroed(dev, dtype, len);
        let rows = scratch_rows(plan.max_tokens);
        self.scratch = Some(Scratch {
            route: RouteScratch {
                logits: alloc(DType::F32, plan.max_tokens * plan.experts)?,
                counters: alloc(DType::U32, plan.max_tokens)?,
            },
            moe: MoeScratch::new(dev, plan.max_tokens, plan.top_k, plan.experts, plan.hidden, plan.intermediate)?,
            partials: Partials {
                acc: alloc(DType::F32, rows * plan.q_heads * plan.head_dim)?,
                ml: alloc(DType::F32, rows * plan.q_heads * 2)?,
            },
            sample: SampleScratch {
                val: alloc(DType::F32, MAX_BLOCKS)?,
                idx: alloc(DType::U32, MAX_BLOCKS)?,
                mass: alloc(DType::F32, 2 * MAX_BLOCKS)?,
                ticket_and_id: alloc(DType::U32, 2)?,
            },
            planes: {
                let widest = plan.hidden.max(plan.q_heads * plan.head_dim).max(plan.intermediate);
                let len = plan.max_tokens * split::stride(widest);
                Planes { hi: alloc(DType::Bf16, len)?, lo: alloc(DType::Bf16, len)? }
            },
        });
        Ok(self.kernels.report.clone())
    }

    fn alloc(&mut self, dtype: DType, len: usize) -> Result<CudaBuffer<D>> {
        CudaBuffer::zeroed(&self.dev, dtype, len)
    }

    fn load_host(&mut self, dtype: DType, len: usize, bytes: HostBytes) -> Result<CudaBuffer<D>> {
        if dtype.bytes(len) != Some(bytes.len()) {
            return Err(EngineError::shape("load", format!("{} bytes for {len} × {dtype}", bytes.len())));
        }
        let mut buf = CudaBuffer::zeroed(&self.dev, dtype, len)?;
        buf.write(&self.dev, 0, bytes.as_bytes())?;
        Ok(buf)
    }

    fn load_synth(&mut self, dtype: DType, len: usize, tensor: &SynthTensor) -> Result<CudaBuffer<D>> {
        let mut buf = CudaBuffer::zeroed(&self.dev, dtype, len)?;
        synth::synth(&self.dev, &self.synth, tensor, &mut buf)?;
        Ok(buf)
    }

    fn write(&mut self, dst: &mut CudaBuffer<D>, first: usize, bytes: &[u8]) -> Result<()> {
        dst.write(&self.dev, first, bytes)
    }

    fn read(&mut self, src: &CudaBuffer<D>, first: usize, out: &mut [u8]) -> Result<()> {
        // Kernel-reported input errors surface here, before anyone uses the results.
        self.sync_status()?;
        src.read(&self.dev, first, out)
    }

    fn copy(&mut self, src: &CudaBuffer<D>, src_first: usize, dst: &mut CudaBuffer<D>, dst_first: usize, len: usize) -> Result<()> {
        dst.copy_from(&self.dev, src, src_first, dst_first, len)
    }

    fn synchronize(&mut self) -> Result<()> {
        self.sync_status()
    }

    fn measure_peak_gb_s(&mut self) -> Result<Option<f64>> {
        self.sync_status()?;
        self.dev.copy_bandwidth()
    }

    fn device_memory(&self) -> Option<(u64, u64)> {
        self.dev.memory().map(|(free, total)| (total - free, total))
    }

    fn memory_available(&self) -> Option<u64> {
        match self.dev.memory() {
            Some((free, _)) => Some(free),
            // The emulator's device memory is the host's.
            None => gptoss_engine::host_memory::available(),
        }
    }

    fn expert_tables(&mut self) -> Option<&mut dyn ExpertTables<CudaBuffer<D>>> {
        Some(self)
    }

    fn begin_step(&mut self, step: Step) -> Result<StepMode> {
        self.steps.begin(&self.dev, step)
    }

    fn end_step(&mut self) -> Result<()> {
        self.steps.end(&self.dev)
    }

    fn embed(&mut self, a: EmbedArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let f = one(self.kernels.get(OpKind::Embed, Some(a.table.format))?, "embed")?;
        embed::embed(&self.on(), f, a)
    }

    fn rms_norm(&mut self, a: RmsNormArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let f = one(self.kernels.get(OpKind::RmsNorm, None)?, "rms_norm")?;
        rms_norm::rms_norm(&self.on(), f, a)
    }

    fn matmul(&mut self, a: MatmulArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let on = On { dev: &self.dev, status: self.status.ptr() };
        let planes = &mut prepared(&mut self.scratch, "matmul")?.planes;
        let tiles = Tiles { split: &self.split, planes, mma_from: self.mma_from };
        matmul::matmul(&on, self.kernels.get(OpKind::Matmul, Some(a.w.format))?, tiles, a)
    }

    fn qkv_rope(&mut self, a: QkvRopeArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let on = On { dev: &self.dev, status: self.status.ptr() };
        let planes = &mut prepared(&mut self.scratch, "qkv_rope")?.planes;
        let tiles = Tiles { split: &self.split, planes, mma_from: self.mma_from };
        qkv_rope::qkv_rope(&on, self.kernels.get(OpKind::QkvRope, Some(a.wq.format))?, tiles, a)
    }

    fn attention(&mut self, a: AttentionArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let on = On { dev: &self.dev, status: self.status.ptr() };
        let part = &mut prepared(&mut self.scratch, "attention")?.partials;
        let k = self.kernels.get(OpKind::Attention, None)?;
        attention::attention(&on, k, part, self.mma_from, a)
    }

    fn qkv_rope_rows(&mut self, a: QkvRopeRowsArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        rows::qkv_rope_rows(&self.on(), self.kernels.get(OpKind::QkvRope, Some(a.wq.format))?, a)
    }

    fn attention_rows(&mut self, a: AttentionRowsArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let on = On { dev: &self.dev, status: self.status.ptr() };
        let part = &mut prepared(&mut self.scratch, "attention_rows")?.partials;
        rows::attention_rows(&on, self.kernels.get(OpKind::Attention, None)?, part, a)
    }

    fn moe_route(&mut self, a: MoeRouteArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let on = On { dev: &self.dev, status: self.status.ptr() };
        let scratch = &mut prepared(&mut self.scratch, "moe_route")?.route;
        let f = one(self.kernels.get(OpKind::MoeRoute, Some(a.router.format))?, "moe_route")?;
        moe_route::moe_route(&on, f, scratch, a)
    }

    fn moe_experts(&mut self, a: MoeExpertsArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<()> {
        let on = On { dev: &self.dev, status: self.status.ptr() };
        let Scratch { moe, planes, .. } = prepared(&mut self.scratch, "moe_experts")?;
        let tiles = Tiles { split: &self.split, planes, mma_from: self.mma_from };
        let k = self.kernels.get(OpKind::MoeExperts, Some(a.gate_up.format))?;
        moe_experts::moe_experts(&on, k, &self.moe_grouping, tiles, moe, a)
    }

    fn sample(&mut self, a: SampleArgs<'_, Buffers<CudaBuffer<D>>>) -> Result<u32> {
        if self.steps.capturing() {
            return Err(EngineError::invalid("sample: called while a step is being recorded"));
        }
        self.sync_status()?;
        let on = On { dev: &self.dev, status: self.status.ptr() };
        let Resolved::Sample { argmax, temperature, cut } = self.kernels.get(OpKind::Sample, None)? else {
            return Err(EngineError::Backend { backend: D::BACKEND, detail: "sample: kernel table mismatch".into() });
        };
        let s = &mut prepared(&mut self.scratch, "sample")?.sample;
        sample::sample(&on, sample::Kernels { argmax, temperature, cut }, s, a)
    }
}
