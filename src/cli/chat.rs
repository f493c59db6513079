//! `gptoss chat`: an interactive conversation in the harmony format. Each turn renders the
//! conversation, reuses the cached prefix it shares with the previous turn (rolling back the
//! rest), generates until `<|return|>` or `<|call|>`, parses the stream into messages and
//! prints the `final` channel (and the `analysis` channel with `--show-reasoning`).

use std::io::{BufRead, Write};

use gptoss::{Error, Result};
use gptoss_engine::{CausalLm, DType, GenerateOptions, generate};
use gptoss_kernels_cpu::Activations;
use gptoss_model_gpt_oss::harmony::{
    DeveloperContent, HarmonyEncoding, Message, ReasoningEffort, RenderOptions, Role, StreamParser, SystemContent,
};
use gptoss_model_gpt_oss::source::tokenizer_for;

use super::args::ModelArgs;
use super::sampling::SamplingArgs;
use super::speculation::SpeculationArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Instructions for the model (rendered in the developer message, as harmony expects).
    #[arg(long)]
    system: Option<String>,
    /// Reasoning effort: low, medium or high.
    #[arg(long, default_value = "medium")]
    reasoning: String,
    /// Also print the analysis channel (the chain of thought), on stderr.
    #[arg(long)]
    show_reasoning: bool,
    /// Tokens per reply at most.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    speculation: SpeculationArgs,
}

pub fn run(a: Args) -> Result<()> {
    let tokenizer = tokenizer_for(Some(&a.model.source()?))?;
    let harmony = HarmonyEncoding::new(&tokenizer)?;
    let effort = match a.reasoning.as_str() {
        "low" => ReasoningEffort::Low,
        "medium" => ReasoningEffort::Medium,
        "high" => ReasoningEffort::High,
        other => return Err(Error::Usage(format!("--reasoning {other}: expected low, medium or high"))),
    };
    let sampling = a.sampling.params()?;
    let model = a.model.source()?.open()?;
    let opts = a.model.runtime(8192.min(model.config.max_position_embeddings), DType::Bf16, Activations::Int8)?;
    let speculation = a.speculation.open(&model)?;
    let mut session = a.model.load(&model, &opts, &mut |_, _| {})?;
    let mut draft = speculation.map(|s| s.load(&mut session, &opts)).transpose()?;
    let info = session.model.backend_info();
    eprintln!("{} on {} ({}); type a message, an empty line or end of input quits", model.source, info.name, info.device);

    let mut conversation = vec![Message::new(Role::System, SystemContent::default().with_reasoning_effort(effort))];
    if let Some(instructions) = &a.system {
        conversation.push(Message::new(Role::Developer, DeveloperContent::default().with_instructions(instructions.as_str())));
    }
    let stop_tokens = harmony.stop_tokens_for_assistant_actions().to_vec();
    // The tokens the context holds, to reuse the prefix the next prompt shares with them.
    let mut cached: Vec<u32> = Vec::new();
    let stdin = std::io::stdin();
    for (turn, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            break;
        }
        conversation.push(Message::new(Role::User, line.as_str()));
        let prompt = harmony.render_for_completion(&conversation, Role::Assistant, RenderOptions::default())?;
        let fresh = reuse_prefix(session.lm()?.as_mut(), &mut cached, &prompt)?;

        let mut parser = StreamParser::new(harmony, Some(Role::Assistant));
        let mut generated = Vec::new();
        let mut broken = None;
        let mut out = std::io::stdout().lock();
        let options =
            GenerateOptions { max_tokens: a.max_tokens, stop_tokens: stop_tokens.clone(), sampling, seed: a.sampling.seed + turn as u64 };
        let on_token = |t| {
            generated.push(t);
            if broken.is_none() {
                match parser.push(t) {
                    Ok(()) => show(&parser, a.show_reasoning, &mut out),
                    Err(e) => broken = Some(e),
                }
            }
            true
        };
        match draft.as_mut() {
            Some(d) => {
                let (_, spec) = d.generate(&mut session, &cached, &prompt[fresh..], &options, on_token)?;
                eprintln!("{}", d.report(&session, cached.len(), &spec)?);
            }
            None => {
                generate(session.lm()?.as_mut(), &prompt[fresh..], &options, on_token)?;
            }
        }
        cached.extend_from_slice(&prompt[fresh..]);
        cached.extend_from_slice(&generated[..generated.len() - 1]);
        writeln!(out)?;
        let parsed = match broken {
            None => parser.finish(),
            Some(e) => Err(e),
        };
        match parsed {
            Ok(messages) => conversation.extend(messages),
            Err(e) => eprintln!(
                "(the reply is not in the harmony format: {e}; models with random weights reply like this)\n{}",
                tokenizer.decode_lossy(&generated)?
            ),
        }
    }
    Ok(())
}

/// Rolls the context back to the longest prefix of `prompt` it already holds and returns that
/// length (the start of what must still be run). Falls back to an empty context when a sliding
/// window's ring no longer holds what the rollback needs. At least one token is left to run.
fn reuse_prefix(lm: &mut dyn CausalLm, cached: &mut Vec<u32>, prompt: &[u32]) -> Result<usize> {
    let shared = cached.iter().zip(prompt).take_while(|(a, b)| a == b).count().min(prompt.len() - 1);
    let keep = if lm.rollback(shared).is_ok() {
        shared
    } else {
        lm.rollback(0)?;
        0
    };
    cached.truncate(keep);
    Ok(keep)
}

/// Prints what the last token added: final-channel text on stdout, analysis on stderr when
/// asked for.
fn show(parser: &StreamParser, show_reasoning: bool, out: &mut impl Write) {
    let delta = parser.last_content_delta();
    if delta.is_empty() {
        return;
    }
    match parser.current_header().and_then(|h| h.channel.as_deref()) {
        Some("final") => {
            let _ = out.write_all(delta.as_bytes()).and_then(|_| out.flush());
        }
        Some("analysis") if show_reasoning => eprint!("{delta}"),
        _ => {}
    }
}
