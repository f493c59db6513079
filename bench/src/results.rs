//! The result file: `{"machine": {...}, "rows": [...], "ops": [...], "speculative": [...]}`.
//! The row keys listed in `Row` up to `peak_rss_bytes` are a stable schema other tools read;
//! keys may be added, never renamed or removed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::speculative::SpecRow;
use crate::stats::Spread;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub gptoss_version: String,
    /// UTC date of the run, YYYY-MM-DD.
    pub date: String,
}

/// One benchmarked configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    pub backend: String,
    pub isa_or_device: String,
    pub weights: String,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub depth: usize,
    /// Medians over the repetitions.
    pub pp_tok_s: Option<f64>,
    pub tg_tok_s: Option<f64>,
    pub ttft_ms: Option<f64>,
    /// Bytes one decoded token reads at `depth` (weights at batch 1 + KV cache).
    pub bytes_per_token: f64,
    /// `bytes_per_token × tg_tok_s`, in 1e9 bytes per second.
    pub gb_s: Option<f64>,
    /// The machine's bandwidth measured in the same run (CPU: multi-threaded read; GPU:
    /// device-to-device copy).
    pub peak_gb_s: Option<f64>,
    pub pct_of_peak: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    // ---- beyond the stable schema ----
    pub pp_spread: Option<Spread>,
    pub tg_spread: Option<Spread>,
    pub ttft_spread: Option<Spread>,
    pub bytes_by_family: BTreeMap<String, f64>,
    pub repetitions: usize,
    pub load_s: f64,
    pub device_memory_bytes: Option<u64>,
    pub kernels: Vec<String>,
}

/// One op's share of a decode step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpRow {
    pub model: String,
    pub op: String,
    pub calls_per_token: f64,
    pub ms_per_token: f64,
    pub share_pct: f64,
    /// The bytes the op must read per token, where known: its floor.
    pub bytes_per_token: Option<f64>,
    pub gb_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub rows: Vec<Row>,
    #[serde(default)]
    pub ops: Vec<OpRow>,
    /// Speculative decoding rows (`--speculate`).
    #[serde(default)]
    pub speculative: Vec<SpecRow>,
}

impl Results {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }
}

/// The row keys other tools read: present in every row (null when not measured).
pub const STABLE_KEYS: [&str; 16] = [
    "model",
    "backend",
    "isa_or_device",
    "weights",
    "threads",
    "prompt_tokens",
    "gen_tokens",
    "depth",
    "pp_tok_s",
    "tg_tok_s",
    "ttft_ms",
    "bytes_per_token",
    "gb_s",
    "peak_gb_s",
    "pct_of_peak",
    "peak_rss_bytes",
];

impl Row {
    /// Fills `gb_s` and `pct_of_peak` from the decode rate, the byte count and the peak.
    pub fn derive_bandwidth(&mut self) {
        self.gb_s = self.tg_tok_s.map(|t| t * self.bytes_per_token / 1e9);
        self.pct_of_peak = match (self.gb_s, self.peak_gb_s) {
            (Some(g), Some(p)) if p > 0.0 => Some(100.0 * g / p),
            _ => None,
        };
    }

    /// What identifies a row across result files (the device string carries the CPU's
    /// activation setting).
    pub fn key(&self) -> String {
        format!(
            "{} {} ({}) {} {}t pp{} tg{} @d{}",
            self.model, self.backend, self.isa_or_device, self.weights, self.threads, self.prompt_tokens, self.gen_tokens, self.depth
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn row() -> Row {
        Row {
            model: "synthetic:20b".into(),
            backend: "cpu".into(),
            isa_or_device: "avx2".into(),
            weights: "native".into(),
            threads: 2,
            prompt_tokens: 64,
            gen_tokens: 16,
            depth: 0,
            pp_tok_s: Some(40.0),
            tg_tok_s: Some(9.0),
            ttft_ms: Some(1600.0),
            bytes_per_token: 3.7e9,
            gb_s: None,
            peak_gb_s: Some(36.8),
            pct_of_peak: None,
            peak_rss_bytes: Some(14_000_000_000),
            pp_spread: None,
            tg_spread: None,
            ttft_spread: None,
            bytes_by_family: BTreeMap::new(),
            repetitions: 2,
            load_s: 10.0,
            device_memory_bytes: None,
            kernels: vec![],
        }
    }

    #[test]
    fn the_stable_keys_are_present() {
        let mut r = row();
        r.derive_bandwidth();
        assert!((r.gb_s.unwrap() - 33.3).abs() < 1e-9);
        assert!((r.pct_of_peak.unwrap() - 100.0 * 33.3 / 36.8).abs() < 1e-9);
        let v = serde_json::to_value(&r).unwrap();
        for key in STABLE_KEYS {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn results_round_trip_through_a_file() {
        let dir = std::env::temp_dir().join(format!("gptoss-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let res = Results {
            machine: Machine {
                cpu: "x".into(),
                cores: 2,
                memory_bytes: 1,
                os: "linux".into(),
                gptoss_version: "0".into(),
                date: "2026-01-01".into(),
            },
            rows: vec![row()],
            ops: vec![],
            speculative: vec![],
        };
        res.write(&path).unwrap();
        assert_eq!(Results::read(&path).unwrap(), res);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
