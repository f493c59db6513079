//! `gptoss inspect`: the config, a tensor summary, total bytes and bytes read per decoded token;
//! with `--check`, a scan of every weight for NaN and infinities.

use std::collections::BTreeMap;

use gptoss::Result;
use gptoss_model_gpt_oss::ModelSource;
use gptoss_model_gpt_oss::accounting::{stored_formats, token_bytes};
use gptoss_model_gpt_oss::scan::check_finite;
use gptoss_model_gpt_oss::tensors::expected_tensors;

use super::args::parse_weights;
use super::progress::{counter_bar, updater};

#[derive(clap::Args)]
pub struct Args {
    /// A model directory or synthetic:tiny|20b|120b[@SEED].
    model: String,
    /// Count bytes per token as if loaded with `--weights` (int8, int4, int4:GROUP).
    #[arg(long, default_value = "native")]
    weights: String,
    /// Scan every weight for NaN and infinities; fails naming the first (tensor and index).
    #[arg(long)]
    check: bool,
}

/// 13761264768 → "13,761,264,768".
pub fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub fn run(a: Args) -> Result<()> {
    let source: ModelSource = a.model.parse()?;
    let model = source.open()?;
    let c = &model.config;
    println!("model       {source}");
    println!(
        "layers      {} ({} sliding-window of {} tokens, {} full)",
        c.num_hidden_layers,
        c.sliding_layers(),
        c.sliding_window,
        c.num_hidden_layers - c.sliding_layers()
    );
    println!("hidden      {}", c.hidden_size);
    println!(
        "attention   {} query heads, {} kv heads, head dim {}, bias {}",
        c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.attention_bias
    );
    println!(
        "experts     {} per layer, top-{}, intermediate {}, swiglu limit {}",
        c.num_local_experts, c.num_experts_per_tok, c.intermediate_size, c.swiglu_limit
    );
    println!("vocab       {}", c.vocab_size);
    match c.rope_scaling {
        Some(y) => println!(
            "rope        theta {}, yarn factor {} (original context {}, beta {}/{}, truncate {})",
            c.rope_theta, y.factor, y.original_max_position_embeddings, y.beta_fast, y.beta_slow, y.truncate
        ),
        None => println!("rope        theta {}", c.rope_theta),
    }
    println!("context     {} positions, rms eps {:e}, eos {:?}", c.max_position_embeddings, c.rms_norm_eps, c.eos_token_ids);

    let specs = expected_tensors(c);
    let mut by_dtype: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut total = 0;
    for s in &specs {
        let d = model.dtype(s);
        let bytes = s.elements() * d.size();
        let e = by_dtype.entry(d.name()).or_default();
        e.0 += 1;
        e.1 += bytes;
        total += bytes;
    }
    let summary: Vec<String> = by_dtype.iter().map(|(d, (n, b))| format!("{n} {d} ({} bytes)", grouped(*b))).collect();
    println!("tensors     {}: {}", specs.len(), summary.join(", "));
    println!("total       {} tensor bytes ({:.2} GiB)", grouped(total), total as f64 / (1u64 << 30) as f64);
    if let Some(ckpt) = model.checkpoint() {
        println!("files       {} bytes", grouped(ckpt.file_bytes()));
    }
    if let Some(q) = c.quantization.weight_only() {
        let families: Vec<&str> = q.families().iter().map(|f| f.name()).collect();
        println!("quantized   {} {} (experts mxfp4)", q.format, families.join(", "));
    }
    let convert = parse_weights(&a.weights)?;
    let per_token = token_bytes(c, &stored_formats(&model).converted(convert), c.num_experts_per_tok as f64, 0);
    let read_as = match convert {
        Some(q) => format!("with {} loaded as {}", q.families().iter().map(|f| f.name()).collect::<Vec<_>>().join(" and "), q.format),
        None => "as stored".into(),
    };
    println!("per decoded token (weights read at batch 1 {read_as}; KV cache at depth 0): {:.3} GB", per_token.total() / 1e9);
    for (family, bytes) in per_token.families() {
        println!("  {:12} {:>16} bytes", family, grouped(bytes.round() as usize));
    }
    if a.check {
        let bar = counter_bar("scanning weights for NaN and infinities");
        check_finite(&model, &mut updater(&bar))?;
        bar.finish_and_clear();
        println!("check       every weight is finite ({} tensors)", specs.len());
    }
    Ok(())
}
