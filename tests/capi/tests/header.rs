//! The header against the library, through bindgen's declarations: exported symbols, layouts,
//! status values, and misuse.

use std::ffi::{CStr, CString, c_void};
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::{null, null_mut};

use gptoss_capi_tests as h;

fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(h::gptoss_last_error()) }.to_string_lossy().into_owned()
}

fn profile_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

#[test]
fn every_exported_symbol_is_in_the_header_and_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--lib", "-p", "gptoss"]).current_dir(&root);
    if profile_dir().ends_with("release") {
        cargo.arg("--release");
    }
    let out = cargo.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = profile_dir().join("libgptoss.a");
    let nm = Command::new("nm").args(["--defined-only", "-g"]).arg(&lib).output().expect("nm (binutils) runs");
    let mut exported: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().collect::<Vec<_>>().get(2..).map(|v| (v[0].to_string(), l.to_string())))
        .filter(|(name, line)| name.starts_with("gptoss_") && line.contains(" T "))
        .map(|(name, _)| name)
        .collect();
    exported.sort();
    exported.dedup();
    assert_eq!(exported, h::header_functions(), "exported symbols (left) vs header functions (right)");
}

#[test]
fn layouts_and_values_match_the_rust_side() {
    use gptoss::capi as r;
    macro_rules! same_layout {
        ($c:ty, $rust:ty, [$($f:ident),*]) => {
            assert_eq!((size_of::<$c>(), align_of::<$c>()), (size_of::<$rust>(), align_of::<$rust>()), stringify!($c));
            $(assert_eq!(offset_of!($c, $f), offset_of!($rust, $f), concat!(stringify!($c), ".", stringify!($f)));)*
        };
    }
    same_layout!(
        h::gptoss_model_options,
        r::gptoss_model_options,
        [backend, threads, max_batch, weights, int4_group, offload, expert_cache, memory_budget, cpu_activations]
    );
    same_layout!(h::gptoss_sampler, r::gptoss_sampler, [temperature, top_k, top_p, seed]);
    same_layout!(
        h::gptoss_stats,
        r::gptoss_stats,
        [prompt_tokens, generated_tokens, ttft_ms, prefill_tokens_per_second, decode_tokens_per_second, stop_reason]
    );
    same_layout!(h::gptoss_chat_message, r::gptoss_chat_message, [role, channel, recipient, content_type, content]);
    same_layout!(h::gptoss_speculation, r::gptoss_speculation, [draft, draft_model, tokens]);
    same_layout!(
        h::gptoss_speculation_stats,
        r::gptoss_speculation_stats,
        [steps, proposed, accepted, tokens_per_step, draft_ms, verify_ms, verify_bytes_per_step, experts_per_layer]
    );
    assert_eq!(size_of::<h::gptoss_status::Type>(), size_of::<r::gptoss_status>());
    let pairs = [
        (h::gptoss_status::GPTOSS_SUCCESS, r::gptoss_status::GPTOSS_SUCCESS),
        (h::gptoss_status::GPTOSS_INVALID_ARGUMENT, r::gptoss_status::GPTOSS_INVALID_ARGUMENT),
        (h::gptoss_status::GPTOSS_BUFFER_TOO_SMALL, r::gptoss_status::GPTOSS_BUFFER_TOO_SMALL),
        (h::gptoss_status::GPTOSS_IO_ERROR, r::gptoss_status::GPTOSS_IO_ERROR),
        (h::gptoss_status::GPTOSS_INVALID_MODEL, r::gptoss_status::GPTOSS_INVALID_MODEL),
        (h::gptoss_status::GPTOSS_UNSUPPORTED, r::gptoss_status::GPTOSS_UNSUPPORTED),
        (h::gptoss_status::GPTOSS_CONTEXT_OVERFLOW, r::gptoss_status::GPTOSS_CONTEXT_OVERFLOW),
        (h::gptoss_status::GPTOSS_OUT_OF_MEMORY, r::gptoss_status::GPTOSS_OUT_OF_MEMORY),
        (h::gptoss_status::GPTOSS_BACKEND_ERROR, r::gptoss_status::GPTOSS_BACKEND_ERROR),
        (h::gptoss_status::GPTOSS_INTERNAL_ERROR, r::gptoss_status::GPTOSS_INTERNAL_ERROR),
    ];
    for (c, rust) in pairs {
        assert_eq!(c as i64, rust as i64);
        // SAFETY: any value is accepted.
        let s = unsafe { CStr::from_ptr(h::gptoss_status_string(c)) };
        assert!(!s.to_bytes().is_empty() && s != c"unknown status", "{c}");
    }
}

