//! The tables a person reads: one row per configuration, then where a decode step's time goes.

use crate::results::{OpRow, Results, Row};

pub(crate) fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn rate(v: Option<f64>, spread: Option<crate::stats::Spread>) -> String {
    match (v, spread) {
        (Some(x), Some(s)) if s.max > s.min => format!("{x:.2} ± {:.1}%", s.half_range_pct()),
        (Some(x), _) => format!("{x:.2}"),
        _ => "-".into(),
    }
}

const HEAD: [&str; 12] =
    ["model", "backend", "weights", "threads", "test", "pp t/s", "tg t/s", "TTFT ms", "GB/token", "GB/s", "% peak", "RSS GiB"];

fn cells(r: &Row) -> [String; 12] {
    let test = format!("pp{} tg{} @d{}", r.prompt_tokens, r.gen_tokens, r.depth);
    [
        r.model.clone(),
        format!("{} ({})", r.backend, r.isa_or_device),
        r.weights.clone(),
        r.threads.to_string(),
        test,
        rate(r.pp_tok_s, r.pp_spread),
        rate(r.tg_tok_s, r.tg_spread),
        opt(r.ttft_ms, 0),
        format!("{:.3}", r.bytes_per_token / 1e9),
        opt(r.gb_s, 1),
        opt(r.pct_of_peak, 1),
        opt(r.peak_rss_bytes.map(|b| b as f64 / (1u64 << 30) as f64), 2),
    ]
}

fn op_cells(o: &OpRow) -> [String; 7] {
    [
        o.model.clone(),
        o.op.clone(),
        format!("{:.1}", o.calls_per_token),
        format!("{:.3}", o.ms_per_token),
        format!("{:.1}", o.share_pct),
        opt(o.bytes_per_token.map(|b| b / 1e6), 1),
        opt(o.gb_s, 1),
    ]
}

const OP_HEAD: [&str; 7] = ["model", "op", "calls/token", "ms/token", "share %", "MB/token", "GB/s"];

/// The bytes split by family, once per model, weight format and depth (the activations and
/// the prompt length do not change them).
fn bytes_lines(res: &Results) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in res.rows.iter().map(bytes_line) {
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}

/// `model (weights) @dN: GB/token = family + …`, in MB for models under a GB per token.
fn bytes_line(r: &Row) -> String {
    let (unit, scale, digits) = if r.bytes_per_token >= 1e9 { ("GB", 1e9, 3) } else { ("MB", 1e6, 2) };
    let fam: Vec<String> =
        r.bytes_by_family.iter().filter(|(_, b)| **b > 0.0).map(|(k, b)| format!("{k} {:.digits$}", b / scale)).collect();
    format!("{} ({}) @d{}: {unit}/token = {}\n", r.model, r.weights, r.depth, fam.join(" + "))
}

/// Plain text, columns aligned.
pub fn text(res: &Results) -> String {
    let mut out = aligned(&HEAD, res.rows.iter().map(cells).collect());
    for line in bytes_lines(res) {
        out.push_str(&line);
    }
    if !res.ops.is_empty() {
        out.push('\n');
        out.push_str(&aligned(&OP_HEAD, res.ops.iter().map(op_cells).collect()));
    }
    out
}

/// GitHub-flavoured markdown.
pub fn markdown(res: &Results) -> String {
    let m = &res.machine;
    let mut out = format!(
        "Machine: {} ({} cores, {:.0} GiB), {}, gptoss {}, {}\n\n",
        m.cpu,
        m.cores,
        m.memory_bytes as f64 / (1u64 << 30) as f64,
        m.os,
        m.gptoss_version,
        m.date
    );
    let mut peaks: Vec<String> = Vec::new();
    for p in res.rows.iter().filter_map(|r| r.peak_gb_s).map(|p| format!("{p:.1}")) {
        if !peaks.contains(&p) {
            peaks.push(p);
        }
    }
    if !peaks.is_empty() {
        out.push_str(&format!("Peak bandwidth measured in this run (the % peak column's base): {} GB/s\n\n", peaks.join(", ")));
    }
    out.push_str(&md_table(&HEAD, res.rows.iter().map(cells).collect()));
    out.push('\n');
    for line in bytes_lines(res) {
        out.push_str(&format!("- {line}"));
    }
    if !res.ops.is_empty() {
        out.push('\n');
        out.push_str(&md_table(&OP_HEAD, res.ops.iter().map(op_cells).collect()));
    }
    out
}

pub(crate) fn aligned<const N: usize>(head: &[&str; N], rows: Vec<[String; N]>) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(head.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub(crate) fn md_table<const N: usize>(head: &[&str; N], rows: Vec<[String; N]>) -> String {
    let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(N));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Machine;
    use crate::results::tests::row;

    #[test]
    fn tables_show_every_row() {
        let mut r = row();
        r.derive_bandwidth();
        let res = Results {
            machine: Machine {
                cpu: "cpu".into(),
                cores: 2,
                memory_bytes: 1 << 30,
                os: "linux".into(),
                gptoss_version: "0".into(),
                date: "d".into(),
            },
            rows: vec![r],
            ops: vec![OpRow {
                model: "m".into(),
                op: "matmul".into(),
                calls_per_token: 1.0,
                ms_per_token: 2.0,
                share_pct: 50.0,
                bytes_per_token: None,
                gb_s: None,
            }],
        };
        let t = text(&res);
        assert!(t.contains("pp64 tg16 @d0") && t.contains("33.3") && t.contains("matmul"), "{t}");
        let m = markdown(&res);
        assert!(m.lines().filter(|l| l.starts_with('|')).count() == 6, "{m}");
    }
}
