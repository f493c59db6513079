//! Command-line parsing and dispatch; one file per subcommand.

mod args;
mod bench;
mod bench_offload;
mod bench_serve;
mod bench_speculative;
mod cache_sim;
mod chat;
mod concurrency;
mod eval;
mod generate;
mod inspect;
mod logits;
mod progress;
mod quantize;
mod sampling;
mod serve;
mod speculation;
mod synth;
mod text;
mod tokenize;

use clap::{Parser, Subcommand};
use gptoss::Result;

#[derive(Parser)]
#[command(name = "gptoss", version = env!("GPTOSS_VERSION"), about = "A hand-written inference engine for OpenAI's gpt-oss models")]
pub struct Cli {
    /// Print the system libraries a program linking libgptoss.a needs, and exit.
    #[arg(long)]
    print_link_flags: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark: tok/s, bytes per token, GB/s and % of the measured peak (default: synthetic:20b).
    Bench(bench::Args),
    /// Generate from a prompt (raw text or token ids).
    Generate(generate::Args),
    /// Chat interactively in the harmony format.
    Chat(chat::Args),
    /// Serve the model over an OpenAI-compatible HTTP API (chat completions, responses, completions).
    Serve(serve::Args),
    /// Print the token ids of stdin (or a file), comma-separated.
    Tokenize(text::TextArgs),
    /// Turn comma-separated token ids from stdin (or a file) back into the exact bytes.
    Detokenize(text::TextArgs),
    /// Print the logits of every position of a token sequence as JSON.
    Logits(logits::Args),
    /// Describe a model: config, tensors, bytes per decoded token.
    Inspect(inspect::Args),
    /// Write a synthetic model with the real shapes as a Hugging Face-layout directory.
    Synth(synth::Args),
    /// Write a copy of a model with attention and unembedding quantized to int8 or int4.
    Quantize(quantize::Args),
    /// Compare a model with a reference on one token stream: KL divergence, top-1, perplexity.
    Eval(eval::Args),
    /// Replay a routing trace (--record-routing) through the expert cache: hit rate per policy and pool size.
    CacheSim(cache_sim::Args),
}

/// What a static Rust library needs from the system, as rustc reports it for the target.
fn link_flags() -> &'static str {
    if cfg!(target_os = "linux") {
        "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
    } else if cfg!(target_os = "macos") {
        "-framework CoreFoundation -liconv -lSystem -lc -lm"
    } else {
        "-lpthread -ldl -lm"
    }
}

pub fn run(cli: Cli) -> Result<()> {
    if cli.print_link_flags {
        println!("{}", link_flags());
        return Ok(());
    }
    let Some(command) = cli.command else {
        return Err(gptoss::Error::Usage("no command given; try `gptoss --help` (the main one is `gptoss bench`)".into()));
    };
    match command {
        Command::Bench(a) => bench::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Tokenize(a) => tokenize::tokenize(a),
        Command::Detokenize(a) => tokenize::detokenize(a),
        Command::Logits(a) => logits::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Eval(a) => eval::run(a),
        Command::CacheSim(a) => cache_sim::run(a),
    }
}
