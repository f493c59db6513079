//! The device on a real GPU, through cudarc's driver API: one context, one non-blocking stream
//! for the work and a second one for copies beside it, the fatbins `build.rs` embedded (SASS
//! for sm_80/86/89/90a, PTX for newer), CUDA graphs for recorded steps, pinned host memory
//! mapped for the device, and driver errors mapped to the engine's.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cudarc::driver::sys::{self, CUevent_flags, CUfunction_attribute_enum, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr, DriverError, LaunchConfig,
    PinnedHostSlice, PushKernelArg, result,
};
use cudarc::nvrtc::Ptx;
use gptoss_engine::{EngineError, Result};

use crate::args::KernelArgs;
use crate::device::{Device, Launch};

include!(concat!(env!("OUT_DIR"), "/cuda/modules.rs"));

/// Where the build left the fatbins, the compute_90 PTX and ptxas's reports.
pub const ARTIFACTS: &str = env!("GPTOSS_CUDA_ARTIFACTS");
/// ptxas's registers / stack / spills / shared memory per kernel and target, tab-separated.
pub const PTXAS_SUMMARY: &str = include_str!(concat!(env!("OUT_DIR"), "/cuda/ptxas-summary.txt"));

/// A driver error as the engine's backend error.
fn cuda_err(what: &str) -> impl FnOnce(DriverError) -> EngineError + '_ {
    move |e| EngineError::Backend { backend: "cuda", detail: format!("{what}: {e}") }
}

pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Copies beside the step (`copy_beside`), each with the event that marks it landed.
    side: Side,
    beside: RefCell<Vec<(u64, CudaEvent)>>,
    tickets: std::cell::Cell<u64>,
    modules: Vec<(&'static str, Arc<CudaModule>)>,
    name: String,
}

/// The second stream, and how many of its copies have not been seen to land: memory is freed
/// only after they have (a copy may still read or write it).
#[derive(Clone)]
struct Side {
    stream: Arc<CudaStream>,
    pending: Arc<AtomicUsize>,
}

impl Side {
    fn settle(&self) {
        if self.pending.load(Ordering::Acquire) > 0 {
            // Nothing to report from a drop: a failed wait leaves the error to the next call.
            let _ = self.stream.synchronize();
        }
    }
}

/// GPU memory: device memory, or pinned host memory mapped for the device.
pub struct Memory {
    kind: Kind,
    /// The device address of its first byte.
    ptr: u64,
    side: Side,
}

enum Kind {
    Device(CudaSlice<u8>),
    Mapped(PinnedHostSlice<u8>),
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.side.settle();
    }
}

// SAFETY: an owned allocation, used through its backend one call at a time.
unsafe impl Send for Memory {}

/// An instantiated CUDA graph that may move between threads with its backend.
pub struct Graph(CudaGraph);

// SAFETY: the driver's graph handles are not tied to a thread (the driver API is thread-safe
// and cudarc binds the context to the calling thread before each use), and a graph is used only
// through its backend, one call at a time.
unsafe impl Send for Graph {}

impl Gpu {
    /// Opens GPU `ordinal`. Fails with a readable reason (no driver, no device, module load
    /// failure) instead of panicking: cudarc panics on the first driver call when libcuda is
    /// absent, so its presence is checked first.
    pub fn open(ordinal: usize) -> Result<Self> {
        // SAFETY: only tries to dlopen the driver library by its usual names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(EngineError::Backend {
                backend: "cuda",
                detail: "no CUDA driver: libcuda.so could not be loaded (is an NVIDIA driver installed?)".into(),
            });
        }
        let count = CudaContext::device_count().map_err(cuda_err("counting CUDA devices"))?;
        if ordinal >= count.max(0) as usize {
            return Err(EngineError::Backend { backend: "cuda", detail: format!("no CUDA device {ordinal}: {count} present") });
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("creating the context"))?;
        // SAFETY: no buffer exists yet. All work goes to one stream, so the per-buffer events
        // cudarc would otherwise record (which also break graph capture) are unnecessary.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(cuda_err("creating a stream"))?;
        let side = Side { stream: ctx.new_stream().map_err(cuda_err("creating a stream"))?, pending: Arc::new(AtomicUsize::new(0)) };
        let name = ctx.name().map_err(cuda_err("reading the device name"))?;
        let mut modules = Vec::with_capacity(MODULES.len());
        for &(module, image) in MODULES {
            let m = ctx.load_module(Ptx::from_binary(image.to_vec())).map_err(|e| EngineError::Backend {
                backend: "cuda",
                detail: format!("loading kernels {module}.fatbin on {name}: {e} (a driver older than CUDA 13.0 cannot load them)"),
            })?;
            modules.push((module, m));
        }
        Ok(Gpu { ctx, stream, side, beside: RefCell::new(Vec::new()), tickets: std::cell::Cell::new(0), modules, name })
    }

    /// `len` bytes from device address `src` to `dst` on `stream` (any memory the device
    /// addresses: its own or mapped host memory).
    fn copy_on(&self, stream: &CudaStream, src: u64, dst: u64, len: usize) -> Result<()> {
        self.ctx.bind_to_thread().map_err(cuda_err("binding the context"))?;
        // SAFETY: both ranges lie inside live allocations (the callers check the offsets).
        unsafe { result::memcpy_dtod_async(dst, src, len, stream.cu_stream()) }.map_err(cuda_err("device copy"))
    }
}

