//! What a loaded model asks of its backend: the (op, weight format) cases it needs kernels for,
//! and the sizes the backend's scratch must hold. Given to `Backend::prepare` once at load.

use gptoss_engine::{ModelPlan, OpCase, OpKind};

use crate::config::GptOssConfig;
use crate::weights::Weights;

/// The cases the backend must have kernels for, and the sizes of its scratch.
pub(crate) fn plan<Buf>(c: &GptOssConfig, w: &Weights<Buf>, max_batch: usize) -> ModelPlan {
    let l0 = &w.layers[0];
    let mut cases = vec![
        OpCase { op: OpKind::Embed, format: Some(w.embed.format) },
        OpCase { op: OpKind::RmsNorm, format: None },
        OpCase { op: OpKind::QkvRope, format: Some(l0.q.format) },
        OpCase { op: OpKind::Attention, format: None },
        OpCase { op: OpKind::Matmul, format: Some(l0.o.format) },
        OpCase { op: OpKind::Matmul, format: Some(w.unembed.format) },
        OpCase { op: OpKind::MoeRoute, format: Some(l0.router.format) },
        OpCase { op: OpKind::MoeExperts, format: Some(l0.gate_up.format) },
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
        experts: c.num_local_experts,
        top_k: c.num_experts_per_tok,
        intermediate: c.intermediate_size,
        vocab: c.vocab_size,
        cases,
    }
}
