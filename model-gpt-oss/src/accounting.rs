//! Bytes a decoded token reads, by family and by op: the decode-time roofline's numerator.
//!
//! At batch 1 a token reads every attention, norm and router weight once, the `top_k` experts
//! it is routed to in each layer (the unique experts of the step), the whole unembedding, one
//! embedding row, and the KV cache of the positions it attends: on full layers every earlier
//! position and itself, on sliding layers at most the window.

use gptoss_engine::profiled::OpSite;
use gptoss_engine::{DType, OpKind, WeightFormat};

use crate::config::GptOssConfig;
use crate::safetensors::StDtype;
use crate::source::OpenedModel;
use crate::tensors::{Kind, expected_tensors};
use crate::weight_only::{Family, WeightOnly};

/// How each family is stored where it is read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Formats {
    pub embedding: WeightFormat,
    pub attention: WeightFormat,
    pub router: WeightFormat,
    pub experts: WeightFormat,
    pub unembedding: WeightFormat,
    /// Bytes per element of biases, norm gains and sinks (2 in a checkpoint, 4 once loaded).
    pub vector_bytes: usize,
    pub kv: DType,
}

impl Formats {
    /// The released checkpoints as stored: bf16 everywhere but MXFP4 experts.
    pub const CHECKPOINT: Formats = Formats {
        embedding: WeightFormat::Bf16,
        attention: WeightFormat::Bf16,
        router: WeightFormat::Bf16,
        experts: WeightFormat::Mxfp4,
        unembedding: WeightFormat::Bf16,
        vector_bytes: 2,
        kv: DType::Bf16,
    };
}

impl Formats {
    /// The formats after converting the families `q` names at load time.
    pub fn converted(self, q: Option<WeightOnly>) -> Formats {
        let Some(q) = q else { return self };
        let pick = |family, stored| if q.includes(family) { q.format } else { stored };
        Formats {
            attention: pick(Family::Attention, self.attention),
            router: pick(Family::Router, self.router),
            unembedding: pick(Family::Unembedding, self.unembedding),
            ..self
        }
    }
}