const OK: h::gptoss_status::Type = h::gptoss_status::GPTOSS_SUCCESS;
const INVALID: h::gptoss_status::Type = h::gptoss_status::GPTOSS_INVALID_ARGUMENT;

fn load(name: &str) -> *mut h::gptoss_model {
    let path = CString::new(name).unwrap();
    let mut m = null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { h::gptoss_model_load(path.as_ptr(), null(), &mut m) };
    assert_eq!(st, OK, "{}", last_error());
    m
}

fn sampler(seed: u64) -> h::gptoss_sampler {
    h::gptoss_sampler { temperature: 1.0, top_k: 0, top_p: 1.0, seed }
}

#[test]
fn nulls_are_refused_with_a_message() {
    // SAFETY: every call passes NULL where the header allows or refuses it.
    unsafe {
        let mut m = null_mut();
        assert_eq!(h::gptoss_model_load(null(), null(), &mut m), INVALID);
        assert!(last_error().contains("path is NULL"));
        assert!(m.is_null());
        let name = CString::new("synthetic:tiny").unwrap();
        assert_eq!(h::gptoss_model_load(name.as_ptr(), null(), null_mut()), INVALID);
        assert!(last_error().contains("model_out is NULL"));
        assert_eq!(h::gptoss_model_options_default(null_mut()), INVALID);
        let mut v = 0u32;
        assert_eq!(h::gptoss_model_vocab_size(null_mut(), &mut v), INVALID);
        assert!(last_error().contains("model is NULL"));
        let mut s = null_mut();
        assert_eq!(h::gptoss_session_create(null_mut(), 0, &mut s), INVALID);
        assert_eq!(h::gptoss_session_append(null_mut(), null(), 0), INVALID);
        let mut t = 0u32;
        assert_eq!(h::gptoss_session_sample(null_mut(), &sampler(0), &mut t), INVALID);
        assert_eq!(h::gptoss_model_release(null_mut()), OK);
        assert_eq!(h::gptoss_session_release(null_mut()), OK);
        assert_eq!(last_error(), "", "success clears the message");
    }
}

