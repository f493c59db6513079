//! The device the launchers talk to: it allocates, copies, loads a kernel by name, launches it
//! with one argument struct and a grid / block / shared-memory configuration, synchronises,
//! and records a step to replay. Two implementations: a real GPU through cudarc (`gpu`,
//! feature `cuda`) and the emulator that runs the same `.cu` sources on the CPU (`sim`,
//! feature `cuda-sim`). The launchers (`ops`) compute their configurations once, for both.

use gptoss_engine::Result;

use crate::args::KernelArgs;

/// A launch configuration: grid and block dimensions and the dynamic shared memory in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl Launch {
    /// `grid` blocks of `threads` threads in x, no dynamic shared memory.
    pub fn linear(grid: [u32; 3], threads: u32) -> Self {
        Launch { grid, block: [threads, 1, 1], shared_bytes: 0 }
    }
}

pub trait Device: Sized + 'static {
    /// A kernel, loaded.
    type Function: Clone;
    /// A device allocation, freed when dropped.
    type Memory;
    /// A recorded step.
    type Graph;

    /// The backend's name in reports and errors: `cuda` or `cuda-sim`.
    const BACKEND: &'static str;

    /// The device's name (the GPU's, or the emulator's).
    fn name(&self) -> &str;

    /// `bytes` of zeroed device memory and its address.
    fn alloc(&self, bytes: usize) -> Result<(Self::Memory, u64)>;
    /// Host bytes into `mem` at byte `offset` (in bounds: the caller checks).
    fn write(&self, mem: &mut Self::Memory, offset: usize, bytes: &[u8]) -> Result<()>;
    /// Bytes of `mem` from `offset` into `out`, after the queued work (in bounds).
    fn read(&self, mem: &Self::Memory, offset: usize, out: &mut [u8]) -> Result<()>;
    /// `len` bytes from `src` at `src_offset` to `dst` at `dst_offset`, queued (in bounds).
    fn copy(&self, src: &Self::Memory, src_offset: usize, dst: &mut Self::Memory, dst_offset: usize, len: usize) -> Result<()>;

    /// `bytes` of zeroed host memory that the device reads and writes in place (pinned and
    /// mapped into its address space; on the emulator, its own memory), and its device address.
    fn alloc_mapped(&self, bytes: usize) -> Result<(Self::Memory, u64)>;
    /// Queues a copy beside the step: on a second stream, after the work queued so far on the
    /// first, so later work on the first does not wait for it. Returns a ticket for `copied`.
    /// Never while a step is recorded.
    fn copy_beside(&self, src: &Self::Memory, src_offset: usize, dst: &mut Self::Memory, dst_offset: usize, len: usize) -> Result<u64>;
    /// Whether the copy of `ticket` has landed (never waits). Copies land in the order they
    /// were queued; a landed ticket, and every one before it, is forgotten: asking about it
    /// again is an error.
    fn copied(&self, ticket: u64) -> Result<bool>;

    /// Kernel `name` of the module built from `cuda/{module}.cu`.
    fn function(&self, module: &str, name: &str) -> Result<Self::Function>;
    /// Lets `f` use up to `bytes` of dynamic shared memory (beyond 48 KiB needs this).
    fn allow_shared(&self, f: &Self::Function, bytes: u32) -> Result<()>;
    /// Queues (or, while a step is recorded, records) one launch of `f`.
    ///
    /// # Safety
    /// `args` must describe device memory that is live and large enough for everything the
    /// kernel reads and writes under `cfg`, without aliasing the kernel does not allow. Each
    /// launcher checks this for its kernel before calling.
    unsafe fn launch<A: KernelArgs>(&self, f: &Self::Function, cfg: Launch, args: &A) -> Result<()>;
    /// Waits for the queued work.
    fn synchronize(&self) -> Result<()>;

    /// Starts recording the launches of a step instead of running them.
    fn begin_capture(&self) -> Result<()>;
    /// Ends a recording (None if nothing was recorded).
    fn end_capture(&self) -> Result<Option<Self::Graph>>;
    /// Runs a recorded step.
    fn replay(&self, graph: &Self::Graph) -> Result<()>;

    /// (free, total) device memory in bytes.
    fn memory(&self) -> Option<(u64, u64)>;
    /// The device's copy bandwidth in GB/s (bytes read plus written), measured now; None where
    /// the host's memory is the device's.
    fn copy_bandwidth(&self) -> Result<Option<f64>>;
    /// The datasheet's dense bf16 tensor-core rate with f32 accumulation, TFLOP/s (SMs × boost
    /// clock × the architecture's rate per SM per clock); None where unknown (the emulator, an
    /// architecture without a table entry).
    fn tensor_peak_tflops(&self) -> Option<f64>;
}
