//! placeholder
pub mod harmony;
