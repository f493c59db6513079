//! `gptoss bench --speculate 1,2,4,8 [--draft SPEC …]`: speculative decoding rows for a loaded
//! model. Every model gets the two bounds — the oracle (the model's own greedy continuation,
//! known from the plain run just before: every proposal accepted, nothing paid for drafting,
//! the ceiling the verification cost allows) and random proposals (the floor) — then each
//! `--draft` source; each at every k, alternating with plain decoding of the same prompt.

use gptoss::speculation::{DraftSpec, Drafter, check_draft_model};
use gptoss::{Model, Result, RuntimeOptions, Session};
use gptoss_bench::run::synthetic_tokens;
use gptoss_bench::speculative::{SpecRow, SpecSamples, plain_run};
use gptoss_engine::speculative::{OracleDraft, RandomDraft, Speculate, generate_speculative};
use gptoss_engine::{GenerateOptions, SamplingParams};
use gptoss_model_gpt_oss::{LoadOptions, OpenedModel};

/// What to speculate with, and on what.
pub struct SpecJob<'a> {
    pub drafts: &'a [DraftSpec],
    pub ks: &'a [usize],
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub repetitions: usize,
}

/// A row's source of proposals, ready to run.
enum Prepared {
    Oracle,
    Random,
    /// A `--draft` source, with its model when it is another one.
    Draft(Drafter, Option<Model>),
}

/// Runs `job` on `session` (a load of `model` with `opts`); `head` has the identifying columns.
pub fn run(session: &mut Session, model: &OpenedModel, opts: &RuntimeOptions, head: &SpecRow, job: &SpecJob) -> Result<Vec<SpecRow>> {
    // What each step read, from the experts it touched (a small copy per layer and step, the
    // same for the plain and the speculative runs).
    session.context.record_routing(true);
    let vocab = session.model.config().vocab_size;
    let prompt = synthetic_tokens(job.prompt_tokens.max(1), vocab, 2);
    let greedy = GenerateOptions { max_tokens: job.gen_tokens + 1, stop_tokens: vec![], sampling: SamplingParams::GREEDY, seed: 0 };
    let mut sources = vec![("oracle".to_string(), Prepared::Oracle), ("random".to_string(), Prepared::Random)];
    for spec in job.drafts.iter().filter(|d| **d != DraftSpec::Random) {
        let mut draft_model = match spec {
            DraftSpec::Model(s) => {
                let opened = s.open()?;
                check_draft_model(&model.source, model.config.vocab_size, s, opened.config.vocab_size)?;
                let draft_opts = RuntimeOptions { load: LoadOptions { weights: None, ..opts.load }, ..*opts };
                Some(Model::load(&opened, &draft_opts, &mut |_, _| {})?)
            }
            _ => None,
        };
        let drafter = Drafter::new(spec, &mut session.model, draft_model.as_mut(), opts.context)?;
        sources.push((spec.to_string(), Prepared::Draft(drafter, draft_model)));
    }
    let mut rows = Vec::new();
    for (name, source) in &mut sources {
        for &k in job.ks {
            eprintln!("speculating with {name}, k = {k}, tg{} × {}…", job.gen_tokens, job.repetitions);
            let mut samples = SpecSamples::default();
            for _ in 0..job.repetitions.max(1) {
                let plain = plain_run(session.lm()?.as_mut(), &prompt, job.gen_tokens)?;
                session.lm()?.rollback(0)?;
                let speculate = Speculate::Fixed(k);
                let (generation, stats) = match source {
                    Prepared::Oracle => {
                        let mut oracle = OracleDraft::new(plain.sequence.clone());
                        generate_speculative(session.lm()?.as_mut(), &mut oracle, &[], &prompt, &greedy, speculate, |_| true)?
                    }
                    Prepared::Random => {
                        let mut random = RandomDraft::new(vocab, 1)?;
                        generate_speculative(session.lm()?.as_mut(), &mut random, &[], &prompt, &greedy, speculate, |_| true)?
                    }
                    Prepared::Draft(d, m) => {
                        d.generate(&mut session.model, &mut session.context, m.as_mut(), &[], &prompt, &greedy, speculate, |_| true)?
                    }
                };
                samples.add(&plain, &generation, &stats);
            }
            rows.push(samples.row(SpecRow { draft: name.clone(), k, ..head.clone() }));
        }
    }
    session.context.record_routing(false);
    Ok(rows)
}
