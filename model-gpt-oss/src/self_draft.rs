//! The model as its own draft (`--draft self:int4`): the same graph, with attention and
//! unembedding in a cheaper format and optionally fewer experts per token, run on a context of
//! its own. Everything else — embedding, norms, router and, above all, the experts — is the
//! target's own buffers: the draft adds the converted matrices only (for 20b at int4 g32,
//! 0.36 GB of attention and 0.33 GB of unembedding), never a second copy of the experts.
//!
//! Spec: `native|int8|int4[:GROUP]` then optionally `:topN` (N experts per token, at most the
//! model's). `native` keeps the loaded weights: `self:native` is the target itself (every
//! proposal accepted under greedy decoding on the CPU), `self:native:top2` only routes to fewer
//! experts.

use std::fmt;
use std::str::FromStr;

use gptoss_engine::{Backend, EngineError, Weight, WeightFormat};

use crate::config::GptOssConfig;
use crate::error::{ModelError, Result};
use crate::model::GptOss;
use crate::weight_only::{DEFAULT_FAMILIES, WeightOnly, parse_format};
use crate::weights::{LayerWeights, Weights};

/// Which cheaper form of the model drafts for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfDraftSpec {
    /// Attention and unembedding converted to this format; `None` keeps them as loaded.
    pub weights: Option<WeightFormat>,
    /// Experts per token; `None` keeps the model's.
    pub experts_per_token: Option<usize>,
}

impl FromStr for SelfDraftSpec {
    type Err = EngineError;

    /// `native|int8|int4[:GROUP][:topN]` (what follows `self:`).
    fn from_str(s: &str) -> std::result::Result<Self, EngineError> {
        let bad = |why: String| {
            EngineError::invalid(format!("self-draft '{s}': {why} (expected native, int8 or int4[:GROUP], then optionally :topN)"))
        };
        let (format, top) = match s.rsplit_once(':') {
            Some((f, t)) if t.starts_with("top") => (f, Some(t)),
            _ => (s, None),
        };
        let weights = match format {
            "native" => None,
            f => Some(parse_format(f).map_err(bad)?),
        };
        let experts_per_token = match top {
            None => None,
            Some(t) => match t[3..].parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad(format!("'{t}' is not topN with N ≥ 1"))),
            },
        };
        Ok(SelfDraftSpec { weights, experts_per_token })
    }
}

impl fmt::Display for SelfDraftSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.weights {
            None => f.write_str("native")?,
            Some(WeightFormat::Int4 { group: 32 }) => f.write_str("int4")?,
            Some(WeightFormat::Int4 { group }) => write!(f, "int4:{group}")?,
            Some(w) => write!(f, "{w}")?,
        }
        if let Some(n) = self.experts_per_token {
            write!(f, ":top{n}")?;
        }
        Ok(())
    }
}

impl SelfDraftSpec {
    /// Checks the spec against a model's config (before anything is loaded) and returns the
    /// experts per token it routes to.
    pub fn check(&self, c: &GptOssConfig) -> std::result::Result<usize, EngineError> {
        let top_k = self.experts_per_token.unwrap_or(c.num_experts_per_tok);
        if top_k > c.num_experts_per_tok {
            return Err(EngineError::invalid(format!(
                "self-draft {self}: {top_k} experts per token, more than the model's {}",
                c.num_experts_per_tok
            )));
        }
        Ok(top_k)
    }
}

/// One layer's attention matrices in the draft's format.
pub(crate) struct DraftAttention<Buf> {
    pub q: Weight<Buf>,
    pub k: Weight<Buf>,
    pub v: Weight<Buf>,
    pub o: Weight<Buf>,
}

/// A self-draft's own buffers: the converted matrices, when the spec converts.
pub(crate) struct SelfDraft<Buf> {
    pub spec: SelfDraftSpec,
    pub top_k: usize,
    /// Per layer; empty when the loaded weights are used.
    pub attention: Vec<DraftAttention<Buf>>,
    pub unembed: Option<Weight<Buf>>,
}

/// Which weights a context's forward passes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// The model as loaded.
    Full,
    /// The self-draft at this index of the model's list.
    Draft(usize),
}

/// The matrices one forward reads where a self-draft may replace the model's.
pub(crate) struct FormWeights<'a, Buf> {
    drafts: &'a [SelfDraft<Buf>],
    form: Form,
}

