//! `gptoss synth`: write a synthetic model directory.

use std::path::PathBuf;

use gptoss::{Error, Result};
use gptoss_model_gpt_oss::synth_writer::write_synthetic;
use gptoss_model_gpt_oss::synthetic::Preset;

use super::progress::{bytes_bar, updater};

#[derive(clap::Args)]
pub struct Args {
    /// tiny, 20b or 120b.
    #[arg(long)]
    preset: String,
    /// The directory to write (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    let preset = Preset::from_name(&a.preset).ok_or_else(|| Error::Usage(format!("--preset {}: expected tiny, 20b or 120b", a.preset)))?;
    let bar = bytes_bar(&format!("writing {}", a.out.display()));
    write_synthetic(preset, a.seed, &a.out, updater(&bar))?;
    bar.finish_and_clear();
    eprintln!("wrote synthetic:{} (seed {}) to {}", preset.name(), a.seed, a.out.display());
    Ok(())
}
