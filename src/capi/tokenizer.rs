//! `gptoss_tokenizer`: o200k_harmony text ↔ token ids, and harmony chat rendering.

use std::ffi::{c_char, c_int};

use ::gptoss_tokenizer::{Tokenizer, TokenizerError};
use gptoss_model_gpt_oss::ModelSource;
use gptoss_model_gpt_oss::harmony::{
    Content, DeveloperContent, HarmonyEncoding, Message, ReasoningEffort, RenderOptions, Role, SystemContent,
};
use gptoss_model_gpt_oss::source::tokenizer_for;

use super::buffers::{c_slice, c_str, fill, out};
use super::status::{Failure, gptoss_status};
use super::{entry, into_handle, release, retain};

/// The opaque tokenizer handle.
#[allow(non_camel_case_types)]
pub struct gptoss_tokenizer {
    tokenizer: Tokenizer,
}

/// Mirrors `gptoss_chat_message`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gptoss_chat_message {
    pub role: *const c_char,
    pub channel: *const c_char,
    pub recipient: *const c_char,
    pub content_type: *const c_char,
    pub content: *const c_char,
}

/// # Safety
/// `ptr` is NULL or a live tokenizer handle.
unsafe fn tokenizer_ref<'a>(ptr: *mut gptoss_tokenizer) -> Result<&'a Tokenizer, Failure> {
    // SAFETY: a non-NULL pointer is a live handle (the header's contract).
    unsafe { ptr.as_ref() }.map(|t| &t.tokenizer).ok_or_else(|| Failure::null("tokenizer"))
}

/// An optional string field.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string.
unsafe fn optional(ptr: *const c_char, what: &str) -> Result<Option<String>, Failure> {
    // SAFETY: forwarded from the caller.
    if ptr.is_null() { Ok(None) } else { unsafe { c_str(ptr, what) }.map(|s| Some(s.to_string())) }
}

/// The harmony message a C struct describes (see the header for the rules).
///
/// # Safety
/// The struct's non-NULL pointers are NUL-terminated strings.
unsafe fn message(m: &gptoss_chat_message, effort: ReasoningEffort) -> Result<Message, Failure> {
    // SAFETY: forwarded from the caller.
    let (role, content) = unsafe { (c_str(m.role, "message role")?, optional(m.content, "message content")?) };
    let mut msg = match (role, content) {
        ("system", None) => Message::new(Role::System, SystemContent::default().with_reasoning_effort(effort)),
        ("developer", Some(text)) => Message::new(Role::Developer, DeveloperContent::default().with_instructions(text)),
        (role, Some(text)) => match Role::parse(role) {
            Some(r) if r != Role::Tool => Message::new(r, Content::Text(text)),
            // Anything else names a tool whose output this is, e.g. functions.get_weather.
            _ => Message::from_tool(role, text),
        },
        (role, None) => return Err(Failure::invalid(format!("a {role} message needs content (only a system message may leave it NULL)"))),
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        msg.channel = optional(m.channel, "message channel")?;
        msg.recipient = optional(m.recipient, "message recipient")?;
        msg.content_type = optional(m.content_type, "message content_type")?;
    }
    Ok(msg)
}

/// The tokenizer of a model (`tokenizer_for`): a directory's tokenizer.json, else the embedded
/// o200k_harmony (NULL, a synthetic model, a directory without one).
///
/// # Safety
/// `model_dir` NULL or a NUL-terminated string; `tokenizer_out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_load(model_dir: *const c_char, tokenizer_out: *mut *mut gptoss_tokenizer) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let slot = unsafe { out(tokenizer_out, "tokenizer_out") }?;
        *slot = std::ptr::null_mut();
        let invalid = |e: &dyn std::fmt::Display| Failure::new(gptoss_status::GPTOSS_INVALID_MODEL, e.to_string());
        let source = if model_dir.is_null() {
            None
        } else {
            // SAFETY: forwarded from the caller.
            Some(unsafe { c_str(model_dir, "model_dir") }?.parse::<ModelSource>().map_err(|e| invalid(&e))?)
        };
        let tokenizer = tokenizer_for(source.as_ref()).map_err(|e| {
            // The header's statuses: a file that cannot be read is an I/O error, one that can
            // but holds no usable tokenizer an invalid model.
            let status = match e {
                TokenizerError::Io { .. } => gptoss_status::GPTOSS_IO_ERROR,
                _ => gptoss_status::GPTOSS_INVALID_MODEL,
            };
            Failure::new(status, e.to_string())
        })?;
        *slot = into_handle(gptoss_tokenizer { tokenizer });
        Ok(())
    })
}

/// # Safety
/// `tokenizer` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_retain(tokenizer: *mut gptoss_tokenizer) -> gptoss_status {
    // SAFETY: forwarded from the caller.
    unsafe { retain(tokenizer, "tokenizer") }
}

/// # Safety
/// `tokenizer` is NULL or a live handle whose reference the caller gives up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_release(tokenizer: *mut gptoss_tokenizer) -> gptoss_status {
    // SAFETY: forwarded from the caller.
    unsafe { release(tokenizer) }
}

