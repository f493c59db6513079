//! Opening the files of a model directory. Everything is checked before it is opened or read:
//! only regular files (opening a named pipe blocks until a writer comes; a device or a
//! directory is no checkpoint), and text files no larger than any real one could be, so that a
//! hostile directory gets a one-line error instead of a hang or an allocation of its choosing.

use std::fs::File;
use std::io::{Error, ErrorKind, Read};
use std::path::Path;

use crate::error::{ModelError, Result};

/// config.json and the safetensors index are JSON of a few kB (the 120b index: 60 kB).
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Opens `path` for reading if it is a regular file (symlinks followed), and says how long it is.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "not a regular file (a named pipe, socket or device)" };
        return Err(ModelError::io(path, Error::new(ErrorKind::InvalidInput, what)));
    }
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    Ok((file, meta.len()))
}

/// The text of a small JSON file.
pub fn read_json_text(path: &Path) -> Result<String> {
    let (file, len) = open_regular(path)?;
    if len > MAX_JSON_BYTES {
        let detail = format!("{len} bytes; a JSON file of a model directory is refused above {MAX_JSON_BYTES}");
        return Err(ModelError::io(path, Error::new(ErrorKind::InvalidData, detail)));
    }
    let mut text = String::with_capacity(len as usize);
    // `take`: a file that grows after the size check still cannot pass the limit.
    file.take(MAX_JSON_BYTES).read_to_string(&mut text).map_err(|e| ModelError::io(path, e))?;
    Ok(text)
}

/// Whether anything is at `path`, a dangling or looping symlink included (so that it is read
/// and fails naming itself rather than being taken for absent).
pub fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
