//! Routing traces: the experts each forward step chose, per layer and token, as written by
//! `--record-routing FILE` from any model (real ones included) and replayed by the simulator.
//!
//! A text format, versioned (an unknown version is refused):
//!
//! ```text
//! gptoss-routing-trace 1
//! model synthetic:120b-L6?routing=skewed
//! layers 6 experts 128 top_k 4
//! step 3
//! 0 5,9,17,2 5,9,1,2 44,9,17,3
//! 1 ...
//! ```
//!
//! Each `step N` (one forward call of N tokens) is followed by one line per layer: the layer
//! index, then each token's `top_k` expert ids in the router's order.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

const MAGIC: &str = "gptoss-routing-trace";
const VERSION: u32 = 1;

/// One forward step: `ids[layer]` is `[tokens, top_k]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    pub tokens: usize,
    pub ids: Vec<Vec<u32>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The model the trace was recorded from, as named when it was loaded.
    pub model: String,
    pub layers: usize,
    pub experts: usize,
    pub top_k: usize,
    pub steps: Vec<TraceStep>,
}

fn bad(path: &Path, line: usize, detail: impl std::fmt::Display) -> EngineError {
    EngineError::invalid(format!("{}:{line}: {detail}", path.display()))
}

impl Trace {
    pub fn read(path: &Path) -> Result<Trace> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::invalid(format!("{}: {e}", path.display())))?;
        // (line number, text) of every line, numbered from 1.
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let mut next = |what: &str| lines.next().ok_or_else(|| EngineError::invalid(format!("{}: ends before {what}", path.display())));
        let (i, head) = next("the header")?;
        match head.split_once(' ') {
            Some((MAGIC, v)) if v.trim() == VERSION.to_string() => {}
            Some((MAGIC, v)) => return Err(bad(path, i, format!("trace version {v} (this build reads version {VERSION})"))),
            _ => return Err(bad(path, i, format!("not a routing trace (no '{MAGIC} {VERSION}' header)"))),
        }
        let (_, model_line) = next("the model line")?;
        let model = model_line.strip_prefix("model ").unwrap_or_default().to_string();
        let (i, shape) = next("the shape line")?;
        let words: Vec<&str> = shape.split_whitespace().collect();
        let (layers, experts, top_k) = match words.as_slice() {
            ["layers", l, "experts", e, "top_k", k] => match (l.parse(), e.parse(), k.parse()) {
                (Ok(l), Ok(e), Ok(k)) if l > 0 && e > 0 && k > 0 && k <= e => (l, e, k),
                _ => return Err(bad(path, i, "bad numbers in the shape line")),
            },
            _ => return Err(bad(path, i, "expected 'layers L experts E top_k K'")),
        };
        let mut trace = Trace { model, layers, experts, top_k, steps: Vec::new() };
        while let Ok((i, line)) = next("a step") {
            let tokens: usize = line
                .strip_prefix("step ")
                .and_then(|n| n.trim().parse().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(path, i, "expected 'step N'"))?;
            let mut ids = Vec::with_capacity(layers);
            for l in 0..layers {
                let (i, line) = next(&format!("layer {l} of a step"))?;
                let (index, groups) = line.split_once(' ').ok_or_else(|| bad(path, i, "expected 'LAYER ids…'"))?;
                if index.parse::<usize>().ok() != Some(l) {
                    return Err(bad(path, i, format!("expected layer {l}")));
                }
                let layer: Vec<u32> = groups
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<u32>().ok().filter(|&e| (e as usize) < experts))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad(path, i, format!("expert ids must be numbers below {experts}")))?;
                if layer.len() != tokens * top_k {
                    return Err(bad(path, i, format!("{} ids for {tokens} tokens of top-{top_k}", layer.len())));
                }
                ids.push(layer);
            }
            trace.steps.push(TraceStep { tokens, ids });
        }
        Ok(trace)
    }

    /// Tokens in all steps.
    pub fn tokens(&self) -> usize {
        self.steps.iter().map(|s| s.tokens).sum()
    }
}

/// Writes a trace step by step (`--record-routing`).
pub struct TraceWriter {
    out: BufWriter<std::fs::File>,
    path: PathBuf,
    layers: usize,
    top_k: usize,
}

impl TraceWriter {
    pub fn create(path: &Path, model: &str, layers: usize, experts: usize, top_k: usize) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| EngineError::invalid(format!("{}: {e}", path.display())))?;
        let mut w = TraceWriter { out: BufWriter::new(file), path: path.to_path_buf(), layers, top_k };
        w.emit(&format!("{MAGIC} {VERSION}\nmodel {model}\nlayers {layers} experts {experts} top_k {top_k}\n"))?;
        Ok(w)
    }

    fn emit(&mut self, s: &str) -> Result<()> {
        self.out.write_all(s.as_bytes()).map_err(|e| EngineError::invalid(format!("{}: {e}", self.path.display())))
    }

    /// Appends one step: `ids[layer]` is `[tokens, top_k]`. Flushed at once, so a trace is
    /// complete up to the last finished step whatever happens next.
    pub fn write_step(&mut self, ids: &[Vec<u32>]) -> Result<()> {
        let tokens = ids.first().map_or(0, |l| l.len() / self.top_k);
        if ids.len() != self.layers || ids.iter().any(|l| l.len() != tokens * self.top_k) {
            return Err(EngineError::invalid("a routing step needs every layer's ids for the same tokens"));
        }
        let mut s = format!("step {tokens}\n");
        for (l, layer) in ids.iter().enumerate() {
            s.push_str(&l.to_string());
            for token in layer.chunks(self.top_k) {
                s.push(' ');
                let t: Vec<String> = token.iter().map(|e| e.to_string()).collect();
                s.push_str(&t.join(","));
            }
            s.push('\n');
        }
        self.emit(&s)?;
        self.out.flush().map_err(|e| EngineError::invalid(format!("{}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_trace_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let mut w = TraceWriter::create(&path, "synthetic:tiny", 2, 8, 2).unwrap();
        w.write_step(&[vec![1, 2, 3, 4], vec![5, 6, 7, 0]]).unwrap();
        w.write_step(&[vec![1, 7], vec![2, 3]]).unwrap();
        assert!(w.write_step(&[vec![1, 7]]).is_err());
        drop(w);
        let t = Trace::read(&path).unwrap();
        assert_eq!((t.model.as_str(), t.layers, t.experts, t.top_k, t.tokens()), ("synthetic:tiny", 2, 8, 2, 3));
        assert_eq!(t.steps[1], TraceStep { tokens: 1, ids: vec![vec![1, 7], vec![2, 3]] });
    }

    #[test]
    fn bad_traces_are_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let check = |text: &str, want: &str| {
            std::fs::write(&path, text).unwrap();
            let e = Trace::read(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        };
        check("gptoss-routing-trace 2\n", "trace version 2");
        check("hello\n", "not a routing trace");
        check("gptoss-routing-trace 1\nmodel m\nlayers 1 experts 4 top_k 2\nstep 1\n0 1,9\n", ":5: expert ids must be numbers below 4");
        check("gptoss-routing-trace 1\nmodel m\nlayers 1 experts 4 top_k 2\nstep 2\n0 1,2\n", "2 ids for 2 tokens");
        check("gptoss-routing-trace 1\nmodel m\nlayers 2 experts 4 top_k 2\nstep 1\n0 1,2\n", "ends before layer 1");
    }
}
