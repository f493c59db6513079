//! The device on a real GPU, through cudarc's driver API: one context, one non-blocking stream,
//! the fatbins `build.rs` embedded (SASS for sm_80/86/89/90a, PTX for newer), CUDA graphs for
//! recorded steps, and driver errors mapped to the engine's.

use std::sync::Arc;

use cudarc::driver::sys::{CUevent_flags, CUfunction_attribute_enum, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr, DriverError, LaunchConfig, PushKernelArg,
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
    modules: Vec<(&'static str, Arc<CudaModule>)>,
    name: String,
}

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
        let name = ctx.name().map_err(cuda_err("reading the device name"))?;
        let mut modules = Vec::with_capacity(MODULES.len());
        for &(module, image) in MODULES {
            let m = ctx.load_module(Ptx::from_binary(image.to_vec())).map_err(|e| EngineError::Backend {
                backend: "cuda",
                detail: format!("loading kernels {module}.fatbin on {name}: {e} (a driver older than CUDA 13.0 cannot load them)"),
            })?;
            modules.push((module, m));
        }
        Ok(Gpu { ctx, stream, modules, name })
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
    type Memory = CudaSlice<u8>;
    type Graph = Graph;
    const BACKEND: &'static str = "cuda";

    fn name(&self) -> &str {
        &self.name
    }

    fn alloc(&self, bytes: usize) -> Result<(CudaSlice<u8>, u64)> {
        let mem = self
            .stream
            .alloc_zeros::<u8>(bytes)
            .map_err(|e| EngineError::Backend { backend: "cuda", detail: format!("allocating {bytes} bytes on {}: {e}", self.name) })?;
        let ptr = mem.device_ptr(&self.stream).0;
        Ok((mem, ptr))
    }

    fn write(&self, mem: &mut CudaSlice<u8>, offset: usize, bytes: &[u8]) -> Result<()> {
        let mut dst = mem.slice_mut(offset..offset + bytes.len());
        self.stream.memcpy_htod(bytes, &mut dst).map_err(cuda_err("host to device copy"))
    }

    fn read(&self, mem: &CudaSlice<u8>, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = mem.slice(offset..offset + out.len());
        self.stream.memcpy_dtoh(&src, out).map_err(cuda_err("device to host copy"))
    }

    fn copy(&self, src: &CudaSlice<u8>, src_offset: usize, dst: &mut CudaSlice<u8>, dst_offset: usize, len: usize) -> Result<()> {
        let from = src.slice(src_offset..src_offset + len);
        let mut to = dst.slice_mut(dst_offset..dst_offset + len);
        self.stream.memcpy_dtod(&from, &mut to).map_err(cuda_err("device to device copy"))
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
