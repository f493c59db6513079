//! Weight-only quantization of a gpt-oss model: which tensor families become int8 or int4, and
//! the `quantization_config` section of config.json that records it.
//!
//! The MXFP4 experts stay as released: requantizing them would make them larger (int4 with a
//! bf16 scale per 32 is 4.5 bits per weight, MXFP4 4.25) as well as lossier, so `experts` is
//! refused. The embedding is read one row per token and gains nothing. What remains are the
//! bf16 matrices read in full for every token: attention (q, k, v, o), the unembedding, and the
//! (small) router. Tensor names and layouts of a quantized checkpoint are listed in `tensors`.
//!
//! ```json
//! "quantization_config": {
//!   "quant_method": "gptoss_weight_only",
//!   "weights": "int4",           // or "int8"
//!   "group_size": 32,            // int4 only: 32, 64 or 128
//!   "modules": ["attention", "unembedding"],
//!   "experts": "mxfp4"
//! }
//! ```

use gptoss_engine::WeightFormat;
use gptoss_engine::weight::INT4_GROUPS;
use serde_json::{Map, Value, json};

/// The `quant_method` of a checkpoint written by `gptoss quantize`.
pub const QUANT_METHOD: &str = "gptoss_weight_only";

/// A family of matrices that can be quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// q, k, v and o of every layer.
    Attention,
    /// `lm_head`.
    Unembedding,
    /// The MoE router of every layer.
    Router,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Attention => "attention",
            Family::Unembedding => "unembedding",
            Family::Router => "router",
        }
    }
}

/// Every quantizable family, in the order they are listed.
pub const QUANTIZABLE: [Family; 3] = [Family::Attention, Family::Unembedding, Family::Router];

/// Families quantized unless told otherwise: everything read in full per token but the router,
/// whose 0.2 MB per layer are not worth its precision.
pub const DEFAULT_FAMILIES: [Family; 2] = [Family::Attention, Family::Unembedding];

/// A weight-only quantization: the format and the families it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightOnly {
    pub format: WeightFormat,
    /// Bit `f as u8` set for each family included.
    families: u8,
}

impl WeightOnly {
    /// Checks the format (int8 or int4 with a supported group) and the families.
    pub fn new(format: WeightFormat, families: &[Family]) -> Result<Self, String> {
        match format {
            WeightFormat::Int8 => {}
            WeightFormat::Int4 { group } if INT4_GROUPS.contains(&group) => {}
            WeightFormat::Int4 { group } => return Err(format!("int4 group size {group} is not one of {INT4_GROUPS:?}")),
            other => return Err(format!("weight-only quantization produces int8 or int4, not {other}")),
        }
        if families.is_empty() {
            return Err("no tensor families to quantize".into());
        }
        let bits = families.iter().fold(0, |bits, &f| bits | 1 << f as u8);
        Ok(WeightOnly { format, families: bits })
    }

    pub fn includes(&self, f: Family) -> bool {
        self.families & (1 << f as u8) != 0
    }

    pub fn families(&self) -> Vec<Family> {
        QUANTIZABLE.into_iter().filter(|&f| self.includes(f)).collect()
    }

    /// The config.json section.
    pub fn to_json(&self) -> Value {
        let modules: Vec<&str> = self.families().iter().map(|f| f.name()).collect();
        let mut v = json!({"quant_method": QUANT_METHOD, "modules": modules, "experts": "mxfp4"});
        match self.format {
            WeightFormat::Int4 { group } => {
                v["weights"] = json!("int4");
                v["group_size"] = json!(group);
            }
            _ => v["weights"] = json!("int8"),
        }
        v
    }

