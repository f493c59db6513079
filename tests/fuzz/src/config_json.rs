//! Any bytes as `config.json`: a list of problems, or a config from which the rope table, the
//! per-layer windows and the memory figures can be computed, and which written back out (as
//! `gptoss synth` writes configs) reads again.

use gptoss_engine::DType;
use gptoss_model_gpt_oss::GptOssConfig;
use gptoss_model_gpt_oss::memory::{context_bytes, working_bytes};
use gptoss_model_gpt_oss::synthetic::config_json;

/// Layers a written config lists one by one; beyond this only the rule is exercised (a config
/// may claim 2^40 layers, and writing their list is the synthetic writer's job, not a load's).
const LISTED_LAYERS: usize = 4096;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = GptOssConfig::from_json(text) else { return };
    let _ = c.rope().table();
    let last = c.num_hidden_layers - 1;
    let _ = (c.window(0), c.window(last), c.sliding_layers());
    let _ = working_bytes(&c, 128);
    if c.num_hidden_layers <= LISTED_LAYERS {
        let _ = context_bytes(&c, 4096, 128, DType::Bf16);
        let written = config_json(&c).to_string();
        if let Err(problems) = GptOssConfig::from_json(&written) {
            panic!("an accepted config wrote one that is refused: {problems:?}\n{written}");
        }
    }
}
