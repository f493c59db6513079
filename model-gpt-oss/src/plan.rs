//! What a loaded model asks of its backend: the (op, weight format) cases it needs kernels for,
//! and the sizes the backend's scratch must hold. Given to `Backend::prepare` at load, and
//! again when a self-draft brings attention and unembedding in another format.

use gptoss_engine::{ModelPlan, OpCase, OpKind};

use crate::accounting::Formats;
use crate::config::GptOssConfig;
use crate::self_draft::SelfDraft;

/// The cases the backend must have kernels for, and the sizes of its scratch. `experts` is the
/// most expert matrices one `moe_experts` call stacks (the model's, or the expert pool's slots);
/// `drafts` bring their attention and unembedding formats.
pub(crate) fn plan<Buf>(c: &GptOssConfig, f: &Formats, drafts: &[SelfDraft<Buf>], max_batch: usize, experts: usize) -> ModelPlan {
    let draft_cases = drafts.iter().flat_map(|d| {
        let attention = d.attention.first().map(|a| [(OpKind::QkvRope, a.q.format), (OpKind::Matmul, a.o.format)]);
        let unembed = d.unembed.as_ref().map(|u| (OpKind::Matmul, u.format));
        attention.into_iter().flatten().chain(unembed).map(|(op, f)| OpCase { op, format: Some(f) })
    });
    let mut cases: Vec<OpCase> = vec![
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
    cases.extend(draft_cases);
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
