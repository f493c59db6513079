//! `CpuBackend`: validates every op's buffers, then runs the chosen kernel on its worker pool.
//! The instruction set and the activations' precision are fixed when the backend is made
//! (`CpuOptions`: by default `GPTOSS_CPU_ISA` or the best this CPU has, f32 activations);
//! `prepare` then picks that ISA's kernel for every case of the model.

use gptoss_engine::checks::buffer as need;
use gptoss_engine::{
    Backend, BackendInfo, DType, DeviceBuffer, EngineError, HostBytes, KernelChoice, KernelOverrides, KvLayer, ModelPlan, OpKind, Result,
    Rope, SamplingParams, Swiglu, SynthTensor, Weight, WeightFormat, checks,
};

use crate::buffer::CpuBuffer;
use crate::isa::Isa;
use crate::options::{Activations, CpuOptions};
use crate::pool::{Pool, for_each_chunk};
use crate::reference::attention::MAX_HEAD_DIM;
use crate::reference::convert_weight::convert_weight;
use crate::reference::qkv_rope::RopeView;
use crate::registry::{Chosen, lookup};
use crate::view::{KvView, KvViewMut, WeightView};
use crate::workspace::Workspace;

pub struct CpuBackend {
    pool: Pool,
    threads: usize,
    isa: Isa,
    activations: Activations,
    kernels: Chosen,
    scratch: Workspace,
    /// Bytes copied by `from_host` because the source was misaligned.
    copied_bytes: usize,
}

impl CpuBackend {
    /// A backend running on `threads` worker threads (all cores when `None`), with the
    /// instruction set `GPTOSS_CPU_ISA` names or else the best this CPU has, f32 activations.
    pub fn new(threads: Option<usize>) -> Result<Self> {
        Self::with_options(CpuOptions::from_env(threads)?)
    }

    /// A backend on a given instruction set, f32 activations; an error if this CPU lacks it.
    pub fn with_isa(threads: Option<usize>, isa: Isa) -> Result<Self> {
        Self::with_options(CpuOptions { threads, isa, activations: Activations::F32 })
    }

    /// A backend with the given settings; an error if this CPU lacks the instruction set.
    pub fn with_options(o: CpuOptions) -> Result<Self> {
        let (threads, isa) = (o.threads, o.isa);
        if !isa.available() {
            return Err(EngineError::unsupported("cpu", format!("this CPU cannot run the {isa} kernels")));
        }
        let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(EngineError::invalid("--threads must be at least 1"));
        }
        let pool = Pool::new(threads)
            .map_err(|e| EngineError::Backend { backend: "cpu", detail: format!("cannot start {threads} threads: {e}") })?;
        Ok(CpuBackend {
            pool,
            threads,
            isa,
            activations: o.activations,
            kernels: Chosen::default(),
            scratch: Workspace::default(),
            copied_bytes: 0,
        })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn activations(&self) -> Activations {
        self.activations
    }

    /// Bytes that had to be copied instead of used in place.
    pub fn copied_bytes(&self) -> usize {
        self.copied_bytes
    }
}

fn dense<'a>(w: &'a Weight<CpuBuffer>, op: &'static str) -> Result<WeightView<'a>> {
    checks::dense(w, op)?;
    WeightView::new(w, op)
}

impl Backend for CpuBackend {
    type Buffer = CpuBuffer;

    fn info(&self) -> BackendInfo {
        let device = match self.activations {
            Activations::F32 => self.isa.describe(),
            Activations::Int8 => format!("{}, int8 activations", self.isa.describe()),
        };
        BackendInfo { name: "cpu", device, threads: self.threads }
    }

    fn prepare(&mut self, plan: &ModelPlan) -> Result<Vec<KernelChoice>> {
        if plan.head_dim > MAX_HEAD_DIM || !plan.head_dim.is_multiple_of(2) {
            return Err(EngineError::unsupported("attention", format!("head_dim {} (even and ≤ {MAX_HEAD_DIM} supported)", plan.head_dim)));
        }
        self.kernels = Chosen::new(self.isa, self.activations, &plan.cases, &KernelOverrides::from_env()?)?;
        self.scratch = Workspace::new(plan);
        Ok(self.kernels.report.clone())
    }

    fn alloc(&mut self, dtype: DType, len: usize) -> Result<CpuBuffer> {
        CpuBuffer::zeroed(dtype, len)
    }

    fn load_host(&mut self, dtype: DType, len: usize, bytes: HostBytes) -> Result<CpuBuffer> {
        let (buf, copied) = CpuBuffer::from_host(dtype, len, bytes)?;
        if copied {
            self.copied_bytes += buf.bytes().len();
        }
        Ok(buf)
    }

