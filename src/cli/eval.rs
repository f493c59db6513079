//! `gptoss eval`: a model against a reference on one token stream — mean and max KL divergence
//! of the next-token distributions, top-1 agreement, and each one's perplexity when the tokens
//! are real text.

use std::path::PathBuf;

use gptoss::{Error, Result, Session};
use gptoss_engine::fidelity::{Fidelity, compare};
use gptoss_engine::{DType, Rng};
use gptoss_kernels_cpu::Activations;
use serde_json::json;

use super::args::{ModelArgs, parse_ids};

#[derive(clap::Args)]
pub struct Args {
    /// The model under test, and how both run (`--weights` applies to this model only).
    #[command(flatten)]
    model: ModelArgs,
    /// The reference model (same vocabulary), run with its weights as stored.
    #[arg(long)]
    reference: String,
    /// A file of token ids of real text (comma or whitespace separated); perplexities are
    /// reported for it.
    #[arg(long, conflicts_with = "synthetic_text")]
    tokens: Option<PathBuf>,
    /// N uniformly random token ids instead (no perplexity: they are not text).
    #[arg(long, required_unless_present = "tokens")]
    synthetic_text: Option<usize>,
    /// Seed of the synthetic text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let model = a.model.source()?.open()?;
    let reference = a.reference.parse::<gptoss_model_gpt_oss::ModelSource>()?.open()?;
    let (tokens, text) = match (&a.tokens, a.synthetic_text) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("--tokens {}: {e}", path.display())))?;
            (parse_ids(&text, &format!("--tokens {}", path.display()))?, true)
        }
        (None, Some(n)) => {
            let mut rng = Rng::new(a.seed);
            let vocab = model.config.vocab_size as u64;
            ((0..n).map(|_| (rng.next_u64() % vocab) as u32).collect(), false)
        }
        (None, None) => return Err(Error::Usage("give --tokens FILE or --synthetic-text N".into())),
    };

    // f32 KV caches by default: the comparison should see the weights, not cache rounding.
    let opts = a.model.runtime(tokens.len(), DType::F32, Activations::F32)?;
    let mut ref_opts = opts;
    // The reference is exact: its weights as stored, times f32 activations.
    ref_opts.load.weights = None;
    ref_opts.cpu_activations = Activations::F32;
    let mut m = a.model.load(&model, &opts, &mut |_, _| {})?;
    let mut r = Session::load(&reference, &ref_opts)?;
    let (mut lm, mut lr) = (m.lm()?, r.lm()?);
    let f = compare(lm.as_mut(), lr.as_mut(), &tokens)?;

    let weights = opts.load.weights.map(|q| format!(" ({} loaded as {})", names(&q), q.format)).unwrap_or_default();
    let stream = match &a.tokens {
        Some(p) => format!("{} tokens of text from {}", tokens.len(), p.display()),
        None => format!("{} random tokens (seed {})", tokens.len(), a.seed),
    };
    if a.json {
        println!("{}", report_json(&a, &f, text));
    } else {
        println!("model       {}{weights}", a.model.model);
        println!("reference   {}", a.reference);
        println!("stream      {stream}");
        println!("KL(ref‖model) mean {:.4e} nats, max {:.4e} (position {})", f.kl_mean, f.kl_max, f.kl_max_position);
        println!("top-1       {}/{} positions agree ({:.2} %)", f.top1_agree, f.positions, 100.0 * f.top1_rate());
        if text {
            println!("perplexity  model {:.4}, reference {:.4}", f.perplexity_model(), f.perplexity_reference());
        }
    }
    Ok(())
}

fn names(q: &gptoss_model_gpt_oss::weight_only::WeightOnly) -> String {
    q.families().iter().map(|f| f.name()).collect::<Vec<_>>().join(" and ")
}

fn report_json(a: &Args, f: &Fidelity, text: bool) -> serde_json::Value {
    let mut v = json!({
        "model": a.model.model,
        "weights": a.model.weights,
        "reference": a.reference,
        "positions": f.positions,
        "kl_mean": f.kl_mean,
        "kl_max": f.kl_max,
        "kl_max_position": f.kl_max_position,
        "top1_agree": f.top1_agree,
        "top1_rate": f.top1_rate(),
    });
    if text {
        v["perplexity_model"] = json!(f.perplexity_model());
        v["perplexity_reference"] = json!(f.perplexity_reference());
    }
    v
}
