//! `--draft`: what drafts for a target, as written on a command line or passed through the C
//! API, and the check that a draft model can draft for a target at all (same vocabulary, same
//! tokenizer), made before anything is loaded.

use std::fmt;
use std::str::FromStr;

use gptoss_model_gpt_oss::source::tokenizer_for;
use gptoss_model_gpt_oss::{ModelSource, SelfDraftSpec};
use gptoss_tokenizer::Tokenizer;

use crate::error::{Error, Result};

/// A draft source.
#[derive(Clone, Debug, PartialEq)]
pub enum DraftSpec {
    /// `ngram:N`: prompt lookup of n-grams of at most N tokens.
    Ngram(usize),
    /// `self:FORM`: the target in a cheaper form sharing its experts (`self_draft`).
    SelfDraft(SelfDraftSpec),
    /// `random`: uniformly random ids, the floor of what speculation costs.
    Random,
    /// A directory or `synthetic:NAME`: another model with the target's tokenizer.
    Model(ModelSource),
}

impl FromStr for DraftSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let usage = |why: String| Error::Usage(format!("draft {s}: {why}"));
        if let Some(n) = s.strip_prefix("ngram:") {
            return match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(DraftSpec::Ngram(n)),
                _ => Err(usage(format!("'{n}' is not an n-gram size (1 or more)"))),
            };
        }
        if let Some(form) = s.strip_prefix("self:") {
            return Ok(DraftSpec::SelfDraft(form.parse().map_err(|e: gptoss_engine::EngineError| usage(e.to_string()))?));
        }
        match s {
            "self" => Ok(DraftSpec::SelfDraft("native".parse().map_err(|e: gptoss_engine::EngineError| usage(e.to_string()))?)),
            "random" => Ok(DraftSpec::Random),
            "ngram" => Err(usage("give the n-gram size, e.g. ngram:3".into())),
            _ => Ok(DraftSpec::Model(s.parse()?)),
        }
    }
}

impl fmt::Display for DraftSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DraftSpec::Ngram(n) => write!(f, "ngram:{n}"),
            DraftSpec::SelfDraft(spec) => write!(f, "self:{spec}"),
            DraftSpec::Random => f.write_str("random"),
            DraftSpec::Model(source) => write!(f, "{source}"),
        }
    }
}

/// Where a model's tokenizer comes from, for messages.
fn tokenizer_origin(source: &ModelSource) -> String {
    match source {
        ModelSource::Dir(dir) if dir.join("tokenizer.json").exists() => dir.join("tokenizer.json").display().to_string(),
        _ => "o200k_harmony (built in)".into(),
    }
}

/// Whether two tokenizers map every id to the same bytes and the same special tokens.
fn same_tokenizer(a: &Tokenizer, b: &Tokenizer) -> bool {
    a.vocab_size() == b.vocab_size()
        && a.special_tokens() == b.special_tokens()
        && (0..a.vocab_size() as u32).all(|id| a.token_bytes(id).ok() == b.token_bytes(id).ok())
}

/// Refuses a draft model (from `draft`, with `draft_vocab` ids) whose vocabulary or tokenizer
/// differs from the target's, naming both.
pub fn check_draft_model(target: &ModelSource, target_vocab: usize, draft: &ModelSource, draft_vocab: usize) -> Result<()> {
    if target_vocab != draft_vocab {
        return Err(Error::Usage(format!(
            "draft {draft} has a vocabulary of {draft_vocab} tokens and target {target} one of {target_vocab}: a draft must share \
             the target's tokenizer"
        )));
    }
    let (tt, dt) = (tokenizer_for(Some(target))?, tokenizer_for(Some(draft))?);
    if !same_tokenizer(&tt, &dt) {
        return Err(Error::Usage(format!(
            "draft {draft} uses the tokenizer {} and target {target} the tokenizer {}, which differ: a draft must share the \
             target's tokenizer",
            tokenizer_origin(draft),
            tokenizer_origin(target)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for s in ["ngram:3", "self:int4", "self:int8:top2", "self:native", "random", "synthetic:tiny", "synthetic:20b@3", "/models/20b"] {
            assert_eq!(s.parse::<DraftSpec>().unwrap().to_string(), s);
        }
        assert_eq!("self".parse::<DraftSpec>().unwrap().to_string(), "self:native");
        for (bad, why) in
            [("ngram:0", "n-gram size"), ("ngram", "ngram:3"), ("self:fp8", "not a weight format"), ("synthetic:9b", "unknown model")]
        {
            let e = bad.parse::<DraftSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
