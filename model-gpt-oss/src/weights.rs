//! Moving an opened model's tensors into a backend's buffers: matrices as stored (zero-copy
//! where the backend computes from host memory), small vectors widened to f32, and the
//! families a load asks to quantize converted by the backend, wherever the weights live.

use gptoss_engine::{Backend, DType, EngineError, HostBytes, Weight, WeightFormat};
use half::bf16;

use crate::config::Quantization;
use crate::error::{ModelError, Result};
use crate::safetensors::StDtype;
use crate::source::{OpenedModel, TensorData};
use crate::tensors::{Kind, TensorSpec, expected_tensors, layer_prefix, scales_name};
use crate::weight_only::{Family, WeightOnly};

pub struct LayerWeights<Buf> {
    /// f32 [hidden]
    pub attn_norm: Buf,
    /// [q_heads·head_dim, hidden], bias f32 [q_heads·head_dim]
    pub q: Weight<Buf>,
    /// [kv_heads·head_dim, hidden]
    pub k: Weight<Buf>,
    pub v: Weight<Buf>,
    /// [hidden, q_heads·head_dim], bias f32 [hidden]
    pub o: Weight<Buf>,
    /// f32 [q_heads]
    pub sinks: Buf,
    /// f32 [hidden]
    pub mlp_norm: Buf,
    /// [experts, hidden], bias f32 [experts]
    pub router: Weight<Buf>,
    /// experts × [2·intermediate, hidden] (gate at even rows, up at odd), bias f32 [experts, 2·intermediate]
    pub gate_up: Weight<Buf>,
    /// experts × [hidden, intermediate], bias f32 [experts, hidden]
    pub down: Weight<Buf>,
}

pub struct Weights<Buf> {
    /// [vocab, hidden]
    pub embed: Weight<Buf>,
    pub layers: Vec<LayerWeights<Buf>>,
    /// f32 [hidden]
    pub norm: Buf,
    /// [vocab, hidden]
    pub unembed: Weight<Buf>,
}

struct Loader<'a, B: Backend> {
    backend: &'a mut B,
    model: &'a OpenedModel,
    specs: std::collections::HashMap<String, TensorSpec>,
    /// Told (bytes loaded, bytes in all) after each tensor.
    progress: &'a mut dyn FnMut(usize, usize),
    done: usize,
    total: usize,
    /// Families to quantize on the way in.
    convert: Option<WeightOnly>,
}

impl<B: Backend> Loader<'_, B> {
    fn spec(&self, name: &str) -> &TensorSpec {
        &self.specs[name]
    }

    fn advance(&mut self, spec: &TensorSpec) {
        self.done += spec.elements() * self.model.dtype(spec).size();
        (self.progress)(self.done, self.total);
    }

    fn raw(&mut self, name: &str, dtype: DType) -> Result<B::Buffer> {
        let spec = self.specs[name].clone();
        let n = spec.elements();
        let buf = match self.model.tensor(&spec) {
            TensorData::Host(bytes, _) => self.backend.load_host(dtype, n, bytes)?,
            TensorData::Synth(t, _) => self.backend.load_synth(dtype, n, &t)?,
        };
        self.advance(&spec);
        Ok(buf)
    }

    /// A small vector as f32.
    fn vector(&mut self, name: &str) -> Result<B::Buffer> {
        let spec = self.specs[name].clone();
        let n = spec.elements();
        let buf = match self.model.tensor(&spec) {
            TensorData::Host(bytes, StDtype::F32) => self.backend.load_host(DType::F32, n, bytes)?,
            TensorData::Host(bytes, _) => {
                let f: Vec<u8> =
                    bytes.as_bytes().chunks_exact(2).flat_map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes()).collect();
                self.backend.load_host(DType::F32, n, HostBytes::from_vec(f))?
            }
            TensorData::Synth(t, _) => self.backend.load_synth(DType::F32, n, &t)?,
        };
        self.advance(&spec);
        Ok(buf)
    }

    /// A dense matrix as stored (bf16, f32, or int8/int4 codes with their scales), then
    /// converted if the load asked for its family.
    fn dense(&mut self, name: &str, bias: Option<&str>, family: Option<Family>) -> Result<Weight<B::Buffer>> {
        let spec = self.spec(name).clone();
        let (rows, stored) = (spec.shape[0], spec.shape[1]);
        let (format, cols) = match spec.kind {
            Kind::Codes(f @ WeightFormat::Int4 { .. }) => (f, 2 * stored),
            Kind::Codes(f) => (f, stored),
            _ if self.model.dtype(&spec) == StDtype::F32 => (WeightFormat::F32, stored),
            _ => (WeightFormat::Bf16, stored),
        };
        let scales = match format.scales_layout(rows, cols) {
            Some((st, _)) => Some(self.raw(&scales_name(name), st)?),
            None => None,
        };
        let w = Weight {
            format,
            experts: 1,
            rows,
            cols,
            data: self.raw(name, format.data_layout(rows, cols).0)?,
            scales,
            bias: bias.map(|b| self.vector(b)).transpose()?,
        };
        match self.convert.filter(|q| family.is_some_and(|f| q.includes(f))) {
            None => Ok(w),
            Some(q) if matches!(w.format, WeightFormat::Bf16 | WeightFormat::F32) => {
                self.backend.convert_weight(&w, q.format).map_err(|e| ModelError::Convert { tensor: name.into(), to: q.format, source: e })
            }
            Some(q) => Err(ModelError::Convert {
                tensor: name.into(),
                to: q.format,
                source: EngineError::invalid(format!("it is already {}; quantize from the bf16 checkpoint", w.format)),
            }),
        }
    }

    fn mxfp4(&mut self, prefix: &str) -> Result<Weight<B::Buffer>> {
        let shape = self.spec(&format!("{prefix}_blocks")).shape.clone();
        Ok(Weight {
            format: WeightFormat::Mxfp4,
            experts: shape[0],
            rows: shape[1],
            cols: shape[2] * 32,
            data: self.raw(&format!("{prefix}_blocks"), DType::U8)?,
            scales: Some(self.raw(&format!("{prefix}_scales"), DType::U8)?),
            bias: Some(self.vector(&format!("{prefix}_bias"))?),
        })
    }
}

