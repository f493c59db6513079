//! The emulated device: the same `cuda/*.cu` sources compiled as C++ for the host (`build.rs`,
//! feature `cuda-sim`) and run by the emulator in `sim/runtime.cpp`, which gives each block's
//! threads the CUDA execution model's semantics (barriers, warp collectives, shared memory) and
//! reports misuse as an error naming the kernel, block and thread. Memory is host memory with a
//! guard page after each allocation; launches run when they are made (a stream of one), and a
//! recorded step is the list of its launches, replayed in order.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char, c_int, c_void};

use gptoss_engine::{EngineError, Result};

use crate::args::KernelArgs;
use crate::device::{Device, Launch};

/// The runtime's view of a kernel (`sim/runtime.h`).
#[repr(C)]
pub struct SimKernel {
    name: *const c_char,
    thunk: unsafe extern "C" fn(*const c_void),
    args_size: usize,
}

#[repr(C)]
struct SimLaunch {
    grid: [u32; 3],
    block: [u32; 3],
    shared_bytes: u64,
    max_shared_bytes: u64,
    seed: u64,
}

unsafe extern "C" {
    fn gptoss_sim_find(module: *const c_char, name: *const c_char) -> *const SimKernel;
    fn gptoss_sim_launch(
        kernel: *const SimKernel,
        launch: *const SimLaunch,
        args: *const c_void,
        args_size: usize,
        error: *mut c_char,
        len: usize,
    ) -> c_int;
    fn gptoss_sim_alloc(bytes: usize) -> *mut c_void;
    fn gptoss_sim_free(p: *mut c_void);
    fn gptoss_sim_launches() -> u64;
}

/// Kernel launches the emulator has run in this process.
pub fn launches() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { gptoss_sim_launches() }
}

/// A kernel of the emulated build.
#[derive(Clone, Copy)]
pub struct Function {
    kernel: *const SimKernel,
}

// SAFETY: `kernel` points into the build's static, immutable kernel tables.
unsafe impl Send for Function {}

/// Emulated device memory: host memory from the emulator's allocator (a guard page after it).
pub struct Memory {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: an owned allocation, used through its backend one call at a time.
unsafe impl Send for Memory {}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: allocated by gptoss_sim_alloc, freed once.
        unsafe { gptoss_sim_free(self.ptr as *mut c_void) }
    }
}

impl Memory {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes allocated and owned.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusively borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A recorded operation of a step: a launch (the kernel, its configuration and its argument
/// struct's bytes) or a device-to-device copy (addresses stay valid while their buffers live,
/// which the step's recording does not outlive).
enum Recorded {
    Launch { f: Function, cfg: Launch, args: Vec<u8> },
    Copy { src: *const u8, dst: *mut u8, len: usize },
}

/// A recorded step.
pub struct Graph(Vec<Recorded>);

// SAFETY: as `Function`.
unsafe impl Send for Graph {}

/// A copy beside the step, not yet landed.
struct Beside {
    ticket: u64,
    src: *const u8,
    dst: *mut u8,
    len: usize,
    /// `copied` queries made before it was queued.
    queued_at: u64,
}

pub struct Sim {
    /// Seeds the block and thread orders of each launch (`GPTOSS_SIM_SEED`), advanced per launch.
    seed: Cell<u64>,
    capture: RefCell<Option<Vec<Recorded>>>,
    /// Copies beside the step: each lands at the second `copied` query (about any copy) after
    /// it was queued, so code that asks between steps runs at least one step with the copy
    /// still in flight, as it could on a GPU.
    beside: RefCell<Vec<Beside>>,
    tickets: Cell<u64>,
    queries: Cell<u64>,
    /// The dynamic shared memory each kernel was allowed (`allow_shared`), beyond the default.
    allowed: RefCell<Vec<(*const SimKernel, u32)>>,
}

// SAFETY: the kernel pointers point into static, immutable tables.
unsafe impl Send for Sim {}

/// The variable that seeds the emulator's block and thread orders.
pub const SEED_ENV: &str = "GPTOSS_SIM_SEED";

impl Sim {
    /// The emulated device, its orders seeded by `GPTOSS_SIM_SEED` (default 1).
    pub fn new() -> Result<Self> {
        let seed = match std::env::var(SEED_ENV) {
            Ok(s) => s.trim().parse().map_err(|_| EngineError::invalid(format!("{SEED_ENV}={s}: not an unsigned integer")))?,
            Err(_) => 1,
        };
        Ok(Self::with_seed(seed))
    }

    /// The emulated device, its orders seeded by `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Sim {
            seed: Cell::new(seed),
            capture: RefCell::new(None),
            beside: RefCell::new(Vec::new()),
            tickets: Cell::new(0),
            queries: Cell::new(0),
            allowed: RefCell::new(Vec::new()),
        }
    }

