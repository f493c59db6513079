//! Speculative decoding through the C header: every draft source gives greedy generation's
//! tokens and leaves the session where plain generation leaves it; a draft model with another
//! vocabulary is refused naming both; the statistics come back.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};

use gptoss_capi_tests as h;

const OK: h::gptoss_status::Type = h::gptoss_status::GPTOSS_SUCCESS;
const INVALID: h::gptoss_status::Type = h::gptoss_status::GPTOSS_INVALID_ARGUMENT;

fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(h::gptoss_last_error()) }.to_string_lossy().into_owned()
}

fn load(name: &str) -> *mut h::gptoss_model {
    let path = CString::new(name).unwrap();
    let mut m = null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { h::gptoss_model_load(path.as_ptr(), null(), &mut m) };
    assert_eq!(st, OK, "{}", last_error());
    m
}

const GREEDY: h::gptoss_sampler = h::gptoss_sampler { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0 };

/// Greedy tokens after `prompt` (on a session that already holds `head`), and the position.
///
/// # Safety
/// `s` is a live session.
unsafe fn greedy(s: *mut h::gptoss_session, head: &[u32], prompt: &[u32], n: u32) -> (Vec<u32>, u64) {
    unsafe extern "C" fn collect(user: *mut std::ffi::c_void, token: u32) -> i32 {
        // SAFETY: the test passes its vector.
        unsafe { &mut *(user as *mut Vec<u32>) }.push(token);
        0
    }
    let mut out: Vec<u32> = vec![];
    let mut pos = 0u64;
    // SAFETY: a live session and valid arguments.
    unsafe {
        assert_eq!(h::gptoss_session_reset(s), OK);
        assert_eq!(h::gptoss_session_append(s, head.as_ptr(), head.len()), OK);
        let st = h::gptoss_session_generate(
            s,
            prompt.as_ptr(),
            prompt.len(),
            n,
            &GREEDY,
            null(),
            0,
            Some(collect),
            (&mut out as *mut Vec<u32>).cast(),
            null_mut(),
        );
        assert_eq!(st, OK, "{}", last_error());
        assert_eq!(h::gptoss_session_position(s, &mut pos), OK);
    }
    (out, pos)
}

#[test]
fn every_draft_gives_greedy_tokens_and_reports_what_it_did() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/fixture");
    let model = load(fixture.to_str().unwrap());
    let other = load(fixture.to_str().unwrap());
    let tiny = load("synthetic:tiny");
    let (head, prompt) = ([5u32, 9, 2], [7u32, 7, 1, 30, 2]);
    // SAFETY: live handles and valid arguments throughout; misuse is deliberate.
    unsafe {
        let mut s = null_mut();
        assert_eq!(h::gptoss_session_create(model, 128, &mut s), OK);
        let want = greedy(s, &head, &prompt, 30);
        let mut stats = std::mem::zeroed::<h::gptoss_speculation_stats>();
        assert_eq!(h::gptoss_session_speculation_stats(s, &mut stats), INVALID, "no speculation yet");

        for (draft, draft_model, tokens) in [
            (Some("ngram:2"), null_mut(), 3),
            (Some("self:int8"), null_mut(), 4),
            (Some("self:int4:top2"), null_mut(), 0),
            (Some("random"), null_mut(), 2),
            (None, other, 5),
            (None, model, 7),
        ] {
            let text = draft.map(|d| CString::new(d).unwrap());
            let sp = h::gptoss_speculation { draft: text.as_ref().map_or(null(), |t| t.as_ptr()), draft_model, tokens };
            assert_eq!(h::gptoss_session_set_speculation(s, &sp), OK, "{draft:?}: {}", last_error());
            assert_eq!(greedy(s, &head, &prompt, 30), want, "{draft:?}");
            // A second generation reuses the draft's cache.
            assert_eq!(greedy(s, &head, &prompt, 30), want, "{draft:?}, again");
            assert_eq!(h::gptoss_session_speculation_stats(s, &mut stats), OK);
            assert!(stats.steps > 0 && stats.accepted <= stats.proposed && stats.verify_ms > 0.0, "{draft:?}: {stats:?}");
            assert!(stats.verify_bytes_per_step > 0.0 && stats.experts_per_layer >= 4.0, "{stats:?}");
            let mut count = 0usize;
            assert_eq!(h::gptoss_session_speculation_acceptance(s, null_mut(), 0, &mut count), h::gptoss_status::GPTOSS_BUFFER_TOO_SMALL);
            let mut rates = vec![0f64; count];
            assert_eq!(h::gptoss_session_speculation_acceptance(s, rates.as_mut_ptr(), count, &mut count), OK);
            assert!(rates.iter().all(|r| (0.0..=1.0).contains(r)));
            if draft_model == model {
                assert_eq!(stats.accepted, stats.proposed, "the model drafting for itself is always right");
            }
            // The last step's logits are not kept: sampling needs an append first.
            let mut token = 0u32;
            assert_eq!(h::gptoss_session_sample(s, &GREEDY, &mut token), INVALID);
            assert_eq!(h::gptoss_session_append(s, [1u32].as_ptr(), 1), OK);
            assert_eq!(h::gptoss_session_sample(s, &GREEDY, &mut token), OK);
        }

        // Refused up front: another vocabulary, both or neither source, an unknown draft.
        let sp = h::gptoss_speculation { draft: null(), draft_model: tiny, tokens: 4 };
        assert_eq!(h::gptoss_session_set_speculation(s, &sp), INVALID);
        let e = last_error();
        assert!(e.contains("synthetic:tiny") && e.contains("201088") && e.contains("fixture") && e.contains("512"), "{e}");
        let ngram = CString::new("ngram:2").unwrap();
        let both = h::gptoss_speculation { draft: ngram.as_ptr(), draft_model: other, tokens: 4 };
        assert_eq!(h::gptoss_session_set_speculation(s, &both), INVALID);
        let neither = h::gptoss_speculation { draft: null(), draft_model: null_mut(), tokens: 4 };
        assert_eq!(h::gptoss_session_set_speculation(s, &neither), INVALID);
        let path = CString::new("synthetic:20b").unwrap();
        let by_name = h::gptoss_speculation { draft: path.as_ptr(), draft_model: null_mut(), tokens: 4 };
        assert_eq!(h::gptoss_session_set_speculation(s, &by_name), INVALID);
        assert!(last_error().contains("draft_model"), "{}", last_error());
        // The earlier setting (the model itself) still holds; then speculation is cleared.
        assert_eq!(greedy(s, &head, &prompt, 30), want);
        assert_eq!(h::gptoss_session_set_speculation(s, null()), OK);
        assert_eq!(greedy(s, &head, &prompt, 30), want);
        assert_eq!(h::gptoss_session_speculation_stats(s, &mut stats), INVALID);

        // The session keeps its draft model alive.
        assert_eq!(h::gptoss_session_set_speculation(s, &h::gptoss_speculation { draft: null(), draft_model: other, tokens: 3 }), OK);
        assert_eq!(h::gptoss_model_release(other), OK);
        assert_eq!(greedy(s, &head, &prompt, 30), want);
        assert_eq!(h::gptoss_session_release(s), OK);
        assert_eq!(h::gptoss_model_release(model), OK);
        assert_eq!(h::gptoss_model_release(tiny), OK);
    }
}
