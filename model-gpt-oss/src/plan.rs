//! What a loaded model asks of its backend: the (op, weight format) cases it needs kernels for,
//! and the sizes the backend's scratch must hold. Given to `Backend::prepare` once at load.

use gptoss_engine::{ModelPlan, OpCase, OpKind};

use crate::accounting::Formats;
use crate::config::GptOssConfig;

/// The cases the backend must have kernels for, and the sizes of its scratch. `experts` is the
/// most expert matrices one `moe_experts` call stacks (the model's, or the expert pool's slots).
pub(crate) fn plan(c: &GptOssConfig, f: &Formats, max_batch: usize, experts: usize) -> ModelPlan {
    let mut cases = vec![
        OpCase { op: OpKind::Embed, format: Some(f.embedding) },
        OpCase { op: OpKind::RmsNorm, format: None },
        OpCase { op: OpKind::QkvRope, format: Some(f.attention) },
        OpCase { op: OpKind::Attention, format: None },
        OpCase { op: OpKind::Matmul, format: Some(f.attention) },
        OpCase { op: OpKind::Matmul, format: Some(f.unembedding) },
        OpCase { op: OpKind::MoeRoute, format: Some(f.router) },
        OpCase { op: OpKind::MoeExperts, format: Some(f.experts) },
        OpCase { op: OpKind::Sample, format: None },
    ];
    let mut seen = Vec::new();
    cases.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    ModelPlan {
        max_tokens: max_batch,
        hidden: c.hidden_size,
        q_heads: c.num_attention_heads,
        kv_heads: c.num_key_value_heads,
        head_dim: c.head_dim,
        experts,
        top_k: c.num_experts_per_tok,
        intermediate: c.intermediate_size,
        vocab: c.vocab_size,
        cases,
    }
}
