//! Command-line parsing and dispatch; one file per subcommand.

mod args;
mod eval;
mod generate;
mod inspect;
mod logits;
mod progress;
mod quantize;
mod synth;

use clap::{Parser, Subcommand};
use gptoss::Result;

#[derive(Parser)]
#[command(name = "gptoss", version = env!("GPTOSS_VERSION"), about = "A hand-written inference engine for OpenAI's gpt-oss models")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate tokens from a prompt.
    Generate(generate::Args),
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
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Logits(a) => logits::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Eval(a) => eval::run(a),
    }
}
