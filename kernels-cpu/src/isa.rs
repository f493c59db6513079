//! The instruction set the CPU kernels run on: detected once per process, or forced with
//! `GPTOSS_CPU_ISA=scalar|avx2|avx512|neon` (for tests and comparisons). Forcing one the CPU
//! lacks is an error, never a crash. Nothing here is decided at compile time beyond the
//! target architecture: the build never assumes `target-cpu=native`.

use std::fmt;
use std::sync::OnceLock;

use gptoss_engine::{EngineError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The f64 reference kernels.
    Scalar,
    /// x86-64 AVX2 + FMA (256-bit).
    Avx2,
    /// x86-64 AVX-512 F + BW + VL (512-bit).
    Avx512,
    /// aarch64 Advanced SIMD (128-bit).
    Neon,
}

impl Isa {
    pub const ENV: &'static str = "GPTOSS_CPU_ISA";
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == s)
    }

    /// Whether this CPU can run the path (the answer is cached after the first call).
    pub fn available(self) -> bool {
        features().supports(self)
    }

    /// The ISAs this CPU can run, best first.
    pub fn available_all() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar].into_iter().filter(|i| i.available()).collect()
    }

    /// The best path this CPU supports.
    pub fn detect() -> Isa {
        Isa::available_all()[0]
    }

    /// `GPTOSS_CPU_ISA` if set (an error when unknown or unsupported here), else the best.
    pub fn from_env() -> Result<Isa> {
        match std::env::var(Self::ENV) {
            Ok(s) if !s.trim().is_empty() => Isa::parse_available(s.trim()),
            _ => Ok(Isa::detect()),
        }
    }

    /// Parses a name and checks that this CPU can run it.
    pub fn parse_available(s: &str) -> Result<Isa> {
        let isa = Isa::from_name(s).ok_or_else(|| {
            let names: Vec<_> = Isa::ALL.iter().map(|i| i.name()).collect();
            EngineError::invalid(format!("{}={s}: unknown instruction set (expected one of {})", Self::ENV, names.join(", ")))
        })?;
        if !isa.available() {
            return Err(EngineError::unsupported(
                "cpu",
                format!("{}={s}: this CPU does not support it (it has: {})", Self::ENV, features().describe()),
            ));
        }
        Ok(isa)
    }

    /// The widest extension of this ISA this CPU has (the suffix of its widest compiled set):
    /// `vnni_vbmi_bf16`, `vnni_vbmi` or `vnni` (AVX-512), `dotprod` (NEON).
    pub fn q8_extension(self) -> Option<&'static str> {
        ["vnni_vbmi_bf16", "vnni_vbmi", "vnni", "dotprod"].into_iter().find(|e| self.has_extension(e))
    }

    /// Whether this CPU has the extension `e` of this ISA (`vnni`, `vnni_vbmi`,
    /// `vnni_vbmi_bf16`, `dotprod`): the narrower sets stay runnable next to the widest.
    pub fn has_extension(self, e: &str) -> bool {
        let f = features();
        match (self, e) {
            (Isa::Avx512, "vnni") => f.avx512vnni,
            (Isa::Avx512, "vnni_vbmi") => f.avx512vnni && f.avx512vbmi,
            (Isa::Avx512, "vnni_vbmi_bf16") => f.avx512vnni && f.avx512vbmi && f.avx512bf16,
            (Isa::Neon, "dotprod") => f.dotprod,
            _ => false,
        }
    }

    /// The path with the optional extensions this CPU has, for reports: `avx2+fma`, `avx512 (vnni, bf16)`.
    pub fn describe(self) -> String {
        let f = features();
        match self {
            Isa::Scalar => "scalar".into(),
            Isa::Avx2 => "avx2+fma".into(),
            Isa::Avx512 => format!("avx512{}", extras(&[("vnni", f.avx512vnni), ("vbmi", f.avx512vbmi), ("bf16", f.avx512bf16)])),
            Isa::Neon => format!("neon{}", extras(&[("dotprod", f.dotprod)])),
        }
    }
}

fn extras(list: &[(&str, bool)]) -> String {
    let have: Vec<_> = list.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
    if have.is_empty() { String::new() } else { format!(" ({})", have.join(", ")) }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the CPU reported, read once.
#[derive(Clone, Copy, Debug, Default)]
struct Features {
    avx2_fma: bool,
    avx512: bool,
    avx512vnni: bool,
    avx512vbmi: bool,
    avx512bf16: bool,
    neon: bool,
    dotprod: bool,
}

impl Features {
    fn supports(&self, isa: Isa) -> bool {
        match isa {
            Isa::Scalar => true,
            Isa::Avx2 => self.avx2_fma,
            Isa::Avx512 => self.avx512,
            Isa::Neon => self.neon,
        }
    }

    fn describe(&self) -> String {
        let have: Vec<_> = [Isa::Avx512, Isa::Avx2, Isa::Neon].into_iter().filter(|&i| self.supports(i)).map(Isa::describe).collect();
        if have.is_empty() { "no SIMD path".into() } else { have.join(", ") }
    }
}

fn features() -> &'static Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    FEATURES.get_or_init(read_features)
}

#[cfg(target_arch = "x86_64")]
fn read_features() -> Features {
    use std::arch::is_x86_feature_detected as has;
    let avx2_fma = has!("avx2") && has!("fma");
    Features {
        avx2_fma,
        avx512: avx2_fma && has!("avx512f") && has!("avx512bw") && has!("avx512vl"),
        avx512vnni: has!("avx512vnni"),
        avx512vbmi: has!("avx512vbmi"),
        avx512bf16: has!("avx512bf16"),
        ..Features::default()
    }
}

#[cfg(target_arch = "aarch64")]
fn read_features() -> Features {
    Features {
        neon: std::arch::is_aarch64_feature_detected!("neon"),
        dotprod: std::arch::is_aarch64_feature_detected!("dotprod"),
        ..Features::default()
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn read_features() -> Features {
    Features::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_scalar_is_always_there() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert!(Isa::Scalar.available());
        assert_eq!(*Isa::available_all().last().unwrap(), Isa::Scalar);
        assert!(Isa::detect().available());
    }

    #[test]
    fn the_widest_extension_is_one_this_cpu_has() {
        for isa in Isa::ALL {
            assert!(isa.q8_extension().is_none_or(|e| isa.has_extension(e)), "{isa}");
            // VBMI adds to VNNI: a CPU with the wider set runs the narrower one too.
            assert!(!isa.has_extension("vnni_vbmi") || isa.has_extension("vnni"), "{isa}");
            assert!(!isa.has_extension("vnni_vbmi_bf16") || isa.has_extension("vnni_vbmi"), "{isa}");
            assert!(!isa.has_extension("sse9"));
        }
    }

    #[test]
    fn forcing_a_missing_path_is_a_clear_error() {
        assert!(Isa::parse_available("sse9").unwrap_err().to_string().contains("unknown instruction set"));
        for isa in Isa::ALL.into_iter().filter(|i| !i.available()) {
            let err = Isa::parse_available(isa.name()).unwrap_err().to_string();
            assert!(err.contains("does not support"), "{err}");
        }
    }
}
