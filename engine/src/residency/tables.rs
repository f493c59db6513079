//! What the `host` residency mode needs of a device with memory of its own (a GPU): every
//! routed expert kept in host memory the device reads in place, a pool of device slots for the
//! hot ones, and stacks whose experts are found through a table of addresses, so that a miss
//! costs a read over the bus instead of a stop, and a step never waits for the host.
//!
//! The table of a stack is device memory: `moe_experts` looks each routed expert up in it, so
//! re-pointing an expert (from host memory to a slot once its copy has landed, back before the
//! slot is reused) changes nothing the step records, and a recorded step (a CUDA graph) stays
//! valid. Copies into slots run beside the step (a second stream), each behind the work queued
//! before it, so a slot is overwritten only once the steps that read its previous expert are done.

use crate::Result;
use crate::dtype::DType;
use crate::weight::Weight;

/// Expert tables on a backend (see the module's documentation). `Backend::expert_tables`
/// gives it, for the backends that have one.
pub trait ExpertTables<Buf> {
    /// `len` zeroed elements of host memory the device reads in place (pinned and mapped).
    fn alloc_mapped(&mut self, dtype: DType, len: usize) -> Result<Buf>;

    /// A stack shaped like `home` (format, experts, rows, cols) whose matrices are wherever its
    /// table points, each expert at first at its own matrix of `home`, with the biases `bias`
    /// (f32 `[experts, rows]`). Only `moe_experts` reads it; it cannot be written, read or
    /// copied as values.
    fn table_stack(&mut self, home: &Weight<Buf>, bias: Buf) -> Result<Weight<Buf>>;

    /// Points expert `e` of `table` (a stack of `table_stack`) at matrix `m` of `src` (of the
    /// same format and shape), queued behind the work so far: the steps queued before read the
    /// old matrix, those after the new one.
    fn point(&mut self, table: &mut Weight<Buf>, e: usize, src: &Weight<Buf>, m: usize) -> Result<()>;

    /// Copies matrix `m` of `src` into matrix `slot` of `dst` (same format and shape) beside
    /// the step: behind the work queued so far, without making later work wait. Returns a
    /// ticket for `copied`. Not while a step is recorded.
    fn copy_beside(&mut self, src: &Weight<Buf>, m: usize, dst: &mut Weight<Buf>, slot: usize) -> Result<u64>;

    /// Whether the copy of `ticket` has landed; never waits. Copies land in the order they were
    /// queued; a landed ticket, and every earlier one, is forgotten (asking again is an error).
    fn copied(&mut self, ticket: u64) -> Result<bool>;
}
