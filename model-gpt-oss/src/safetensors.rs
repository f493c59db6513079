//! The safetensors container: an 8-byte little-endian header length, a JSON header mapping
//! tensor names to `{dtype, shape, data_offsets}`, then the data. Parsed by hand so that every
//! defect is reported with the file and tensor it concerns, and nothing is read out of bounds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{ModelError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StDtype {
    Bool,
    U8,
    I8,
    I16,
    U16,
    F16,
    Bf16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
    F8E4M3,
    F8E5M2,
}

impl StDtype {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "BOOL" => StDtype::Bool,
            "U8" => StDtype::U8,
            "I8" => StDtype::I8,
            "I16" => StDtype::I16,
            "U16" => StDtype::U16,
            "F16" => StDtype::F16,
            "BF16" => StDtype::Bf16,
            "I32" => StDtype::I32,
            "U32" => StDtype::U32,
            "F32" => StDtype::F32,
            "F64" => StDtype::F64,
            "I64" => StDtype::I64,
            "U64" => StDtype::U64,
            "F8_E4M3" => StDtype::F8E4M3,
            "F8_E5M2" => StDtype::F8E5M2,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            StDtype::Bool => "BOOL",
            StDtype::U8 => "U8",
            StDtype::I8 => "I8",
            StDtype::I16 => "I16",
            StDtype::U16 => "U16",
            StDtype::F16 => "F16",
            StDtype::Bf16 => "BF16",
            StDtype::I32 => "I32",
            StDtype::U32 => "U32",
            StDtype::F32 => "F32",
            StDtype::F64 => "F64",
            StDtype::I64 => "I64",
            StDtype::U64 => "U64",
            StDtype::F8E4M3 => "F8_E4M3",
            StDtype::F8E5M2 => "F8_E5M2",
        }
    }

    pub fn size(self) -> usize {
        match self {
            StDtype::Bool | StDtype::U8 | StDtype::I8 | StDtype::F8E4M3 | StDtype::F8E5M2 => 1,
            StDtype::I16 | StDtype::U16 | StDtype::F16 | StDtype::Bf16 => 2,
            StDtype::I32 | StDtype::U32 | StDtype::F32 => 4,
            StDtype::F64 | StDtype::I64 | StDtype::U64 => 8,
        }
    }
}

/// One tensor's entry: where its bytes are, relative to the start of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: StDtype,
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub start: usize,
    pub end: usize,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Headers larger than this are refused (the released 120b shards have ~30 KB headers).
pub const MAX_HEADER: usize = 100 << 20;

/// Parses the header of a safetensors file whose full contents are `file`.
/// Checks: header length within the file, valid UTF-8 JSON object, known dtypes, shapes whose
/// byte size matches their offsets, offsets inside the data area, no two tensors overlapping.
pub fn parse_header(path: &Path, file: &[u8]) -> Result<BTreeMap<String, TensorInfo>> {
    let err = |d: String| ModelError::checkpoint(path, d);
    if file.len() < 8 {
        return Err(err(format!("truncated: {} bytes, too short for the 8-byte header length", file.len())));
    }
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap());
    if header_len > MAX_HEADER as u64 {
        return Err(err(format!("header length {header_len} exceeds the {MAX_HEADER}-byte limit")));
    }
    let data_start = 8 + header_len as usize;
    if data_start > file.len() {
        return Err(err(format!("header length {header_len} runs beyond the end of the file ({} bytes): truncated?", file.len())));
    }
    let text = std::str::from_utf8(&file[8..data_start]).map_err(|e| err(format!("header is not UTF-8: {e}")))?;
    let header: Value = serde_json::from_str(text.trim_end_matches(' ')).map_err(|e| err(format!("header is not valid JSON: {e}")))?;
    let Value::Object(header) = header else {
        return Err(err("header is not a JSON object".into()));
    };
    let data_len = file.len() - data_start;
    let mut tensors = BTreeMap::new();
    for (name, entry) in &header {
        if name == "__metadata__" {
            continue;
        }
        let info = parse_entry(entry, data_start, data_len).map_err(|d| err(format!("tensor '{name}': {d}")))?;
        tensors.insert(name.clone(), info);
    }
    let mut by_offset: Vec<(&String, &TensorInfo)> = tensors.iter().collect();
    by_offset.sort_by_key(|(_, t)| (t.start, t.end));
    for pair in by_offset.windows(2) {
        let ((a, ta), (b, tb)) = (pair[0], pair[1]);
        if tb.start < ta.end && tb.end > tb.start && ta.end > ta.start {
            return Err(err(format!(
                "tensors '{a}' (bytes {}..{}) and '{b}' (bytes {}..{}) overlap",
                ta.start - data_start,
                ta.end - data_start,
                tb.start - data_start,
                tb.end - data_start
            )));
        }
    }
    Ok(tensors)
}

