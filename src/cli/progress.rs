//! Progress on stderr for long writes: one line rewritten in place as the percentage grows.

use std::io::Write;

/// A `progress(done, total)` callback that prints `\r{label}: N%` whenever N changes.
pub fn percent(label: String) -> impl FnMut(usize, usize) {
    let mut last = None;
    move |done, total| {
        let pct = done * 100 / total.max(1);
        if last != Some(pct) {
            last = Some(pct);
            eprint!("\r{label}: {pct}%");
            let _ = std::io::stderr().flush();
        }
    }
}
