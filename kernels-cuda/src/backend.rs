//! `CudaBackend`: the engine's ops on one GPU. Every op validates its buffers on the host,
//! then launches its kernels on the backend's single stream; nothing allocates after `prepare`.

use gptoss_engine::{
    AttentionArgs, Backend, BackendInfo, Buffers, DType, EmbedArgs, EngineError, HostBytes, KernelChoice, KernelOverrides, MatmulArgs,
    ModelPlan, MoeExpertsArgs, MoeRouteArgs, OpKind, QkvRopeArgs, Result, RmsNormArgs, SampleArgs, Step, StepMode, SynthTensor,
};

use crate::buffer::CudaBuffer;
use crate::device::{Device, cuda_err};
use crate::graph::Recorder;
use crate::ops::attention::{Partials, scratch_rows};
use crate::ops::moe_route::RouteScratch;
use crate::ops::sample::{MAX_BLOCKS, SampleScratch};
use crate::ops::synth::SynthKernels;
use crate::ops::{attention, embed, matmul, moe_experts, moe_route, qkv_rope, rms_norm, sample, synth};
use crate::peak;
use crate::registry::{Chosen, Resolved, one};

pub struct CudaBackend {
    dev: Device,
    kernels: Chosen,
    synth: SynthKernels,
    scratch: Option<Scratch>,
    steps: Recorder,
}

/// Per-op scratch, sized once by `prepare` for the model's largest batch.
struct Scratch {
    route: RouteScratch,
    /// f32 [max_tokens, top_k, intermediate]: SwiGLU outputs of the routed experts
    act: CudaBuffer,
    partials: Partials,
    sample: SampleScratch,
}

impl CudaBackend {
    /// A backend on GPU `ordinal`; an error (never a panic) when there is no driver or device.
    pub fn new(ordinal: usize) -> Result<Self> {
        let dev = Device::open(ordinal)?;
        let synth = SynthKernels {
            bf16: dev.function("synth", "synth_bf16")?,
            f32: dev.function("synth", "synth_f32")?,
            bytes: dev.function("synth", "synth_bytes")?,
        };
        Ok(CudaBackend { dev, kernels: Chosen::default(), synth, scratch: None, steps: Recorder::from_env() })
    }
}

/// The scratch, once `prepare` has sized it.
fn prepared<'a>(scratch: &'a mut Option<Scratch>, op: &'static str) -> Result<&'a mut Scratch> {
    scratch.as_mut().ok_or_else(|| EngineError::invalid(format!("{op}: the CUDA backend was not prepared for a model")))
}

impl Backend for CudaBackend {
    type Buffer = CudaBuffer;

    fn info(&self) -> BackendInfo {
        BackendInfo { name: "cuda", device: self.dev.name.clone(), threads: 1 }
    }

    fn prepare(&mut self, plan: &ModelPlan) -> Result<Vec<KernelChoice>> {
        self.kernels = Chosen::new(&self.dev, plan, &KernelOverrides::from_env()?)?;
        let dev = &self.dev;
        let alloc = |dtype, len| CudaBuffer::zeroed(dev, dtype, len);
        let rows = scratch_rows(plan.max_tokens);
        // SAFETY: pinned host memory, written only by device-to-host copies before it is read.
        let host = unsafe { dev.ctx.alloc_pinned_with_flags::<u8>(4, 0) }.map_err(cuda_err("allocating pinned memory"))?;
        self.scratch = Some(Scratch {
            route: RouteScratch {
                logits: alloc(DType::F32, plan.max_tokens * plan.experts)?,
                counters: alloc(DType::U32, plan.max_tokens)?,
            },
            act: alloc(DType::F32, plan.max_tokens * plan.top_k * plan.intermediate)?,
            partials: Partials {
                acc: alloc(DType::F32, rows * plan.q_heads * plan.head_dim)?,
                ml: alloc(DType::F32, rows * plan.q_heads * 2)?,
            },
            sample: SampleScratch {
                val: alloc(DType::F32, MAX_BLOCKS)?,
                idx: alloc(DType::U32, MAX_BLOCKS)?,
                mass: alloc(DType::F32, 2 * MAX_BLOCKS)?,
                ticket_and_id: alloc(DType::U32, 2)?,
                host,
            },
        });
        Ok(self.kernels.report.clone())
    }

    fn alloc(&mut self, dtype: DType, len: usize) -> Result<CudaBuffer> {
        CudaBuffer::zeroed(&self.dev, dtype, len)
    }

