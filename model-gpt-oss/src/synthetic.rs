//! Synthetic gpt-oss models: the exact shapes of the released models (or a tiny one for tests)
//! with weights that are a pure function of (seed, tensor name, element index), so a model can
//! be generated in memory by any backend, or written to disk, and always be the same.
//!
//! Magnitudes keep activations finite and the network well-conditioned: matrices are uniform
//! with variance 1/fan-in, gains near 1, small biases, sinks near 1, and MXFP4 scales chosen so
//! a row of random FP4 codes has a norm near 1.

use gptoss_engine::{SynthFill, SynthTensor};
use serde_json::json;

use crate::config::{GptOssConfig, LayerType, Quantization};
use crate::tensors::{Kind, TensorSpec};

/// The released model a preset takes its shapes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Tiny,
    Gpt20b,
    Gpt120b,
}

/// A synthetic model's shapes: a family (`tiny`, `20b`, `120b`), optionally with fewer layers
/// of the same shapes (`120b-L6`: 120b's exact layers, six of them), for measurements whose
/// per-layer ratios carry over to the whole model at a fraction of its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub family: Family,
    /// Layers when fewer than the family's.
    pub layers: Option<usize>,
}

impl Preset {
    pub const TINY: Preset = Preset { family: Family::Tiny, layers: None };
    pub const GPT_20B: Preset = Preset { family: Family::Gpt20b, layers: None };
    pub const GPT_120B: Preset = Preset { family: Family::Gpt120b, layers: None };
    pub const ALL: [Preset; 3] = [Preset::TINY, Preset::GPT_20B, Preset::GPT_120B];

    fn family_name(f: Family) -> &'static str {
        match f {
            Family::Tiny => "tiny",
            Family::Gpt20b => "20b",
            Family::Gpt120b => "120b",
        }
    }

    /// `tiny`, `20b`, `120b`, or with fewer layers `120b-L6`.
    pub fn name(self) -> String {
        let family = Self::family_name(self.family);
        match self.layers {
            Some(l) => format!("{family}-L{l}"),
            None => family.to_string(),
        }
    }

    /// Parses a name `name()` gives; the layer count must be below the family's.
    pub fn from_name(s: &str) -> Option<Self> {
        let (family, layers) = match s.split_once("-L") {
            Some((f, l)) => (f, Some(l.parse::<usize>().ok()?)),
            None => (s, None),
        };
        let family = [Family::Tiny, Family::Gpt20b, Family::Gpt120b].into_iter().find(|&f| Self::family_name(f) == family)?;
        let preset = Preset { family, layers: None };
        match layers {
            None => Some(preset),
            Some(l) if l >= 1 && l < preset.config().num_hidden_layers => Some(Preset { family, layers: Some(l) }),
            Some(_) => None,
        }
    }

    /// The config, with the released models' exact sizes for 20b and 120b (fewer layers of
    /// them for an `-L` preset).
    pub fn config(self) -> GptOssConfig {
        let (layers, experts) = match self.family {
            Family::Tiny => (4, 8),
            Family::Gpt20b => (24, 32),
            Family::Gpt120b => (36, 128),
        };
        let layers = self.layers.unwrap_or(layers);
        let mut c = GptOssConfig::from_json(
            &json!({"num_hidden_layers": layers, "num_local_experts": experts, "quantization_config": {"quant_method": "mxfp4"}})
                .to_string(),
        )
        .expect("preset configs are valid");
        c.eos_token_ids = vec![200_002, 199_999, 200_012];
        if self.family == Family::Tiny {
            c.hidden_size = 64;
            c.intermediate_size = 64;
            c.num_attention_heads = 8;
            c.num_key_value_heads = 2;
            c.head_dim = 16;
            c.sliding_window = 16;
        }
        c
    }
}

/// The fill rule of a tensor of a synthetic model.
pub fn fill(spec: &TensorSpec) -> SynthFill {
    let name = spec.name.as_str();
    let fan_in = *spec.shape.last().unwrap_or(&1) as f32;
    if spec.kind == Kind::Mx {
        if name.ends_with("_scales") {
            // Random FP4 codes have an RMS of ~2.93; pick 2^(s-127) ≈ 1 / (2.93 · sqrt(fan-in)),
            // fan-in being 32 × the number of blocks.
            let cols = spec.shape[2] as f32 * 32.0;
            let s = (127.0 - (2.93 * cols.sqrt()).log2()).round() as u8;
            return SynthFill::ByteRange { lo: s - 1, hi: s };
        }
        return SynthFill::Bytes;
    }
    let uniform = |center: f32, half_width: f32| SynthFill::Uniform { center, half_width };
    if name.ends_with("layernorm.weight") || name == "model.norm.weight" {
        uniform(1.0, 0.1)
    } else if name.ends_with("sinks") {
        uniform(1.0, 1.0)
    } else if name.ends_with("bias") {
        uniform(0.0, 0.1)
    } else if name == "model.embed_tokens.weight" {
        uniform(0.0, 1.0)
    } else {
        // Uniform(-a, a) has variance a²/3: a = sqrt(3 / fan-in) gives variance 1/fan-in.
        uniform(0.0, (3.0 / fan_in).sqrt())
    }
}

pub fn synth_tensor(spec: &TensorSpec, seed: u64) -> SynthTensor {
    SynthTensor { seed, name: spec.name.clone(), fill: fill(spec) }
}

/// A number that is a whole value as a JSON integer, as released configs write such values
/// (`4096`, not `4096.0`); llama.cpp's converter refuses floats where it expects integers.
fn number(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 2f64.powi(53) { json!(x as i64) } else { json!(x) }
}

