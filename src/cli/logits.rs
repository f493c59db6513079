//! `gptoss logits`: one JSON object `{"logits": [[...], ...]}`, a row of vocab_size floats per
//! input position. The KV cache is f32 by default so the figures are as exact as the engine.

use std::io::Write;

use gptoss::Result;
use gptoss_engine::{DType, Logits, prefill_chunks};
use gptoss_kernels_cpu::Activations;

use super::args::{ModelArgs, parse_ids};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The token ids, e.g. 1,2,3.
    #[arg(long)]
    tokens: String,
}

pub fn run(a: Args) -> Result<()> {
    let tokens = parse_ids(&a.tokens, "--tokens")?;
    let model = a.model.source()?.open()?;
    let opts = a.model.runtime(tokens.len(), DType::F32, Activations::F32)?;
    let mut session = a.model.load(&model, &opts, &mut |_, _| {})?;
    let mut lm = session.lm()?;
    let vocab = lm.vocab_size();
    let mut row = vec![0f32; vocab];
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    out.write_all(b"{\"logits\": [")?;
    prefill_chunks(lm.as_mut(), &tokens, Logits::All, |lm, start, chunk| {
        for i in 0..chunk.len() {
            lm.logits(i, &mut row)?;
            out.write_all(if start + i == 0 { b"[" } else { b", [" })?;
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    out.write_all(b", ")?;
                }
                serde_json::to_writer(&mut out, v).map_err(std::io::Error::other)?;
            }
            out.write_all(b"]")?;
        }
        Ok::<(), gptoss::Error>(())
    })?;
    out.write_all(b"]}\n")?;
    out.flush()?;
    Ok(())
}