/// A kernel's argument struct as cudarc passes it: its bytes, by value.
#[repr(transparent)]
struct Param<A>(A);

// SAFETY: `A` is a plain repr(C) struct laid out as the kernel reads it (`KernelArgs`), and the
// transparent wrapper has its layout.
unsafe impl<A: KernelArgs> cudarc::driver::DeviceRepr for Param<A> {}

/// Bytes per bandwidth copy: far beyond any L2.
const COPY_BYTES: usize = 1 << 30;

impl Device for Gpu {
    type Function = CudaFunction;
    type Memory = Memory;
    type Graph = Graph;
    const BACKEND: &'static str = "cuda";

    fn name(&self) -> &str {
        &self.name
    }

    fn alloc(&self, bytes: usize) -> Result<(Memory, u64)> {
        let mem = self
            .stream
            .alloc_zeros::<u8>(bytes)
            .map_err(|e| EngineError::Backend { backend: "cuda", detail: format!("allocating {bytes} bytes on {}: {e}", self.name) })?;
        let ptr = mem.device_ptr(&self.stream).0;
        Ok((Memory { kind: Kind::Device(mem), ptr, side: self.side.clone() }, ptr))
    }

    fn alloc_mapped(&self, bytes: usize) -> Result<(Memory, u64)> {
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // SAFETY: the memory is zeroed below before anything reads it.
        let mut host = unsafe { self.ctx.alloc_pinned_with_flags::<u8>(bytes, flags) }
            .map_err(|e| EngineError::Backend { backend: "cuda", detail: format!("pinning {bytes} bytes of host memory: {e}") })?;
        let p = host.as_mut_ptr().map_err(cuda_err("pinned memory"))?;
        // SAFETY: `bytes` bytes just allocated and owned.
        unsafe { std::ptr::write_bytes(p, 0, bytes) };
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: `p` was allocated with DEVICEMAP in this context.
        unsafe { sys::cuMemHostGetDevicePointer_v2(&mut ptr, p as *mut _, 0) }.result().map_err(cuda_err("mapping pinned memory"))?;
        Ok((Memory { kind: Kind::Mapped(host), ptr, side: self.side.clone() }, ptr))
    }

    fn write(&self, mem: &mut Memory, offset: usize, bytes: &[u8]) -> Result<()> {
        match &mut mem.kind {
            Kind::Device(slice) => {
                let mut dst = slice.slice_mut(offset..offset + bytes.len());
                self.stream.memcpy_htod(bytes, &mut dst).map_err(cuda_err("host to device copy"))
            }
            Kind::Mapped(host) => {
                // Kernels may read it: write once the queued work is done.
                self.synchronize()?;
                let p = host.as_mut_ptr().map_err(cuda_err("pinned memory"))?;
                // SAFETY: in bounds (the caller checks), owned, no kernel running.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(offset), bytes.len()) };
                Ok(())
            }
        }
    }

    fn read(&self, mem: &Memory, offset: usize, out: &mut [u8]) -> Result<()> {
        match &mem.kind {
            Kind::Device(slice) => {
                let src = slice.slice(offset..offset + out.len());
                self.stream.memcpy_dtoh(&src, out).map_err(cuda_err("device to host copy"))
            }
            Kind::Mapped(host) => {
                self.synchronize()?;
                let p = host.as_ptr().map_err(cuda_err("pinned memory"))?;
                // SAFETY: in bounds (the caller checks), no kernel running.
                unsafe { std::ptr::copy_nonoverlapping(p.add(offset), out.as_mut_ptr(), out.len()) };
                Ok(())
            }
        }
    }

    fn copy(&self, src: &Memory, src_offset: usize, dst: &mut Memory, dst_offset: usize, len: usize) -> Result<()> {
        self.copy_on(&self.stream, src.ptr + src_offset as u64, dst.ptr + dst_offset as u64, len)
    }

    fn copy_beside(&self, src: &Memory, src_offset: usize, dst: &mut Memory, dst_offset: usize, len: usize) -> Result<u64> {
        let queued = self.stream.record_event(None).map_err(cuda_err("recording an event"))?;
        self.side.stream.wait(&queued).map_err(cuda_err("ordering a copy beside the step"))?;
        self.copy_on(&self.side.stream, src.ptr + src_offset as u64, dst.ptr + dst_offset as u64, len)?;
        let landed = self.side.stream.record_event(None).map_err(cuda_err("recording an event"))?;
        let ticket = self.tickets.get();
        self.tickets.set(ticket + 1);
        self.beside.borrow_mut().push((ticket, landed));
        self.side.pending.fetch_add(1, Ordering::AcqRel);
        Ok(ticket)
    }

