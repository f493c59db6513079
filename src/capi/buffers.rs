//! Reading C arguments and filling C output buffers, with the size rules of the header.

use std::ffi::{CStr, c_char};

use super::status::{Failure, gptoss_status};

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid during the call.
pub unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// A slice argument given as pointer and count; NULL is allowed only with a count of 0.
///
/// # Safety
/// `ptr` is NULL or points to `count` readable elements that stay valid during the call.
pub unsafe fn c_slice<'a, T>(ptr: *const T, count: usize, what: &str) -> Result<&'a [T], Failure> {
    match (ptr.is_null(), count) {
        (true, 0) => Ok(&[]),
        (true, _) => Err(Failure::null(what)),
        // SAFETY: the caller guarantees `count` readable elements.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, count) }),
    }
}

/// A required out-parameter.
///
/// # Safety
/// `ptr` is NULL or valid for a write of `T`.
pub unsafe fn out<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller guarantees a valid, writable pointer when it is not NULL.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// Copies `items` into a caller buffer of `capacity` elements. Too small: the needed count goes
/// to `*size_out` and the call fails with GPTOSS_BUFFER_TOO_SMALL.
///
/// # Safety
/// `buf` is NULL (only with `capacity` 0) or valid for `capacity` writes; `size_out` is valid.
pub unsafe fn fill<T: Copy>(items: &[T], buf: *mut T, capacity: usize, size_out: &mut usize, what: &str) -> Result<(), Failure> {
    if items.len() > capacity {
        *size_out = items.len();
        return Err(Failure::new(
            gptoss_status::GPTOSS_BUFFER_TOO_SMALL,
            format!("{what}: {} elements needed, the buffer holds {capacity}", items.len()),
        ));
    }
    if !items.is_empty() {
        if buf.is_null() {
            return Err(Failure::null(what));
        }
        // SAFETY: `buf` has room for `capacity` ≥ `items.len()` elements.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), buf, items.len()) };
    }
    *size_out = items.len();
    Ok(())
}

/// Copies `text` and a NUL into a caller buffer; the needed size includes the NUL, the size
/// written on success does not.
///
/// # Safety
/// As for `fill`.
pub unsafe fn fill_str(text: &str, buf: *mut c_char, capacity: usize, size_out: &mut usize, what: &str) -> Result<(), Failure> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    // SAFETY: forwarded from the caller.
    unsafe { fill(&bytes, buf.cast::<u8>(), capacity, size_out, what) }?;
    *size_out = text.len();
    Ok(())
}
