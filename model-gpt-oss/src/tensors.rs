//! The tensors a gpt-oss checkpoint must hold for a given config (Hugging Face names), their
//! shapes and accepted dtypes, and the check of a checkpoint against that list.
//!
//! A checkpoint written by `gptoss quantize` (see `weight_only`) stores each quantized matrix
//! `NAME.weight` of `rows × cols` as two tensors, in the layouts of `gptoss_engine::weight`:
//!
//! | format | `NAME.weight` | `NAME.weight_scales` |
//! |---|---|---|
//! | int8 | I8 `[rows, cols]` | F32 `[rows]`: `W[r, c] = weight[r, c] · scales[r]` |
//! | int4, group g | U8 `[rows, cols / 2]`, element `c` in the low nibble of byte `c / 2` when `c` is even, the high one when odd | BF16 `[rows, cols / g]`: `W[r, c] = (nibble − 8) · scales[r, c / g]` |
//!
//! Biases, norms, sinks, the embedding and the MXFP4 experts keep their released names, dtypes
//! and shapes.

use crate::checkpoint::Checkpoint;
use crate::config::{GptOssConfig, Quantization};
use crate::error::{ModelError, Result};
use crate::safetensors::StDtype;
use crate::weight_only::Family;
use gptoss_engine::WeightFormat;

/// How a tensor is used, which fixes the dtypes it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A dense matrix used as stored: BF16 or F32.
    Matrix,
    /// A small vector (norm gain, bias, sinks), widened to f32 at load: BF16 or F32.
    Vector,
    /// MXFP4 codes or E8M0 scales: U8.
    Mx,
    /// The codes of a matrix quantized to int8 (I8) or int4 (U8, two per byte).
    Codes(WeightFormat),
    /// Their scales: F32 per row (int8) or BF16 per group (int4).
    Scales(WeightFormat),
}

impl Kind {
    pub fn accepts(self, d: StDtype) -> bool {
        match self {
            Kind::Matrix | Kind::Vector => matches!(d, StDtype::Bf16 | StDtype::F32),
            Kind::Mx | Kind::Codes(WeightFormat::Int4 { .. }) => d == StDtype::U8,
            Kind::Codes(_) => d == StDtype::I8,
            Kind::Scales(WeightFormat::Int8) => d == StDtype::F32,
            Kind::Scales(_) => d == StDtype::Bf16,
        }
    }

    fn accepted(self) -> &'static str {
        match self {
            Kind::Matrix | Kind::Vector => "BF16 or F32",
            Kind::Mx | Kind::Codes(WeightFormat::Int4 { .. }) => "U8",
            Kind::Codes(_) => "I8",
            Kind::Scales(WeightFormat::Int8) => "F32",
            Kind::Scales(_) => "BF16",
        }
    }
}

/// How many distinct layers (`model.layers.N.…`) the checkpoint has tensors of.
fn layers_present(ckpt: &Checkpoint) -> usize {
    let index = |name: &str| name.strip_prefix("model.layers.")?.split('.').next()?.parse::<u64>().ok();
    ckpt.tensors().keys().filter_map(|n| index(n)).collect::<std::collections::BTreeSet<_>>().len()
}

/// The name of the scales of a quantized `NAME.weight`.
pub fn scales_name(weight: &str) -> String {
    format!("{weight}_scales")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: Kind,
}