/// The formats of a model as its files (or its synthetic generator) store it.
pub fn stored_formats(model: &OpenedModel) -> Formats {
    let format = |name: &str| {
        let spec = expected_tensors(&model.config).into_iter().find(|s| s.name == name).expect("a tensor every model has");
        match spec.kind {
            Kind::Codes(quantized) => quantized,
            _ if model.dtype(&spec) == StDtype::F32 => WeightFormat::F32,
            _ => WeightFormat::Bf16,
        }
    };
    let attention = format("model.layers.0.self_attn.q_proj.weight");
    Formats {
        embedding: format("model.embed_tokens.weight"),
        attention,
        router: format("model.layers.0.mlp.router.weight"),
        experts: WeightFormat::Mxfp4,
        unembedding: format("lm_head.weight"),
        vector_bytes: if attention == WeightFormat::F32 { 4 } else { 2 },
        kv: DType::Bf16,
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenBytes {
    pub embedding: f64,
    pub attention: f64,
    pub norms: f64,
    pub router: f64,
    pub experts: f64,
    pub unembedding: f64,
    pub kv_cache: f64,
}

impl TokenBytes {
    pub fn weights(&self) -> f64 {
        self.embedding + self.attention + self.norms + self.router + self.experts + self.unembedding
    }

    pub fn total(&self) -> f64 {
        self.weights() + self.kv_cache
    }

    /// (family name, bytes) in a fixed order, for tables and JSON.
    pub fn families(&self) -> [(&'static str, f64); 7] {
        [
            ("embedding", self.embedding),
            ("attention", self.attention),
            ("norms", self.norms),
            ("router", self.router),
            ("experts", self.experts),
            ("unembedding", self.unembedding),
            ("kv_cache", self.kv_cache),
        ]
    }
}

/// Bytes read to decode the token at position `depth` (so `depth` tokens are already cached),
/// with `experts_per_layer` distinct experts touched per layer.
pub fn token_bytes(c: &GptOssConfig, f: &Formats, experts_per_layer: f64, depth: usize) -> TokenBytes {
    let (h, layers) = (c.hidden_size, c.num_hidden_layers as f64);
    let (q, kv, e, i) = (c.q_dim(), c.kv_dim(), c.num_local_experts, c.intermediate_size);
    let v = f.vector_bytes as f64;
    let bias = if c.attention_bias { (q + 2 * kv + h) as f64 * v } else { 0.0 };
    let attention = f.attention.matrix_bytes(q, h) + 2 * f.attention.matrix_bytes(kv, h) + f.attention.matrix_bytes(h, q);
    let expert = f.experts.matrix_bytes(2 * i, h) as f64 + f.experts.matrix_bytes(h, i) as f64 + (2 * i + h) as f64 * v;
    let kv_read: usize = (0..c.num_hidden_layers).map(|l| c.window(l).map_or(depth + 1, |w| (depth + 1).min(w))).sum();
    TokenBytes {
        embedding: f.embedding.matrix_bytes(1, h) as f64,
        attention: layers * (attention as f64 + bias + c.num_attention_heads as f64 * v),
        norms: (2.0 * layers + 1.0) * h as f64 * v,
        router: layers * (f.router.matrix_bytes(e, h) as f64 + e as f64 * v),
        experts: layers * experts_per_layer.min(e as f64) * expert,
        unembedding: f.unembedding.matrix_bytes(c.vocab_size, h) as f64,
        kv_cache: (kv_read * 2 * kv * f.kv.size()) as f64,
    }
}

/// One op of a decode step as a per-op breakdown shows it: a name that tells the graph's sites
/// apart, and the bytes the op must read per token (its floor) where the accounting knows them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpFloor {
    pub name: &'static str,
    pub bytes: Option<f64>,
}

/// The floor of the op that ran at `site` in a decode step whose token reads `token` (from
/// [`token_bytes`] with the same config and formats). The o-projection and the unembedding are
/// both matmuls, told apart by their shapes. The weight floors leave out biases and sinks,
/// which `token.attention` counts; norms have none.
pub fn op_floor(c: &GptOssConfig, f: &Formats, token: &TokenBytes, site: &OpSite) -> OpFloor {
    let layers = c.num_hidden_layers;
    let (name, bytes) = match site.op {
        OpKind::Matmul if site.rows == c.vocab_size => ("matmul (unembedding)", Some(token.unembedding)),
        OpKind::Matmul if site.rows == c.hidden_size && site.cols == c.q_dim() => {
            ("matmul (o_proj + residual)", Some((layers * f.attention.matrix_bytes(c.hidden_size, c.q_dim())) as f64))
        }
        OpKind::QkvRope => {
            let qkv = f.attention.matrix_bytes(c.q_dim(), c.hidden_size) + 2 * f.attention.matrix_bytes(c.kv_dim(), c.hidden_size);
            ("qkv_rope (+ kv write)", Some((layers * qkv) as f64))
        }
        OpKind::Attention => ("attention", Some(token.kv_cache)),
        OpKind::MoeRoute => ("moe_route", Some(token.router)),
        OpKind::MoeExperts => ("moe_experts", Some(token.experts)),
        OpKind::Embed => ("embed", Some(token.embedding)),
        op => (op.name(), None),
    };
    OpFloor { name, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::Preset;

    #[test]
    fn gpt_oss_20b_reads_3_70_gb_per_token() {
        let c = Preset::GPT_20B.config();
        let b = token_bytes(&c, &Formats::CHECKPOINT, 4.0, 0);
        // Spec §2.3: q,k,v,o 1,274,019,840 + biases 384,000 + sinks 3,072 bytes.
        assert_eq!(b.attention, 1_274_406_912.0);
        assert_eq!(b.norms, 282_240.0);
        assert_eq!(b.router, 4_425_216.0);
        // Four of 32 experts per layer: an eighth of all expert bytes (10,165,616,640).
        assert_eq!(b.experts, 1_270_702_080.0);
        assert_eq!(b.unembedding, 1_158_266_880.0);
        assert_eq!(b.embedding, 5_760.0);
        assert_eq!(b.weights(), 3_708_089_088.0);
        // One cached position per layer at depth 0: 24 × 2 × 512 × 2 bytes.
        assert_eq!(b.kv_cache, 49_152.0);
    }

    #[test]
    fn gpt_oss_120b_reads_5_0_gb_per_token() {
        let c = Preset::GPT_120B.config();
        let b = token_bytes(&c, &Formats::CHECKPOINT, 4.0, 0);
        assert_eq!(b.attention, 1_911_029_760.0 + 576_000.0 + 4_608.0);
        assert_eq!(b.router, 26_551_296.0);
        // 4 of 128 experts per layer: a 32nd of all expert bytes.
        assert_eq!(b.experts, (38_220_595_200.0 + 2_388_787_200.0 + 19_110_297_600.0 + 1_194_393_600.0 + 79_626_240.0) / 32.0);
        assert_eq!(b.weights(), 5_002_907_904.0);
    }

    #[test]
    fn kv_bytes_grow_only_on_full_layers_past_the_window() {
        let c = Preset::GPT_20B.config();
        let per_pos = 2.0 * 512.0 * 2.0;
        let at = |d| token_bytes(&c, &Formats::CHECKPOINT, 4.0, d).kv_cache;
        assert_eq!(at(127), 24.0 * 128.0 * per_pos);
        assert_eq!(at(4095), (12.0 * 4096.0 + 12.0 * 128.0) * per_pos);
        // ANCHORS: 0.10 GB per token at 4k context.
        assert!((at(4095) / 1e9 - 0.10).abs() < 0.01);
    }

    #[test]
    fn int8_attention_and_unembedding_cut_20b_to_2_5_gb() {
        let c = Preset::GPT_20B.config();
        let f = Formats { attention: WeightFormat::Int8, unembedding: WeightFormat::Int8, ..Formats::CHECKPOINT };
        let b = token_bytes(&c, &f, 4.0, 0);
        assert!((b.weights() / 1e9 - 2.49).abs() < 0.01, "{}", b.weights());
        let f =
            Formats { attention: WeightFormat::Int4 { group: 32 }, unembedding: WeightFormat::Int4 { group: 32 }, ..Formats::CHECKPOINT };
        assert!((token_bytes(&c, &f, 4.0, 0).weights() / 1e9 - 1.95).abs() < 0.01);
    }

    #[test]
    fn op_floors_of_a_20b_decode_step() {
        let c = Preset::GPT_20B.config();
        let f = Formats::CHECKPOINT;
        let b = token_bytes(&c, &f, 4.0, 0);
        let floor = |op, rows, cols| op_floor(&c, &f, &b, &OpSite { op, rows, cols });
        let qkv = floor(OpKind::QkvRope, 0, 0);
        let o = floor(OpKind::Matmul, c.hidden_size, c.q_dim());
        // bench/NOTES.md's per-op floors: 0.708 GB and 0.566 GB.
        assert_eq!(qkv, OpFloor { name: "qkv_rope (+ kv write)", bytes: Some(707_788_800.0) });
        assert_eq!(o, OpFloor { name: "matmul (o_proj + residual)", bytes: Some(566_231_040.0) });
        // With the biases and sinks they are the attention family.
        assert_eq!(qkv.bytes.unwrap() + o.bytes.unwrap() + 384_000.0 + 3_072.0, b.attention);
        assert_eq!(floor(OpKind::Matmul, c.vocab_size, c.hidden_size).bytes, Some(b.unembedding));
        assert_eq!(floor(OpKind::Attention, 0, 0).bytes, Some(b.kv_cache));
        assert_eq!(floor(OpKind::MoeRoute, c.num_local_experts, c.hidden_size).bytes, Some(b.router));
        assert_eq!(floor(OpKind::MoeExperts, 0, 0).bytes, Some(b.experts));
        assert_eq!(floor(OpKind::Embed, c.vocab_size, c.hidden_size).bytes, Some(b.embedding));
        assert_eq!(floor(OpKind::RmsNorm, 0, 0), OpFloor { name: "rms_norm", bytes: None });
        // An int8 load halves the o-projection's floor.
        let f8 = Formats { attention: WeightFormat::Int8, ..f };
        let o8 = op_floor(&c, &f8, &token_bytes(&c, &f8, 4.0, 0), &OpSite { op: OpKind::Matmul, rows: c.hidden_size, cols: c.q_dim() });
        assert_eq!(o8.bytes, Some(566_231_040.0 / 2.0 + 24.0 * 2880.0 * 4.0));
    }

    #[test]
    fn a_load_time_conversion_changes_only_its_families() {
        let c = Preset::GPT_20B.config();
        let q = WeightOnly::new(WeightFormat::Int4 { group: 32 }, &[Family::Attention, Family::Unembedding]).unwrap();
        let f = Formats::CHECKPOINT.converted(Some(q));
        assert_eq!((f.attention, f.unembedding, f.router, f.experts), (q.format, q.format, WeightFormat::Bf16, WeightFormat::Mxfp4));
        assert_eq!(token_bytes(&c, &f, 4.0, 0).weights(), 1_959_883_008.0);
        assert_eq!(Formats::CHECKPOINT.converted(None), Formats::CHECKPOINT);
    }
}