/// Refuses, before anything is allocated, a load whose buffers would not fit in the memory the
/// backend says it has: tensors it must hold itself (generated ones, or every one where it
/// copies host bytes) plus the converted copies of the families `convert` names.
fn check_fits<'a, B: Backend>(
    backend: &B,
    model: &OpenedModel,
    specs: impl Iterator<Item = &'a TensorSpec>,
    convert: Option<WeightOnly>,
) -> Result<()> {
    let Some(available) = backend.memory_available() else { return Ok(()) };
    // Which matrices a conversion turns into codes: the tensor list of the converted model
    // (`tensors.rs` knows each matrix's family).
    let codes: std::collections::HashSet<String> = match convert {
        Some(q) => {
            let mut target = model.config.clone();
            target.quantization = Quantization::WeightOnly(q);
            expected_tensors(&target).into_iter().filter(|t| matches!(t.kind, Kind::Codes(_))).map(|t| t.name).collect()
        }
        None => Default::default(),
    };
    let mut needed = 0u64;
    for spec in specs {
        let held = backend.copies_host_bytes() || matches!(model.tensor(spec), TensorData::Synth(..));
        let converted = convert.filter(|_| spec.kind == Kind::Matrix && codes.contains(&spec.name));
        needed += match converted {
            Some(q) => {
                let (rows, cols) = (spec.shape[0], spec.shape[1]);
                let (dt, len) = q.format.data_layout(rows, cols);
                let scales = q.format.scales_layout(rows, cols).map_or(0, |(st, n)| st.size() * n);
                (dt.size() * len + scales) as u64
            }
            None if held => (spec.elements() * model.dtype(spec).size()) as u64,
            None => 0,
        };
    }
    if needed > available {
        return Err(ModelError::TooLarge { model: model.source.to_string(), backend: backend.info().name, needed, available });
    }
    Ok(())
}

/// Loads every tensor of `model` into `backend`, converting the families `convert` names and
/// telling `progress` (bytes done, bytes in all).
pub fn load<B: Backend>(
    backend: &mut B,
    model: &OpenedModel,
    convert: Option<WeightOnly>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Weights<B::Buffer>> {
    let c = &model.config;
    if let Some(q) = convert {
        let problems = q.shape_problems(c.hidden_size, c.q_dim());
        if !problems.is_empty() {
            return Err(EngineError::invalid(format!("cannot convert {} to {}: {}", model.source, q.format, problems.join("; "))).into());
        }
    }
    let specs: std::collections::HashMap<String, TensorSpec> = expected_tensors(c).into_iter().map(|s| (s.name.clone(), s)).collect();
    let total = specs.values().map(|s| s.elements() * model.dtype(s).size()).sum();
    check_fits(backend, model, specs.values(), convert)?;
    let mut ld = Loader { backend, model, specs, progress, done: 0, total, convert };
    let bias = |p: &str, proj: &str| c.attention_bias.then(|| format!("{p}self_attn.{proj}.bias"));
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for l in 0..c.num_hidden_layers {
        let p = layer_prefix(l);
        layers.push(LayerWeights {
            attn_norm: ld.vector(&format!("{p}input_layernorm.weight"))?,
            q: ld.dense(&format!("{p}self_attn.q_proj.weight"), bias(&p, "q_proj").as_deref(), Some(Family::Attention))?,
            k: ld.dense(&format!("{p}self_attn.k_proj.weight"), bias(&p, "k_proj").as_deref(), Some(Family::Attention))?,
            v: ld.dense(&format!("{p}self_attn.v_proj.weight"), bias(&p, "v_proj").as_deref(), Some(Family::Attention))?,
            o: ld.dense(&format!("{p}self_attn.o_proj.weight"), bias(&p, "o_proj").as_deref(), Some(Family::Attention))?,
            sinks: ld.vector(&format!("{p}self_attn.sinks"))?,
            mlp_norm: ld.vector(&format!("{p}post_attention_layernorm.weight"))?,
            router: ld.dense(&format!("{p}mlp.router.weight"), Some(&format!("{p}mlp.router.bias")), Some(Family::Router))?,
            gate_up: ld.mxfp4(&format!("{p}mlp.experts.gate_up_proj"))?,
            down: ld.mxfp4(&format!("{p}mlp.experts.down_proj"))?,
        });
    }
    Ok(Weights {
        embed: ld.dense("model.embed_tokens.weight", None, None)?,
        layers,
        norm: ld.vector("model.norm.weight")?,
        unembed: ld.dense("lm_head.weight", None, Some(Family::Unembedding))?,
    })
}
