//! What a load and a context will hold in the backend's memory, computed before anything is
//! allocated and compared with what the backend says it has: a model, a batch size or a context
//! that would not fit is refused with both figures instead of ending in an allocation failure
//! (an abort on the host) or the out-of-memory killer.
//!
//! Every product is checked: sizes come from files and options, and an overflow is "too large"
//! like any other size that cannot be had.

use std::collections::HashSet;

use gptoss_engine::{Backend, DType};

use crate::config::{GptOssConfig, Quantization};
use crate::error::{ModelError, Result, gb};
use crate::source::{OpenedModel, TensorData};
use crate::tensors::{Kind, TensorSpec, expected_tensors};
use crate::weight_only::WeightOnly;

/// Bytes of `elems` elements of `dtype`, and of sums of such, with overflow as `None`.
fn bytes(dtype: DType, elems: &[usize]) -> Option<u64> {
    let n = elems.iter().try_fold(1usize, |acc, &e| acc.checked_mul(e))?;
    u64::try_from(dtype.bytes(n)?).ok()
}

fn sum(parts: &[Option<u64>]) -> Option<u64> {
    parts.iter().try_fold(0u64, |acc, p| acc.checked_add((*p)?))
}

/// The intermediate results one forward pass over `max_batch` tokens holds on any backend:
/// projected keys and values, router logits, per routed (token, expert) pair its gate and up
/// outputs, activation and down output, and a row of sampling candidates. A lower bound of the
/// backends' scratch (`Backend::prepare`).
pub fn working_bytes(c: &GptOssConfig, max_batch: usize) -> Option<u64> {
    let slots = max_batch.checked_mul(c.num_experts_per_tok)?;
    sum(&[
        bytes(DType::F32, &[2, max_batch, c.kv_dim()]),
        bytes(DType::F32, &[max_batch, c.num_local_experts]),
        bytes(DType::F32, &[slots, 3 * c.intermediate_size + c.hidden_size]),
        bytes(DType::F32, &[c.vocab_size]),
    ])
}

/// A context's buffers: (KV cache, activations), as `GptOss::new_context` allocates them.
pub fn context_bytes(c: &GptOssConfig, max_context: usize, max_batch: usize, kv: DType) -> Option<(u64, u64)> {
    let batch = max_batch.min(max_context);
    let mut cache = Some(0u64);
    for l in 0..c.num_hidden_layers {
        // Sliding layers keep a ring of window + batch slots (`KvCache`).
        let slots = c.window(l).map_or(max_context, |w| max_context.min(w.saturating_add(batch)));
        cache = sum(&[cache, bytes(kv, &[2, slots, c.kv_dim()])]);
    }
    let (h, q) = (c.hidden_size, c.q_dim());
    let activations = sum(&[
        // token ids, positions, the host staging area
        bytes(DType::U32, &[3, batch]),
        // x, h, last; q, attn; expert ids and weights; logits
        bytes(DType::F32, &[3, batch, h]),
        bytes(DType::F32, &[2, batch, q]),
        bytes(DType::F32, &[2, batch, c.num_experts_per_tok]),
        bytes(DType::F32, &[batch, c.vocab_size]),
    ]);
    Some((cache?, activations?))
}

/// `who` needs `needed` bytes (None: more than can be counted) of `backend`'s memory, made of
/// what `what` says.
fn fits<B: Backend>(backend: &B, who: String, needed: Option<u64>, what: impl FnOnce() -> String) -> Result<()> {
    let Some(available) = backend.memory_available() else { return Ok(()) };
    match needed {
        Some(n) if n <= available => Ok(()),
        _ => Err(ModelError::TooLarge { who, backend: backend.info().name, needed, available, what: what() }),
    }
}

/// Refuses a load whose buffers would not fit: the tensors the backend must hold itself
/// (generated ones, or every one where it copies host bytes), the converted copies of the
/// families `convert` names, and the working buffers of `max_batch` tokens.
pub fn check_load<'a, B: Backend>(
    backend: &B,
    model: &OpenedModel,
    specs: impl Iterator<Item = &'a TensorSpec>,
    convert: Option<WeightOnly>,
    max_batch: usize,
) -> Result<()> {
    // Which matrices a conversion turns into codes: the tensor list of the converted model
    // (`tensors.rs` knows each matrix's family).
    let codes: HashSet<String> = match convert {
        Some(q) => {
            let mut target = model.config.clone();
            target.quantization = Quantization::WeightOnly(q);
            expected_tensors(&target).into_iter().filter(|t| matches!(t.kind, Kind::Codes(_))).map(|t| t.name).collect()
        }
        None => Default::default(),
    };
    let mut weights = Some(0u64);
    for spec in specs {
        let held = backend.copies_host_bytes() || matches!(model.tensor(spec), TensorData::Synth(..));
        let converted = convert.filter(|_| spec.kind == Kind::Matrix && codes.contains(&spec.name));
        let size = match converted {
            Some(q) => {
                let (rows, cols) = (spec.shape[0], spec.shape[1]);
                let (dt, len) = q.format.data_layout(rows, cols);
                sum(&[bytes(dt, &[len]), q.format.scales_layout(rows, cols).map_or(Some(0), |(st, n)| bytes(st, &[n]))])
            }
            None if held => bytes(DType::U8, &[&spec.shape[..], &[model.dtype(spec).size()]].concat()),
            None => Some(0),
        };
        weights = sum(&[weights, size]);
    }
    let working = working_bytes(&model.config, max_batch);
    fits(backend, model.source.to_string(), sum(&[weights, working]), || {
        let generated = if matches!(model.source, crate::ModelSource::Synthetic { .. }) {
            "; a synthetic model is generated in memory: `gptoss synth` writes it to disk, where the CPU backend maps it instead of holding it"
        } else {
            ""
        };
        format!("weights {}, working buffers for {max_batch} tokens {}{generated}", gb(weights), gb(working))
    })
}

/// Refuses a context whose KV cache and activations would not fit.
pub fn check_context<B: Backend>(backend: &B, c: &GptOssConfig, max_context: usize, max_batch: usize, kv: DType) -> Result<()> {
    let sizes = context_bytes(c, max_context, max_batch, kv);
    fits(backend, format!("a context of {max_context} tokens"), sizes.and_then(|(k, a)| k.checked_add(a)), || match sizes {
        Some((k, a)) => format!("KV cache {}, activations {}", gb(Some(k)), gb(Some(a))),
        None => "KV cache and activations".into(),
    })
}
