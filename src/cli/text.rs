//! Text in and out of the commands: the tokenizer `tokenize` and `detokenize` use, and reading
//! input.

use std::io::Read;
use std::path::{Path, PathBuf};

use gptoss::Result;
use gptoss_model_gpt_oss::ModelSource;
use gptoss_model_gpt_oss::source::tokenizer_for;
use gptoss_tokenizer::Tokenizer;

/// The bytes of `file`, or of stdin when `None`.
pub fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match file {
        Some(path) => bytes = std::fs::read(path).map_err(|e| gptoss::Error::Usage(format!("{}: {e}", path.display())))?,
        None => {
            std::io::stdin().read_to_end(&mut bytes)?;
        }
    }
    Ok(bytes)
}

/// Options shared by `tokenize` and `detokenize`.
#[derive(clap::Args)]
pub struct TextArgs {
    /// A model directory whose tokenizer.json to use (default: the embedded o200k_harmony).
    #[arg(long)]
    pub model: Option<String>,
    /// Read this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

impl TextArgs {
    /// The tokenizer of `--model` (see `tokenizer_for`).
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let source = self.model.as_deref().map(str::parse::<ModelSource>).transpose()?;
        Ok(tokenizer_for(source.as_ref())?)
    }
}
