//! Models quantized by `write_quantized`: the directory holds the documented tensors and loads
//! back; it computes exactly what load-time conversion computes (same bytes, same logits); it
//! computes what its decoded weights say (an f32 checkpoint of them gives the same logits
//! within the fixture budget); and every CPU instruction set agrees with the scalar reference
//! on it. Refusals name what is wrong.

use std::path::{Path, PathBuf};

use gptoss_engine::{Backend, DType, HostBytes, Weight, WeightFormat};
use gptoss_kernels_cpu::{CpuBackend, Isa};
use gptoss_model_gpt_oss::checkpoint::Checkpoint;
use gptoss_model_gpt_oss::dir_writer::{tensor_as_stored, write_model_dir};
use gptoss_model_gpt_oss::quantized_writer::write_quantized;
use gptoss_model_gpt_oss::safetensors::{StDtype, TensorToWrite};
use gptoss_model_gpt_oss::tensors::{Kind, expected_tensors, scales_name};
use gptoss_model_gpt_oss::weight_only::{DEFAULT_FAMILIES, Family, QUANTIZABLE, WeightOnly};
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource, OpenedModel};

const FORMATS: [WeightFormat; 3] = [WeightFormat::Int8, WeightFormat::Int4 { group: 32 }, WeightFormat::Int4 { group: 64 }];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/fixture")
}

fn tokens() -> Vec<u32> {
    let text = std::fs::read_to_string(fixture().join("../tokens.txt")).unwrap();
    text.trim().split(',').map(|t| t.trim().parse().unwrap()).collect()
}

fn quantize(src: &ModelSource, q: WeightOnly) -> (tempfile::TempDir, OpenedModel) {
    let out = tempfile::tempdir().unwrap();
    write_quantized(&src.open().unwrap(), q, out.path(), |_, _| {}).unwrap();
    let opened = ModelSource::Dir(out.path().to_path_buf()).open().unwrap();
    (out, opened)
}

/// Logits of every position, run in chunks of 5 with an f32 cache.
fn logits(model: &OpenedModel, weights: Option<WeightOnly>, tokens: &[u32]) -> Vec<f32> {
    logits_on(CpuBackend::new(Some(2)).unwrap(), model, weights, tokens)
}

fn logits_on(backend: CpuBackend, model: &OpenedModel, weights: Option<WeightOnly>, tokens: &[u32]) -> Vec<f32> {
    let mut m = GptOss::load(backend, model, LoadOptions { max_batch: 5, weights, ..Default::default() }).unwrap();
    let mut ctx = m.new_context(ContextOptions { max_context: 64, kv_dtype: DType::F32 }).unwrap();
    let vocab = m.config().vocab_size;
    let mut out = Vec::new();
    for chunk in tokens.chunks(5) {
        m.forward(&mut ctx, chunk, chunk.len()).unwrap();
        for i in 0..chunk.len() {
            let mut row = vec![0f32; vocab];
            m.logits(&ctx, i, &mut row).unwrap();
            out.extend(row);
        }
    }
    out
}

fn bytes_of(ckpt: &Checkpoint, name: &str) -> HostBytes {
    ckpt.bytes(ckpt.get(name).unwrap_or_else(|| panic!("no tensor {name}")))
}

#[test]
fn written_tensors_follow_the_documented_layout() {
    // A source directory with tokenizer files and a subdirectory next to the weights.
    let src = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), src.path().join(e.file_name())).unwrap();
    }
    std::fs::write(src.path().join("tokenizer.json"), "{}").unwrap();
    std::fs::create_dir(src.path().join("original")).unwrap();
    let source = ModelSource::Dir(src.path().to_path_buf());

    for format in FORMATS {
        let (out, model) = quantize(&source, WeightOnly::new(format, &DEFAULT_FAMILIES).unwrap());
        assert_eq!(model.config.quantization.weight_only().unwrap().format, format);
        let ckpt = model.checkpoint().unwrap();
        let info = |name: &str| ckpt.get(name).unwrap().info.clone();
        let (codes, scales) = (info("lm_head.weight"), info("lm_head.weight_scales"));
        match format {
            WeightFormat::Int8 => {
                assert_eq!((codes.dtype, codes.shape), (StDtype::I8, vec![512, 64]));
                assert_eq!((scales.dtype, scales.shape), (StDtype::F32, vec![512]));
            }
            WeightFormat::Int4 { group } => {
                assert_eq!((codes.dtype, codes.shape), (StDtype::U8, vec![512, 32]));
                assert_eq!((scales.dtype, scales.shape), (StDtype::Bf16, vec![512, 64 / group]));
            }
            _ => unreachable!(),
        }
        // Everything not quantized is byte-identical to the source.
        let original = Checkpoint::open(&fixture()).unwrap();
        for name in
            ["model.layers.1.self_attn.q_proj.bias", "model.layers.2.mlp.router.weight", "model.layers.3.mlp.experts.down_proj_blocks"]
        {
            assert_eq!(bytes_of(ckpt, name).as_bytes(), bytes_of(&original, name).as_bytes(), "{name}");
        }
        let files: Vec<String> =
            std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(files.contains(&"tokenizer.json".to_string()) && !files.contains(&"original".to_string()), "{files:?}");
    }
}