fn parse_entry(entry: &Value, data_start: usize, data_len: usize) -> Result<TensorInfo, String> {
    let Value::Object(e) = entry else {
        return Err("entry is not an object".into());
    };
    let dtype_name = e.get("dtype").and_then(Value::as_str).ok_or("missing \"dtype\"")?;
    let dtype = StDtype::parse(dtype_name).ok_or_else(|| format!("unknown dtype '{dtype_name}'"))?;
    let shape = e
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("missing \"shape\"")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or_else(|| format!("shape entry {d} is not a non-negative integer")))
        .collect::<Result<Vec<_>, _>>()?;
    let offsets = e.get("data_offsets").and_then(Value::as_array).ok_or("missing \"data_offsets\"")?;
    let [begin, end] = offsets.as_slice() else {
        return Err(format!("data_offsets has {} entries, expected 2", offsets.len()));
    };
    let (begin, end) = match (begin.as_u64(), end.as_u64()) {
        (Some(b), Some(e)) => (b as usize, e as usize),
        _ => return Err("data_offsets are not non-negative integers".into()),
    };
    if begin > end {
        return Err(format!("data_offsets [{begin}, {end}] are reversed"));
    }
    if end > data_len {
        return Err(format!(
            "data_offsets [{begin}, {end}] run beyond the {data_len} bytes of data: file truncated or offsets out of range"
        ));
    }
    let bytes = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d)).ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if bytes != end - begin {
        return Err(format!("shape {shape:?} of {} needs {bytes} bytes but data_offsets span {}", dtype.name(), end - begin));
    }
    Ok(TensorInfo { dtype, shape, start: data_start + begin, end: data_start + end })
}

/// Fills a chunk of a tensor's bytes given the chunk's byte offset, or says why it cannot.
pub type FillBytes<'a> = Box<dyn Fn(usize, &mut [u8]) -> Result<(), String> + Sync + 'a>;

/// A tensor to write: name, dtype, shape, and how to produce its bytes chunk by chunk (so
/// large tensors stream without being held in memory).
pub struct TensorToWrite<'a> {
    pub name: String,
    pub dtype: StDtype,
    pub shape: Vec<usize>,
    pub fill: FillBytes<'a>,
}

impl TensorToWrite<'_> {
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// Writes a safetensors file: header padded with spaces to a multiple of 8, tensors in the
/// given order. `on_bytes` is told how many bytes were written after each chunk.
pub fn write_file(path: &Path, tensors: &[TensorToWrite], mut on_bytes: impl FnMut(usize)) -> Result<()> {
    let io = |e| ModelError::io(path, e);
    let mut header = Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for t in tensors {
        let end = offset + t.bytes();
        header.insert(t.name.clone(), serde_json::json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [offset, end]}));
        offset = end;
    }
    let mut text = serde_json::to_string(&Value::Object(header)).expect("a map of plain values serialises");
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(text.as_bytes()).map_err(io)?;
    const CHUNK: usize = 16 << 20;
    let mut chunk = vec![0u8; CHUNK];
    for t in tensors {
        let total = t.bytes();
        let mut done = 0;
        while done < total {
            let n = CHUNK.min(total - done);
            fill_parallel(&t.fill, done, &mut chunk[..n]).map_err(|e| ModelError::checkpoint(path, format!("tensor '{}': {e}", t.name)))?;
            out.write_all(&chunk[..n]).map_err(io)?;
            done += n;
            on_bytes(n);
        }
    }
    out.flush().map_err(io)
}

