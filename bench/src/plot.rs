//! An SVG of the results: decode tok/s against context depth for each configuration, and the
//! share of one decode step taken by each op.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::results::Results;

const W: f64 = 900.0;
const PANEL_H: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 260.0;
const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" upper bound for an axis: 1, 2 or 5 × a power of ten.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|&m| m >= v).unwrap_or(10.0 * p)
}

pub fn svg(res: &Results) -> String {
    let ops_h = if res.ops.is_empty() { 0.0 } else { 60.0 + 24.0 * res.ops.len() as f64 };
    let height = PANEL_H + ops_h + 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    depth_panel(&mut s, res);
    if !res.ops.is_empty() {
        ops_panel(&mut s, res, PANEL_H + 20.0);
    }
    s.push_str("</svg>\n");
    s
}

fn depth_panel(s: &mut String, res: &Results) {
    let (top, bottom) = (40.0, PANEL_H - 40.0);
    let (x0, x1) = (LEFT, W - RIGHT);
    let _ = writeln!(s, "<text x=\"{x0}\" y=\"22\" font-size=\"15\">Decode tok/s vs context depth</text>");
    let mut series: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for r in &res.rows {
        if let Some(t) = r.tg_tok_s {
            series
                .entry(format!("{} {} ({}) {} {}t", r.model, r.backend, r.isa_or_device, r.weights, r.threads))
                .or_default()
                .push((r.depth, t));
        }
    }
    let max_depth = series.values().flatten().map(|p| p.0).max().unwrap_or(0).max(1) as f64;
    let max_t = nice_max(series.values().flatten().map(|p| p.1).fold(0.0, f64::max));
    let x = |d: usize| x0 + (x1 - x0) * d as f64 / max_depth;
    let y = |t: f64| bottom - (bottom - top) * t / max_t;
    let _ = writeln!(s, "<line x1=\"{x0}\" y1=\"{bottom}\" x2=\"{x1}\" y2=\"{bottom}\" stroke=\"black\"/>");
    let _ = writeln!(s, "<line x1=\"{x0}\" y1=\"{top}\" x2=\"{x0}\" y2=\"{bottom}\" stroke=\"black\"/>");
    for i in 0..=4 {
        let t = max_t * i as f64 / 4.0;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", x0 - 6.0, y(t) + 4.0, fmt_num(t));
        let d = (max_depth * i as f64 / 4.0).round() as usize;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{d}</text>", x(d), bottom + 16.0);
    }
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">context depth (tokens)</text>", (x0 + x1) / 2.0, bottom + 34.0);
    for (i, (name, mut pts)) in series.into_iter().enumerate() {
        pts.sort_by_key(|p| p.0);
        let c = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts.iter().map(|&(d, t)| format!("{:.1},{:.1}", x(d), y(t))).collect();
        let _ = writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>", path.join(" "));
        for &(d, t) in &pts {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{c}\"><title>{} @d{d}: {t:.2} tok/s</title></circle>",
                x(d),
                y(t),
                esc(&name)
            );
        }
        let ly = top + 18.0 * i as f64;
        let _ = writeln!(s, "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{c}\"/>", x1 + 16.0, ly - 9.0);
        let _ = writeln!(s, "<text x=\"{}\" y=\"{ly}\">{}</text>", x1 + 32.0, esc(&name));
    }
}

fn ops_panel(s: &mut String, res: &Results, top: f64) {
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"15\">Share of one decode step by op ({})</text>",
        top + 16.0,
        esc(&res.ops[0].model)
    );
    let label_w = 190.0;
    let (x0, x1) = (LEFT + label_w, W - 80.0);
    for (i, o) in res.ops.iter().enumerate() {
        let y = top + 36.0 + 24.0 * i as f64;
        let w = (x1 - x0) * o.share_pct / 100.0;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", x0 - 8.0, y + 13.0, esc(&o.op));
        let _ = writeln!(s, "<rect x=\"{x0}\" y=\"{y}\" width=\"{w:.1}\" height=\"17\" fill=\"{}\"/>", COLORS[i % COLORS.len()]);
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\">{:.1}% ({:.2} ms)</text>", x0 + w + 6.0, y + 13.0, o.share_pct, o.ms_per_token);
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == v.round() { format!("{v:.0}") } else { format!("{v:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;
    use crate::results::{Machine, OpRow};

    #[test]
    fn the_svg_has_a_point_per_row_and_a_bar_per_op() {
        let mut deep = row();
        deep.depth = 4096;
        deep.tg_tok_s = Some(7.0);
        let res = Results {
            machine: Machine { cpu: "c".into(), cores: 1, memory_bytes: 0, os: "o".into(), gptoss_version: "v".into(), date: "d".into() },
            rows: vec![row(), deep],
            ops: vec![OpRow {
                model: "m".into(),
                op: "moe_experts <a&b>".into(),
                calls_per_token: 24.0,
                ms_per_token: 50.0,
                share_pct: 45.0,
                bytes_per_token: None,
                gb_s: None,
            }],
            speculative: vec![],
        };
        let svg = svg(&res);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("moe_experts &lt;a&amp;b&gt;"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(0.18), 0.2);
    }
}
