//! Rotary position embedding frequencies, with YaRN scaling.
//!
//! The formulas follow Hugging Face transformers' `_compute_yarn_parameters` (which the gpt-oss
//! reference implementations agree with): frequencies are computed here once, in f64, and
//! rounded to f32; backends turn them into angles `(pos as f32) · inv_freq[i]` — a product
//! rounded to f32, exactly as the f32 references compute it — and rotate split halves
//! `(u[i], u[i + d/2])` by `cos, sin(angle) · concentration`.

use crate::error::{EngineError, Result};

/// YaRN parameters as a Hugging Face `rope_scaling` block states them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Yarn {
    pub factor: f64,
    pub original_max_position_embeddings: f64,
    pub beta_fast: f64,
    pub beta_slow: f64,
    /// Round the correction range to integers (HF's default; gpt-oss sets it false).
    pub truncate: bool,
    /// Overrides the attention scaling ("concentration") when set.
    pub attention_factor: Option<f64>,
    pub mscale: Option<f64>,
    pub mscale_all_dim: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeConfig {
    pub theta: f64,
    pub head_dim: usize,
    pub yarn: Option<Yarn>,
}

/// What a backend needs to apply the rotation: one inverse frequency per pair and the factor
/// that multiplies both cos and sin.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeTable {
    pub inv_freq: Vec<f32>,
    pub concentration: f32,
}

impl RopeConfig {
    pub fn table(&self) -> Result<RopeTable> {
        let d = self.head_dim;
        if d == 0 || !d.is_multiple_of(2) {
            return Err(EngineError::invalid(format!("rope: head_dim {d} must be even and non-zero")));
        }
        if !(self.theta.is_finite() && self.theta > 1.0) {
            return Err(EngineError::invalid(format!("rope: theta {} must be finite and > 1", self.theta)));
        }
        let half = d / 2;
        let extrap: Vec<f64> = (0..half).map(|i| 1.0 / self.theta.powf((2 * i) as f64 / d as f64)).collect();
        let Some(y) = self.yarn else {
            return Ok(RopeTable { inv_freq: extrap.iter().map(|&f| f as f32).collect(), concentration: 1.0 });
        };
        for (name, v) in [
            ("factor", y.factor),
            ("original_max_position_embeddings", y.original_max_position_embeddings),
            ("beta_fast", y.beta_fast),
            ("beta_slow", y.beta_slow),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(EngineError::invalid(format!("rope_scaling.{name} = {v} must be finite and positive")));
            }
        }
        let (low, high) = correction_range(y, d, self.theta);
        let span = if low == high { 0.001 } else { high - low };
        let inv_freq = extrap
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let ramp = ((i as f64 - low) / span).clamp(0.0, 1.0);
                let interp = e / y.factor;
                (interp * ramp + e * (1.0 - ramp)) as f32
            })
            .collect();
        Ok(RopeTable { inv_freq, concentration: concentration(y) as f32 })
    }
}

/// The first and last dimension pair touched by the interpolation ramp (`low`, `high`).
pub fn correction_range(y: Yarn, head_dim: usize, theta: f64) -> (f64, f64) {
    let dim = head_dim as f64;
    let corr =
        |rotations: f64| dim * (y.original_max_position_embeddings / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln());
    let (mut low, mut high) = (corr(y.beta_fast), corr(y.beta_slow));
    if y.truncate {
        low = low.floor();
        high = high.ceil();
    }
    (low.max(0.0), high.min(dim - 1.0))
}

fn concentration(y: Yarn) -> f64 {
    let mscale = |scale: f64, m: f64| {
        if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 }
    };
    match (y.attention_factor, y.mscale, y.mscale_all_dim) {
        (Some(a), _, _) => a,
        (None, Some(m), Some(all)) if m != 0.0 && all != 0.0 => mscale(y.factor, m) / mscale(y.factor, all),
        _ => mscale(y.factor, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt_oss() -> RopeConfig {
        RopeConfig {
            theta: 150_000.0,
            head_dim: 64,
            yarn: Some(Yarn {
                factor: 32.0,
                original_max_position_embeddings: 4096.0,
                beta_fast: 32.0,
                beta_slow: 1.0,
                truncate: false,
                attention_factor: None,
                mscale: None,
                mscale_all_dim: None,
            }),
        }
    }

    #[test]
    fn gpt_oss_constants_match_the_spec() {
        let cfg = gpt_oss();
        let (low, high) = correction_range(cfg.yarn.unwrap(), 64, 150_000.0);
        assert!((low - 8.092779115512402).abs() < 1e-12, "{low}");
        assert!((high - 17.39802450158856).abs() < 1e-12, "{high}");
        let t = cfg.table().unwrap();
        assert!((t.concentration as f64 - 1.3465735902799727).abs() < 1e-7);
        // Spec §1.3 table, float64 values rounded to f32.
        let expect = [
            (0, 1.0),
            (8, 5.081327482e-02),
            (9, 3.170569618e-02),
            (12, 6.794959490e-03),
            (17, 1.293187012e-04),
            (18, 3.830881237e-05),
            (31, 3.023511428e-07),
        ];
        for (i, v) in expect {
            let rel = ((t.inv_freq[i] as f64 - v) / v).abs();
            assert!(rel < 1e-7, "inv_freq[{i}] = {} want {v}", t.inv_freq[i]);
        }
    }

    #[test]
    fn truncate_rounds_the_range() {
        let mut cfg = gpt_oss();
        cfg.yarn.as_mut().unwrap().truncate = true;
        assert_eq!(correction_range(cfg.yarn.unwrap(), 64, 150_000.0), (8.0, 18.0));
    }

    #[test]
    fn plain_rope_has_no_concentration() {
        let t = RopeConfig { theta: 10_000.0, head_dim: 4, yarn: None }.table().unwrap();
        assert_eq!(t.concentration, 1.0);
        assert_eq!(t.inv_freq, vec![1.0, 0.01]);
    }

    #[test]
    fn bad_values_are_errors() {
        let mut cfg = gpt_oss();
        cfg.yarn.as_mut().unwrap().factor = f64::NAN;
        assert!(cfg.table().unwrap_err().to_string().contains("factor"));
        assert!(RopeConfig { theta: 1e4, head_dim: 3, yarn: None }.table().is_err());
    }
}