    /// Reads the config.json section (its `quant_method` already known to be ours). Every
    /// problem is reported, each naming its key.
    pub fn from_json(q: &Map<String, Value>) -> Result<Self, Vec<String>> {
        const P: &str = "quantization_config";
        let mut problems = Vec::new();
        let group = match q.get("group_size") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(g) if INT4_GROUPS.contains(&(g as usize)) => Some(g as usize),
                _ => {
                    problems.push(format!("{P}.group_size {v} is not one of {INT4_GROUPS:?}"));
                    Some(INT4_GROUPS[0])
                }
            },
        };
        let format = match q.get("weights").and_then(Value::as_str) {
            Some("int8") if group.is_some() => {
                problems.push(format!("{P}.group_size is given but int8 weights have one scale per row"));
                WeightFormat::Int8
            }
            Some("int8") => WeightFormat::Int8,
            Some("int4") => match group {
                Some(group) => WeightFormat::Int4 { group },
                None => {
                    problems.push(format!("{P}.group_size is missing (int4 needs 32, 64 or 128)"));
                    WeightFormat::Int4 { group: INT4_GROUPS[0] }
                }
            },
            _ => {
                problems.push(format!("{P}.weights {} is not supported (expected \"int8\" or \"int4\")", show(q.get("weights"))));
                WeightFormat::Int8
            }
        };
        let mut families = Vec::new();
        match q.get("modules").and_then(Value::as_array) {
            Some(list) => {
                for m in list {
                    match m.as_str().map(parse_family) {
                        Some(Ok(f)) => families.push(f),
                        Some(Err(e)) => problems.push(format!("{P}.modules: {e}")),
                        None => problems.push(format!("{P}.modules: {m} is not a string")),
                    }
                }
            }
            None => problems.push(format!("{P}.modules {} must be a list of tensor families", show(q.get("modules")))),
        }
        if let Some(e) = q.get("experts")
            && e.as_str() != Some("mxfp4")
        {
            problems.push(format!("{P}.experts {e} is not supported (experts are stored as MXFP4)"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        WeightOnly::new(format, &families).map_err(|e| vec![format!("{P}: {e}")])
    }

    /// Problems with applying this quantization to matrices of these widths: the int4 group
    /// must divide the input width of every quantized matrix.
    pub fn shape_problems(&self, hidden: usize, q_dim: usize) -> Vec<String> {
        let inputs: [(Family, &str, usize); 4] = [
            (Family::Attention, "hidden_size (q_proj, k_proj, v_proj inputs)", hidden),
            (Family::Attention, "the o_proj input (num_attention_heads × head_dim)", q_dim),
            (Family::Unembedding, "hidden_size (lm_head input)", hidden),
            (Family::Router, "hidden_size (router input)", hidden),
        ];
        let mut out: Vec<String> = Vec::new();
        for (family, what, cols) in inputs {
            if let WeightFormat::Int4 { group } = self.format
                && self.includes(family)
                && !cols.is_multiple_of(group)
            {
                let p = format!("int4 group size {group} does not divide {what} = {cols}");
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// Parses `int8`, `int4` (group 32) or `int4:GROUP`.
pub fn parse_format(s: &str) -> Result<WeightFormat, String> {
    let format = match s.split_once(':') {
        None if s == "int8" => WeightFormat::Int8,
        None if s == "int4" => WeightFormat::Int4 { group: INT4_GROUPS[0] },
        Some(("int4", g)) => WeightFormat::Int4 { group: g.parse().map_err(|_| format!("'{s}': the group size '{g}' is not a number"))? },
        _ => return Err(format!("'{s}' is not a weight format (expected int8, int4 or int4:GROUP)")),
    };
    WeightOnly::new(format, &DEFAULT_FAMILIES)?;
    Ok(format)
}

/// Parses a comma-separated list of family names.
pub fn parse_families(s: &str) -> Result<Vec<Family>, String> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(parse_family).collect()
}

fn parse_family(name: &str) -> Result<Family, String> {
    if let Some(f) = QUANTIZABLE.into_iter().find(|f| f.name() == name) {
        return Ok(f);
    }
    Err(match name {
        "experts" => "experts stay MXFP4: int4 with a bf16 scale per 32 weights would be larger (4.5 vs 4.25 bits per weight) and \
                      lossier, int8 twice the size"
            .into(),
        "embedding" => "the embedding is read one row per token; quantizing it saves no bandwidth".into(),
        "norms" => "norm gains are tiny vectors kept in f32".into(),
        _ => {
            let names: Vec<&str> = QUANTIZABLE.iter().map(|f| f.name()).collect();
            format!("unknown tensor family '{name}' (quantizable: {})", names.join(", "))
        }
    })
}

fn show(v: Option<&Value>) -> String {
    v.map_or("(missing)".into(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sections_round_trip() {
        for format in [WeightFormat::Int8, WeightFormat::Int4 { group: 32 }, WeightFormat::Int4 { group: 128 }] {
            let q = WeightOnly::new(format, &[Family::Unembedding, Family::Attention]).unwrap();
            let v = q.to_json();
            assert_eq!(WeightOnly::from_json(v.as_object().unwrap()), Ok(q));
            assert_eq!(q.families(), vec![Family::Attention, Family::Unembedding]);
        }
    }

    #[test]
    fn bad_sections_name_every_problem() {
        let v = json!({"quant_method": QUANT_METHOD, "weights": "int4", "group_size": 48, "modules": ["attention", "experts", "mlp"], "experts": "int4"});
        let all = WeightOnly::from_json(v.as_object().unwrap()).unwrap_err().join("\n");
        for want in ["group_size 48 is not one of [32, 64, 128]", "experts stay MXFP4", "unknown tensor family 'mlp'", "experts \"int4\""] {
            assert!(all.contains(want), "missing '{want}' in:\n{all}");
        }
        let v = json!({"weights": "int3", "modules": "attention"});
        let all = WeightOnly::from_json(v.as_object().unwrap()).unwrap_err().join("\n");
        assert!(all.contains("weights \"int3\" is not supported") && all.contains("must be a list"), "{all}");
        let v = json!({"weights": "int4", "modules": ["attention"]});
        assert!(WeightOnly::from_json(v.as_object().unwrap()).unwrap_err()[0].contains("group_size is missing"));
    }

    #[test]
    fn formats_and_families_parse() {
        assert_eq!(parse_format("int8"), Ok(WeightFormat::Int8));
        assert_eq!(parse_format("int4"), Ok(WeightFormat::Int4 { group: 32 }));
        assert_eq!(parse_format("int4:128"), Ok(WeightFormat::Int4 { group: 128 }));
        assert!(parse_format("int4:100").unwrap_err().contains("not one of"));
        assert!(parse_format("int4:x").unwrap_err().contains("not a number"));
        assert!(parse_format("fp8").unwrap_err().contains("not a weight format"));
        assert_eq!(parse_families("attention, router"), Ok(vec![Family::Attention, Family::Router]));
        assert!(parse_families("embedding").unwrap_err().contains("one row per token"));
    }

    #[test]
    fn groups_must_divide_the_inputs() {
        let q = WeightOnly::new(WeightFormat::Int4 { group: 128 }, &[Family::Attention, Family::Unembedding]).unwrap();
        let p = q.shape_problems(2880, 4096);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("does not divide hidden_size (q_proj, k_proj, v_proj inputs) = 2880"));
        assert!(WeightOnly::new(WeightFormat::Int4 { group: 64 }, &QUANTIZABLE).unwrap().shape_problems(2880, 4096).is_empty());
    }
}
