//! Sampling options shared by `generate` and `chat`.

use gptoss::Result;
use gptoss_engine::SamplingParams;

#[derive(clap::Args)]
pub struct SamplingArgs {
    /// 0 samples greedily.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// 0 disables the top-k cut.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn params(&self) -> Result<SamplingParams> {
        let p = SamplingParams { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p };
        p.validate()?;
        Ok(p)
    }
}
