//! Text in and out of the commands: which tokenizer a model uses, and reading input.

use std::io::Read;
use std::path::{Path, PathBuf};

use gptoss::Result;
use gptoss_model_gpt_oss::ModelSource;
use gptoss_tokenizer::Tokenizer;

/// The model directory's tokenizer.json when it has one, else the embedded o200k_harmony
/// (synthetic models and directories without one). Anything at that name counts as having
/// one — a dangling or looping symlink too, so that it is an error naming the file instead of
/// a silent fallback.
pub fn tokenizer_for(model: Option<&str>) -> Result<Tokenizer> {
    if let Some(ModelSource::Dir(dir)) = model.map(str::parse::<ModelSource>).transpose()?
        && std::fs::symlink_metadata(dir.join("tokenizer.json")).is_ok()
    {
        return Ok(Tokenizer::from_model_dir(&dir)?);
    }
    Ok(Tokenizer::o200k_harmony()?)
}

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
