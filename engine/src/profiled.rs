//! `Profiled<B>`: a backend that times every op of the backend it wraps, for per-op
//! breakdowns. Off by default, when it only forwards; on, it waits for the device before and
//! after each op (so the times are the ops' own) and runs every step op by op (no replay).

use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendInfo, Step, StepMode};
use crate::dtype::DType;
use crate::error::Result;
use crate::host::HostBytes;
use crate::kernels::{KernelChoice, ModelPlan, OpKind};
use crate::ops::{
    AttentionArgs, AttentionRowsArgs, Buffers, EmbedArgs, MatmulArgs, MoeExpertsArgs, MoeRouteArgs, QkvRopeArgs, QkvRopeRowsArgs,
    RmsNormArgs, SampleArgs,
};
use crate::synth::SynthTensor;
use crate::weight::{Weight, WeightFormat};

/// Where an op ran: the op and, for ops that read a matrix, its shape (so the o-projection and
/// the unembedding are told apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpSite {
    pub op: OpKind,
    pub rows: usize,
    pub cols: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpTime {
    pub calls: u64,
    pub total: Duration,
}

pub struct Profiled<B> {
    inner: B,
    enabled: bool,
    times: Vec<(OpSite, OpTime)>,
}

impl<B: Backend> Profiled<B> {
    pub fn new(inner: B) -> Self {
        Profiled { inner, enabled: false, times: Vec::new() }
    }

    /// Turns timing on or off; turning it on clears earlier times.
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        if on {
            self.times.clear();
        }
    }

    /// Accumulated times per site, in first-seen order.
    pub fn times(&self) -> &[(OpSite, OpTime)] {
        &self.times
    }

    fn timed<R>(&mut self, site: OpSite, f: impl FnOnce(&mut B) -> Result<R>) -> Result<R> {
        if !self.enabled {
            return f(&mut self.inner);
        }
        self.inner.synchronize()?;
        let start = Instant::now();
        let r = f(&mut self.inner)?;
        self.inner.synchronize()?;
        let elapsed = start.elapsed();
        match self.times.iter_mut().find(|(s, _)| *s == site) {
            Some((_, t)) => {
                t.calls += 1;
                t.total += elapsed;
            }
            None => self.times.push((site, OpTime { calls: 1, total: elapsed })),
        }
        Ok(r)
    }
}

fn site(op: OpKind) -> OpSite {
    OpSite { op, rows: 0, cols: 0 }
}

fn site_of<Buf>(op: OpKind, w: &Weight<Buf>) -> OpSite {
    OpSite { op, rows: w.rows, cols: w.cols }
}

impl<B: Backend> Backend for Profiled<B> {
    type Buffer = B::Buffer;

    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
    fn prepare(&mut self, plan: &ModelPlan) -> Result<Vec<KernelChoice>> {
        self.inner.prepare(plan)
    }
    fn alloc(&mut self, dtype: DType, len: usize) -> Result<B::Buffer> {
        self.inner.alloc(dtype, len)
    }
    fn load_host(&mut self, dtype: DType, len: usize, bytes: HostBytes) -> Result<B::Buffer> {
        self.inner.load_host(dtype, len, bytes)
    }
    fn load_synth(&mut self, dtype: DType, len: usize, tensor: &SynthTensor) -> Result<B::Buffer> {
        self.inner.load_synth(dtype, len, tensor)
    }
    fn write(&mut self, dst: &mut B::Buffer, first: usize, bytes: &[u8]) -> Result<()> {
        self.inner.write(dst, first, bytes)
    }
    fn read(&mut self, src: &B::Buffer, first: usize, out: &mut [u8]) -> Result<()> {
        self.inner.read(src, first, out)
    }
    fn copy(&mut self, src: &B::Buffer, src_first: usize, dst: &mut B::Buffer, dst_first: usize, len: usize) -> Result<()> {
        self.inner.copy(src, src_first, dst, dst_first, len)
    }
    fn synchronize(&mut self) -> Result<()> {
        self.inner.synchronize()
    }
    fn convert_weight(&mut self, w: &Weight<B::Buffer>, to: WeightFormat) -> Result<Weight<B::Buffer>> {
        self.inner.convert_weight(w, to)
    }
    fn measure_peak_gb_s(&mut self) -> Result<Option<f64>> {
        self.inner.measure_peak_gb_s()
    }
    fn device_memory(&self) -> Option<(u64, u64)> {
        self.inner.device_memory()
    }
    fn memory_available(&self) -> Option<u64> {
        self.inner.memory_available()
    }
    fn copies_host_bytes(&self) -> bool {
        self.inner.copies_host_bytes()
    }
    fn expert_tables(&mut self) -> Option<&mut dyn crate::residency::ExpertTables<B::Buffer>> {
        self.inner.expert_tables()
    }
    fn begin_step(&mut self, step: Step) -> Result<StepMode> {
        if self.enabled { Ok(StepMode::Run) } else { self.inner.begin_step(step) }
    }
    fn end_step(&mut self) -> Result<()> {
        if self.enabled { Ok(()) } else { self.inner.end_step() }
    }
    fn embed(&mut self, a: EmbedArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site_of(OpKind::Embed, a.table), |b| b.embed(a))
    }
    fn rms_norm(&mut self, a: RmsNormArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site(OpKind::RmsNorm), |b| b.rms_norm(a))
    }
    fn matmul(&mut self, a: MatmulArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site_of(OpKind::Matmul, a.w), |b| b.matmul(a))
    }
    fn qkv_rope(&mut self, a: QkvRopeArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site_of(OpKind::QkvRope, a.wq), |b| b.qkv_rope(a))
    }
    fn attention(&mut self, a: AttentionArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site(OpKind::Attention), |b| b.attention(a))
    }
    fn qkv_rope_rows(&mut self, a: QkvRopeRowsArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site_of(OpKind::QkvRope, a.wq), |b| b.qkv_rope_rows(a))
    }
    fn attention_rows(&mut self, a: AttentionRowsArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site(OpKind::Attention), |b| b.attention_rows(a))
    }
    fn moe_route(&mut self, a: MoeRouteArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site_of(OpKind::MoeRoute, a.router), |b| b.moe_route(a))
    }
    fn moe_experts(&mut self, a: MoeExpertsArgs<'_, Buffers<B::Buffer>>) -> Result<()> {
        self.timed(site_of(OpKind::MoeExperts, a.gate_up), |b| b.moe_experts(a))
    }
    fn sample(&mut self, a: SampleArgs<'_, Buffers<B::Buffer>>) -> Result<u32> {
        self.timed(site(OpKind::Sample), |b| b.sample(a))
    }
}
