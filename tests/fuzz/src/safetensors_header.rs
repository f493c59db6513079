//! Any bytes as a safetensors file: an error, or tensors that lie inside the file, each
//! spanning exactly the bytes its dtype and shape need, none overlapping another.

use std::path::Path;

use gptoss_model_gpt_oss::safetensors::parse_header;

pub fn run(data: &[u8]) {
    let Ok(tensors) = parse_header(Path::new("fuzz.safetensors"), data) else { return };
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(tensors.len());
    for t in tensors.values() {
        assert!(t.start <= t.end && t.end <= data.len(), "{t:?} outside {} bytes", data.len());
        let bytes = t.shape.iter().try_fold(t.dtype.size(), |acc, &d| acc.checked_mul(d));
        assert_eq!(bytes, Some(t.end - t.start), "{t:?}");
        if t.end > t.start {
            spans.push((t.start, t.end));
        }
    }
    spans.sort_unstable();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlapping tensors accepted: {spans:?}");
}
