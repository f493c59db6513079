//! `CpuBackend`: checks every op's arguments (`host`, on the engine's `checks`), then runs the
//! kernel chosen for it at load directly, on its worker pool.
//! The instruction set and the activations' precision are fixed when the backend is made
//! (`CpuOptions`: by default `GPTOSS_CPU_ISA` or the best this CPU has, its widest compiled set,
//! f32 activations); `prepare` then picks that set's kernel for every case of the model.

use gptoss_engine::{
    AttentionArgs, AttentionRowsArgs, Backend, BackendInfo, Buffers, DType, DeviceBuffer, EmbedArgs, EngineError, HostBytes, KernelChoice,
    KernelOverrides, MatmulArgs, ModelPlan, MoeExpertsArgs, MoeRouteArgs, OpKind, QkvRopeArgs, QkvRopeRowsArgs, Result, RmsNormArgs,
    SampleArgs, SynthTensor, Weight, WeightFormat,
};

use crate::buffer::CpuBuffer;
use crate::compiled;
use crate::host;
use crate::isa::Isa;
use crate::options::{Activations, CpuOptions};
use crate::pool::{Pool, for_each_chunk};
use crate::reference::convert_weight::convert_weight;
use crate::registry::{Chosen, lookup};
use crate::view::{MAX_HEAD_DIM, WeightView};
use crate::workspace::Workspace;

pub struct CpuBackend {
    pool: Pool,
    threads: usize,
    isa: Isa,
    /// The compiled set of `isa` that runs (`None` on the scalar path).
    set: Option<&'static str>,
    activations: Activations,
    kernels: Chosen,
    scratch: Workspace,
}

impl CpuBackend {
    /// A backend running on `threads` worker threads (all cores when `None`), with the
    /// instruction set `GPTOSS_CPU_ISA` names or else the best this CPU has, f32 activations.
    pub fn new(threads: Option<usize>) -> Result<Self> {
        Self::with_options(CpuOptions::from_env(threads)?)
    }

    /// A backend on a given instruction set, f32 activations; an error if this CPU lacks it.
    pub fn with_isa(threads: Option<usize>, isa: Isa) -> Result<Self> {
        Self::with_options(CpuOptions { threads, isa, set: None, activations: Activations::F32 })
    }

    /// A backend with the given settings; an error if this CPU lacks the instruction set or
    /// the compiled set named.
    pub fn with_options(o: CpuOptions) -> Result<Self> {
        let (threads, isa) = (o.threads, o.isa);
        if !isa.available() {
            return Err(EngineError::unsupported("cpu", format!("this CPU cannot run the {isa} kernels")));
        }
        let sets = compiled::names_for(isa);
        let set = match o.set {
            None => sets.first().copied(),
            Some(s) if sets.contains(&s) => Some(s),
            Some(s) => {
                let runs = if sets.is_empty() { "none".to_string() } else { sets.join(", ") };
                return Err(EngineError::unsupported("cpu", format!("this CPU cannot run the {s} kernels of {isa} (it runs: {runs})")));
            }
        };
        let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err(EngineError::invalid("--threads must be at least 1"));
        }
        let pool = Pool::new(threads)
            .map_err(|e| EngineError::Backend { backend: "cpu", detail: format!("cannot start {threads} threads: {e}") })?;
        Ok(CpuBackend { pool, threads, isa, set, activations: o.activations, kernels: Chosen::default(), scratch: Workspace::default() })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The compiled set that runs (`avx512_vnni_vbmi`, `avx2`, …; `None` on the scalar path).
    pub fn set(&self) -> Option<&'static str> {
        self.set
    }

    /// `Backend::prepare` with `overrides` in place of `GPTOSS_KERNELS` (tests and comparisons
    /// that run a kernel other than the first, e.g. `registry::bf16_dot_overrides`).
    pub fn prepare_with(&mut self, plan: &ModelPlan, overrides: &KernelOverrides) -> Result<Vec<KernelChoice>> {
        if plan.head_dim > MAX_HEAD_DIM || !plan.head_dim.is_multiple_of(2) {
            return Err(EngineError::unsupported("attention", format!("head_dim {} (even and ≤ {MAX_HEAD_DIM} supported)", plan.head_dim)));
        }
        self.kernels = Chosen::new(self.isa, self.set, self.activations, &plan.cases, overrides)?;
        let q8_reference = self.kernels.report.iter().any(|c| c.kernel.ends_with("_q8_ref"));
        self.scratch = Workspace::new(plan, q8_reference);
        Ok(self.kernels.report.clone())
    }

    /// The kernels chosen by the last `prepare`, per case.
    pub fn chosen(&self) -> &[KernelChoice] {
        &self.kernels.report
    }
}

impl CpuBackend {
    /// Runs a kernel on the worker pool with the backend's scratch.
    fn run(&mut self, kernel: impl FnOnce(&mut Workspace) + Send) {
        let ws = &mut self.scratch;
        self.pool.enter(|| kernel(ws));
    }

