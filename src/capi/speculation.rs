//! Speculative decoding on a session: `gptoss_session_set_speculation` chooses the draft (an
//! n-gram lookup, a self-draft, random ids, or another model's handle) and the tokens proposed
//! per step; `gptoss_session_generate` then speculates; `gptoss_session_speculation_stats` and
//! `gptoss_session_speculation_acceptance` report the last generation's accounting.

use std::ffi::c_char;
use std::sync::{Arc, MutexGuard};

use gptoss_engine::speculative::{Speculate, SpeculationStats};
use gptoss_engine::{GenerateOptions, GenerationStats};
use gptoss_model_gpt_oss::ContextOptions;

use super::buffers::{c_str, fill, out};
use super::entry;
use super::model::{gptoss_model, model_ref};
use super::session::{SessionState, gptoss_session, session_ref, with_session};
use super::status::{Failure, gptoss_status};
use crate::runtime::Model;
use crate::speculation::{DraftSpec, Drafter, check_draft_model};

/// Mirrors `gptoss_speculation`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gptoss_speculation {
    pub draft: *const c_char,
    pub draft_model: *mut gptoss_model,
    pub tokens: u32,
}

/// Mirrors `gptoss_speculation_stats`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct gptoss_speculation_stats {
    pub steps: u64,
    pub proposed: u64,
    pub accepted: u64,
    pub tokens_per_step: f64,
    pub draft_ms: f64,
    pub verify_ms: f64,
    pub verify_bytes_per_step: f64,
    pub experts_per_layer: f64,
}

/// A session's speculation: its draft, the draft's model when it is another one, and what
/// the last generation did.
pub(super) struct Speculating {
    drafter: Drafter,
    draft_model: Option<Arc<gptoss_model>>,
    speculate: Speculate,
    last: Option<SpeculationStats>,
}

/// Locks `target` and, if given, `draft`, always in address order: two sessions drafting
/// with each other's models cannot deadlock.
fn lock_both<'a>(target: &'a gptoss_model, draft: Option<&'a gptoss_model>) -> (MutexGuard<'a, Model>, Option<MutexGuard<'a, Model>>) {
    match draft {
        None => (target.lock(), None),
        Some(d) if std::ptr::from_ref(d) < std::ptr::from_ref(target) => {
            let d = d.lock();
            (target.lock(), Some(d))
        }
        Some(d) => {
            let t = target.lock();
            (t, Some(d.lock()))
        }
    }
}

/// Generates with the session's speculation (set).
pub(super) fn generate(
    model: &gptoss_model,
    st: &mut SessionState,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationStats, Failure> {
    let sp = st.speculation.as_mut().ok_or_else(|| Failure::invalid("the session has no speculation set"))?;
    let (mut target, mut draft) = lock_both(model, sp.draft_model.as_deref());
    let (stats, spec) =
        sp.drafter.generate(&mut target, &mut st.ctx, draft.as_deref_mut(), &st.tokens, prompt, opts, sp.speculate, on_token)?;
    sp.last = Some(spec);
    Ok(stats)
}

/// Sets (or, with NULL, clears) speculative decoding for the session's later generations.
///
/// # Safety
/// `session` NULL or live; `speculation` NULL or valid, its `draft` NULL or a NUL-terminated
/// string, its `draft_model` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_set_speculation(
    session: *mut gptoss_session,
    speculation: *const gptoss_speculation,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let s = unsafe { session_ref(session) }?;
        // SAFETY: NULL or valid, per the header.
        let Some(sp) = (unsafe { speculation.as_ref() }) else {
            return with_session(s, |st, _| {
                st.speculation = None;
                st.ctx.record_routing(false);
                Ok(())
            });
        };
        let speculate = match sp.tokens {
            0 => Speculate::Auto { max: Speculate::AUTO_MAX },
            k => Speculate::Fixed(k as usize),
        };
        // The draft: text, or another model's handle (the session's own model is a self-draft
        // at full precision: one model cannot be locked twice).
        let (spec, draft_model) = match (sp.draft.is_null(), sp.draft_model.is_null()) {
            (false, true) => {
                // SAFETY: a NUL-terminated string, per the header.
                let text = unsafe { c_str(sp.draft, "speculation.draft") }?;
                match text.parse::<DraftSpec>()? {
                    DraftSpec::Model(source) => {
                        return Err(Failure::invalid(format!(
                            "speculation.draft {source}: load a draft model with gptoss_model_load and pass it as speculation.draft_model"
                        )));
                    }
                    spec => (spec, None),
                }
            }
            (true, false) => {
                // SAFETY: a live handle, per the header.
                let d = unsafe { model_ref(sp.draft_model) }?;
                if std::ptr::eq(d, Arc::as_ptr(&s.model)) {
                    (DraftSpec::SelfDraft("native".parse()?), None)
                } else {
                    check_draft_model(&s.model.source, s.model.vocab_size, &d.source, d.vocab_size)?;
                    // SAFETY: `draft_model` came from `Arc::into_raw`; the session takes its own reference.
                    let arc = unsafe {
                        Arc::increment_strong_count(sp.draft_model.cast_const());
                        Arc::from_raw(sp.draft_model.cast_const())
                    };
                    (DraftSpec::Model(d.source.clone()), Some(arc))
                }
            }
            (false, false) => return Err(Failure::invalid("speculation: give either draft or draft_model, not both")),
            (true, true) => return Err(Failure::invalid("speculation: draft and draft_model are both NULL")),
        };
        let mut state = s.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut target, mut draft) = lock_both(&s.model, draft_model.as_deref());
        let context = ContextOptions { max_context: target.session(&mut state.ctx)?.max_context(), ..ContextOptions::default() };
        let drafter = Drafter::new(&spec, &mut target, draft.as_deref_mut(), context)?;
        state.ctx.record_routing(true);
        state.speculation = Some(Speculating { drafter, draft_model: draft_model.clone(), speculate, last: None });
        Ok(())
    })
}

/// The last speculative generation's figures.
fn last_stats(s: &gptoss_session) -> Result<SpeculationStats, Failure> {
    with_session(s, |st, _| {
        st.speculation
            .as_ref()
            .and_then(|sp| sp.last.clone())
            .ok_or_else(|| Failure::invalid("no generation of this session has speculated since its speculation was set"))
    })
}

/// # Safety
/// `session` NULL or live; `stats_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_speculation_stats(
    session: *mut gptoss_session,
    stats_out: *mut gptoss_speculation_stats,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (s, o) = unsafe { (session_ref(session)?, out(stats_out, "stats_out")?) };
        let st = last_stats(s)?;
        *o = gptoss_speculation_stats {
            steps: st.steps as u64,
            proposed: st.proposed as u64,
            accepted: st.accepted as u64,
            tokens_per_step: st.tokens_per_step(),
            draft_ms: st.draft_time.as_secs_f64() * 1e3,
            verify_ms: st.verify_time.as_secs_f64() * 1e3,
            verify_bytes_per_step: st.bytes_per_step().unwrap_or(0.0),
            experts_per_layer: st.experts_per_layer().unwrap_or(0.0),
        };
        Ok(())
    })
}

/// # Safety
/// `session` NULL or live; `acceptance` valid for `capacity` doubles; `count_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_speculation_acceptance(
    session: *mut gptoss_session,
    acceptance: *mut f64,
    capacity: usize,
    count_out: *mut usize,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (s, count) = unsafe { (session_ref(session)?, out(count_out, "count_out")?) };
        let rates = last_stats(s)?.acceptance_by_position();
        // SAFETY: forwarded from the caller.
        unsafe { fill(&rates, acceptance, capacity, count, "acceptance") }
    })
}
