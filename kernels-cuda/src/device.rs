//! The device: one context, one non-blocking stream, the embedded kernel modules, the status
//! word through which kernels report bad device-side inputs, and errors mapped to the engine's.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DriverError, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use gptoss_engine::{EngineError, Result};

use crate::args::{GPTOSS_STATUS_EXPERT_RANGE, GPTOSS_STATUS_RING_OVERRUN, GPTOSS_STATUS_TOKEN_RANGE};

include!(concat!(env!("OUT_DIR"), "/cuda/modules.rs"));

/// Where the build left the fatbins, the compute_90 PTX and ptxas's reports.
pub const ARTIFACTS: &str = env!("GPTOSS_CUDA_ARTIFACTS");
/// ptxas's registers / stack / spills / shared memory per kernel and target, tab-separated.
pub const PTXAS_SUMMARY: &str = include_str!(concat!(env!("OUT_DIR"), "/cuda/ptxas-summary.txt"));

/// A driver error as the engine's backend error.
pub fn cuda_err(what: &str) -> impl FnOnce(DriverError) -> EngineError + '_ {
    move |e| EngineError::Backend { backend: "cuda", detail: format!("{what}: {e}") }
}

pub struct Device {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    modules: Vec<(&'static str, Arc<CudaModule>)>,
    pub name: String,
    /// u32: bits of `GPTOSS_STATUS_*` set by kernels since the last check.
    status: CudaSlice<u32>,
    pub status_ptr: u64,
}

impl Device {
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
        let status = stream.alloc_zeros::<u32>(1).map_err(cuda_err("allocating the status word"))?;
        let status_ptr = status.device_ptr(&stream).0;
        Ok(Device { ctx, stream, modules, name, status, status_ptr })
    }

    /// Kernel `name` of the module built from `cuda/{module}.cu`.
    pub fn function(&self, module: &str, name: &str) -> Result<CudaFunction> {
        let (_, m) = self
            .modules
            .iter()
            .find(|(n, _)| *n == module)
            .ok_or_else(|| EngineError::Backend { backend: "cuda", detail: format!("no kernel module {module} in this build") })?;
        m.load_function(name).map_err(|e| EngineError::Backend { backend: "cuda", detail: format!("kernel {name} in {module}.cu: {e}") })
    }

    /// Launches `f` with one argument struct.
    ///
    /// # Safety
    /// `args` must describe buffers that are live, large enough for everything the kernel
    /// reads and writes under `cfg`, and not aliased in ways the kernel does not allow. Each
    /// launcher checks this for its kernel before calling.
    pub unsafe fn launch<A: cudarc::driver::DeviceRepr>(&self, f: &CudaFunction, cfg: LaunchConfig, args: &A) -> Result<()> {
        let mut b = self.stream.launch_builder(f);
        b.arg(args);
        // SAFETY: the caller guarantees the arguments (see above).
        unsafe { b.launch(cfg) }.map(|_| ()).map_err(cuda_err("kernel launch"))
    }

    /// Waits for the stream, then reports (and clears) what kernels flagged meanwhile.
    pub fn synchronize(&mut self) -> Result<()> {
        self.stream.synchronize().map_err(cuda_err("synchronize"))?;
        let mut word = [0u32];
        self.stream.memcpy_dtoh(&self.status, &mut word).map_err(cuda_err("synchronize"))?;
        if word[0] == 0 {
            return Ok(());
        }
        self.stream.memset_zeros(&mut self.status).map_err(cuda_err("clearing the status word"))?;
        Err(status_error(word[0]))
    }
}

/// The bad inputs a status word reports.
fn status_error(bits: u32) -> EngineError {
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
    EngineError::Backend { backend: "cuda", detail: format!("kernels reported bad inputs: {}", what.join("; ")) }
}
