//! Bytes a decoded token reads, by family: the decode-time roofline's numerator.
//!
//! At batch 1 a token reads every attention, norm and router weight once, the `top_k` experts
//! it is routed to in each layer (the unique experts of the step), the whole unembedding, one
//! embedding row, and the KV cache of the positions it attends: on full layers every earlier
//! position and itself, on sliding layers at most the window.

use gptoss_engine::{DType, WeightFormat};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::Preset;

    #[test]
    fn gpt_oss_20b_reads_3_70_gb_per_token() {
        let c = Preset::Gpt20b.config();
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
        let c = Preset::Gpt120b.config();
        let b = token_bytes(&c, &Formats::CHECKPOINT, 4.0, 0);
        assert_eq!(b.attention, 1_911_029_760.0 + 576_000.0 + 4_608.0);
        assert_eq!(b.router, 26_551_296.0);
        // 4 of 128 experts per layer: a 32nd of all expert bytes.
        assert_eq!(b.experts, (38_220_595_200.0 + 2_388_787_200.0 + 19_110_297_600.0 + 1_194_393_600.0 + 79_626_240.0) / 32.0);
        assert_eq!(b.weights(), 5_002_907_904.0);
    }

    #[test]
    fn kv_bytes_grow_only_on_full_layers_past_the_window() {
        let c = Preset::Gpt20b.config();
        let per_pos = 2.0 * 512.0 * 2.0;
        let at = |d| token_bytes(&c, &Formats::CHECKPOINT, 4.0, d).kv_cache;
        assert_eq!(at(127), 24.0 * 128.0 * per_pos);
        assert_eq!(at(4095), (12.0 * 4096.0 + 12.0 * 128.0) * per_pos);
        // ANCHORS: 0.10 GB per token at 4k context.
        assert!((at(4095) / 1e9 - 0.10).abs() < 0.01);
    }

    #[test]
    fn int8_attention_and_unembedding_cut_20b_to_2_5_gb() {
        let c = Preset::Gpt20b.config();
        let f = Formats { attention: WeightFormat::Int8, unembedding: WeightFormat::Int8, ..Formats::CHECKPOINT };
        let b = token_bytes(&c, &f, 4.0, 0);
        assert!((b.weights() / 1e9 - 2.49).abs() < 0.01, "{}", b.weights());
        let f =
            Formats { attention: WeightFormat::Int4 { group: 32 }, unembedding: WeightFormat::Int4 { group: 32 }, ..Formats::CHECKPOINT };
        assert!((token_bytes(&c, &f, 4.0, 0).weights() / 1e9 - 1.95).abs() < 0.01);
    }

    #[test]
    fn a_load_time_conversion_changes_only_its_families() {
        let c = Preset::Gpt20b.config();
        let q = WeightOnly::new(WeightFormat::Int4 { group: 32 }, &[Family::Attention, Family::Unembedding]).unwrap();
        let f = Formats::CHECKPOINT.converted(Some(q));
        assert_eq!((f.attention, f.unembedding, f.router, f.experts), (q.format, q.format, WeightFormat::Bf16, WeightFormat::Mxfp4));
        assert_eq!(token_bytes(&c, &f, 4.0, 0).weights(), 1_959_883_008.0);
        assert_eq!(Formats::CHECKPOINT.converted(None), Formats::CHECKPOINT);
    }
}