#[test]
fn sessions_generate_sample_and_refuse_misuse() {
    let model = load("synthetic:tiny");
    // SAFETY: a live model and valid arguments throughout; misuse is deliberate and allowed.
    unsafe {
        let mut vocab = 0u32;
        assert_eq!(h::gptoss_model_vocab_size(model, &mut vocab), OK);
        assert_eq!(vocab, 201_088);

        // Too-small and zero-length buffers report the size needed.
        let mut size = 0usize;
        assert_eq!(h::gptoss_model_backend(model, null_mut(), 0, &mut size), h::gptoss_status::GPTOSS_BUFFER_TOO_SMALL);
        let mut buf = vec![0 as std::ffi::c_char; size];
        assert_eq!(h::gptoss_model_backend(model, buf.as_mut_ptr(), buf.len(), &mut size), OK);
        assert!(CStr::from_ptr(buf.as_ptr()).to_string_lossy().starts_with("cpu ("));
        assert_eq!(size, buf.len() - 1);

        let mut s = null_mut();
        assert_eq!(h::gptoss_session_create(model, 64, &mut s), OK);
        let mut token = 0u32;
        assert_eq!(h::gptoss_session_sample(s, &sampler(1), &mut token), INVALID, "nothing appended yet");
        let bad = [1u32, 999_999];
        assert_eq!(h::gptoss_session_append(s, bad.as_ptr(), 2), INVALID);
        assert!(last_error().contains("999999"));
        let mut pos = 7u64;
        assert_eq!(h::gptoss_session_position(s, &mut pos), OK);
        assert_eq!(pos, 0, "a refused append leaves the session unchanged");
        let long = vec![5u32; 65];
        assert_eq!(h::gptoss_session_append(s, long.as_ptr(), long.len()), h::gptoss_status::GPTOSS_CONTEXT_OVERFLOW);

        let prompt = [1u32, 2, 3];
        assert_eq!(h::gptoss_session_append(s, prompt.as_ptr(), 3), OK);
        let mut count = 0usize;
        assert_eq!(h::gptoss_session_logits(s, null_mut(), 0, &mut count), h::gptoss_status::GPTOSS_BUFFER_TOO_SMALL);
        assert_eq!(count, 201_088);
        let mut logits = vec![0f32; count];
        assert_eq!(h::gptoss_session_logits(s, logits.as_mut_ptr(), logits.len(), &mut count), OK);
        assert!(logits.iter().all(|v| v.is_finite()));
        let greedy = h::gptoss_sampler { temperature: 0.0, ..sampler(0) };
        assert_eq!(h::gptoss_session_sample(s, &greedy, &mut token), OK);
        let argmax = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
        assert_eq!(token as usize, argmax);
        let bad_sampler = h::gptoss_sampler { top_p: 0.0, ..sampler(0) };
        assert_eq!(h::gptoss_session_sample(s, &bad_sampler, &mut token), INVALID);

        // A callback that stops early.
        unsafe extern "C" fn stop_after_three(user: *mut c_void, _token: u32) -> i32 {
            // SAFETY: the test passes a pointer to its counter.
            let n = unsafe { &mut *(user as *mut u32) };
            *n += 1;
            (*n == 3) as i32
        }
        let mut seen = 0u32;
        let mut stats = std::mem::zeroed::<h::gptoss_stats>();
        assert_eq!(h::gptoss_session_reset(s), OK);
        let st = h::gptoss_session_generate(
            s,
            prompt.as_ptr(),
            3,
            20,
            &sampler(9),
            null(),
            0,
            Some(stop_after_three),
            (&mut seen as *mut u32).cast(),
            &mut stats,
        );
        assert_eq!(st, OK, "{}", last_error());
        assert_eq!((seen, stats.generated_tokens, stats.stop_reason), (3, 3, h::gptoss_stop_reason::GPTOSS_STOP_CALLBACK));
        assert_eq!(h::gptoss_session_position(s, &mut pos), OK);
        assert_eq!(pos, 5, "the prompt and the two tokens fed back");
        // No room for 61 more tokens.
        assert_eq!(
            h::gptoss_session_generate(s, prompt.as_ptr(), 3, 60, &sampler(9), null(), 0, None, null_mut(), null_mut()),
            h::gptoss_status::GPTOSS_CONTEXT_OVERFLOW
        );
        assert_eq!(h::gptoss_session_rollback(s, 99), INVALID);

        // The session keeps the model alive after the caller's release.
        assert_eq!(h::gptoss_model_release(model), OK);
        assert_eq!(h::gptoss_session_reset(s), OK);
        assert_eq!(h::gptoss_session_generate(s, prompt.as_ptr(), 3, 4, &sampler(9), null(), 0, None, null_mut(), &mut stats), OK);
        assert_eq!(stats.generated_tokens, 4);
        assert_eq!(h::gptoss_session_release(s), OK);
    }
}

#[test]
fn reset_empties_a_session_whose_sliding_rings_wrapped() {
    // SAFETY: valid arguments throughout.
    unsafe {
        let mut opts = std::mem::zeroed::<h::gptoss_model_options>();
        assert_eq!(h::gptoss_model_options_default(&mut opts), OK);
        opts.backend = h::gptoss_backend::GPTOSS_BACKEND_CPU;
        opts.max_batch = 4;
        let name = CString::new("synthetic:tiny").unwrap();
        let mut m = null_mut();
        assert_eq!(h::gptoss_model_load(name.as_ptr(), &opts, &mut m), OK, "{}", last_error());
        let mut s = null_mut();
        assert_eq!(h::gptoss_session_create(m, 64, &mut s), OK);
        // Window 16 + batch 4: the sliding rings keep 20 positions, fewer than these 40.
        let tokens: Vec<u32> = (1..=40).collect();
        assert_eq!(h::gptoss_session_append(s, tokens.as_ptr(), tokens.len()), OK, "{}", last_error());
        assert_eq!(h::gptoss_session_reset(s), OK, "{}", last_error());
        let mut pos = 1u64;
        assert_eq!(h::gptoss_session_position(s, &mut pos), OK);
        assert_eq!(pos, 0);
        assert_eq!(h::gptoss_session_release(s), OK);
        assert_eq!(h::gptoss_model_release(m), OK);
    }
}

