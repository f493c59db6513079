//! The C interface (`include/gptoss.h`): opaque reference-counted handles, a status per call,
//! out-parameters written only on success, a thread-local error message, and no panic ever
//! crossing the boundary. One file per handle type; this one holds what they share.

mod buffers;
mod model;
mod session;
mod speculation;
mod status;
mod tokenizer;

pub use model::*;
pub use session::*;
pub use speculation::*;
pub use status::gptoss_status;
pub use tokenizer::*;

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use status::Failure;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // Interior NULs would cut the message; show them instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs the body of an entry point: maps errors to a status and a message, and turns a panic
/// into `GPTOSS_INTERNAL_ERROR` instead of unwinding into C.
fn entry(body: impl FnOnce() -> Result<(), Failure>) -> gptoss_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            gptoss_status::GPTOSS_SUCCESS
        }
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status
        }
        Err(panic) => {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            set_last_error(&format!("internal error: {}", what.unwrap_or_else(|| "a panic".into())));
            gptoss_status::GPTOSS_INTERNAL_ERROR
        }
    }
}

/// Hands a new object to C as a handle with one reference.
fn into_handle<T>(value: T) -> *mut T {
    std::sync::Arc::into_raw(std::sync::Arc::new(value)).cast_mut()
}

/// Adds a reference to a handle.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` made by `into_handle`.
unsafe fn retain<T>(ptr: *mut T, what: &str) -> gptoss_status {
    entry(|| {
        if ptr.is_null() {
            return Err(Failure::null(what));
        }
        // SAFETY: a live handle came from `Arc::into_raw`.
        unsafe { std::sync::Arc::increment_strong_count(ptr.cast_const()) };
        Ok(())
    })
}

/// Drops a reference to a handle; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` whose reference the caller gives up.
unsafe fn release<T>(ptr: *mut T) -> gptoss_status {
    entry(|| {
        if !ptr.is_null() {
            // SAFETY: a live handle came from `Arc::into_raw`; the caller gives up one count.
            unsafe { std::sync::Arc::decrement_strong_count(ptr.cast_const()) };
        }
        Ok(())
    })
}

/// The version, e.g. "0.1.0 (abcdef123456)". A static string.
#[unsafe(no_mangle)]
pub extern "C" fn gptoss_version() -> *const c_char {
    concat!(env!("GPTOSS_VERSION"), "\0").as_ptr().cast()
}

/// The message of the last failed call on this thread ("" if none).
#[unsafe(no_mangle)]
pub extern "C" fn gptoss_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The header promises that handles may be used from any thread.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<gptoss_model>();
    send_and_sync::<gptoss_session>();
    send_and_sync::<gptoss_tokenizer>();
};