    fn memory_available(&self) -> Option<u64> {
        crate::host_memory::available()
    }

    fn copies_host_bytes(&self) -> bool {
        false
    }

    fn load_synth(&mut self, dtype: DType, len: usize, t: &SynthTensor) -> Result<CpuBuffer> {
        let mut buf = CpuBuffer::zeroed(dtype, len)?;
        const CHUNK: usize = 1 << 16;
        self.pool.enter(|| -> Result<()> {
            match dtype {
                DType::U8 | DType::I8 => for_each_chunk(buf.bytes_mut()?, CHUNK, |i, c| t.fill_bytes(i * CHUNK, c)),
                DType::F32 => for_each_chunk(buf.f32s_mut("synth")?, CHUNK, |i, c| t.fill_f32(i * CHUNK, c)),
                DType::Bf16 => {
                    let bits: &mut [u16] = bytemuck::cast_slice_mut(buf.bytes_mut()?);
                    for_each_chunk(bits, CHUNK, |i, c| t.fill_bf16(i * CHUNK, c));
                }
                DType::U32 => return Err(EngineError::unsupported("synth", "u32 tensors")),
            }
            Ok(())
        })?;
        Ok(buf)
    }

    fn write(&mut self, dst: &mut CpuBuffer, first: usize, bytes: &[u8]) -> Result<()> {
        let size = dst.dtype().size();
        let start = first * size;
        let dst_bytes = dst.bytes_mut()?;
        if !bytes.len().is_multiple_of(size) || start + bytes.len() > dst_bytes.len() {
            return Err(EngineError::shape(
                "write",
                format!("{} bytes at element {first} do not fit a buffer of {} bytes", bytes.len(), dst_bytes.len()),
            ));
        }
        dst_bytes[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn read(&mut self, src: &CpuBuffer, first: usize, out: &mut [u8]) -> Result<()> {
        let start = first * src.dtype().size();
        let b = src.bytes();
        if start + out.len() > b.len() {
            return Err(EngineError::shape("read", format!("{} bytes at element {first} exceed a buffer of {} bytes", out.len(), b.len())));
        }
        out.copy_from_slice(&b[start..start + out.len()]);
        Ok(())
    }

    fn copy(&mut self, src: &CpuBuffer, src_first: usize, dst: &mut CpuBuffer, dst_first: usize, len: usize) -> Result<()> {
        if src.dtype() != dst.dtype() || src_first + len > src.len() || dst_first + len > dst.len() {
            return Err(EngineError::shape(
                "copy",
                format!(
                    "{len} elements from {} [{src_first}..] of {} to {} [{dst_first}..] of {}",
                    src.dtype(),
                    src.len(),
                    dst.dtype(),
                    dst.len()
                ),
            ));
        }
        let size = src.dtype().size();
        let from = &src.bytes()[src_first * size..(src_first + len) * size];
        dst.bytes_mut()?[dst_first * size..(dst_first + len) * size].copy_from_slice(from);
        Ok(())
    }

    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }

    fn convert_weight(&mut self, w: &Weight<CpuBuffer>, to: WeightFormat) -> Result<Weight<CpuBuffer>> {
        const OP: &str = "convert_weight";
        let v = WeightView::new(w, OP)?;
        to.check_shape(v.rows, v.cols).map_err(|e| EngineError::shape(OP, e))?;
        let matrices = v.experts;
        let (dt, n) = to.data_layout(v.rows, v.cols);
        let mut data = CpuBuffer::zeroed(dt, n * matrices)?;
        let mut scales = to.scales_layout(v.rows, v.cols).map(|(st, sn)| CpuBuffer::zeroed(st, sn * matrices)).transpose()?;
        let (d, s) = (
            data.bytes_mut()?,
            match &mut scales {
                Some(s) => s.bytes_mut()?,
                None => &mut [][..],
            },
        );
        self.pool.enter(|| convert_weight(&v, to, d, s)).map_err(|e| EngineError::shape(OP, format!("{} to {to}: {e}", w.format)))?;
        let bias = match &w.bias {
            Some(b) => {
                let mut copy = CpuBuffer::zeroed(b.dtype(), b.len())?;
                copy.bytes_mut()?.copy_from_slice(b.bytes());
                Some(copy)
            }
            None => None,
        };
        Ok(Weight { format: to, experts: matrices, rows: v.rows, cols: v.cols, data, scales, bias })
    }

    fn embed(&mut self, table: &Weight<CpuBuffer>, tokens: &CpuBuffer, n: usize, out: &mut CpuBuffer) -> Result<()> {
        const OP: &str = "embed";
        let t = dense(table, OP)?;
        need(tokens, DType::U32, n, OP, "tokens")?;
        need(out, DType::F32, n * t.cols, OP, "out")?;
        let k = lookup(&self.kernels.embed, OpKind::Embed, Some(t.format))?;
        k(&t, &tokens.u32s(OP)?[..n], &mut out.f32s_mut(OP)?[..n * t.cols])
    }

    fn rms_norm(&mut self, x: &CpuBuffer, gain: &CpuBuffer, n: usize, eps: f32, out: &mut CpuBuffer) -> Result<()> {
        const OP: &str = "rms_norm";
        let d = gain.len();
        need(gain, DType::F32, d, OP, "gain")?;
        need(x, DType::F32, n * d, OP, "x")?;
        need(out, DType::F32, n * d, OP, "out")?;
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(EngineError::shape(OP, format!("eps {eps} must be finite and ≥ 0")));
        }
        let k = lookup(&self.kernels.rms_norm, OpKind::RmsNorm, None)?;
        let (x, g, o) = (&x.f32s(OP)?[..n * d], gain.f32s(OP)?, &mut out.f32s_mut(OP)?[..n * d]);
        self.pool.enter(|| k(x, g, eps, o));
        Ok(())
    }