impl TensorSpec {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

pub fn layer_prefix(l: usize) -> String {
    format!("model.layers.{l}.")
}

/// Every tensor of the model, in checkpoint (state-dict) order.
pub fn expected_tensors(c: &GptOssConfig) -> Vec<TensorSpec> {
    let (h, v, e, i) = (c.hidden_size, c.vocab_size, c.num_local_experts, c.intermediate_size);
    let spec = |name: String, shape: Vec<usize>, kind| TensorSpec { name, shape, kind };
    let quantized = c.quantization.weight_only();
    // A dense `rows × cols` matrix of a quantizable family: one tensor as released, or codes and
    // scales.
    let matrix = |t: &mut Vec<TensorSpec>, name: String, rows: usize, cols: usize, family| match quantized.filter(|q| q.includes(family)) {
        None => t.push(spec(name, vec![rows, cols], Kind::Matrix)),
        Some(q) => {
            let (codes, scales) = match q.format {
                WeightFormat::Int4 { group } => (vec![rows, cols / 2], vec![rows, cols / group]),
                _ => (vec![rows, cols], vec![rows]),
            };
            let scales = spec(scales_name(&name), scales, Kind::Scales(q.format));
            t.push(spec(name, codes, Kind::Codes(q.format)));
            t.push(scales);
        }
    };
    let mut t = vec![spec("model.embed_tokens.weight".into(), vec![v, h], Kind::Matrix)];
    for l in 0..c.num_hidden_layers {
        let p = layer_prefix(l);
        t.push(spec(format!("{p}input_layernorm.weight"), vec![h], Kind::Vector));
        for (proj, rows, cols) in [("q_proj", c.q_dim(), h), ("k_proj", c.kv_dim(), h), ("v_proj", c.kv_dim(), h), ("o_proj", h, c.q_dim())]
        {
            matrix(&mut t, format!("{p}self_attn.{proj}.weight"), rows, cols, Family::Attention);
            if c.attention_bias {
                t.push(spec(format!("{p}self_attn.{proj}.bias"), vec![rows], Kind::Vector));
            }
        }
        t.push(spec(format!("{p}self_attn.sinks"), vec![c.num_attention_heads], Kind::Vector));
        t.push(spec(format!("{p}post_attention_layernorm.weight"), vec![h], Kind::Vector));
        matrix(&mut t, format!("{p}mlp.router.weight"), e, h, Family::Router);
        t.push(spec(format!("{p}mlp.router.bias"), vec![e], Kind::Vector));
        for (proj, rows, cols) in [("gate_up_proj", 2 * i, h), ("down_proj", h, i)] {
            t.push(spec(format!("{p}mlp.experts.{proj}_blocks"), vec![e, rows, cols / 32, 16], Kind::Mx));
            t.push(spec(format!("{p}mlp.experts.{proj}_scales"), vec![e, rows, cols / 32], Kind::Mx));
            t.push(spec(format!("{p}mlp.experts.{proj}_bias"), vec![e, rows], Kind::Vector));
        }
    }
    t.push(spec("model.norm.weight".into(), vec![h], Kind::Vector));
    matrix(&mut t, "lm_head.weight".into(), v, h, Family::Unembedding);
    t
}

/// Checks a checkpoint against the config: every expected tensor present with an accepted
/// dtype and the right shape. All problems are reported together.
///
/// The layer count is checked first, against the layers the checkpoint has tensors for: the
/// list of expected tensors grows with it, and a config may claim any count.
pub fn validate(c: &GptOssConfig, ckpt: &Checkpoint) -> Result<()> {
    let present = layers_present(ckpt);
    if c.num_hidden_layers > present {
        return Err(ModelError::Tensors {
            dir: ckpt.dir.clone(),
            problems: vec![format!(
                "config.json has num_hidden_layers = {} but the checkpoint holds tensors of {present} layers",
                c.num_hidden_layers
            )],
        });
    }
    let mut problems = Vec::new();
    if c.quantization == Quantization::None {
        problems
            .push("config.json has no MXFP4 quantization_config: expert weights are read in the released MXFP4 layout only".to_string());
    }
    for s in expected_tensors(c) {
        match ckpt.get(&s.name) {
            None => problems.push(format!("missing tensor '{}' ({:?})", s.name, s.shape)),
            Some(t) => {
                let file = ckpt.shard_path(t).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                if !s.kind.accepts(t.info.dtype) {
                    problems.push(format!(
                        "tensor '{}' in {file} has dtype {}, expected {}",
                        s.name,
                        t.info.dtype.name(),
                        s.kind.accepted()
                    ));
                }
                if t.info.shape != s.shape {
                    problems.push(format!("tensor '{}' in {file} has shape {:?}, expected {:?}", s.name, t.info.shape, s.shape));
                }
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ModelError::Tensors { dir: ckpt.dir.clone(), problems }) }
}
