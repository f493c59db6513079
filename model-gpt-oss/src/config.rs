//! `config.json` in the Hugging Face form, for any sizes.
//!
//! Defaults are those of transformers' `GptOssConfig` (the 120b shapes); `rope_scaling` and the
//! newer `rope_parameters` spelling are both read; `layer_types` is honoured when present (else
//! even layers slide). Every problem is collected and reported together.
//!
//! Reading allocates nothing in proportion to the sizes it reads (a count may be anything up to
//! 2^40 here): they are checked against the tensors a checkpoint holds (`tensors::check_counts`)
//! and against memory before anything is built from them.

use std::path::Path;

use gptoss_engine::rope::{RopeConfig, Yarn};
use serde_json::{Map, Value};

use crate::error::{ModelError, Result};
use crate::weight_only::{QUANT_METHOD, WeightOnly};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    Sliding,
    Full,
}

/// Which layers attend through a sliding window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerTypes {
    /// Even layers slide, odd ones attend to everything: transformers' default when config.json
    /// lists none (and what the released models list). Kept as a rule, not a list, so that a
    /// layer count is never turned into an allocation before it is checked.
    Alternating,
    /// One per layer, as config.json lists them.
    Listed(Vec<LayerType>),
}

impl LayerTypes {
    fn alternating(l: usize) -> LayerType {
        if l.is_multiple_of(2) { LayerType::Sliding } else { LayerType::Full }
    }
}

/// How the checkpoint stores its matrices, from `quantization_config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quantization {
    /// No quantization section: bf16/f32 everywhere (experts included).
    None,
    /// The released gpt-oss checkpoints: MXFP4 experts, the rest bf16.
    Mxfp4,
    /// MXFP4 experts and some bf16 families requantized to int8 or int4 (`gptoss quantize`).
    WeightOnly(WeightOnly),
}

