//! Malformed checkpoints and configs: each gives a clear error naming the file, tensor or value,
//! never a panic or an out-of-bounds read. Each case corrupts a copy of the reference fixture.

use std::path::{Path, PathBuf};

use gptoss_engine::WeightFormat;
use gptoss_model_gpt_oss::ModelSource;
use gptoss_model_gpt_oss::quantized_writer::write_quantized;
use gptoss_model_gpt_oss::weight_only::{DEFAULT_FAMILIES, WeightOnly};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/fixture")
}

const SHARD: &str = "model-00001-of-00002.safetensors";

/// A temporary copy of the fixture, modified by `corrupt`; returns the error of opening it.
fn open_corrupted(corrupt: impl FnOnce(&Path)) -> String {
    open_corrupted_copy(&fixture(), corrupt)
}

/// A temporary copy of `src`, modified by `corrupt`; returns the error of opening it.
fn open_corrupted_copy(src: &Path, corrupt: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    corrupt(dir.path());
    match ModelSource::Dir(dir.path().to_path_buf()).open() {
        Ok(_) => panic!("a corrupted checkpoint opened without error"),
        Err(e) => e.to_string(),
    }
}

/// Rewrites a shard's JSON header with `edit`, keeping its data bytes.
fn edit_header(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(header.as_object_mut().unwrap());
    let mut text = serde_json::to_string(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

/// The name of some tensor stored in `SHARD`, with its entry.
fn some_tensor(header: &serde_json::Map<String, Value>, suffix: &str) -> String {
    header.keys().find(|k| k.ends_with(suffix)).unwrap_or_else(|| panic!("no tensor ending in {suffix}")).clone()
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut String)) {
    let path = dir.join("config.json");
    let mut text = std::fs::read_to_string(&path).unwrap();
    edit(&mut text);
    std::fs::write(path, text).unwrap();
}

fn assert_contains(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "expected '{p}' in error:\n{err}");
    }
}

#[test]
fn truncated_shard() {
    let e = open_corrupted(|d| {
        let p = d.join(SHARD);
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 2).unwrap();
    });
    assert_contains(&e, &[SHARD, "run beyond", "truncated"]);
}

#[test]
fn header_length_beyond_the_file() {
    let e = open_corrupted(|d| {
        let p = d.join(SHARD);
        let mut b = std::fs::read(&p).unwrap();
        let too_long = b.len() as u64 * 4;
        b[..8].copy_from_slice(&too_long.to_le_bytes());
        std::fs::write(p, b).unwrap();
    });
    assert_contains(&e, &[SHARD, "header length", "beyond the end of the file"]);
}

#[test]
fn overlapping_offsets() {
    let e = open_corrupted(|d| {
        edit_header(&d.join(SHARD), |h| {
            let a = some_tensor(h, "k_proj.weight");
            let b = some_tensor(h, "v_proj.weight");
            let a_off = h[&a]["data_offsets"].clone();
            let b_len = h[&b]["data_offsets"][1].as_u64().unwrap() - h[&b]["data_offsets"][0].as_u64().unwrap();
            let start = a_off[0].as_u64().unwrap() + 2;
            h.get_mut(&b).unwrap()["data_offsets"] = serde_json::json!([start, start + b_len]);
        })
    });
    assert_contains(&e, &[SHARD, "overlap"]);
}

#[test]
fn offsets_out_of_range() {
    let e = open_corrupted(|d| {
        edit_header(&d.join(SHARD), |h| {
            let a = some_tensor(h, "o_proj.weight");
            let len = h[&a]["data_offsets"][1].as_u64().unwrap() - h[&a]["data_offsets"][0].as_u64().unwrap();
            h.get_mut(&a).unwrap()["data_offsets"] = serde_json::json!([10_000_000u64, 10_000_000 + len]);
        })
    });
    assert_contains(&e, &[SHARD, "o_proj.weight", "beyond"]);
}

#[test]
fn unknown_dtype() {
    let e = open_corrupted(|d| {
        edit_header(&d.join(SHARD), |h| {
            let a = some_tensor(h, "sinks");
            h.get_mut(&a).unwrap()["dtype"] = "F7".into();
        })
    });
    assert_contains(&e, &[SHARD, "sinks", "unknown dtype 'F7'"]);
}