#[test]
fn a_session_larger_than_memory_is_refused_with_both_sizes() {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
    // 131072 rows of 201088 f32 logits: 105 GB of activations.
    if available.is_none_or(|kb| kb > 100_000_000) {
        eprintln!("skipped: needs Linux and less than 100 GB available");
        return;
    }
    // SAFETY: valid arguments; the failure is the point.
    unsafe {
        let mut opts = std::mem::zeroed::<h::gptoss_model_options>();
        assert_eq!(h::gptoss_model_options_default(&mut opts), OK);
        opts.backend = h::gptoss_backend::GPTOSS_BACKEND_CPU;
        opts.max_batch = 131_072;
        let name = CString::new("synthetic:tiny").unwrap();
        let mut m = null_mut();
        assert_eq!(h::gptoss_model_load(name.as_ptr(), &opts, &mut m), OK, "{}", last_error());
        let mut s = null_mut();
        assert_eq!(h::gptoss_session_create(m, 131_072, &mut s), h::gptoss_status::GPTOSS_OUT_OF_MEMORY);
        assert!(s.is_null());
        let message = last_error();
        assert!(message.contains("a context of 131072 tokens needs 105.") && message.contains("available"), "{message}");
        assert_eq!(h::gptoss_model_release(m), OK);
    }
}

#[test]
fn a_config_claiming_2_to_the_40_layers_is_an_invalid_model_not_an_abort() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/fixture");
    let dir = tempfile_dir("layers");
    for e in std::fs::read_dir(&fixture).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    // No layer_types (a per-layer list of 2^40 was the abort), and 2^40 layers.
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let (start, end) = (config.find("\"layer_types\"").unwrap(), config.find("\"max_position_embeddings\"").unwrap());
    let config =
        format!("{}{}", &config[..start], &config[end..]).replace("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 1099511627776");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let mut m = null_mut();
    // SAFETY: valid arguments; the failure is the point.
    let st = unsafe { h::gptoss_model_load(path.as_ptr(), null(), &mut m) };
    assert_eq!(st, h::gptoss_status::GPTOSS_INVALID_MODEL, "{}", last_error());
    assert!(last_error().contains("num_hidden_layers = 1099511627776"), "{}", last_error());
    assert!(m.is_null());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn load_failures_have_statuses_and_thread_local_messages() {
    // SAFETY: valid arguments; the failures are the point.
    unsafe {
        let mut opts = std::mem::zeroed::<h::gptoss_model_options>();
        assert_eq!(h::gptoss_model_options_default(&mut opts), OK);
        opts.backend = 7;
        let name = CString::new("synthetic:tiny").unwrap();
        let mut m = null_mut();
        assert_eq!(h::gptoss_model_load(name.as_ptr(), &opts, &mut m), INVALID);
        assert!(last_error().contains("backend = 7"));
        // The emulated CUDA device loads in builds that have it; elsewhere the error says why.
        opts.backend = h::gptoss_backend::GPTOSS_BACKEND_CUDA_SIM;
        match h::gptoss_model_load(name.as_ptr(), &opts, &mut m) {
            OK => assert_eq!(h::gptoss_model_release(m), OK),
            status => {
                assert_eq!(status, h::gptoss_status::GPTOSS_INVALID_ARGUMENT, "{}", last_error());
                assert!(last_error().contains("--features cuda-sim"), "{}", last_error());
            }
        }
        opts.backend = h::gptoss_backend::GPTOSS_BACKEND_CPU;
        opts.weights = h::gptoss_weights::GPTOSS_WEIGHTS_INT4;
        opts.int4_group = 48;
        assert_eq!(h::gptoss_model_load(name.as_ptr(), &opts, &mut m), INVALID);
        assert!(last_error().contains("group size 48"), "{}", last_error());
        opts.int4_group = 0;
        assert_eq!(h::gptoss_model_load(name.as_ptr(), &opts, &mut m), OK, "{}", last_error());
        assert_eq!(h::gptoss_model_release(m), OK);
        // Asking for CUDA where the build or the machine has none is GPTOSS_UNSUPPORTED.
        opts.weights = h::gptoss_weights::GPTOSS_WEIGHTS_NATIVE;
        opts.backend = h::gptoss_backend::GPTOSS_BACKEND_CUDA;
        match h::gptoss_model_load(name.as_ptr(), &opts, &mut m) {
            OK => assert_eq!(h::gptoss_model_release(m), OK),
            st => {
                assert_eq!(st, h::gptoss_status::GPTOSS_UNSUPPORTED, "{}", last_error());
                assert!(last_error().contains("CUDA"), "{}", last_error());
            }
        }
        let missing = CString::new("/no/such/model").unwrap();
        assert_eq!(h::gptoss_model_load(missing.as_ptr(), null(), &mut m), h::gptoss_status::GPTOSS_IO_ERROR);
        let message = last_error();
        assert!(message.contains("/no/such/model"));
        let other_thread = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other_thread, "", "messages are per thread");
        let dir = std::env::temp_dir().join(format!("gptoss-capi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{\"hidden_size\": 0}").unwrap();
        let bad = CString::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(h::gptoss_model_load(bad.as_ptr(), null(), &mut m), h::gptoss_status::GPTOSS_INVALID_MODEL);
        assert!(last_error().contains("hidden_size = 0"));
        std::fs::remove_dir_all(dir).unwrap();
        assert!(m.is_null());
        assert!(!CStr::from_ptr(h::gptoss_version()).to_bytes().is_empty());
    }
}