    fn copied(&self, ticket: u64) -> Result<bool> {
        let mut beside = self.beside.borrow_mut();
        let at = beside
            .iter()
            .position(|b| b.0 == ticket)
            .ok_or_else(|| EngineError::invalid(format!("no copy beside the step has ticket {ticket}")))?;
        if !beside[at].1.try_is_complete().map_err(cuda_err("a copy beside the step"))? {
            return Ok(false);
        }
        // Copies land in the order they were queued: this one and every one before it.
        beside.drain(..=at);
        self.side.pending.fetch_sub(at + 1, Ordering::AcqRel);
        Ok(true)
    }

    fn function(&self, module: &str, name: &str) -> Result<CudaFunction> {
        let (_, m) = self
            .modules
            .iter()
            .find(|(n, _)| *n == module)
            .ok_or_else(|| EngineError::Backend { backend: "cuda", detail: format!("no kernel module {module} in this build") })?;
        m.load_function(name).map_err(|e| EngineError::Backend { backend: "cuda", detail: format!("kernel {name} in {module}.cu: {e}") })
    }

    fn allow_shared(&self, f: &CudaFunction, bytes: u32) -> Result<()> {
        f.set_attribute(CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes as i32)
            .map_err(cuda_err("raising a kernel's shared memory limit"))
    }

    unsafe fn launch<A: KernelArgs>(&self, f: &CudaFunction, cfg: Launch, args: &A) -> Result<()> {
        let cfg = LaunchConfig {
            grid_dim: (cfg.grid[0], cfg.grid[1], cfg.grid[2]),
            block_dim: (cfg.block[0], cfg.block[1], cfg.block[2]),
            shared_mem_bytes: cfg.shared_bytes,
        };
        let param = Param(*args);
        let mut b = self.stream.launch_builder(f);
        b.arg(&param);
        // SAFETY: the caller guarantees the arguments (see the trait).
        unsafe { b.launch(cfg) }.map(|_| ()).map_err(cuda_err("kernel launch"))
    }

    fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(cuda_err("synchronize"))
    }

    fn begin_capture(&self) -> Result<()> {
        self.stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).map_err(cuda_err("starting graph capture"))
    }

    fn end_capture(&self) -> Result<Option<Graph>> {
        let graph = self.stream.end_capture(CUgraphInstantiate_flags(0)).map_err(cuda_err("ending graph capture"))?;
        let Some(graph) = graph else { return Ok(None) };
        graph.upload().map_err(cuda_err("uploading the decode graph"))?;
        Ok(Some(Graph(graph)))
    }

    fn replay(&self, graph: &Graph) -> Result<()> {
        graph.0.launch().map_err(cuda_err("replaying the decode graph"))
    }

    fn memory(&self) -> Option<(u64, u64)> {
        self.ctx.mem_get_info().ok().map(|(free, total)| (free as u64, total as u64))
    }

    /// A 1 GiB device-to-device copy, bytes read plus written, the mean over 20 copies after 3
    /// unmeasured ones (allocates 2 GiB while it runs).
    fn copy_bandwidth(&self) -> Result<Option<f64>> {
        const WARMUP: usize = 3;
        const REPEATS: usize = 20;
        let src = self.stream.alloc_zeros::<u8>(COPY_BYTES).map_err(cuda_err("allocating 1 GiB to measure bandwidth"))?;
        let mut dst = self.stream.alloc_zeros::<u8>(COPY_BYTES).map_err(cuda_err("allocating 1 GiB to measure bandwidth"))?;
        for _ in 0..WARMUP {
            self.stream.memcpy_dtod(&src, &mut dst).map_err(cuda_err("bandwidth copy"))?;
        }
        let timed = Some(CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.stream.record_event(timed).map_err(cuda_err("recording an event"))?;
        for _ in 0..REPEATS {
            self.stream.memcpy_dtod(&src, &mut dst).map_err(cuda_err("bandwidth copy"))?;
        }
        let end = self.stream.record_event(timed).map_err(cuda_err("recording an event"))?;
        let ms = start.elapsed_ms(&end).map_err(cuda_err("timing the copies"))? as f64;
        Ok(Some((2 * COPY_BYTES * REPEATS) as f64 / (ms * 1e-3) / 1e9))
    }

    fn tensor_peak_tflops(&self) -> Option<f64> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let (major, minor) = self.ctx.compute_capability().ok()?;
        // Dense bf16 FLOP per SM per clock, f32 accumulation: A100 (8.0) 2048; GA10x (8.6) and
        // Ada (8.9, GeForce) 512; Hopper (9.0) 4096, of which `mma.sync` reaches about 2/3.
        let per_sm_clock = match (major, minor) {
            (8, 0) => 2048.0,
            (8, 6) | (8, 9) => 512.0,
            (9, 0) => 4096.0,
            _ => return None,
        };
        let sms = self.ctx.attribute(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).ok()? as f64;
        let khz = self.ctx.attribute(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE).ok()? as f64;
        Some(sms * khz * 1e3 * per_sm_clock / 1e12)
    }
}

impl crate::CudaBackend<Gpu> {
    /// A backend on GPU `ordinal`; an error (never a panic) when there is no driver or device.
    pub fn gpu(ordinal: usize) -> Result<Self> {
        Self::new(Gpu::open(ordinal)?)
    }
}