#[test]
fn missing_and_misshapen_tensors_are_reported_together() {
    let e = open_corrupted(|d| {
        let mut removed = String::new();
        edit_header(&d.join(SHARD), |h| {
            removed = some_tensor(h, "router.bias");
            // Keep the bytes accounted for under another name so the file stays well formed.
            let entry = h.remove(&removed).unwrap();
            h.insert("unrelated.tensor".into(), entry);
            let k = some_tensor(h, "k_proj.weight");
            let dims = h[&k]["shape"].as_array().unwrap().clone();
            h.get_mut(&k).unwrap()["shape"] = serde_json::json!([dims[1], dims[0]]);
        });
        let index = d.join("model.safetensors.index.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
        v["weight_map"].as_object_mut().unwrap().remove(&removed);
        std::fs::write(index, v.to_string()).unwrap();
    });
    assert_contains(
        &e,
        &["does not match its config", "missing tensor", "router.bias", "k_proj.weight", "has shape [64, 32], expected [32, 64]"],
    );
}

#[test]
fn wrong_dtype() {
    let e = open_corrupted(|d| {
        edit_header(&d.join(SHARD), |h| {
            let a = some_tensor(h, "o_proj.weight");
            let dims: Vec<u64> = h[&a]["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            // Same bytes reinterpreted as U8 with twice the columns.
            h.get_mut(&a).unwrap()["dtype"] = "U8".into();
            h.get_mut(&a).unwrap()["shape"] = serde_json::json!([dims[0], dims[1] * 2]);
        })
    });
    assert_contains(&e, &["o_proj.weight", "dtype U8, expected BF16 or F32"]);
}

#[test]
fn index_names_a_missing_file() {
    let e = open_corrupted(|d| {
        std::fs::remove_file(d.join(SHARD)).unwrap();
    });
    assert_contains(&e, &[SHARD, "No such file"]);
}

#[test]
fn mxfp4_dimension_not_a_multiple_of_32() {
    let e = open_corrupted(|d| edit_config(d, |t| *t = t.replace("\"hidden_size\": 64", "\"hidden_size\": 48")));
    assert_contains(&e, &["config.json", "hidden_size 48 is not a multiple of 32"]);
}

#[test]
fn non_finite_config_numbers() {
    let e = open_corrupted(|d| edit_config(d, |t| *t = t.replace("\"rope_theta\": 150000", "\"rope_theta\": NaN")));
    assert_contains(&e, &["config.json", "rope_theta = NaN"]);
    let e = open_corrupted(|d| edit_config(d, |t| *t = t.replace("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": Infinity")));
    assert_contains(&e, &["config.json", "rms_norm_eps = Infinity"]);
}

#[test]
fn no_weights_at_all() {
    let e = open_corrupted(|d| {
        for f in std::fs::read_dir(d).unwrap() {
            let p = f.unwrap().path();
            if p.file_name().unwrap() != "config.json" {
                std::fs::remove_file(p).unwrap();
            }
        }
    });
    assert_contains(&e, &["neither model.safetensors nor model.safetensors.index.json"]);
}

#[test]
fn unknown_model_names() {
    for name in ["synthetic:7b", "synthetic:tiny@x"] {
        let e = name.parse::<ModelSource>().unwrap_err().to_string();
        assert_contains(&e, &["unknown model", name]);
    }
    let e = ModelSource::Dir("/nonexistent/model".into()).open().err().unwrap().to_string();
    assert_contains(&e, &["/nonexistent/model", "no such model directory"]);
}

/// The fixture quantized by `gptoss quantize` (one shard).
fn quantized_fixture(format: WeightFormat) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let model = ModelSource::Dir(fixture()).open().unwrap();
    write_quantized(&model, WeightOnly::new(format, &DEFAULT_FAMILIES).unwrap(), out.path(), |_, _| {}).unwrap();
    out
}

const QUANTIZED_SHARD: &str = "model-00001-of-00001.safetensors";

#[test]
fn quantized_scales_of_the_wrong_shape() {
    let q = quantized_fixture(WeightFormat::Int4 { group: 32 });
    let e = open_corrupted_copy(q.path(), |d| {
        edit_header(&d.join(QUANTIZED_SHARD), |h| {
            let s = some_tensor(h, "q_proj.weight_scales");
            let dims = h[&s]["shape"].as_array().unwrap().clone();
            h.get_mut(&s).unwrap()["shape"] = serde_json::json!([dims[1], dims[0]]);
        })
    });
    assert_contains(&e, &["q_proj.weight_scales", "has shape [2, 64], expected [64, 2]"]);
    // A config whose group size disagrees with the stored scales.
    let e = open_corrupted_copy(q.path(), |d| edit_config(d, |t| *t = t.replace("\"group_size\": 32", "\"group_size\": 64")));
    assert_contains(&e, &["17 problems", "q_proj.weight_scales", "has shape [64, 2], expected [64, 1]"]);
}

#[test]
fn quantized_codes_of_the_wrong_dtype_or_missing_scales() {
    let q = quantized_fixture(WeightFormat::Int8);
    let e = open_corrupted_copy(q.path(), |d| {
        edit_header(&d.join(QUANTIZED_SHARD), |h| {
            let a = some_tensor(h, "o_proj.weight");
            h.get_mut(&a).unwrap()["dtype"] = "U8".into();
            let s = some_tensor(h, "k_proj.weight_scales");
            let entry = h.remove(&s).unwrap();
            h.insert("unrelated.tensor".into(), entry);
        });
        let index = d.join("model.safetensors.index.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
        let map = v["weight_map"].as_object_mut().unwrap();
        let s = map.keys().find(|k| k.ends_with("k_proj.weight_scales")).unwrap().clone();
        map.remove(&s);
        std::fs::write(index, v.to_string()).unwrap();
    });
    assert_contains(&e, &["o_proj.weight", "dtype U8, expected I8", "missing tensor", "k_proj.weight_scales"]);
}

#[test]
fn unknown_quantization_method_or_group() {
    let q = quantized_fixture(WeightFormat::Int4 { group: 32 });
    let e = open_corrupted_copy(q.path(), |d| edit_config(d, |t| *t = t.replace("gptoss_weight_only", "gptq")));
    assert_contains(&e, &["config.json", "quant_method Some(\"gptq\") is not supported", "gptoss_weight_only"]);
    let e = open_corrupted_copy(q.path(), |d| edit_config(d, |t| *t = t.replace("\"group_size\": 32", "\"group_size\": 48")));
    assert_contains(&e, &["config.json", "group_size 48 is not one of [32, 64, 128]"]);
    let e = open_corrupted_copy(q.path(), |d| edit_config(d, |t| *t = t.replace("\"unembedding\"", "\"experts\"")));
    assert_contains(&e, &["config.json", "experts stay MXFP4"]);
    // Group 128 is a valid size but does not divide this model's 64-wide inputs.
    let e = open_corrupted_copy(q.path(), |d| edit_config(d, |t| *t = t.replace("\"group_size\": 32", "\"group_size\": 128")));
    assert_contains(&e, &["config.json", "int4 group size 128 does not divide hidden_size"]);
}

/// Replaces `name` in `dir` with a named pipe (opening one blocks until a writer comes).
#[cfg(unix)]
fn make_fifo(dir: &Path, name: &str) {
    let path = dir.join(name);
    std::fs::remove_file(&path).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
}

#[cfg(unix)]
#[test]
fn named_pipes_and_directories_are_refused_before_opening() {
    for name in [SHARD, "config.json", "model.safetensors.index.json"] {
        let e = open_corrupted(|d| make_fifo(d, name));
        assert_contains(&e, &[name, "not a regular file"]);
    }
    let e = open_corrupted(|d| {
        std::fs::remove_file(d.join(SHARD)).unwrap();
        std::fs::create_dir(d.join(SHARD)).unwrap();
    });
    assert_contains(&e, &[SHARD, "a directory"]);
}

#[cfg(unix)]
#[test]
fn a_dangling_index_symlink_is_named_not_skipped() {
    let e = open_corrupted(|d| {
        let index = d.join("model.safetensors.index.json");
        std::fs::remove_file(&index).unwrap();
        std::os::unix::fs::symlink("gone.json", &index).unwrap();
    });
    assert_contains(&e, &["model.safetensors.index.json", "No such file"]);
}

#[test]
fn index_entries_must_be_plain_file_names() {
    for bad in ["", ".", "..", "../x.safetensors", "sub/x.safetensors"] {
        let e = open_corrupted(|d| {
            let index = d.join("model.safetensors.index.json");
            let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
            let map = v["weight_map"].as_object_mut().unwrap();
            let first = map.keys().next().unwrap().clone();
            map[&first] = bad.into();
            std::fs::write(index, v.to_string()).unwrap();
        });
        assert_contains(&e, &["model.safetensors.index.json", "is not a file in this directory"]);
    }
}

#[test]
fn an_oversized_config_is_refused_before_reading() {
    let e = open_corrupted(|d| {
        let f = std::fs::OpenOptions::new().append(true).open(d.join("config.json")).unwrap();
        f.set_len(65 << 20).unwrap();
    });
    assert_contains(&e, &["config.json", "refused above"]);
}

#[test]
fn a_layer_count_beyond_the_checkpoint_is_refused_before_anything_per_layer() {
    // 2^40 layers: the list of expected tensors alone would not fit in memory.
    let e = open_corrupted(|d| edit_config(d, |t| *t = t.replace("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 1099511627776")));
    assert_contains(&e, &["layer_types lists 4 layers but num_hidden_layers is 1099511627776"]);
    let e = open_corrupted(|d| {
        edit_config(d, |t| {
            let mut v: Value = serde_json::from_str(t).unwrap();
            v.as_object_mut().unwrap().remove("layer_types");
            v["num_hidden_layers"] = 1_099_511_627_776u64.into();
            *t = v.to_string();
        })
    });
    assert_contains(&e, &["num_hidden_layers = 1099511627776", "tensors of 4 layers"]);
}