#[test]
fn sessions_of_one_model_run_from_several_threads() {
    struct Handle(*mut h::gptoss_model);
    // SAFETY: the header makes handles usable from any thread.
    unsafe impl Send for Handle {}
    unsafe impl Sync for Handle {}
    impl Handle {
        fn get(&self) -> *mut h::gptoss_model {
            self.0
        }
    }
    let model = Handle(load("synthetic:tiny"));
    let run = |seed: u64| {
        let mut s = null_mut();
        let prompt = [7u32, 8, 9];
        let mut stats = unsafe { std::mem::zeroed::<h::gptoss_stats>() };
        // SAFETY: a live model; valid arguments.
        unsafe {
            assert_eq!(h::gptoss_session_create(model.get(), 64, &mut s), OK);
            assert_eq!(h::gptoss_session_generate(s, prompt.as_ptr(), 3, 8, &sampler(seed), null(), 0, None, null_mut(), &mut stats), OK);
            let mut pos = 0u64;
            assert_eq!(h::gptoss_session_position(s, &mut pos), OK);
            assert_eq!(h::gptoss_session_release(s), OK);
            pos
        }
    };
    let positions: Vec<u64> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4).map(|i| sc.spawn(move || run(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(positions, vec![10; 4]);
    // SAFETY: the last reference.
    assert_eq!(unsafe { h::gptoss_model_release(model.get()) }, OK);
}

#[test]
fn tokenizer_load_failures_have_the_header_s_statuses() {
    // SAFETY: valid arguments; the failures are the point.
    unsafe {
        let mut t = null_mut();
        let missing = CString::new("/no/such/model").unwrap();
        assert_eq!(h::gptoss_tokenizer_load(missing.as_ptr(), &mut t), h::gptoss_status::GPTOSS_IO_ERROR);
        assert!(last_error().contains("/no/such/model/tokenizer.json"), "{}", last_error());
        assert!(t.is_null());
        let dir = tempfile_dir("tokenizer");
        std::fs::write(dir.join("tokenizer.json"), "{\"model\": 1}").unwrap();
        let bad = CString::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(h::gptoss_tokenizer_load(bad.as_ptr(), &mut t), h::gptoss_status::GPTOSS_INVALID_MODEL);
        assert!(last_error().contains("tokenizer.json"), "{}", last_error());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A fresh directory under the system's temporary one, unique to this process and `name`.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gptoss-capi-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_tokenizer_encodes_decodes_and_renders_chats() {
    // SAFETY: valid arguments; small buffers on purpose.
    unsafe {
        let mut t = null_mut();
        assert_eq!(h::gptoss_tokenizer_load(null(), &mut t), OK, "{}", last_error());
        let text = "Hello, world! <|start|>";
        let mut count = 0usize;
        assert_eq!(
            h::gptoss_tokenizer_encode(t, text.as_ptr().cast(), text.len(), 0, null_mut(), 0, &mut count),
            h::gptoss_status::GPTOSS_BUFFER_TOO_SMALL
        );
        let mut ids = vec![0u32; count];
        assert_eq!(h::gptoss_tokenizer_encode(t, text.as_ptr().cast(), text.len(), 0, ids.as_mut_ptr(), ids.len(), &mut count), OK);
        assert!(!ids.contains(&200_006), "ordinary encoding keeps special-token text as text");
        let mut special = vec![0u32; 16];
        assert_eq!(h::gptoss_tokenizer_encode(t, text.as_ptr().cast(), text.len(), 1, special.as_mut_ptr(), 16, &mut count), OK);
        assert_eq!(special[count - 1], 200_006);
        let mut size = 0usize;
        assert_eq!(
            h::gptoss_tokenizer_decode(t, ids.as_ptr(), ids.len(), null_mut(), 0, &mut size),
            h::gptoss_status::GPTOSS_BUFFER_TOO_SMALL
        );
        let mut bytes = vec![0 as std::ffi::c_char; size];
        assert_eq!(h::gptoss_tokenizer_decode(t, ids.as_ptr(), ids.len(), bytes.as_mut_ptr(), size, &mut size), OK);
        assert_eq!(std::slice::from_raw_parts(bytes.as_ptr().cast::<u8>(), size), text.as_bytes());
        let unknown = [300_000u32];
        assert_eq!(h::gptoss_tokenizer_decode(t, unknown.as_ptr(), 1, bytes.as_mut_ptr(), size, &mut size), INVALID);
        let bad_utf8 = [0xffu8, 0xfe];
        assert_eq!(h::gptoss_tokenizer_encode(t, bad_utf8.as_ptr().cast(), 2, 0, ids.as_mut_ptr(), ids.len(), &mut count), INVALID);

        let start = CString::new("<|start|>").unwrap();
        let mut id = 0u32;
        assert_eq!(h::gptoss_tokenizer_token_id(t, start.as_ptr(), &mut id), OK);
        assert_eq!(id, 200_006);

        let (user, question) = (CString::new("user").unwrap(), CString::new("What is 2 + 2?").unwrap());
        let system = CString::new("system").unwrap();
        let msgs = [
            h::gptoss_chat_message { role: system.as_ptr(), channel: null(), recipient: null(), content_type: null(), content: null() },
            h::gptoss_chat_message {
                role: user.as_ptr(),
                channel: null(),
                recipient: null(),
                content_type: null(),
                content: question.as_ptr(),
            },
        ];
        let mut rendered = vec![0u32; 256];
        let st = h::gptoss_tokenizer_render_chat(
            t,
            msgs.as_ptr(),
            2,
            h::gptoss_reasoning_effort::GPTOSS_REASONING_MEDIUM,
            1,
            rendered.as_mut_ptr(),
            256,
            &mut count,
        );
        assert_eq!(st, OK, "{}", last_error());
        // The minimal prompt of the harmony documentation, ending in <|start|>assistant.
        let expected = "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|><|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant";
        let mut want = vec![0u32; 256];
        let mut n = 0usize;
        assert_eq!(h::gptoss_tokenizer_encode(t, expected.as_ptr().cast(), expected.len(), 1, want.as_mut_ptr(), 256, &mut n), OK);
        assert_eq!(&rendered[..count], &want[..n]);
        assert_eq!(&rendered[count - 2..count], &[200_006, 173_781]);
        let bad =
            [h::gptoss_chat_message { role: user.as_ptr(), channel: null(), recipient: null(), content_type: null(), content: null() }];
        assert_eq!(h::gptoss_tokenizer_render_chat(t, bad.as_ptr(), 1, 1, 1, rendered.as_mut_ptr(), 256, &mut count), INVALID);
        assert!(last_error().contains("needs content"));

        let mut stops = [0u32; 2];
        assert_eq!(h::gptoss_tokenizer_stop_tokens(t, stops.as_mut_ptr(), 2, &mut count), OK);
        assert_eq!(stops, [200_002, 200_012]);
        assert_eq!(h::gptoss_tokenizer_release(t), OK);

        // The choice the command line makes: a synthetic model has the embedded tokenizer.
        let tiny = CString::new("synthetic:tiny").unwrap();
        assert_eq!(h::gptoss_tokenizer_load(tiny.as_ptr(), &mut t), OK, "{}", last_error());
        assert_eq!(h::gptoss_tokenizer_release(t), OK);
        let unknown = CString::new("synthetic:9b").unwrap();
        assert_eq!(h::gptoss_tokenizer_load(unknown.as_ptr(), &mut t), h::gptoss_status::GPTOSS_INVALID_MODEL);
        assert!(t.is_null() && last_error().contains("synthetic:9b"), "{}", last_error());
    }
}