impl Quantization {
    /// The weight-only quantization, if the checkpoint has one.
    pub fn weight_only(&self) -> Option<WeightOnly> {
        match self {
            Quantization::WeightOnly(q) => Some(*q),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GptOssConfig {
    pub num_hidden_layers: usize,
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub num_local_experts: usize,
    pub num_experts_per_tok: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub sliding_window: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<Yarn>,
    pub rms_norm_eps: f32,
    pub swiglu_limit: f32,
    pub attention_bias: bool,
    pub layer_types: LayerTypes,
    pub eos_token_ids: Vec<u32>,
    pub quantization: Quantization,
}

/// gpt-oss's SwiGLU alpha; not in the config, fixed by the architecture.
pub const SWIGLU_ALPHA: f32 = 1.702;

impl GptOssConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::files::read_json_text(path)?;
        Self::from_json(&text).map_err(|problems| ModelError::Config { path: path.into(), problems })
    }

    /// Parses the text of a config.json; the error lists every problem found.
    pub fn from_json(text: &str) -> Result<Self, Vec<String>> {
        let value: Value = serde_json::from_str(&mark_non_finite(text)).map_err(|e| vec![format!("not valid JSON: {e}")])?;
        let Value::Object(map) = value else {
            return Err(vec!["the top level is not a JSON object".into()]);
        };
        let mut r = Reader { map: &map, problems: Vec::new() };
        if let Some(t) = r.string("model_type")
            && t != "gpt_oss"
        {
            r.problems.push(format!("model_type is '{t}', expected 'gpt_oss'"));
        }
        let mut cfg = GptOssConfig {
            num_hidden_layers: r.count("num_hidden_layers", 36),
            hidden_size: r.count("hidden_size", 2880),
            num_attention_heads: r.count("num_attention_heads", 64),
            num_key_value_heads: r.count("num_key_value_heads", 8),
            head_dim: r.count("head_dim", 64),
            num_local_experts: r.count("num_local_experts", 128),
            num_experts_per_tok: r.count("num_experts_per_tok", 4),
            intermediate_size: r.count("intermediate_size", 2880),
            vocab_size: r.count("vocab_size", 201_088),
            sliding_window: r.count("sliding_window", 128),
            max_position_embeddings: r.count("max_position_embeddings", 131_072),
            rope_theta: r.positive("rope_theta", 150_000.0),
            rope_scaling: None,
            rms_norm_eps: r.non_negative("rms_norm_eps", 1e-5) as f32,
            swiglu_limit: r.positive("swiglu_limit", 7.0) as f32,
            attention_bias: r.boolean("attention_bias", true),
            layer_types: LayerTypes::Alternating,
            eos_token_ids: r.token_ids("eos_token_id"),
            quantization: r.quantization(),
        };
        if r.boolean("tie_word_embeddings", false) {
            r.problems.push("tie_word_embeddings is true; gpt-oss has a separate lm_head".into());
        }
        let (rope_theta, scaling) = r.rope(cfg.rope_theta);
        cfg.rope_theta = rope_theta;
        cfg.rope_scaling = scaling;
        cfg.layer_types = r.layer_types(cfg.num_hidden_layers);
        r.problems.extend(cfg.shape_problems());
        if r.problems.is_empty() { Ok(cfg) } else { Err(r.problems) }
    }

    /// Problems in how the sizes fit together.
    fn shape_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.num_key_value_heads != 0 && !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            p.push(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        for (what, a, b) in [
            ("num_attention_heads × head_dim", self.num_attention_heads, self.head_dim),
            ("num_key_value_heads × head_dim", self.num_key_value_heads, self.head_dim),
            ("vocab_size × hidden_size", self.vocab_size, self.hidden_size),
            ("num_local_experts × intermediate_size", self.num_local_experts, 2 * self.intermediate_size),
        ] {
            // Sizes are products of these; they must at least be representable.
            if a.checked_mul(b).is_none_or(|n| n > 1 << 48) {
                p.push(format!("{what} = {a} × {b} is beyond any model's size"));
            }
        }
        if !self.head_dim.is_multiple_of(2) {
            p.push(format!("head_dim {} must be even for rotary embeddings", self.head_dim));
        }
        if self.num_experts_per_tok > self.num_local_experts {
            p.push(format!("num_experts_per_tok {} exceeds num_local_experts {}", self.num_experts_per_tok, self.num_local_experts));
        }
        if let Some(q) = self.quantization.weight_only() {
            p.extend(q.shape_problems(self.hidden_size, self.q_dim()).into_iter().map(|e| format!("quantization_config: {e}")));
        }
        if self.quantization != Quantization::None {
            for (name, v) in [("hidden_size", self.hidden_size), ("intermediate_size", self.intermediate_size)] {
                if v % 32 != 0 {
                    p.push(format!("{name} {v} is not a multiple of 32, which MXFP4 expert weights need"));
                }
            }
        }
        if self.vocab_size > u32::MAX as usize {
            p.push(format!("vocab_size {} does not fit 32-bit token ids", self.vocab_size));
        }
        p
    }

    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Layer `l`'s attention.
    pub fn layer_type(&self, l: usize) -> LayerType {
        match &self.layer_types {
            LayerTypes::Alternating => LayerTypes::alternating(l),
            LayerTypes::Listed(types) => types[l],
        }
    }

    /// How many layers slide.
    pub fn sliding_layers(&self) -> usize {
        match &self.layer_types {
            LayerTypes::Alternating => self.num_hidden_layers.div_ceil(2),
            LayerTypes::Listed(types) => types.iter().filter(|t| **t == LayerType::Sliding).count(),
        }
    }

    /// The sliding window of layer `l`, if it has one.
    pub fn window(&self, l: usize) -> Option<usize> {
        (self.layer_type(l) == LayerType::Sliding).then_some(self.sliding_window)
    }

    pub fn rope(&self) -> RopeConfig {
        RopeConfig { theta: self.rope_theta, head_dim: self.head_dim, yarn: self.rope_scaling }
    }
}

/// JSON has no NaN or infinities, but Python's json module writes them bare. Turn such bare
/// tokens into marker strings so the reader can name the key that holds them.
fn mark_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = c != '"' || escaped;
            escaped = c == '\\' && !escaped;
        } else if c == '"' {
            in_string = true;
        } else {
            let token = ["-Infinity", "Infinity", "NaN"].into_iter().find(|t| rest.starts_with(t));
            if let Some(t) = token {
                // The JSON escape of NON_FINITE's leading NUL, which no config string contains.
                out.push_str(&format!("\"\\u0000non-finite:{t}\""));
                rest = &rest[t.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

const NON_FINITE: &str = "\u{0}non-finite:";

struct Reader<'a> {
    map: &'a Map<String, Value>,
    problems: Vec<String>,
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.starts_with(NON_FINITE) => s[NON_FINITE.len()..].to_string(),
        other => other.to_string(),
    }
}

impl Reader<'_> {
    fn number_in(&mut self, obj: &Map<String, Value>, key: &str, prefix: &str) -> Option<f64> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(other) => {
                self.problems.push(format!("{prefix}{key} = {} is not a finite number", describe(other)));
                None
            }
        }
    }

    fn count(&mut self, key: &str, default: usize) -> usize {
        match self.map.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0 && v <= 1 << 40) => n.as_u64().unwrap() as usize,
            Some(other) => {
                self.problems.push(format!("{key} = {} must be a positive integer", describe(other)));
                default
            }
        }
    }

    fn positive(&mut self, key: &str, default: f64) -> f64 {
        let map = self.map;
        match self.number_in(map, key, "") {
            None => default,
            Some(v) if v > 0.0 && v.is_finite() => v,
            Some(v) => {
                self.problems.push(format!("{key} = {v} must be positive"));
                default
            }
        }
    }

    fn non_negative(&mut self, key: &str, default: f64) -> f64 {
        let map = self.map;
        match self.number_in(map, key, "") {
            None => default,
            Some(v) if v >= 0.0 && v.is_finite() => v,
            Some(v) => {
                self.problems.push(format!("{key} = {v} must not be negative"));
                default
            }
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.map.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problems.push(format!("{key} = {} must be true or false", describe(other)));
                default
            }
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problems.push(format!("{key} = {} must be a string", describe(other)));
                None
            }
        }
    }

    fn token_ids(&mut self, key: &str) -> Vec<u32> {
        let as_id = |v: &Value| v.as_u64().filter(|&x| x <= u32::MAX as u64).map(|x| x as u32);
        match self.map.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(|v| as_id(v).is_some()) => a.iter().filter_map(as_id).collect(),
            Some(v) if as_id(v).is_some() => vec![as_id(v).unwrap()],
            Some(other) => {
                self.problems.push(format!("{key} = {} must be a token id or a list of them", describe(other)));
                Vec::new()
            }
        }
    }

    fn quantization(&mut self) -> Quantization {
        match self.map.get("quantization_config") {
            None | Some(Value::Null) => Quantization::None,
            Some(Value::Object(q)) => match q.get("quant_method").and_then(Value::as_str) {
                Some("mxfp4") => Quantization::Mxfp4,
                Some(QUANT_METHOD) => match WeightOnly::from_json(q) {
                    Ok(w) => Quantization::WeightOnly(w),
                    Err(problems) => {
                        self.problems.extend(problems);
                        Quantization::Mxfp4
                    }
                },
                other => {
                    self.problems.push(format!(
                        "quantization_config.quant_method {other:?} is not supported (expected \"mxfp4\" or \"{QUANT_METHOD}\")"
                    ));
                    Quantization::None
                }
            },
            Some(other) => {
                self.problems.push(format!("quantization_config = {} must be an object", describe(other)));
                Quantization::None
            }
        }
    }

    /// Reads `rope_scaling` or `rope_parameters`; returns (theta, yarn).
    fn rope(&mut self, theta: f64) -> (f64, Option<Yarn>) {
        let key = if self.map.contains_key("rope_parameters") { "rope_parameters" } else { "rope_scaling" };
        let block = match self.map.get(key) {
            None => {
                return (
                    theta,
                    Some(Yarn {
                        factor: 32.0,
                        original_max_position_embeddings: 4096.0,
                        beta_fast: 32.0,
                        beta_slow: 1.0,
                        truncate: false,
                        attention_factor: None,
                        mscale: None,
                        mscale_all_dim: None,
                    }),
                );
            }
            Some(Value::Null) => return (theta, None),
            Some(Value::Object(o)) => o,
            Some(other) => {
                self.problems.push(format!("{key} = {} must be an object", describe(other)));
                return (theta, None);
            }
        };
        let prefix = format!("{key}.");
        let theta = match self.number_in(block, "rope_theta", &prefix) {
            Some(t) if t > 1.0 => t,
            Some(t) => {
                self.problems.push(format!("{prefix}rope_theta = {t} must be > 1"));
                theta
            }
            None => theta,
        };
        let kind = block.get("rope_type").or_else(|| block.get("type")).and_then(Value::as_str).unwrap_or("default");
        match kind {
            "default" => (theta, None),
            "yarn" => {
                let fallback_original = self.map.get("max_position_embeddings").and_then(Value::as_f64).unwrap_or(131_072.0);
                let mut num = |k: &str| -> Option<f64> {
                    match self.number_in(block, k, &prefix) {
                        Some(v) if v > 0.0 => Some(v),
                        Some(v) => {
                            self.problems.push(format!("{prefix}{k} = {v} must be positive"));
                            None
                        }
                        None => None,
                    }
                };
                let factor = num("factor");
                let yarn = Yarn {
                    factor: factor.unwrap_or(1.0),
                    original_max_position_embeddings: num("original_max_position_embeddings").unwrap_or(fallback_original),
                    beta_fast: num("beta_fast").unwrap_or(32.0),
                    beta_slow: num("beta_slow").unwrap_or(1.0),
                    attention_factor: num("attention_factor"),
                    mscale: num("mscale"),
                    mscale_all_dim: num("mscale_all_dim"),
                    truncate: block.get("truncate").and_then(Value::as_bool).unwrap_or(true),
                };
                if factor.is_none() {
                    self.problems.push(format!("{prefix}factor is missing for yarn"));
                }
                (theta, Some(yarn))
            }
            other => {
                self.problems.push(format!("{prefix}rope_type '{other}' is not supported (expected yarn or default)"));
                (theta, None)
            }
        }
    }

    /// The listed layer types; a list that spells out the default rule is kept as the rule, so
    /// that a config written out and read back is equal to itself.
    fn layer_types(&mut self, layers: usize) -> LayerTypes {
        let default = LayerTypes::Alternating;
        match self.map.get("layer_types") {
            None | Some(Value::Null) => default,
            Some(Value::Array(a)) => {
                if a.len() != layers {
                    self.problems.push(format!("layer_types lists {} layers but num_hidden_layers is {layers}", a.len()));
                    return default;
                }
                // Bounded by the list itself, which is already in memory.
                let mut out = Vec::with_capacity(a.len());
                for (i, v) in a.iter().enumerate() {
                    match v.as_str() {
                        Some("sliding_attention") => out.push(LayerType::Sliding),
                        Some("full_attention") => out.push(LayerType::Full),
                        _ => {
                            self.problems.push(format!(
                                "layer_types[{i}] = {} is neither \"sliding_attention\" nor \"full_attention\"",
                                describe(v)
                            ));
                            return default;
                        }
                    }
                }
                if out.iter().enumerate().all(|(l, t)| *t == LayerTypes::alternating(l)) { default } else { LayerTypes::Listed(out) }
            }
            Some(other) => {
                self.problems.push(format!("layer_types = {} must be a list", describe(other)));
                default
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT_OSS_20B: &str = r#"{
      "architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0,
      "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
      "hidden_size": 2880, "initial_context_length": 4096, "initializer_range": 0.02,
      "intermediate_size": 2880, "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention"],
      "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
      "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32,
      "output_router_logits": false, "pad_token_id": 199999,
      "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
      "rms_norm_eps": 1e-05, "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
      "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
      "tie_word_embeddings": false, "transformers_version": "4.55.0.dev0", "use_cache": true, "vocab_size": 201088
    }"#;

    #[test]
    fn reads_the_released_20b_config() {
        let c = GptOssConfig::from_json(GPT_OSS_20B).unwrap();
        assert_eq!((c.num_hidden_layers, c.num_local_experts, c.vocab_size), (24, 32, 201_088));
        assert_eq!(c.quantization, Quantization::Mxfp4);
        assert_eq!(c.eos_token_ids, vec![200_002]);
        assert_eq!(c.window(0), Some(128));
        assert_eq!(c.window(1), None);
        let y = c.rope_scaling.unwrap();
        assert!(!y.truncate && y.factor == 32.0 && y.original_max_position_embeddings == 4096.0);
    }

    #[test]
    fn defaults_are_the_120b_shapes() {
        let c = GptOssConfig::from_json("{}").unwrap();
        assert_eq!((c.num_hidden_layers, c.num_local_experts, c.hidden_size), (36, 128, 2880));
        assert!(!c.rope_scaling.unwrap().truncate);
        assert_eq!(c.layer_type(35), LayerType::Full);
    }

    #[test]
    fn rope_parameters_spelling_is_read() {
        let c = GptOssConfig::from_json(
            r#"{"rope_parameters": {"rope_type": "yarn", "factor": 8.0, "rope_theta": 5000.0, "original_max_position_embeddings": 1024}}"#,
        )
        .unwrap();
        assert_eq!(c.rope_theta, 5000.0);
        let y = c.rope_scaling.unwrap();
        assert_eq!((y.factor, y.original_max_position_embeddings), (8.0, 1024.0));
        // HF's default when the flag is absent.
        assert!(y.truncate);
    }

    #[test]
    fn non_finite_numbers_are_named() {
        let e = GptOssConfig::from_json(
            r#"{"rope_theta": NaN, "rms_norm_eps": Infinity, "rope_scaling": {"rope_type": "yarn", "factor": -Infinity}}"#,
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(all.contains("rope_theta = NaN"), "{all}");
        assert!(all.contains("rms_norm_eps = Infinity"), "{all}");
        assert!(all.contains("rope_scaling.factor = -Infinity"), "{all}");
    }

    #[test]
    fn strings_that_look_like_nan_are_left_alone() {
        let c = GptOssConfig::from_json(r#"{"note": "NaN Infinity \" NaN", "model_type": "gpt_oss"}"#);
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn a_huge_layer_count_is_read_without_building_anything_per_layer() {
        // 2^40 layers: a per-layer list would be a terabyte.
        let c = GptOssConfig::from_json(r#"{"num_hidden_layers": 1099511627776}"#).unwrap();
        assert_eq!(c.layer_types, LayerTypes::Alternating);
        assert_eq!(c.window(1_099_511_627_775), None);
        assert_eq!(c.sliding_layers(), 1 << 39);
    }

    #[test]
    fn sizes_whose_products_overflow_are_refused() {
        let e = GptOssConfig::from_json(r#"{"num_attention_heads": 1099511627776, "head_dim": 1099511627776}"#).unwrap_err();
        assert!(e.join(" ").contains("num_attention_heads × head_dim = 1099511627776 × 1099511627776"), "{e:?}");
    }

    #[test]
    fn a_listed_default_pattern_reads_as_the_default() {
        let listed = r#"{"num_hidden_layers": 3, "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}"#;
        assert_eq!(GptOssConfig::from_json(listed).unwrap().layer_types, LayerTypes::Alternating);
        let other = r#"{"num_hidden_layers": 2, "layer_types": ["full_attention", "full_attention"]}"#;
        let c = GptOssConfig::from_json(other).unwrap();
        assert_eq!((c.window(0), c.sliding_layers()), (None, 0));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let e = GptOssConfig::from_json(
            r#"{"hidden_size": 0, "num_attention_heads": 6, "num_key_value_heads": 4, "intermediate_size": 30,
            "quantization_config": {"quant_method": "mxfp4"}, "layer_types": ["full_attention"], "vocab_size": "big"}"#,
        )
        .unwrap_err();
        let all = e.join("\n");
        for want in [
            "hidden_size = 0",
            "not a multiple of num_key_value_heads",
            "intermediate_size 30 is not a multiple of 32",
            "layer_types lists 1",
            "vocab_size = \"big\"",
        ] {
            assert!(all.contains(want), "missing '{want}' in:\n{all}");
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(GptOssConfig::from_json("{\"a\": ").unwrap_err()[0].contains("not valid JSON"));
        assert!(GptOssConfig::from_json("[1]").unwrap_err()[0].contains("not a JSON object"));
        assert!(GptOssConfig::from_json(r#"{"model_type": "llama"}"#).unwrap_err()[0].contains("llama"));
    }
}
