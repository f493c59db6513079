//! `gptoss quantize`: write a copy of a model with its attention and unembedding (or the
//! families named) quantized to int8 or int4, and say what it saves.

use std::path::PathBuf;
use std::time::Instant;

use gptoss::{Error, Result};
use gptoss_engine::WeightFormat;
use gptoss_model_gpt_oss::ModelSource;
use gptoss_model_gpt_oss::quantized_writer::write_quantized;
use gptoss_model_gpt_oss::weight_only::{WeightOnly, parse_families, parse_format};

use super::inspect::grouped;
use super::progress::{bytes_bar, updater};

#[derive(clap::Args)]
pub struct Args {
    /// A model directory or synthetic:tiny|20b|120b[@SEED].
    #[arg(long)]
    model: String,
    /// int8 (one scale per row) or int4 (one scale per group of inputs).
    #[arg(long)]
    weights: String,
    /// int4 group size: 32 (default), 64 or 128.
    #[arg(long)]
    group: Option<usize>,
    /// Tensor families to quantize, comma-separated: attention, unembedding, router. The MXFP4
    /// experts stay MXFP4.
    #[arg(long, default_value = "attention,unembedding")]
    include: String,
    /// The directory to write (created if missing; must be empty).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let usage = |flag: &str, e: String| Error::Usage(format!("{flag}: {e}"));
    let format = match (parse_format(&a.weights).map_err(|e| usage("--weights", e))?, a.group) {
        (f, None) => f,
        (WeightFormat::Int4 { .. }, Some(group)) if !a.weights.contains(':') => WeightFormat::Int4 { group },
        (_, Some(_)) => return Err(usage("--group", format!("applies to --weights int4 without a :GROUP, not to '{}'", a.weights))),
    };
    let families = parse_families(&a.include).map_err(|e| usage("--include", e))?;
    let q = WeightOnly::new(format, &families).map_err(|e| usage("--weights/--group/--include", e))?;
    let source: ModelSource = a.model.parse()?;
    let model = source.open()?;

    let start = Instant::now();
    let bar = bytes_bar(&format!("quantizing {source} to {format} → {}", a.out.display()));
    let report = write_quantized(&model, q, &a.out, updater(&bar))?;
    bar.finish_and_clear();

    let names: Vec<&str> = q.families().iter().map(|f| f.name()).collect();
    let change = |before: f64, after: f64| format!("{:+.1} %", (after / before - 1.0) * 100.0);
    println!(
        "quantized     {} matrices ({}) of {source} to {format} in {:.1} s",
        report.matrices,
        names.join(", "),
        start.elapsed().as_secs_f64()
    );
    println!(
        "tensor bytes  {} → {} ({})",
        grouped(report.bytes_before),
        grouped(report.bytes_after),
        change(report.bytes_before as f64, report.bytes_after as f64)
    );
    println!(
        "per token     {} → {} ({}) weight bytes read per decoded token at batch 1",
        grouped(report.per_token_before.round() as usize),
        grouped(report.per_token_after.round() as usize),
        change(report.per_token_before, report.per_token_after)
    );
    if !report.other_files.is_empty() {
        println!("other files   {}", report.other_files.join(", "));
    }
    println!("wrote         {}", a.out.display());
    Ok(())
}
