//! The routed-expert cache: a fixed pool of slots, each holding one (layer, expert)'s weights,
//! and the bookkeeping that decides which expert lives in which slot. The engine's expert store
//! (in the model crate, which knows where an expert's bytes are) and the offline simulator run
//! the very same code here, so a trace replayed through the simulator gets the engine's hit
//! counts exactly.
//!
//! - `cache`: slots, the (layer, expert) → slot index, pins, hit and miss counts.
//! - `policy`: the replacement policy, a named, swappable choice (`--expert-cache lru|lfu`);
//!   `lru` and `lfu` implement it. A new policy implements [`ReplacementPolicy`] and gets a
//!   name in [`PolicyKind`].
//! - `groups`: how one layer of a forward step is cut into groups of consecutive tokens whose
//!   experts fit the pool at once.
//! - `trace`: routing traces on disk (`--record-routing FILE`).
//! - `simulate`: replaying a trace through each policy and pool size; trace statistics.

mod cache;
mod groups;
mod lfu;
mod lru;
mod policy;
pub mod simulate;
pub mod trace;

pub use cache::{CacheStats, ExpertCache, Lookup};
pub use groups::{GroupAccess, acquire_group, distinct_experts, run_layer, token_groups};
pub use lfu::Lfu;
pub use lru::Lru;
pub use policy::{PolicyKind, ReplacementPolicy};

/// One routed expert of one layer: what a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpertKey {
    pub layer: u32,
    pub expert: u32,
}