    fn matmul(&mut self, w: &Weight<CpuBuffer>, x: &CpuBuffer, n: usize, out: &mut CpuBuffer, accumulate: bool) -> Result<()> {
        const OP: &str = "matmul";
        let w = dense(w, OP)?;
        need(x, DType::F32, n * w.cols, OP, "x")?;
        need(out, DType::F32, n * w.rows, OP, "out")?;
        let k = lookup(&self.kernels.matmul, OpKind::Matmul, Some(w.format))?;
        let (x, o) = (&x.f32s(OP)?[..n * w.cols], &mut out.f32s_mut(OP)?[..n * w.rows]);
        let ws = &mut self.scratch;
        if !ws.fits(n, w.cols) {
            return Err(EngineError::invalid(format!("{OP}: {n} × {} inputs exceed the plan the backend was prepared for", w.cols)));
        }
        self.pool.enter(|| k(&w, x, n, o, accumulate, ws));
        Ok(())
    }

    fn qkv_rope(
        &mut self,
        wq: &Weight<CpuBuffer>,
        wk: &Weight<CpuBuffer>,
        wv: &Weight<CpuBuffer>,
        x: &CpuBuffer,
        n: usize,
        positions: &CpuBuffer,
        rope: &Rope<CpuBuffer>,
        kv: &mut KvLayer<CpuBuffer>,
        q_out: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "qkv_rope";
        checks::qkv(wq, wk, wv, kv, OP)?;
        let (q, k, v) = (dense(wq, OP)?, dense(wk, OP)?, dense(wv, OP)?);
        let mut cache = KvViewMut::new(kv, OP)?;
        let d = cache.shape.head_dim;
        let kv_row = cache.shape.kv_heads * d;
        need(x, DType::F32, n * q.cols, OP, "x")?;
        need(positions, DType::U32, n, OP, "positions")?;
        need(&rope.inv_freq, DType::F32, d / 2, OP, "rope inv_freq")?;
        need(q_out, DType::F32, n * q.rows, OP, "q_out")?;
        if self.scratch.k.len() < n * kv_row || !self.scratch.fits(n, q.cols) {
            return Err(EngineError::invalid(format!("{OP}: {n} tokens exceed the batch the backend was prepared for")));
        }
        let kern = lookup(&self.kernels.qkv_rope, OpKind::QkvRope, Some(q.format))?;
        let rv = RopeView { inv_freq: rope.inv_freq.f32s(OP)?, concentration: rope.concentration };
        let (x, pos, qo) = (&x.f32s(OP)?[..n * q.cols], &positions.u32s(OP)?[..n], &mut q_out.f32s_mut(OP)?[..n * q.rows]);
        let ws = &mut self.scratch;
        self.pool.enter(|| kern(&q, &k, &v, x, n, pos, &rv, &mut cache, qo, ws));
        Ok(())
    }

