//! `gptoss generate`: prefill a prompt (text or token ids), then sample and stream tokens —
//! as text for a text prompt, as ids for an id prompt (`--output` chooses otherwise).

use std::io::Write;
use std::time::Instant;

use gptoss::{Error, Result};
use gptoss_bench::machine::peak_rss_bytes;
use gptoss_engine::residency::ByteSize;
use gptoss_engine::{DType, GenerateOptions, check_request, generate};
use gptoss_kernels_cpu::Activations;
use gptoss_model_gpt_oss::source::tokenizer_for;
use gptoss_tokenizer::StreamDecoder;

use super::args::{ModelArgs, parse_ids, stream_summary};
use super::sampling::SamplingArgs;
use super::speculation::SpeculationArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt as raw text (no chat format; see `gptoss chat`).
    #[arg(long, conflicts_with = "prompt_tokens", required_unless_present = "prompt_tokens")]
    prompt: Option<String>,
    /// The prompt as token ids, e.g. 1,2,3.
    #[arg(long)]
    prompt_tokens: Option<String>,
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    speculation: SpeculationArgs,
    /// Token ids that end generation (default: the model's eos ids).
    #[arg(long)]
    stop_tokens: Option<String>,
    /// Print the generated tokens as `text` or `ids` (default: the form of the prompt).
    #[arg(long)]
    output: Option<String>,
}

/// Where generated tokens go.
enum Output<'t> {
    Ids { first: bool },
    Text(StreamDecoder<'t>),
}

pub fn run(a: Args) -> Result<()> {
    let tokenizer = tokenizer_for(Some(&a.model.source()?))?;
    let (prompt, text_prompt) = match (&a.prompt, &a.prompt_tokens) {
        (Some(text), _) => (tokenizer.encode_ordinary(text), true),
        (None, Some(ids)) => (parse_ids(ids, "--prompt-tokens")?, false),
        (None, None) => return Err(Error::Usage("give --prompt or --prompt-tokens".into())),
    };
    let as_text = match a.output.as_deref() {
        None => text_prompt,
        Some("text") => true,
        Some("ids") => false,
        Some(other) => return Err(Error::Usage(format!("--output {other}: expected text or ids"))),
    };
    let load_start = Instant::now();
    let model = a.model.source()?.open()?;
    let needed = prompt.len() + a.max_tokens;
    let opts = a.model.runtime(needed.max(4096).min(model.config.max_position_embeddings), DType::Bf16, Activations::Int8)?;
    let stop_tokens = match &a.stop_tokens {
        Some(s) => parse_ids(s, "--stop-tokens")?,
        None => model.config.eos_token_ids.clone(),
    };
    let sampling = a.sampling.params()?;
    // Fail on a bad request (or a draft that cannot draft for this model) before spending
    // time loading weights.
    check_request(&prompt, a.max_tokens, model.config.vocab_size, 0, opts.context.max_context)?;
    let speculation = a.speculation.open(&model)?;
    let bar = super::progress::bytes_bar(&format!("loading {}", model.source));
    let mut session = a.model.load(&model, &opts, &mut super::progress::updater(&bar))?;
    bar.finish_and_clear();
    let mut draft = speculation.map(|s| s.load(&mut session, &opts)).transpose()?;
    let info = session.model.backend_info();
    eprintln!(
        "loaded {} on {} ({}, {} threads) in {:.1} s; KV cache {:.1} MiB",
        model.source,
        info.name,
        info.device,
        info.threads,
        load_start.elapsed().as_secs_f64(),
        session.context.kv_cache_bytes() as f64 / (1u64 << 20) as f64
    );

    let options = GenerateOptions { max_tokens: a.max_tokens, stop_tokens, sampling, seed: a.sampling.seed };
    let mut out = std::io::stdout().lock();
    let mut sink = if as_text { Output::Text(tokenizer.stream_decoder()) } else { Output::Ids { first: true } };
    let mut failure = None;
    let on_token = |t| {
        let written = match &mut sink {
            Output::Ids { first } => {
                let sep = if *first { "" } else { "," };
                *first = false;
                write!(out, "{sep}{t}").map_err(Error::from)
            }
            Output::Text(decoder) => decoder.push(t).map_err(Error::from).and_then(|s| out.write_all(s.as_bytes()).map_err(Error::from)),
        };
        // A closed stdout (e.g. `| head`) or an id the tokenizer lacks stops generation.
        match written.and_then(|_| out.flush().map_err(Error::from)) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    };
    let (stats, speculated) = match draft.as_mut() {
        Some(d) => {
            let (stats, spec) = d.generate(&mut session, &[], &prompt, &options, on_token)?;
            (stats, Some(spec))
        }
        None => (generate(session.lm()?.as_mut(), &prompt, &options, on_token)?, None),
    };
    match failure {
        // The reader went away (`| head`): a normal end.
        Some(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Some(e) => return Err(e),
        None => {}
    }
    if let Output::Text(decoder) = sink {
        write!(out, "{}", decoder.finish())?;
    }
    writeln!(out)?;
    // The first token comes from the prefill: decode is timed from the second on.
    let decode =
        if stats.generated_tokens > 1 { format!("decode {:.2} tok/s", stats.decode_tok_s()) } else { "no decode step".to_string() };
    eprintln!(
        "prompt {} tokens: prefill {:.2} tok/s, TTFT {:.0} ms; generated {} tokens: {decode}",
        stats.prompt_tokens,
        stats.prefill_tok_s(),
        stats.ttft.as_secs_f64() * 1e3,
        stats.generated_tokens,
    );
    if let (Some(d), Some(spec)) = (&draft, &speculated) {
        eprintln!("{}", d.report(&session, prompt.len() + stats.generated_tokens / 2, spec)?);
    }
    let streamed = stream_summary(&session.model.stream_stats(), stats.prompt_tokens + stats.generated_tokens);
    if !streamed.is_empty() {
        eprintln!("{streamed}");
    }
    if let (Some(budget), Some(rss)) = (&a.model.memory_budget, peak_rss_bytes()) {
        eprintln!("peak RSS {} ({rss} bytes) under a memory budget of {budget}", ByteSize(rss));
    }
    Ok(())
}
