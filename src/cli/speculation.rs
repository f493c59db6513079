//! `--draft` and `--speculate` on `generate` and `chat`: the draft is checked against the
//! target before any weights load, loaded beside the session, and what speculation did is
//! printed after each generation next to the bytes of one plain decode step.

use gptoss::speculation::{DraftSpec, Drafter, check_draft_model};
use gptoss::{Error, Model, Result, RuntimeOptions, Session};
use gptoss_engine::speculative::{Speculate, SpeculationStats};
use gptoss_engine::{GenerateOptions, GenerationStats};
use gptoss_model_gpt_oss::OpenedModel;
use gptoss_model_gpt_oss::accounting::token_bytes;

#[derive(clap::Args)]
pub struct SpeculationArgs {
    /// Speculative decoding's draft: ngram:N (prompt lookup), self:FORM (this model with
    /// attention and unembedding in FORM = native, int8 or int4[:GROUP], then optionally :topN
    /// experts per token; the experts are shared), random, or another model (a directory or
    /// synthetic:NAME) with this model's tokenizer.
    #[arg(long)]
    draft: Option<String>,
    /// Tokens the draft proposes per step: a number, or auto (adapts to the measured
    /// acceptance and step cost). Default 4.
    #[arg(long)]
    speculate: Option<String>,
}

/// A draft chosen on the command line, checked against its target.
pub struct Speculation {
    spec: DraftSpec,
    speculate: Speculate,
    /// A draft model, opened (not loaded).
    opened: Option<OpenedModel>,
}

impl SpeculationArgs {
    /// The draft asked for, checked against `target` (nothing is loaded yet).
    pub fn open(&self, target: &OpenedModel) -> Result<Option<Speculation>> {
        let Some(draft) = &self.draft else {
            if self.speculate.is_some() {
                return Err(Error::Usage("--speculate needs a --draft".into()));
            }
            return Ok(None);
        };
        let spec: DraftSpec = draft.parse()?;
        let speculate = match &self.speculate {
            None => Speculate::Fixed(4),
            Some(s) => s.parse().map_err(|e: gptoss_engine::EngineError| Error::Usage(format!("--speculate: {e}")))?,
        };
        let opened = match &spec {
            DraftSpec::SelfDraft(s) => {
                s.check(&target.config)?;
                None
            }
            DraftSpec::Model(source) => {
                let opened = source.open()?;
                check_draft_model(&target.source, target.config.vocab_size, source, opened.config.vocab_size)?;
                Some(opened)
            }
            _ => None,
        };
        Ok(Some(Speculation { spec, speculate, opened }))
    }
}

/// A draft loaded beside a session.
pub struct LoadedDraft {
    drafter: Drafter,
    model: Option<Model>,
    speculate: Speculate,
}

impl Speculation {
    /// Loads the draft for `session` (a draft model with `opts`, its weights as stored) and has
    /// the session's context record the experts each step touches, for the report.
    pub fn load(self, session: &mut Session, opts: &RuntimeOptions) -> Result<LoadedDraft> {
        let mut model = match &self.opened {
            Some(opened) => {
                let draft_opts = RuntimeOptions { load: gptoss_model_gpt_oss::LoadOptions { weights: None, ..opts.load }, ..*opts };
                Some(Model::load(opened, &draft_opts, &mut |_, _| {})?)
            }
            None => None,
        };
        let drafter = Drafter::new(&self.spec, &mut session.model, model.as_mut(), opts.context)?;
        session.context.record_routing(true);
        Ok(LoadedDraft { drafter, model, speculate: self.speculate })
    }
}

impl LoadedDraft {
    /// As `generate`, speculating; the context holds `cached` before the prompt.
    pub fn generate(
        &mut self,
        session: &mut Session,
        cached: &[u32],
        prompt: &[u32],
        opts: &GenerateOptions,
        on_token: impl FnMut(u32) -> bool,
    ) -> Result<(GenerationStats, SpeculationStats)> {
        self.drafter.generate(&mut session.model, &mut session.context, self.model.as_mut(), cached, prompt, opts, self.speculate, on_token)
    }

    /// What speculation did, and one plain decode step's bytes at the generation's middle
    /// depth for comparison.
    pub fn report(&self, session: &Session, depth: usize, stats: &SpeculationStats) -> Result<String> {
        let c = session.model.config();
        let decode = token_bytes(c, &session.formats()?, c.num_experts_per_tok as f64, depth).total();
        Ok(format!(
            "{} [k = {}]; a plain decode step reads {} ({} experts per layer)",
            stats.summary(),
            self.speculate,
            gptoss_engine::speculative::stats::show_bytes(decode),
            c.num_experts_per_tok
        ))
    }
}