/// Encodes `length` bytes of UTF-8 text.
///
/// # Safety
/// `tokenizer` NULL or live; `text` valid for `length` bytes (NULL with 0); `tokens` valid for
/// `capacity` writes (NULL with 0); `count_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_encode(
    tokenizer: *mut gptoss_tokenizer,
    text: *const c_char,
    length: usize,
    allow_special: c_int,
    tokens: *mut u32,
    capacity: usize,
    count_out: *mut usize,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (t, bytes, count) =
            unsafe { (tokenizer_ref(tokenizer)?, c_slice(text.cast::<u8>(), length, "text")?, out(count_out, "count_out")?) };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Failure::invalid(format!("text is not UTF-8 (first bad byte at {})", e.valid_up_to())))?;
        let ids = if allow_special != 0 { t.encode_with_special_tokens(text) } else { t.encode_ordinary(text) };
        // SAFETY: forwarded from the caller.
        unsafe { fill(&ids, tokens, capacity, count, "tokens") }
    })
}

/// Decodes token ids to the bytes they stand for (no NUL is added).
///
/// # Safety
/// `tokenizer` NULL or live; `tokens` valid for `count` reads (NULL with 0); `bytes` valid
/// for `capacity` writes (NULL with 0); `size_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_decode(
    tokenizer: *mut gptoss_tokenizer,
    tokens: *const u32,
    count: usize,
    bytes: *mut c_char,
    capacity: usize,
    size_out: *mut usize,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (t, ids, size) = unsafe { (tokenizer_ref(tokenizer)?, c_slice(tokens, count, "tokens")?, out(size_out, "size_out")?) };
        let decoded = t.decode_bytes(ids).map_err(|e| Failure::invalid(e.to_string()))?;
        // SAFETY: forwarded from the caller.
        unsafe { fill(&decoded, bytes.cast::<u8>(), capacity, size, "bytes") }
    })
}

/// The id of a token given as text: a special token such as `<|start|>` or an ordinary one.
///
/// # Safety
/// `tokenizer` NULL or live; `token` a NUL-terminated string; `id_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_token_id(
    tokenizer: *mut gptoss_tokenizer,
    token: *const c_char,
    id_out: *mut u32,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (t, name, id) = unsafe { (tokenizer_ref(tokenizer)?, c_str(token, "token")?, out(id_out, "id_out")?) };
        *id = t.token_id(name).ok_or_else(|| Failure::invalid(format!("no token '{name}'")))?;
        Ok(())
    })
}

/// Renders a conversation in the harmony format, optionally followed by `<|start|>assistant`.
///
/// # Safety
/// `tokenizer` NULL or live; `messages` valid for `count` structs whose strings are
/// NUL-terminated or NULL; `tokens` valid for `capacity` writes (NULL with 0); `count_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_render_chat(
    tokenizer: *mut gptoss_tokenizer,
    messages: *const gptoss_chat_message,
    count: usize,
    reasoning_effort: u32,
    add_generation_prompt: c_int,
    tokens: *mut u32,
    capacity: usize,
    count_out: *mut usize,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (t, msgs, n) = unsafe { (tokenizer_ref(tokenizer)?, c_slice(messages, count, "messages")?, out(count_out, "count_out")?) };
        let effort = match reasoning_effort {
            0 => ReasoningEffort::Low,
            1 => ReasoningEffort::Medium,
            2 => ReasoningEffort::High,
            other => return Err(Failure::invalid(format!("reasoning_effort = {other} is not a gptoss_reasoning_effort"))),
        };
        // SAFETY: forwarded from the caller.
        let conversation = msgs.iter().map(|m| unsafe { message(m, effort) }).collect::<Result<Vec<_>, _>>()?;
        let harmony = HarmonyEncoding::new(t).map_err(|e| Failure::invalid(e.to_string()))?;
        let rendered = if add_generation_prompt != 0 {
            harmony.render_for_completion(&conversation, Role::Assistant, RenderOptions::default())
        } else {
            harmony.render_conversation(&conversation, RenderOptions::default())
        }
        .map_err(|e| Failure::invalid(e.to_string()))?;
        // SAFETY: forwarded from the caller.
        unsafe { fill(&rendered, tokens, capacity, n, "tokens") }
    })
}

/// The tokens that end an assistant's turn when sampling: `<|return|>` and `<|call|>`.
///
/// # Safety
/// `tokenizer` NULL or live; `tokens` valid for `capacity` writes; `count_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_tokenizer_stop_tokens(
    tokenizer: *mut gptoss_tokenizer,
    tokens: *mut u32,
    capacity: usize,
    count_out: *mut usize,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (t, n) = unsafe { (tokenizer_ref(tokenizer)?, out(count_out, "count_out")?) };
        let stops = HarmonyEncoding::new(t).map_err(|e| Failure::invalid(e.to_string()))?.stop_tokens_for_assistant_actions();
        // SAFETY: forwarded from the caller.
        unsafe { fill(&stops, tokens, capacity, n, "tokens") }
    })
}
