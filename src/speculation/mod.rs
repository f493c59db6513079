//! Speculative decoding for the command line and the C API: the `--draft` sources, the check
//! that a draft model suits its target, and the drafts' state kept beside a session. The
//! algorithm is the engine's (`gptoss_engine::speculative`).

mod draft_spec;
mod drafter;

pub use draft_spec::{DraftSpec, check_draft_model};
pub use drafter::Drafter;