fn fill_parallel(fill: &FillBytes, offset: usize, out: &mut [u8]) -> Result<(), String> {
    use rayon::prelude::*;
    const PIECE: usize = 1 << 18;
    out.par_chunks_mut(PIECE).enumerate().try_for_each(|(i, c)| fill(offset + i * PIECE, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(header: &str, data: &[u8]) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(data);
        f
    }

    fn parse(f: &[u8]) -> Result<BTreeMap<String, TensorInfo>> {
        parse_header(Path::new("x.safetensors"), f)
    }

    #[test]
    fn a_valid_file_parses() {
        let f = file_with(
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}"#,
            &[0; 11],
        );
        let t = parse(&f).unwrap();
        assert_eq!(t["a"].shape, vec![2, 2]);
        assert_eq!(t["b"].end - t["b"].start, 3);
    }

    #[test]
    fn defects_name_the_file_and_tensor() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "truncated"),
            (1000u64.to_le_bytes().to_vec(), "beyond the end of the file"),
            (file_with(r#"{"a":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}"#, &[0]), "tensor 'a': unknown dtype 'F7'"),
            (
                file_with(r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, &[0; 8]),
                "tensor 'a': data_offsets [0, 16] run beyond",
            ),
            (file_with(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &[0; 8]), "needs 12 bytes"),
            (
                file_with(
                    r#"{"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#,
                    &[0; 8],
                ),
                "'a' (bytes 0..6) and 'b' (bytes 4..8) overlap",
            ),
            (file_with(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[2,1]}}"#, &[0; 8]), "reversed"),
            (file_with("[1,2]", &[]), "not a JSON object"),
            (file_with("{\"a\":", &[]), "not valid JSON"),
            (
                file_with(&format!("{{\"a\":{{\"dtype\":\"U8\",\"shape\":[{}, {}],\"data_offsets\":[0,1]}}}}", u64::MAX, u64::MAX), &[0]),
                "overflows",
            ),
        ];
        for (f, want) in cases {
            let e = parse(&f).unwrap_err().to_string();
            assert!(e.starts_with("x.safetensors: ") && e.contains(want), "want '{want}' in '{e}'");
        }
    }

    #[test]
    fn written_files_read_back_and_match_the_safetensors_crate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let tensors = vec![
            TensorToWrite {
                name: "w".into(),
                dtype: StDtype::Bf16,
                shape: vec![3, 5],
                fill: Box::new(|off, out: &mut [u8]| {
                    out.iter_mut().enumerate().for_each(|(i, b)| *b = (off + i) as u8);
                    Ok(())
                }),
            },
            TensorToWrite {
                name: "s".into(),
                dtype: StDtype::U8,
                shape: vec![7],
                fill: Box::new(|_, out: &mut [u8]| {
                    out.fill(9);
                    Ok(())
                }),
            },
        ];
        let mut written = 0;
        write_file(&path, &tensors, |n| written += n).unwrap();
        assert_eq!(written, 37);
        let bytes = std::fs::read(&path).unwrap();
        let ours = parse(&bytes).unwrap();
        let theirs = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, info) in &ours {
            let t = theirs.tensor(name).unwrap();
            assert_eq!(t.shape(), &info.shape[..]);
            assert_eq!(t.data(), &bytes[info.start..info.end]);
        }
        assert_eq!(&bytes[ours["w"].start..ours["w"].start + 3], &[0, 1, 2]);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(header_len % 8, 0);
    }
}
