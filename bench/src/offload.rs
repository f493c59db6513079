//! The residency ladder's results: the modes side by side under one memory limit, each from a
//! cold start, against the disk's bandwidth measured in the same run. Written as
//! `{"machine", "model", "budget_bytes", "cold_start", "disk_before", "disk_after", "rows"}`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::disk::DiskRead;
use crate::results::Machine;
use crate::table::{aligned, md_table, opt};

/// One mode's run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OffloadRow {
    /// `none`, `mmap`, `layered`, `experts`.
    pub mode: String,
    /// The expert cache's policy and whether prefetch ran (`experts`).
    pub policy: Option<String>,
    pub prefetch: bool,
    /// Why the mode did not run (a refused budget, a process killed at the limit).
    pub failed: Option<String>,
    pub load_s: Option<f64>,
    /// The plan: weights held, expert slots and experts in the model.
    pub resident_bytes: Option<u64>,
    pub slots: Option<usize>,
    pub experts: Option<usize>,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub pp_tok_s: Option<f64>,
    pub tg_tok_s: Option<f64>,
    /// Bytes the process read from the disk per decoded token (`/proc/self/io`: direct reads
    /// and page faults of a mapping alike).
    pub disk_bytes_per_token: Option<f64>,
    /// The expert cache's hits per lookup while decoding.
    pub hit_rate: Option<f64>,
    /// Disk bytes read while decoding ÷ decode time, 1e9 bytes/s.
    pub read_gb_s: Option<f64>,
    /// Time per decoded token the computing thread waited for reads, and (`experts`) spent
    /// copying read experts into their slots.
    pub io_wait_ms_per_token: Option<f64>,
    pub copy_ms_per_token: Option<f64>,
    /// CPU time (user + system, every thread of the process) per decoded token: what decoding
    /// costs whatever else the machine runs, where wall time counts the neighbours too.
    pub cpu_ms_per_token: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// The cgroup's peak (page cache included), filled in by the parent.
    pub cgroup_peak_bytes: Option<u64>,
}

impl OffloadRow {
    /// Milliseconds per decoded token.
    pub fn ms_per_token(&self) -> Option<f64> {
        self.tg_tok_s.filter(|&t| t > 0.0).map(|t| 1e3 / t)
    }

    /// Decode time not spent waiting for reads, ms per token.
    pub fn compute_ms_per_token(&self) -> Option<f64> {
        Some(self.ms_per_token()? - self.io_wait_ms_per_token.unwrap_or(0.0))
    }

    /// Time per token ÷ max(disk bytes per token ÷ the disk's bandwidth, compute time): 1.0
    /// is the floor of a run that overlaps reading and computing perfectly.
    pub fn over_floor(&self, disk_gb_s: f64) -> Option<f64> {
        let io_ms = self.disk_bytes_per_token? / (disk_gb_s * 1e9) * 1e3;
        Some(self.ms_per_token()? / io_ms.max(self.compute_ms_per_token()?))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OffloadResults {
    pub machine: Machine,
    pub model: String,
    pub budget_bytes: u64,
    /// How each run started cold and what limited its memory.
    pub cold_start: String,
    /// Random expert-sized direct reads of the model's files, before and after the modes.
    pub disk_before: Option<DiskRead>,
    pub disk_after: Option<DiskRead>,
    pub rows: Vec<OffloadRow>,
}

impl OffloadResults {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// The disk bandwidth the rows are compared with: the mean of the two measurements.
    pub fn disk_gb_s(&self) -> Option<f64> {
        let v: Vec<f64> = [&self.disk_before, &self.disk_after].iter().filter_map(|d| d.as_ref().map(|d| d.gb_s)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    fn cells(&self) -> Vec<[String; 14]> {
        let disk = self.disk_gb_s();
        let gib = |b: Option<u64>| opt(b.map(|b| b as f64 / (1u64 << 30) as f64), 2);
        self.rows
            .iter()
            .map(|r| {
                let mode = match (&r.policy, r.prefetch) {
                    (Some(p), true) => format!("{} ({p}, prefetch)", r.mode),
                    (Some(p), false) => format!("{} ({p})", r.mode),
                    (None, _) => r.mode.clone(),
                };
                if let Some(why) = &r.failed {
                    let mut c: [String; 14] = std::array::from_fn(|_| "-".to_string());
                    c[0] = mode;
                    c[1] = why.clone();
                    return c;
                }
                [
                    mode,
                    opt(r.pp_tok_s, 3),
                    opt(r.tg_tok_s, 3),
                    opt(r.ms_per_token(), 0),
                    opt(r.disk_bytes_per_token.map(|b| b / 1e6), 1),
                    opt(r.hit_rate.map(|h| 100.0 * h), 1),
                    opt(r.read_gb_s, 2),
                    opt(r.read_gb_s.zip(disk).map(|(g, d)| 100.0 * g / d), 0),
                    opt(r.io_wait_ms_per_token, 0),
                    opt(r.compute_ms_per_token(), 0),
                    opt(r.cpu_ms_per_token, 0),
                    opt(disk.and_then(|d| r.over_floor(d)), 2),
                    gib(r.peak_rss_bytes),
                    gib(r.cgroup_peak_bytes),
                ]
            })
            .collect()
    }

    fn header(&self) -> String {
        let disk = |d: &Option<DiskRead>| {
            d.as_ref().map_or("-".into(), |d| {
                format!(
                    "{:.2} GB/s ({} reads of {:.1} MB, {} in flight{})",
                    d.gb_s,
                    d.reads,
                    d.chunk_bytes as f64 / 1e6,
                    d.in_flight,
                    if d.direct { ", O_DIRECT" } else { "" }
                )
            })
        };
        format!(
            "{} under a memory budget of {:.2} GiB; {}\ndisk, random expert-sized reads: before {}, after {}\n",
            self.model,
            self.budget_bytes as f64 / (1u64 << 30) as f64,
            self.cold_start,
            disk(&self.disk_before),
            disk(&self.disk_after)
        )
    }

    pub fn text(&self) -> String {
        self.header() + &aligned(&HEAD, self.cells())
    }

    pub fn markdown(&self) -> String {
        self.header().lines().map(|l| format!("{l}  \n")).collect::<String>() + "\n" + &md_table(&HEAD, self.cells())
    }
}

const HEAD: [&str; 14] = [
    "mode",
    "pp t/s",
    "tg t/s",
    "ms/token",
    "disk MB/token",
    "hit %",
    "read GB/s",
    "% of disk",
    "I/O wait ms/token",
    "compute ms/token",
    "CPU ms/token",
    "÷ floor",
    "RSS GiB",
    "cgroup peak GiB",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_larger_of_reading_and_computing() {
        let r =
            OffloadRow { tg_tok_s: Some(2.0), disk_bytes_per_token: Some(100e6), io_wait_ms_per_token: Some(300.0), ..Default::default() };
        // 500 ms per token: 200 ms computing, reading 100 MB at 0.4 GB/s takes 250 ms.
        assert_eq!(r.compute_ms_per_token(), Some(200.0));
        assert_eq!(r.over_floor(0.4), Some(2.0));
        assert_eq!(r.over_floor(1.0), Some(2.5));
    }
}