    fn run(&self, f: &Function, cfg: Launch, args: &[u8]) -> Result<()> {
        let seed = self.seed.get();
        self.seed.set(seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
        let launch = SimLaunch {
            grid: cfg.grid,
            block: cfg.block,
            shared_bytes: cfg.shared_bytes as u64,
            max_shared_bytes: self.allowed.borrow().iter().find(|a| a.0 == f.kernel).map_or(0, |a| a.1) as u64,
            seed,
        };
        let mut error = vec![0 as c_char; 1024];
        // SAFETY: the kernel is from the build's tables; `args` is its argument struct (the
        // runtime checks the size); the launcher checked the memory it describes.
        let status =
            unsafe { gptoss_sim_launch(f.kernel, &launch, args.as_ptr() as *const c_void, args.len(), error.as_mut_ptr(), error.len()) };
        if status == 0 {
            return Ok(());
        }
        // SAFETY: the runtime wrote a NUL-terminated message.
        let message = unsafe { CStr::from_ptr(error.as_ptr()) }.to_string_lossy().into_owned();
        Err(EngineError::Backend { backend: "cuda-sim", detail: message })
    }
}

impl Device for Sim {
    type Function = Function;
    type Memory = Memory;
    type Graph = Graph;
    const BACKEND: &'static str = "cuda-sim";

    fn name(&self) -> &str {
        "emulated CUDA device (sm_90 limits)"
    }

    fn alloc(&self, bytes: usize) -> Result<(Memory, u64)> {
        // SAFETY: plain allocation; null on failure.
        let ptr = unsafe { gptoss_sim_alloc(bytes) } as *mut u8;
        if ptr.is_null() {
            return Err(EngineError::OutOfMemory { backend: "cuda-sim", bytes });
        }
        // Zeroed, as device allocations are here: fresh anonymous pages.
        Ok((Memory { ptr, len: bytes }, ptr as u64))
    }