impl<'a, Buf> FormWeights<'a, Buf> {
    pub fn new(drafts: &'a [SelfDraft<Buf>], form: Form) -> Self {
        FormWeights { drafts, form }
    }

    fn draft(&self) -> Option<&'a SelfDraft<Buf>> {
        match self.form {
            Form::Full => None,
            Form::Draft(i) => Some(&self.drafts[i]),
        }
    }

    /// q, k, v and o of layer `l`.
    pub fn attention(&self, l: usize, w: &'a LayerWeights<Buf>) -> [&'a Weight<Buf>; 4] {
        match self.draft().and_then(|d| d.attention.get(l)) {
            Some(a) => [&a.q, &a.k, &a.v, &a.o],
            None => [&w.q, &w.k, &w.v, &w.o],
        }
    }

    pub fn unembed(&self, w: &'a Weights<Buf>) -> &'a Weight<Buf> {
        self.draft().and_then(|d| d.unembed.as_ref()).unwrap_or(&w.unembed)
    }

    pub fn top_k(&self, c: &GptOssConfig) -> usize {
        self.draft().map_or(c.num_experts_per_tok, |d| d.top_k)
    }
}

impl<B: Backend> GptOss<B> {
    /// The index of the self-draft `spec` in the model's list, adding it (converting attention
    /// and unembedding, choosing kernels for the new formats) if it is not there yet.
    pub(crate) fn self_draft(&mut self, spec: SelfDraftSpec) -> Result<usize> {
        if let Some(i) = self.drafts.iter().position(|d| d.spec == spec) {
            return Ok(i);
        }
        let top_k = spec.check(&self.config)?;
        let c = &self.config;
        let (mut attention, mut unembed) = (Vec::new(), None);
        let loaded = self.weights.layers[0].q.format;
        if let Some(to) = spec.weights.filter(|&to| to != loaded || self.weights.unembed.format != to) {
            let q = WeightOnly::new(to, &DEFAULT_FAMILIES).map_err(EngineError::invalid)?;
            let problems = q.shape_problems(c.hidden_size, c.q_dim());
            if !problems.is_empty() {
                return Err(EngineError::invalid(format!("self-draft {spec}: {}", problems.join("; "))).into());
            }
            let convert = |b: &mut B, w: &Weight<B::Buffer>, name: &str| {
                b.convert_weight(w, to).map_err(|e| ModelError::Convert { tensor: format!("self-draft {name}"), to, source: e })
            };
            for (l, w) in self.weights.layers.iter().enumerate() {
                let name = |m: &str| format!("layer {l} {m}");
                attention.push(DraftAttention {
                    q: convert(&mut self.backend, &w.q, &name("q_proj"))?,
                    k: convert(&mut self.backend, &w.k, &name("k_proj"))?,
                    v: convert(&mut self.backend, &w.v, &name("v_proj"))?,
                    o: convert(&mut self.backend, &w.o, &name("o_proj"))?,
                });
            }
            unembed = Some(convert(&mut self.backend, &self.weights.unembed, "lm_head")?);
        }
        self.drafts.push(SelfDraft { spec, top_k, attention, unembed });
        self.prepare_for_new_draft()?;
        Ok(self.drafts.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for (s, weights, top) in [
            ("native", None, None),
            ("int8", Some(WeightFormat::Int8), None),
            ("int4", Some(WeightFormat::Int4 { group: 32 }), None),
            ("int4:64", Some(WeightFormat::Int4 { group: 64 }), None),
            ("int4:top2", Some(WeightFormat::Int4 { group: 32 }), Some(2)),
            ("int4:64:top2", Some(WeightFormat::Int4 { group: 64 }), Some(2)),
            ("native:top1", None, Some(1)),
        ] {
            let spec: SelfDraftSpec = s.parse().unwrap();
            assert_eq!(spec, SelfDraftSpec { weights, experts_per_token: top }, "{s}");
            assert_eq!(spec.to_string(), s);
        }
        for (bad, why) in [("fp8", "not a weight format"), ("int4:top0", "topN"), ("int4:48", "not one of"), ("int8:topx", "topN")] {
            let e = bad.parse::<SelfDraftSpec>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }
}