    /// An error unless `rows` rows of `cols` activations (and `kv` projected k/v values) fit
    /// the scratch `prepare` sized for the model's largest batch.
    fn fits(&self, op: &'static str, rows: usize, cols: usize, kv: usize) -> Result<()> {
        if self.scratch.fits(rows, cols) && self.scratch.k.len() >= kv {
            Ok(())
        } else {
            Err(self.beyond_plan(op, format!("{rows} rows of {cols} inputs")))
        }
    }

    fn beyond_plan(&self, op: &'static str, what: String) -> EngineError {
        EngineError::invalid(format!("{op}: {what} exceed the plan the backend was prepared for"))
    }
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
        self.prepare_with(plan, &KernelOverrides::from_env()?)
    }

    fn alloc(&mut self, dtype: DType, len: usize) -> Result<CpuBuffer> {
        CpuBuffer::zeroed(dtype, len)
    }

    fn load_host(&mut self, dtype: DType, len: usize, bytes: HostBytes) -> Result<CpuBuffer> {
        Ok(CpuBuffer::from_host(dtype, len, bytes)?.0)
    }

    fn memory_available(&self) -> Option<u64> {
        gptoss_engine::host_memory::available()
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

    fn embed(&mut self, a: EmbedArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let format = a.table.format;
        let a = host::embed(a)?;
        let k = lookup(&self.kernels.kernels.embed, OpKind::Embed, Some(format))?;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn rms_norm(&mut self, a: RmsNormArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let a = host::rms_norm(a)?;
        let k = lookup(&self.kernels.kernels.rms_norm, OpKind::RmsNorm, None)?;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn matmul(&mut self, a: MatmulArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let a = host::matmul(a)?;
        self.fits("matmul", a.n, a.w.cols, 0)?;
        let k = lookup(&self.kernels.kernels.matmul, OpKind::Matmul, Some(a.w.format))?;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn qkv_rope(&mut self, a: QkvRopeArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let a = host::qkv_rope(a)?;
        self.fits("qkv_rope", a.n, a.wq.cols, a.n * a.wk.rows)?;
        let k = lookup(&self.kernels.kernels.qkv_rope, OpKind::QkvRope, Some(a.wq.format))?.one;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn attention(&mut self, a: AttentionArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let a = host::attention(a)?;
        let k = lookup(&self.kernels.kernels.attention, OpKind::Attention, None)?.one;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn qkv_rope_rows(&mut self, a: QkvRopeRowsArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let a = host::qkv_rope_rows(a)?;
        self.fits("qkv_rope_rows", a.n, a.wq.cols, a.n * a.wk.rows)?;
        let k = lookup(&self.kernels.kernels.qkv_rope, OpKind::QkvRope, Some(a.wq.format))?.rows;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn attention_rows(&mut self, a: AttentionRowsArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let a = host::attention_rows(a)?;
        let k = lookup(&self.kernels.kernels.attention, OpKind::Attention, None)?.rows;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn moe_route(&mut self, a: MoeRouteArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        let a = host::moe_route(a)?;
        self.fits("moe_route", a.n, a.router.cols, 0)?;
        if self.scratch.router_logits.len() < a.n * a.router.rows {
            return Err(self.beyond_plan("moe_route", format!("{} tokens × {} experts", a.n, a.router.rows)));
        }
        let k = lookup(&self.kernels.kernels.moe_route, OpKind::MoeRoute, Some(a.router.format))?;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn moe_experts(&mut self, a: MoeExpertsArgs<'_, Buffers<CpuBuffer>>) -> Result<()> {
        const OP: &str = "moe_experts";
        let (a, s) = host::moe_experts(a)?;
        let slots = a.n * a.top_k;
        let m = &self.scratch.moe;
        if m.a.len() < slots * s.intermediate || m.y.len() < slots * s.hidden || m.starts.len() <= s.experts {
            return Err(self.beyond_plan(OP, format!("{} tokens × top-{} × {}", a.n, a.top_k, s.intermediate)));
        }
        self.fits(OP, slots, s.intermediate.max(s.hidden), 0)?;
        let k = lookup(&self.kernels.kernels.moe_experts, OpKind::MoeExperts, Some(a.gate_up.format))?;
        self.run(|ws| k(a, ws));
        Ok(())
    }

    fn sample(&mut self, a: SampleArgs<'_, Buffers<CpuBuffer>>) -> Result<u32> {
        let a = host::sample(a)?;
        if self.scratch.sample.capacity() < a.vocab {
            return Err(self.beyond_plan("sample", format!("a vocabulary of {}", a.vocab)));
        }
        let k = lookup(&self.kernels.kernels.sample, OpKind::Sample, None)?;
        Ok(k(a, &mut self.scratch))
    }
}
