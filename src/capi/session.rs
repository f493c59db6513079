//! `gptoss_session`: one conversation's KV cache on a model; append, sample, generate.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use gptoss_engine::{GenerateOptions, Logits, Rng, SamplingParams, StopReason, check_finite_logits, check_request, generate, prefill};
use gptoss_model_gpt_oss::ContextOptions;

use super::buffers::{c_slice, fill, out};
use super::model::{gptoss_model, model_ref};
use super::status::{Failure, gptoss_status};
use super::{entry, into_handle, release, retain};
use crate::runtime::{Context, Model};

/// The opaque session handle.
#[allow(non_camel_case_types)]
pub struct gptoss_session {
    model: Arc<gptoss_model>,
    state: Mutex<SessionState>,
}

struct SessionState {
    ctx: Context,
    /// The random source of `gptoss_session_sample` and the seed that started it.
    rng: Option<(u64, Rng)>,
}

/// Mirrors `gptoss_sampler`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gptoss_sampler {
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub seed: u64,
}

/// Mirrors `gptoss_stats`; `stop_reason` is a `gptoss_stop_reason` value.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct gptoss_stats {
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    pub ttft_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub stop_reason: u32,
}

#[allow(non_camel_case_types)]
pub type gptoss_token_callback = Option<unsafe extern "C" fn(user_data: *mut c_void, token: u32) -> i32>;

impl gptoss_sampler {
    fn params(&self) -> Result<SamplingParams, Failure> {
        let p = SamplingParams { temperature: self.temperature, top_k: self.top_k as usize, top_p: self.top_p };
        p.validate()?;
        Ok(p)
    }
}

/// # Safety
/// `ptr` is NULL or a live session handle.
unsafe fn session_ref<'a>(ptr: *mut gptoss_session) -> Result<&'a gptoss_session, Failure> {
    // SAFETY: a non-NULL pointer is a live handle (the header's contract).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null("session"))
}

/// Runs `f` with the session's state and its model, both locked (session first).
fn with_session<R>(s: &gptoss_session, f: impl FnOnce(&mut SessionState, &mut Model) -> Result<R, Failure>) -> Result<R, Failure> {
    let mut state = s.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut model = s.model.lock();
    f(&mut state, &mut model)
}

/// A new, empty session of `model`.
///
/// # Safety
/// `model` is NULL or a live handle; `session_out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_create(
    model: *mut gptoss_model,
    context_length: u64,
    session_out: *mut *mut gptoss_session,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let slot = unsafe { out(session_out, "session_out") }?;
        *slot = std::ptr::null_mut();
        // SAFETY: forwarded from the caller.
        let m = unsafe { model_ref(model) }?;
        let max_context =
            if context_length == 0 { ContextOptions::default().max_context.min(m.max_context) } else { context_length as usize };
        let ctx = m.lock().new_context(ContextOptions { max_context, ..Default::default() })?;
        // SAFETY: `model` came from `Arc::into_raw`; the session takes its own reference.
        let model = unsafe {
            Arc::increment_strong_count(model.cast_const());
            Arc::from_raw(model.cast_const())
        };
        let session = gptoss_session { model, state: Mutex::new(SessionState { ctx, rng: None }) };
        *slot = into_handle(session);
        Ok(())
    })
}

/// # Safety
/// `session` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_retain(session: *mut gptoss_session) -> gptoss_status {
    // SAFETY: forwarded from the caller.
    unsafe { retain(session, "session") }
}

/// # Safety
/// `session` is NULL or a live handle whose reference the caller gives up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_release(session: *mut gptoss_session) -> gptoss_status {
    // SAFETY: forwarded from the caller.
    unsafe { release(session) }
}

/// Runs tokens through the model after those in the session.
///
/// # Safety
/// `session` is NULL or a live handle; `tokens` valid for `count` reads (or NULL with 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_append(session: *mut gptoss_session, tokens: *const u32, count: usize) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (s, tokens) = unsafe { (session_ref(session)?, c_slice(tokens, count, "tokens")?) };
        if tokens.is_empty() {
            return Ok(());
        }
        with_session(s, |st, model| {
            let mut lm = model.session(&mut st.ctx)?;
            // Every id and the room are checked before the first forward pass.
            check_request(tokens, 1, lm.vocab_size(), lm.position(), lm.max_context())?;
            Ok(prefill(lm.as_mut(), tokens, Logits::Last)?)
        })
    })
}

/// # Safety
/// `session` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_reset(session: *mut gptoss_session) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let s = unsafe { session_ref(session) }?;
        with_session(s, |st, model| {
            model.session(&mut st.ctx)?.rollback(0)?;
            st.rng = None;
            Ok(())
        })
    })
}

