//! How a CPU backend is set up: worker threads, instruction set, and the precision of the
//! activations that integer weights multiply.

use std::fmt;
use std::str::FromStr;

use gptoss_engine::{EngineError, Result};

use crate::isa::Isa;

/// The activations the matmuls of int8, int4 and MXFP4 weights multiply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activations {
    /// Unrounded f32, the stored weights' exact products (the default).
    #[default]
    F32,
    /// int8 blocks of 32 with an f32 scale, quantized once per op (the `*_q8_*` kernels);
    /// f32 and bf16 weights stay exact.
    Int8,
}

impl Activations {
    pub const ALL: [Activations; 2] = [Activations::F32, Activations::Int8];

    pub fn name(self) -> &'static str {
        match self {
            Activations::F32 => "f32",
            Activations::Int8 => "int8",
        }
    }
}

impl fmt::Display for Activations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activations {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        Activations::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| EngineError::invalid(format!("CPU activations '{s}': expected f32 or int8")))
    }
}

/// A CPU backend's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    /// Threads in all, the caller's included (all cores when `None`).
    pub threads: Option<usize>,
    pub isa: Isa,
    /// The compiled set of `isa` whose kernels run (`avx512_vnni`, …; see
    /// `compiled::names_for`), so tests and comparisons can run a narrower set than this CPU's
    /// widest; `None`: the widest.
    pub set: Option<&'static str>,
    pub activations: Activations,
}

impl CpuOptions {
    /// `threads`, the instruction set `GPTOSS_CPU_ISA` names or else the best this CPU has (its
    /// widest set), and f32 activations.
    pub fn from_env(threads: Option<usize>) -> Result<Self> {
        Ok(CpuOptions { threads, isa: Isa::from_env()?, set: None, activations: Activations::F32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Activations::ALL {
            assert_eq!(a.name().parse::<Activations>().unwrap(), a);
        }
        assert!("int4".parse::<Activations>().unwrap_err().to_string().contains("expected f32 or int8"));
    }
}
