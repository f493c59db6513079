//! A draft kept beside a session between generations: a self-draft's context on the target
//! model, or a context on another model, with the tokens each holds (so that the next
//! generation reuses them); n-gram and random drafts keep nothing.

use gptoss_engine::speculative::{ModelDraft, NgramDraft, RandomDraft, Speculate, SpeculationStats, generate_speculative};
use gptoss_engine::{GenerateOptions, GenerationStats};
use gptoss_model_gpt_oss::ContextOptions;

use super::draft_spec::DraftSpec;
use crate::error::{Error, Result};
use crate::runtime::{Context, Model};

/// Seed of the random draft's own source (the generation's seed drives everything else).
const RANDOM_DRAFT_SEED: u64 = 0x5eed;

/// A draft's state between generations.
pub enum Drafter {
    Ngram(usize),
    Random,
    /// A context of the target model running its self-draft.
    SelfDraft {
        name: String,
        context: Context,
        cached: Vec<u32>,
    },
    /// A context of another model, which each generation is given.
    Model {
        name: String,
        context: Context,
        cached: Vec<u32>,
    },
}

impl Drafter {
    /// The draft `spec` for `target`, with contexts of `context` options. A model draft needs
    /// its model (loaded and checked by the caller: `check_draft_model`).
    pub fn new(spec: &DraftSpec, target: &mut Model, draft_model: Option<&mut Model>, context: ContextOptions) -> Result<Self> {
        Ok(match (spec, draft_model) {
            (DraftSpec::Ngram(n), _) => Drafter::Ngram(*n),
            (DraftSpec::Random, _) => Drafter::Random,
            (DraftSpec::SelfDraft(s), _) => {
                Drafter::SelfDraft { name: spec.to_string(), context: target.new_self_draft_context(*s, context)?, cached: Vec::new() }
            }
            (DraftSpec::Model(_), Some(m)) => {
                Drafter::Model { name: spec.to_string(), context: m.new_context(context)?, cached: Vec::new() }
            }
            (DraftSpec::Model(source), None) => return Err(Error::Usage(format!("draft {source}: the draft model is not loaded"))),
        })
    }

    pub fn name(&self) -> String {
        match self {
            Drafter::Ngram(n) => format!("ngram:{n}"),
            Drafter::Random => "random".into(),
            Drafter::SelfDraft { name, .. } | Drafter::Model { name, .. } => name.clone(),
        }
    }

    /// Generates on `target` with `ctx` (which holds `cached`) as `generate_speculative` does,
    /// this draft proposing; `draft_model` is the model of a `Model` draft.
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        &mut self,
        target: &mut Model,
        ctx: &mut Context,
        draft_model: Option<&mut Model>,
        cached: &[u32],
        prompt: &[u32],
        opts: &GenerateOptions,
        speculate: Speculate,
        on_token: impl FnMut(u32) -> bool,
    ) -> Result<(GenerationStats, SpeculationStats)> {
        match self {
            Drafter::Ngram(n) => {
                let mut lm = target.session(ctx)?;
                Ok(generate_speculative(lm.as_mut(), &mut NgramDraft::new(*n)?, cached, prompt, opts, speculate, on_token)?)
            }
            Drafter::Random => {
                let mut lm = target.session(ctx)?;
                let mut draft = RandomDraft::new(lm.vocab_size(), RANDOM_DRAFT_SEED)?;
                Ok(generate_speculative(lm.as_mut(), &mut draft, cached, prompt, opts, speculate, on_token)?)
            }
            Drafter::SelfDraft { name, context, cached: drafted } => {
                let (mut lm, draft_lm) = target.shared_sessions(ctx, context)?;
                let mut draft = ModelDraft::new(name.clone(), draft_lm, std::mem::take(drafted))?;
                let out = generate_speculative(lm.as_mut(), &mut draft, cached, prompt, opts, speculate, on_token);
                *drafted = draft.into_cached();
                Ok(out?)
            }
            Drafter::Model { name, context, cached: drafted } => {
                let model = draft_model.ok_or_else(|| Error::Usage(format!("draft {name}: the draft model is not loaded")))?;
                let mut lm = target.session(ctx)?;
                let mut draft = ModelDraft::new(name.clone(), model.session(context)?, std::mem::take(drafted))?;
                let out = generate_speculative(lm.as_mut(), &mut draft, cached, prompt, opts, speculate, on_token);
                *drafted = draft.into_cached();
                Ok(out?)
            }
        }
    }
}