/// An f32 setting by its shortest decimal (`1e-05`, not its f64 widening `9.99999974e-06`).
fn single(x: f32) -> serde_json::Value {
    json!(x.to_string().parse::<f64>().expect("an f32 prints as a number"))
}

/// config.json in the Hugging Face form for a config.
pub fn config_json(c: &GptOssConfig) -> serde_json::Value {
    let layer_types: Vec<&str> = (0..c.num_hidden_layers)
        .map(|l| if c.layer_type(l) == LayerType::Sliding { "sliding_attention" } else { "full_attention" })
        .collect();
    let mut v = json!({
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "attention_bias": c.attention_bias,
        "attention_dropout": 0.0,
        "eos_token_id": c.eos_token_ids.first().copied().unwrap_or(200_002),
        "pad_token_id": 199_999,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "hidden_size": c.hidden_size,
        "initial_context_length": number(c.rope_scaling.map_or(4096.0, |y| y.original_max_position_embeddings)),
        "intermediate_size": c.intermediate_size,
        "layer_types": layer_types,
        "max_position_embeddings": c.max_position_embeddings,
        "num_attention_heads": c.num_attention_heads,
        "num_experts_per_tok": c.num_experts_per_tok,
        "experts_per_token": c.num_experts_per_tok,
        "num_hidden_layers": c.num_hidden_layers,
        "num_key_value_heads": c.num_key_value_heads,
        "num_local_experts": c.num_local_experts,
        "rms_norm_eps": single(c.rms_norm_eps),
        "rope_theta": number(c.rope_theta),
        "sliding_window": c.sliding_window,
        "swiglu_limit": single(c.swiglu_limit),
        "tie_word_embeddings": false,
        "vocab_size": c.vocab_size,
        // What the released configs say; transformers reads it to tell which tokenizer fixes
        // a checkpoint needs (without it, it warns about a regex gpt-oss does not have).
        "transformers_version": "4.55.0.dev0",
    });
    v["rope_scaling"] = match c.rope_scaling {
        Some(y) => json!({
            "rope_type": "yarn",
            "factor": y.factor,
            "beta_fast": y.beta_fast,
            "beta_slow": y.beta_slow,
            "original_max_position_embeddings": number(y.original_max_position_embeddings),
            "truncate": y.truncate,
        }),
        None => serde_json::Value::Null,
    };
    match c.quantization {
        Quantization::None => {}
        Quantization::Mxfp4 => {
            v["quantization_config"] = json!({
                "quant_method": "mxfp4",
                "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
            });
        }
        Quantization::WeightOnly(q) => v["quantization_config"] = q.to_json(),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::expected_tensors;

    #[test]
    fn preset_20b_has_the_released_tensor_bytes() {
        let c = Preset::GPT_20B.config();
        let specs = expected_tensors(&c);
        assert_eq!(specs.len(), 459);
        let bytes: usize = specs.iter().map(|s| s.elements() * if s.kind == Kind::Mx { 1 } else { 2 }).sum();
        assert_eq!(bytes, 13_761_264_768);
        let c = Preset::GPT_120B.config();
        let specs = expected_tensors(&c);
        assert_eq!(specs.len(), 687);
        let bytes: usize = specs.iter().map(|s| s.elements() * if s.kind == Kind::Mx { 1 } else { 2 }).sum();
        assert_eq!(bytes, 65_248_815_744);
    }

    #[test]
    fn fewer_layer_presets_keep_the_layer_shapes() {
        let p = Preset::from_name("120b-L6").unwrap();
        assert_eq!(p.name(), "120b-L6");
        let (c, full) = (p.config(), Preset::GPT_120B.config());
        assert_eq!(c.num_hidden_layers, 6);
        assert_eq!(
            (c.hidden_size, c.intermediate_size, c.num_local_experts),
            (full.hidden_size, full.intermediate_size, full.num_local_experts)
        );
        assert!((0..6).all(|l| c.layer_type(l) == full.layer_type(l)));
        for bad in ["120b-L0", "120b-L36", "20b-Lx", "30b-L2"] {
            assert_eq!(Preset::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn expert_scales_target_unit_rows() {
        let c = Preset::GPT_20B.config();
        let s = expected_tensors(&c).into_iter().find(|s| s.name.ends_with("gate_up_proj_scales")).unwrap();
        assert_eq!(fill(&s), SynthFill::ByteRange { lo: 119, hi: 120 });
    }

    #[test]
    fn config_json_writes_whole_numbers_as_integers() {
        let v = config_json(&Preset::TINY.config());
        for key in ["initial_context_length", "rope_theta", "max_position_embeddings", "num_hidden_layers", "vocab_size"] {
            assert!(v[key].is_u64(), "{key} = {}", v[key]);
        }
        assert!(v["rope_scaling"]["original_max_position_embeddings"].is_u64());
        // Values that are not whole stay floats; 32.0 is the released configs' spelling.
        assert!(v["rope_scaling"]["factor"].is_f64() && v["swiglu_limit"].is_f64());
        assert_eq!(v["rms_norm_eps"].as_f64(), Some(1e-5));
    }

    #[test]
    fn config_json_round_trips() {
        let plain = GptOssConfig { rope_scaling: None, ..Preset::TINY.config() };
        assert_eq!(GptOssConfig::from_json(&config_json(&plain).to_string()).unwrap().rope_scaling, None);
        for p in Preset::ALL {
            let c = p.config();
            let back = GptOssConfig::from_json(&config_json(&c).to_string()).unwrap();
            assert_eq!(back, GptOssConfig { eos_token_ids: vec![c.eos_token_ids[0]], ..c });
        }
    }
}
