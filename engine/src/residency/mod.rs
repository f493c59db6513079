//! Weight residency: what the engine needs to run a model bigger than its memory budget,
//! independent of any model.
//!
//! - `budget`: byte sizes as typed (`16GiB`) and printed.
//! - `offload`: the residency modes (`none`, `mmap`, `layered`, `experts`, `host`).
//! - `aligned`, `direct`: reading byte ranges of weight files with `O_DIRECT` into aligned
//!   buffers, so streamed weights do not pile up in the page cache.
//! - `io_pool`: a few I/O threads keeping several reads in flight.
//! - `expert_cache`: the pool of expert slots, its replacement policies, routing traces and
//!   the offline simulator.
//! - `tables`: what a device needs for the `host` mode (experts read in place from host
//!   memory, hot ones copied into slots beside the step).

pub mod aligned;
pub mod budget;
pub mod direct;
pub mod expert_cache;
pub mod io_pool;
pub mod offload;
pub mod tables;

pub use aligned::AlignedBuf;
pub use budget::ByteSize;
pub use direct::DirectFile;
pub use io_pool::{IoPool, ReadDone, ReadRequest};
pub use offload::Offload;
pub use tables::ExpertTables;
