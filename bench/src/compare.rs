//! Comparing two result files row by row: the regression check.

use crate::results::Results;

/// One line per row present in both files: the new/old ratio of each rate.
pub fn compare(old: &Results, new: &Results) -> String {
    let ratio = |n: Option<f64>, o: Option<f64>| match (n, o) {
        (Some(n), Some(o)) if o > 0.0 => format!("{:.3}×", n / o),
        _ => "-".into(),
    };
    let mut out = String::new();
    for r in &new.rows {
        match old.rows.iter().find(|o| o.key() == r.key()) {
            Some(o) => out.push_str(&format!(
                "{}: pp {}  tg {}  TTFT {}\n",
                r.key(),
                ratio(r.pp_tok_s, o.pp_tok_s),
                ratio(r.tg_tok_s, o.tg_tok_s),
                ratio(o.ttft_ms, r.ttft_ms)
            )),
            None => out.push_str(&format!("{}: not in the old results\n", r.key())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Machine;
    use crate::results::tests::row;

    #[test]
    fn ratios_are_new_over_old() {
        let m = Machine { cpu: "c".into(), cores: 1, memory_bytes: 0, os: "o".into(), gptoss_version: "v".into(), date: "d".into() };
        let old = Results { machine: m.clone(), rows: vec![row()], ops: vec![], speculative: vec![] };
        let mut faster = row();
        faster.tg_tok_s = Some(18.0);
        faster.ttft_ms = Some(800.0);
        let mut other = row();
        other.depth = 4096;
        let new = Results { machine: m, rows: vec![faster, other], ops: vec![], speculative: vec![] };
        let s = compare(&old, &new);
        assert!(s.contains("tg 2.000×") && s.contains("TTFT 2.000×") && s.contains("pp 1.000×"), "{s}");
        assert!(s.contains("@d4096: not in the old results"), "{s}");
    }
}