    fn attention(
        &mut self,
        q: &CpuBuffer,
        kv: &KvLayer<CpuBuffer>,
        n: usize,
        positions: &CpuBuffer,
        sinks: &CpuBuffer,
        scale: f32,
        out: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "attention";
        let q_heads = checks::attention_heads(sinks, kv, OP)?;
        let cache = KvView::new(kv, OP)?;
        let d = cache.shape.head_dim;
        need(q, DType::F32, n * q_heads * d, OP, "q")?;
        need(out, DType::F32, n * q_heads * d, OP, "out")?;
        need(positions, DType::U32, n, OP, "positions")?;
        let pos = &positions.u32s(OP)?[..n];
        // A query may only see positions still held by the ring.
        if let Some(&p) = pos.iter().find(|&&p| {
            let first = crate::reference::attention::first_key(p as usize, cache.shape.window);
            p as usize + 1 - first > cache.shape.capacity
        }) {
            return Err(EngineError::shape(
                OP,
                format!("position {p} needs more keys than the layer's {} cache slots", cache.shape.capacity),
            ));
        }
        let kern = lookup(&self.kernels.attention, OpKind::Attention, None)?;
        let (qs, s, o) = (&q.f32s(OP)?[..n * q_heads * d], sinks.f32s(OP)?, &mut out.f32s_mut(OP)?[..n * q_heads * d]);
        self.pool.enter(|| kern(qs, &cache, n, pos, s, scale, o));
        Ok(())
    }

    fn moe_route(
        &mut self,
        router: &Weight<CpuBuffer>,
        x: &CpuBuffer,
        n: usize,
        top_k: usize,
        ids: &mut CpuBuffer,
        weights: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "moe_route";
        let r = dense(router, OP)?;
        checks::top_k(r.rows, top_k, OP)?;
        if self.scratch.router_logits.len() < n * r.rows || !self.scratch.fits(n, r.cols) {
            return Err(EngineError::invalid(format!("{OP}: {} experts exceed the plan the backend was prepared for", r.rows)));
        }
        need(x, DType::F32, n * r.cols, OP, "x")?;
        need(ids, DType::U32, n * top_k, OP, "ids")?;
        need(weights, DType::F32, n * top_k, OP, "weights")?;
        let kern = lookup(&self.kernels.moe_route, OpKind::MoeRoute, Some(r.format))?;
        let (xs, is, ws) = (&x.f32s(OP)?[..n * r.cols], &mut ids.u32s_mut(OP)?[..n * top_k], &mut weights.f32s_mut(OP)?[..n * top_k]);
        let scratch = &mut self.scratch;
        self.pool.enter(|| kern(&r, xs, n, top_k, is, ws, scratch));
        Ok(())
    }

    fn moe_experts(
        &mut self,
        gate_up: &Weight<CpuBuffer>,
        down: &Weight<CpuBuffer>,
        x: &CpuBuffer,
        n: usize,
        ids: &CpuBuffer,
        weights: &CpuBuffer,
        top_k: usize,
        swiglu: Swiglu,
        residual: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "moe_experts";
        let inter = checks::expert_mlp(gate_up, down, OP)?;
        let (g, dn) = (WeightView::new(gate_up, OP)?, WeightView::new(down, OP)?);
        need(x, DType::F32, n * g.cols, OP, "x")?;
        need(ids, DType::U32, n * top_k, OP, "ids")?;
        need(weights, DType::F32, n * top_k, OP, "weights")?;
        need(residual, DType::F32, n * g.cols, OP, "residual")?;
        let sel = &ids.u32s(OP)?[..n * top_k];
        if let Some(&e) = sel.iter().find(|&&e| e as usize >= g.experts) {
            return Err(EngineError::shape(OP, format!("expert id {e} out of range (the layer has {})", g.experts)));
        }
        let m = &self.scratch.moe;
        if m.a.len() < n * top_k * inter
            || m.y.len() < n * top_k * g.cols
            || m.starts.len() <= g.experts
            || !self.scratch.fits(n * top_k, inter.max(g.cols))
        {
            return Err(EngineError::invalid(format!("{OP}: top-{top_k} × {inter} exceeds the plan the backend was prepared for")));
        }
        let kern = lookup(&self.kernels.moe_experts, OpKind::MoeExperts, Some(g.format))?;
        let (xs, ws, res) = (&x.f32s(OP)?[..n * g.cols], &weights.f32s(OP)?[..n * top_k], &mut residual.f32s_mut(OP)?[..n * g.cols]);
        let scratch = &mut self.scratch;
        self.pool.enter(|| kern(&g, &dn, xs, n, sel, ws, top_k, swiglu, res, scratch));
        Ok(())
    }

    fn sample(&mut self, logits: &CpuBuffer, row: usize, vocab: usize, params: &SamplingParams, u: f32) -> Result<u32> {
        const OP: &str = "sample";
        params.validate()?;
        need(logits, DType::F32, (row + 1) * vocab, OP, "logits")?;
        if vocab == 0 || self.scratch.sample.capacity() < vocab {
            return Err(EngineError::invalid(format!("{OP}: vocabulary of {vocab} exceeds the plan the backend was prepared for")));
        }
        let kern = lookup(&self.kernels.sample, OpKind::Sample, None)?;
        let l = &logits.f32s(OP)?[row * vocab..(row + 1) * vocab];
        Ok(kern(l, params, u, &mut self.scratch.sample))
    }
}