#[test]
fn offline_and_load_time_quantization_agree() {
    let source = ModelSource::Dir(fixture());
    let original = source.open().unwrap();
    let tokens = tokens();
    for format in FORMATS {
        let q = WeightOnly::new(format, &QUANTIZABLE).unwrap();
        let (_out, model) = quantize(&source, q);
        // The same bytes as the backend's conversion of the original matrix.
        let (ckpt, src) = (model.checkpoint().unwrap(), original.checkpoint().unwrap());
        let mut b = CpuBackend::new(Some(2)).unwrap();
        for spec in expected_tensors(&model.config).iter().filter(|s| matches!(s.kind, Kind::Codes(_))) {
            let src_info = &src.get(&spec.name).unwrap().info;
            let (rows, cols) = (src_info.shape[0], src_info.shape[1]);
            let data = b.load_host(DType::Bf16, rows * cols, bytes_of(src, &spec.name)).unwrap();
            let w = Weight { format: WeightFormat::Bf16, experts: 1, rows, cols, data, scales: None, bias: None };
            let converted = b.convert_weight(&w, format).unwrap();
            assert_eq!(converted.data.bytes(), bytes_of(ckpt, &spec.name).as_bytes(), "{format} {}", spec.name);
            assert_eq!(converted.scales.unwrap().bytes(), bytes_of(ckpt, &scales_name(&spec.name)).as_bytes(), "{format} {}", spec.name);
        }
        // Hence the same logits, bit for bit.
        assert_eq!(logits(&model, None, &tokens), logits(&original, Some(q), &tokens), "{format}");
    }
}

/// An f32 checkpoint holding the decoded values of `model`'s quantized matrices.
fn dequantized(model: &OpenedModel, dir: &Path) {
    let mut b = CpuBackend::new(Some(2)).unwrap();
    let ckpt = model.checkpoint().unwrap();
    let mut config = model.config.clone();
    config.quantization = gptoss_model_gpt_oss::config::Quantization::Mxfp4;
    let mut tensors: Vec<TensorToWrite> = Vec::new();
    for spec in expected_tensors(&model.config) {
        match spec.kind {
            Kind::Codes(format) => {
                let cols = if format == WeightFormat::Int8 { spec.shape[1] } else { 2 * spec.shape[1] };
                let rows = spec.shape[0];
                let (dt, n) = format.data_layout(rows, cols);
                let (st, sn) = format.scales_layout(rows, cols).unwrap();
                let data = b.load_host(dt, n, bytes_of(ckpt, &spec.name)).unwrap();
                let scales = Some(b.load_host(st, sn, bytes_of(ckpt, &scales_name(&spec.name))).unwrap());
                let w = Weight { format, experts: 1, rows, cols, data, scales, bias: None };
                let f = b.convert_weight(&w, WeightFormat::F32).unwrap().data.bytes().to_vec();
                tensors.push(TensorToWrite {
                    name: spec.name.clone(),
                    dtype: StDtype::F32,
                    shape: vec![rows, cols],
                    fill: Box::new(move |off, out| {
                        out.copy_from_slice(&f[off..off + out.len()]);
                        Ok(())
                    }),
                });
            }
            Kind::Scales(_) => {}
            _ => tensors.push(tensor_as_stored(model, &spec)),
        }
    }
    write_model_dir(dir, tensors, &gptoss_model_gpt_oss::synthetic::config_json(&config), |_, _| {}).unwrap();
}