/// # Safety
/// `session` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_rollback(session: *mut gptoss_session, position: u64) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let s = unsafe { session_ref(session) }?;
        with_session(s, |st, model| Ok(model.session(&mut st.ctx)?.rollback(usize::try_from(position).unwrap_or(usize::MAX))?))
    })
}

/// # Safety
/// `session` is NULL or a live handle; `position_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_position(session: *mut gptoss_session, position_out: *mut u64) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (s, o) = unsafe { (session_ref(session)?, out(position_out, "position_out")?) };
        *o = with_session(s, |st, model| Ok(model.session(&mut st.ctx)?.position()))? as u64;
        Ok(())
    })
}

/// # Safety
/// `session` is NULL or a live handle; `sampler` NULL or valid; `token_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_sample(
    session: *mut gptoss_session,
    sampler: *const gptoss_sampler,
    token_out: *mut u32,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (s, o) = unsafe { (session_ref(session)?, out(token_out, "token_out")?) };
        // SAFETY: NULL or a valid sampler, per the header.
        let sampler = unsafe { sampler.as_ref() }.ok_or_else(|| Failure::null("sampler"))?;
        let params = sampler.params()?;
        *o = with_session(s, |st, model| {
            if st.rng.as_ref().is_none_or(|(seed, _)| *seed != sampler.seed) {
                st.rng = Some((sampler.seed, Rng::new(sampler.seed)));
            }
            let u = st.rng.as_mut().expect("set above").1.next_unit();
            let mut lm = model.session(&mut st.ctx)?;
            if lm.position() == 0 {
                return Err(Failure::invalid("the session is empty: append tokens before sampling"));
            }
            let mut row = vec![0f32; lm.vocab_size()];
            check_finite_logits(lm.as_mut(), 0, &mut row)?;
            Ok(lm.sample(0, &params, u)?)
        })?;
        Ok(())
    })
}

/// # Safety
/// `session` is NULL or a live handle; `logits` valid for `capacity` floats; `count_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_logits(
    session: *mut gptoss_session,
    logits: *mut f32,
    capacity: usize,
    count_out: *mut usize,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (s, count) = unsafe { (session_ref(session)?, out(count_out, "count_out")?) };
        let row = with_session(s, |st, model| {
            let mut lm = model.session(&mut st.ctx)?;
            let mut row = vec![0f32; lm.vocab_size()];
            lm.logits(0, &mut row)?;
            Ok(row)
        })?;
        // SAFETY: forwarded from the caller.
        unsafe { fill(&row, logits, capacity, count, "logits") }
    })
}

/// Appends a prompt, then samples and streams tokens.
///
/// # Safety
/// `session` NULL or live; `prompt` valid for `prompt_count` reads; `sampler` NULL or valid;
/// `stop_tokens` valid for `stop_count` reads (or NULL with 0); `callback` NULL or a function
/// that may be called with `user_data`; `stats_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_session_generate(
    session: *mut gptoss_session,
    prompt: *const u32,
    prompt_count: usize,
    max_tokens: u32,
    sampler: *const gptoss_sampler,
    stop_tokens: *const u32,
    stop_count: usize,
    callback: gptoss_token_callback,
    user_data: *mut c_void,
    stats_out: *mut gptoss_stats,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (s, prompt, stop) =
            unsafe { (session_ref(session)?, c_slice(prompt, prompt_count, "prompt")?, c_slice(stop_tokens, stop_count, "stop_tokens")?) };
        // SAFETY: NULL or a valid sampler, per the header.
        let sampler = unsafe { sampler.as_ref() }.ok_or_else(|| Failure::null("sampler"))?;
        let stop_tokens = if stop_tokens.is_null() && stop_count == 0 { s.model.eos_tokens.clone() } else { stop.to_vec() };
        let opts = GenerateOptions { max_tokens: max_tokens as usize, stop_tokens, sampling: sampler.params()?, seed: sampler.seed };
        let stats = with_session(s, |st, model| {
            let mut lm = model.session(&mut st.ctx)?;
            Ok(generate(lm.as_mut(), prompt, &opts, |t| match callback {
                // SAFETY: the caller provides a callable function for `user_data`.
                Some(cb) => (unsafe { cb(user_data, t) }) == 0,
                None => true,
            })?)
        })?;
        // SAFETY: NULL or valid, per the header.
        if let Some(o) = unsafe { stats_out.as_mut() } {
            *o = gptoss_stats {
                prompt_tokens: stats.prompt_tokens as u64,
                generated_tokens: stats.generated_tokens as u64,
                ttft_ms: stats.ttft.as_secs_f64() * 1e3,
                prefill_tokens_per_second: stats.prefill_tok_s(),
                decode_tokens_per_second: stats.decode_tok_s(),
                stop_reason: match stats.stop {
                    StopReason::MaxTokens => 0,
                    StopReason::StopToken(_) => 1,
                    StopReason::Callback => 2,
                },
            };
        }
        Ok(())
    })
}
