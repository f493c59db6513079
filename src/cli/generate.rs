//! `gptoss generate`: prefill a prompt, then sample and stream tokens.

use std::io::Write;
use std::time::Instant;

use gptoss::{Engine, Result};
use gptoss_engine::{DType, GenerateOptions, SamplingParams, check_request, generate};

use super::args::{ModelArgs, parse_ids};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt as token ids, e.g. 1,2,3.
    #[arg(long)]
    prompt_tokens: String,
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// 0 samples greedily.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// 0 disables the top-k cut.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Token ids that end generation (default: the model's eos ids).
    #[arg(long)]
    stop_tokens: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let prompt = parse_ids(&a.prompt_tokens, "--prompt-tokens")?;
    let load_start = Instant::now();
    let model = a.model.source()?.open()?;
    let needed = prompt.len() + a.max_tokens;
    let opts = a.model.runtime(needed.max(4096).min(model.config.max_position_embeddings), DType::Bf16)?;
    let stop_tokens = match &a.stop_tokens {
        Some(s) => parse_ids(s, "--stop-tokens")?,
        None => model.config.eos_token_ids.clone(),
    };
    let sampling = SamplingParams { temperature: a.temperature, top_k: a.top_k, top_p: a.top_p };
    // Fail on a bad request before spending time loading weights.
    sampling.validate()?;
    check_request(&prompt, a.max_tokens, model.config.vocab_size, 0, opts.context.max_context)?;
    let bar = super::progress::bytes_bar(&format!("loading {}", model.source));
    let mut engine = Engine::load_with_progress(&model, &opts, &mut super::progress::updater(&bar))?;
    bar.finish_and_clear();
    let info = engine.model.backend_info();
    eprintln!(
        "loaded {} on {} ({}, {} threads) in {:.1} s; KV cache {:.1} MiB",
        model.source,
        info.name,
        info.device,
        info.threads,
        load_start.elapsed().as_secs_f64(),
        engine.context.kv_cache_bytes() as f64 / (1u64 << 20) as f64
    );

    let options = GenerateOptions { max_tokens: a.max_tokens, stop_tokens, sampling, seed: a.seed };
    let mut out = std::io::stdout().lock();
    let mut first = true;
    let stats = generate(engine.lm()?.as_mut(), &prompt, &options, |t| {
        let sep = if first { "" } else { "," };
        first = false;
        // A closed stdout (e.g. `| head`) stops generation.
        write!(out, "{sep}{t}").and_then(|_| out.flush()).is_ok()
    })?;
    writeln!(out)?;
    eprintln!(
        "prompt {} tokens: prefill {:.2} tok/s, TTFT {:.0} ms; generated {} tokens: decode {:.2} tok/s",
        stats.prompt_tokens,
        stats.prefill_tok_s(),
        stats.ttft.as_secs_f64() * 1e3,
        stats.generated_tokens,
        stats.decode_tok_s()
    );
    Ok(())
}