    fn load_host(&mut self, dtype: DType, len: usize, bytes: HostBytes) -> Result<CudaBuffer> {
        if dtype.bytes(len) != Some(bytes.len()) {
            return Err(EngineError::shape("load", format!("{} bytes for {len} × {dtype}", bytes.len())));
        }
        let mut buf = CudaBuffer::zeroed(&self.dev, dtype, len)?;
        buf.write(&self.dev, 0, bytes.as_bytes())?;
        Ok(buf)
    }

    fn load_synth(&mut self, dtype: DType, len: usize, tensor: &SynthTensor) -> Result<CudaBuffer> {
        let mut buf = CudaBuffer::zeroed(&self.dev, dtype, len)?;
        synth::synth(&self.dev, &self.synth, tensor, &mut buf)?;
        Ok(buf)
    }

    fn write(&mut self, dst: &mut CudaBuffer, first: usize, bytes: &[u8]) -> Result<()> {
        dst.write(&self.dev, first, bytes)
    }

    fn read(&mut self, src: &CudaBuffer, first: usize, out: &mut [u8]) -> Result<()> {
        // Kernel-reported input errors surface here, before anyone uses the results.
        self.dev.synchronize()?;
        src.read(&self.dev, first, out)
    }

    fn copy(&mut self, src: &CudaBuffer, src_first: usize, dst: &mut CudaBuffer, dst_first: usize, len: usize) -> Result<()> {
        dst.copy_from(&self.dev, src, src_first, dst_first, len)
    }

    fn synchronize(&mut self) -> Result<()> {
        self.dev.synchronize()
    }

    fn measure_peak_gb_s(&mut self) -> Result<Option<f64>> {
        self.dev.synchronize()?;
        peak::copy_bandwidth(&self.dev).map(Some)
    }

    fn device_memory(&self) -> Option<(u64, u64)> {
        let (free, total) = self.dev.ctx.mem_get_info().ok()?;
        Some(((total - free) as u64, total as u64))
    }

    fn memory_available(&self) -> Option<u64> {
        self.dev.ctx.mem_get_info().ok().map(|(free, _)| free as u64)
    }

    fn begin_step(&mut self, step: Step) -> Result<StepMode> {
        self.steps.begin(&self.dev, step)
    }

    fn end_step(&mut self) -> Result<()> {
        self.steps.end(&self.dev)
    }

    fn embed(&mut self, a: EmbedArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
        let f = one(self.kernels.get(OpKind::Embed, Some(a.table.format))?, "embed")?;
        embed::embed(&self.dev, f, a)
    }

    fn rms_norm(&mut self, a: RmsNormArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
        let f = one(self.kernels.get(OpKind::RmsNorm, None)?, "rms_norm")?;
        rms_norm::rms_norm(&self.dev, f, a)
    }

    fn matmul(&mut self, a: MatmulArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
        let f = one(self.kernels.get(OpKind::Matmul, Some(a.w.format))?, "matmul")?;
        matmul::matmul(&self.dev, f, a)
    }

    fn qkv_rope(&mut self, a: QkvRopeArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
        let k = self.kernels.get(OpKind::QkvRope, Some(a.wq.format))?;
        qkv_rope::qkv_rope(&self.dev, k, a)
    }

    fn attention(&mut self, a: AttentionArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
        let part = &mut prepared(&mut self.scratch, "attention")?.partials;
        let k = self.kernels.get(OpKind::Attention, None)?;
        attention::attention(&self.dev, k, part, a)
    }

    fn moe_route(&mut self, a: MoeRouteArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
        let scratch = &mut prepared(&mut self.scratch, "moe_route")?.route;
        let f = one(self.kernels.get(OpKind::MoeRoute, Some(a.router.format))?, "moe_route")?;
        moe_route::moe_route(&self.dev, f, scratch, a)
    }

    fn moe_experts(&mut self, a: MoeExpertsArgs<'_, Buffers<CudaBuffer>>) -> Result<()> {
        let act = &mut prepared(&mut self.scratch, "moe_experts")?.act;
        let k = self.kernels.get(OpKind::MoeExperts, Some(a.gate_up.format))?;
        moe_experts::moe_experts(&self.dev, k, act, a)
    }

    fn sample(&mut self, a: SampleArgs<'_, Buffers<CudaBuffer>>) -> Result<u32> {
        if self.steps.capturing() {
            return Err(EngineError::invalid("sample: called while a step is being recorded"));
        }
        self.dev.synchronize()?;
        let Resolved::Sample { argmax, temperature, cut } = self.kernels.get(OpKind::Sample, None)? else {
            return Err(EngineError::Backend { backend: "cuda", detail: "sample: kernel table mismatch".into() });
        };
        let s = &mut prepared(&mut self.scratch, "sample")?.sample;
        sample::sample(&self.dev, sample::Kernels { argmax, temperature, cut }, s, a)
    }
}
