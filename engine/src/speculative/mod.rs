//! Speculative decoding: a cheap draft proposes `k` tokens, the target checks them all in one
//! forward pass and keeps the longest acceptable prefix plus one token of its own.
//!
//! At batch 1 a decode step reads every weight for one token; a verification step reads the
//! dense weights once for `k + 1` tokens — but on a mixture of experts, the union of the experts
//! those tokens route to (for 4-of-32 routing, ~15.6 distinct experts per layer for 5 tokens
//! instead of 4), so it costs more than a decode step and must be paid for by acceptance.
//! `SpeculationStats` reports both sides.
//!
//! - `draft`: the `Draft` trait and its `Proposal`; the sources: `model_draft` (another model,
//!   or the target in a cheaper form, each with its own KV cache kept in step), `ngram`
//!   (prompt lookup), `bounds` (the oracle and random drafts that bound the rest).
//! - `accept`: greedy and speculative-sampling verification; `distribution`: the law the
//!   backends' `sample` draws from, on the host.
//! - `choose_k`: `--speculate K|auto`; `generate`: the loop; `stats`: the accounting.

pub mod accept;
pub mod bounds;
pub mod choose_k;
pub mod distribution;
pub mod draft;
pub mod generate;
pub mod model_draft;
pub mod ngram;
pub mod stats;

#[cfg(test)]
mod tests;

pub use bounds::{OracleDraft, RandomDraft};
pub use choose_k::Speculate;
pub use draft::{Draft, Proposal};
pub use generate::{check_draft, generate_speculative};
pub use model_draft::ModelDraft;
pub use ngram::NgramDraft;
pub use stats::SpeculationStats;