#[test]
fn quantized_models_compute_with_their_decoded_weights() {
    let tokens = tokens();
    for format in FORMATS {
        let (_out, model) = quantize(&ModelSource::Dir(fixture()), WeightOnly::new(format, &QUANTIZABLE).unwrap());
        let f32_dir = tempfile::tempdir().unwrap();
        dequantized(&model, f32_dir.path());
        let reference = ModelSource::Dir(f32_dir.path().to_path_buf()).open().unwrap();
        let (ours, theirs) = (logits(&model, None, &tokens), logits(&reference, None, &tokens));
        // The fixture's budget (tests/reference/README.md).
        assert!(rel_err(&ours, &theirs) <= 1e-4, "{format}: max|Δ| / max|ref| = {}", rel_err(&ours, &theirs));
    }
}

/// max|a − b| / max|b|.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let max_ref = b.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64)) / max_ref
}

#[test]
fn every_cpu_isa_matches_the_scalar_reference_on_quantized_models() {
    let tokens = tokens();
    for format in FORMATS {
        let (_out, model) = quantize(&ModelSource::Dir(fixture()), WeightOnly::new(format, &QUANTIZABLE).unwrap());
        let reference = logits_on(CpuBackend::with_isa(Some(2), Isa::Scalar).unwrap(), &model, None, &tokens);
        for isa in Isa::available_all() {
            let ours = logits_on(CpuBackend::with_isa(Some(2), isa).unwrap(), &model, None, &tokens);
            // The fixture's budget (tests/reference/README.md).
            assert!(rel_err(&ours, &reference) <= 1e-4, "{format} on {isa}: {}", rel_err(&ours, &reference));
        }
    }
}

#[test]
fn synthetic_models_quantize_and_run() {
    let source: ModelSource = "synthetic:tiny@3".parse().unwrap();
    let q = WeightOnly::new(WeightFormat::Int4 { group: 64 }, &[Family::Attention, Family::Router, Family::Unembedding]).unwrap();
    let (_out, model) = quantize(&source, q);
    let tokens = [5, 200_000, 17, 3, 99_999, 1];
    assert_eq!(logits(&model, None, &tokens), logits(&source.open().unwrap(), Some(q), &tokens));
}

#[test]
fn refusals_say_why() {
    let source = ModelSource::Dir(fixture());
    let q = WeightOnly::new(WeightFormat::Int8, &DEFAULT_FAMILIES).unwrap();
    let (out, quantized) = quantize(&source, q);
    let err = |m: &OpenedModel, q: WeightOnly, dir: &Path| write_quantized(m, q, dir, |_, _| {}).unwrap_err().to_string();
    let empty = tempfile::tempdir().unwrap();
    assert!(err(&quantized, q, empty.path()).contains("already quantized (int8)"));
    assert!(err(&source.open().unwrap(), q, out.path()).contains("exists and is not empty"));
    let g128 = WeightOnly::new(WeightFormat::Int4 { group: 128 }, &DEFAULT_FAMILIES).unwrap();
    assert!(err(&source.open().unwrap(), g128, empty.path()).contains("int4 group size 128 does not divide hidden_size"));
    // Loading with a conversion of weights that are already quantized.
    let e = GptOss::load(CpuBackend::new(Some(1)).unwrap(), &quantized, LoadOptions { weights: Some(q), ..LoadOptions::default() })
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("converting 'model.layers.0.self_attn.q_proj.weight' to int8") && e.contains("already int8"), "{e}");

    // A NaN in a source matrix is named with its tensor and place.
    let src = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), src.path().join(e.file_name())).unwrap();
    }
    let ckpt = Checkpoint::open(src.path()).unwrap();
    let t = ckpt.get("model.layers.1.self_attn.v_proj.weight").unwrap().clone();
    let path = ckpt.shard_path(&t).to_path_buf();
    drop(ckpt);
    let mut bytes = std::fs::read(&path).unwrap();
    // Element [2, 3] of a 64-wide bf16 matrix.
    let at = t.info.start + 2 * (2 * 64 + 3);
    bytes[at..at + 2].copy_from_slice(&half::bf16::NAN.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let nan_source = ModelSource::Dir(src.path().to_path_buf()).open().unwrap();
    let e = err(&nan_source, q, tempfile::tempdir().unwrap().path());
    assert!(e.contains("model.layers.1.self_attn.v_proj.weight") && e.contains("weight [2, 3] = NaN is not finite"), "{e}");
}