    fn write(&self, mem: &mut Memory, offset: usize, bytes: &[u8]) -> Result<()> {
        mem.bytes_mut()[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn read(&self, mem: &Memory, offset: usize, out: &mut [u8]) -> Result<()> {
        out.copy_from_slice(&mem.bytes()[offset..offset + out.len()]);
        Ok(())
    }

    fn copy(&self, src: &Memory, src_offset: usize, dst: &mut Memory, dst_offset: usize, len: usize) -> Result<()> {
        let (from, to) = (&src.bytes()[src_offset..src_offset + len], &mut dst.bytes_mut()[dst_offset..dst_offset + len]);
        if let Some(steps) = self.capture.borrow_mut().as_mut() {
            steps.push(Recorded::Copy { src: from.as_ptr(), dst: to.as_mut_ptr(), len });
            return Ok(());
        }
        to.copy_from_slice(from);
        Ok(())
    }

    fn alloc_mapped(&self, bytes: usize) -> Result<(Memory, u64)> {
        // The emulated device's memory is the host's.
        self.alloc(bytes)
    }

    fn copy_beside(&self, src: &Memory, src_offset: usize, dst: &mut Memory, dst_offset: usize, len: usize) -> Result<u64> {
        if self.capture.borrow().is_some() {
            return Err(EngineError::invalid("a copy beside the step while the step is recorded"));
        }
        let (from, to) = (&src.bytes()[src_offset..src_offset + len], &mut dst.bytes_mut()[dst_offset..dst_offset + len]);
        let ticket = self.tickets.get();
        self.tickets.set(ticket + 1);
        self.beside.borrow_mut().push(Beside { ticket, src: from.as_ptr(), dst: to.as_mut_ptr(), len, queued_at: self.queries.get() });
        Ok(ticket)
    }

    fn copied(&self, ticket: u64) -> Result<bool> {
        let mut beside = self.beside.borrow_mut();
        let at = beside
            .iter()
            .position(|b| b.ticket == ticket)
            .ok_or_else(|| EngineError::invalid(format!("no copy beside the step has ticket {ticket}")))?;
        self.queries.set(self.queries.get() + 1);
        if self.queries.get() - beside[at].queued_at < 2 {
            return Ok(false);
        }
        // Copies land in the order they were queued: this one and every one before it.
        for b in beside.drain(..=at) {
            // SAFETY: both ranges were in bounds of live allocations when queued, and the
            // caller keeps them alive until the copy has landed (it asks before dropping either).
            unsafe { std::ptr::copy(b.src, b.dst, b.len) };
        }
        Ok(true)
    }

    fn function(&self, module: &str, name: &str) -> Result<Function> {
        let (m, n) = (CString::new(module), CString::new(name));
        let (Ok(m), Ok(n)) = (m, n) else { return Err(EngineError::invalid(format!("kernel name {module}/{name}"))) };
        // SAFETY: two NUL-terminated strings; the result points into static tables or is null.
        let kernel = unsafe { gptoss_sim_find(m.as_ptr(), n.as_ptr()) };
        if kernel.is_null() {
            return Err(EngineError::Backend { backend: "cuda-sim", detail: format!("no kernel {name} in {module}.cu") });
        }
        Ok(Function { kernel })
    }

    fn allow_shared(&self, f: &Function, bytes: u32) -> Result<()> {
        let mut allowed = self.allowed.borrow_mut();
        allowed.retain(|a| a.0 != f.kernel);
        allowed.push((f.kernel, bytes));
        Ok(())
    }

    unsafe fn launch<A: KernelArgs>(&self, f: &Function, cfg: Launch, args: &A) -> Result<()> {
        // SAFETY: `A` is a plain repr(C) struct (KernelArgs); its bytes are its value.
        let bytes = unsafe { std::slice::from_raw_parts(args as *const A as *const u8, size_of::<A>()) };
        if let Some(steps) = self.capture.borrow_mut().as_mut() {
            steps.push(Recorded::Launch { f: *f, cfg, args: bytes.to_vec() });
            return Ok(());
        }
        self.run(f, cfg, bytes)
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn begin_capture(&self) -> Result<()> {
        *self.capture.borrow_mut() = Some(Vec::new());
        Ok(())
    }

    fn end_capture(&self) -> Result<Option<Graph>> {
        Ok(self.capture.borrow_mut().take().filter(|s| !s.is_empty()).map(Graph))
    }

    fn replay(&self, graph: &Graph) -> Result<()> {
        for r in &graph.0 {
            match r {
                Recorded::Launch { f, cfg, args } => self.run(f, *cfg, args)?,
                // SAFETY: both ranges were in bounds of live buffers when recorded, and a step's
                // recording is replayed only while the model's buffers live.
                Recorded::Copy { src, dst, len } => unsafe { std::ptr::copy(*src, *dst, *len) },
            }
        }
        Ok(())
    }

    fn memory(&self) -> Option<(u64, u64)> {
        None
    }

    fn copy_bandwidth(&self) -> Result<Option<f64>> {
        Ok(None)
    }

    fn tensor_peak_tflops(&self) -> Option<f64> {
        None
    }
}

impl crate::CudaBackend<Sim> {
    /// A backend on the emulated device.
    pub fn sim() -> Result<Self> {
        Self::new(Sim::new()?)
    }
}
