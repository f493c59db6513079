//! Any bytes as `model.safetensors.index.json`: an error, or a weight map whose every file is a
//! plain name inside the model's directory.

use std::path::Path;

use gptoss_model_gpt_oss::checkpoint::parse_index;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(entries) = parse_index(Path::new("model.safetensors.index.json"), text) else { return };
    assert!(!entries.is_empty());
    for (tensor, file) in &entries {
        let plain = !file.is_empty() && !file.contains(['/', '\\']) && file != "." && file != "..";
        assert!(plain, "weight_map['{tensor}'] = {file:?} leaves the directory");
    }
}
