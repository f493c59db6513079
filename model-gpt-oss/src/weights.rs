//! Moving an opened model's tensors into a backend's buffers: matrices as stored (zero-copy
//! where the backend computes from host memory), small vectors widened to f32, and the
//! families a load asks to quantize converted by the backend, wherever the weights live.

use gptoss_engine::{Backend, DType, EngineError, HostBytes, Weight, WeightFormat};
use half::bf16;

use crate::config::GptOssConfig;
use crate::error::{ModelError, Result};
use crate::memory::check_load;
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
    /// The routed experts, when the layer holds them (in the `experts` residency mode they
    /// live in the expert store's slot pool instead).
    pub experts: Option<Experts<Buf>>,
}

pub struct Experts<Buf> {
    /// experts × [2·intermediate, hidden] (gate at even rows, up at odd), bias f32 [experts, 2·intermediate]
    pub gate_up: Weight<Buf>,
    /// experts × [hidden, intermediate], bias f32 [experts, hidden]
    pub down: Weight<Buf>,
}

pub struct Weights<Buf> {
    /// [vocab, hidden]
    pub embed: Weight<Buf>,
    /// Every layer, or none when layers are streamed (the `layered` residency mode).
    pub layers: Vec<LayerWeights<Buf>>,
    /// f32 [hidden]
    pub norm: Buf,
    /// [vocab, hidden]
    pub unembed: Weight<Buf>,
}

/// Where a load takes tensors from: the opened model (its memory map or generator), or
/// bytes read from its files.
pub trait TensorSource {
    fn tensor(&self, spec: &TensorSpec) -> Result<TensorData>;
}

impl TensorSource for OpenedModel {
    fn tensor(&self, spec: &TensorSpec) -> Result<TensorData> {
        Ok(OpenedModel::tensor(self, spec))
    }
}

pub struct Loader<'a, B: Backend> {
    backend: &'a mut B,
    source: &'a dyn TensorSource,
    specs: &'a std::collections::HashMap<String, TensorSpec>,
    /// Told (bytes loaded, bytes in all) after each tensor.
    progress: &'a mut dyn FnMut(usize, usize),
    done: usize,
    total: usize,
    /// Families to quantize on the way in.
    convert: Option<WeightOnly>,
}

impl<'a, B: Backend> Loader<'a, B> {
    /// A loader of tensors of `specs` from `source`; `progress` hears of `total` bytes.
    pub fn new(
        backend: &'a mut B,
        source: &'a dyn TensorSource,
        specs: &'a std::collections::HashMap<String, TensorSpec>,
        convert: Option<WeightOnly>,
        total: usize,
        progress: &'a mut dyn FnMut(usize, usize),
    ) -> Self {
        Loader { backend, source, specs, progress, done: 0, total, convert }
    }

    /// The backend the tensors are loaded onto.
    pub fn backend(&mut self) -> &mut B {
        self.backend
    }

    fn spec(&self, name: &str) -> &TensorSpec {
        &self.specs[name]
    }

    fn advance(&mut self, bytes: usize) {
        self.done += bytes;
        (self.progress)(self.done, self.total);
    }

    fn raw(&mut self, name: &str, dtype: DType) -> Result<B::Buffer> {
        let spec = self.specs[name].clone();
        let n = spec.elements();
        let (buf, bytes) = match self.source.tensor(&spec)? {
            TensorData::Host(bytes, d) => (self.backend.load_host(dtype, n, bytes)?, n * d.size()),
            TensorData::Synth(t, d) => (self.backend.load_synth(dtype, n, &t)?, n * d.size()),
        };
        self.advance(bytes);
        Ok(buf)
    }

    /// A small vector as f32.
    fn vector(&mut self, name: &str) -> Result<B::Buffer> {
        let spec = self.specs[name].clone();
        let n = spec.elements();
        let (buf, bytes) = match self.source.tensor(&spec)? {
            TensorData::Host(bytes, StDtype::F32) => (self.backend.load_host(DType::F32, n, bytes)?, 4 * n),
            TensorData::Host(bytes, _) => {
                let f: Vec<u8> =
                    bytes.as_bytes().chunks_exact(2).flat_map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes()).collect();
                (self.backend.load_host(DType::F32, n, HostBytes::from_vec(f))?, 2 * n)
            }
            TensorData::Synth(t, d) => (self.backend.load_synth(DType::F32, n, &t)?, n * d.size()),
        };
        self.advance(bytes);
        Ok(buf)
    }

    /// A dense matrix as stored (bf16, f32, or int8/int4 codes with their scales), then
    /// converted if the load asked for its family.
    fn dense(&mut self, name: &str, bias: Option<&str>, family: Option<Family>) -> Result<Weight<B::Buffer>> {
        let spec = self.spec(name).clone();
        let (rows, stored) = (spec.shape[0], spec.shape[1]);
        let stored_f32 = match self.source.tensor(&spec)? {
            TensorData::Host(_, d) | TensorData::Synth(_, d) => d == StDtype::F32,
        };
        let (format, cols) = match spec.kind {
            Kind::Codes(f @ WeightFormat::Int4 { .. }) => (f, 2 * stored),
            Kind::Codes(f) => (f, stored),
            _ if stored_f32 => (WeightFormat::F32, stored),
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

    /// Layer `l`, with its routed experts when `experts` is set.
    pub fn layer(&mut self, c: &GptOssConfig, l: usize, experts: bool) -> Result<LayerWeights<B::Buffer>> {
        let p = layer_prefix(l);
        let bias = |proj: &str| c.attention_bias.then(|| format!("{p}self_attn.{proj}.bias"));
        Ok(LayerWeights {
            attn_norm: self.vector(&format!("{p}input_layernorm.weight"))?,
            q: self.dense(&format!("{p}self_attn.q_proj.weight"), bias("q_proj").as_deref(), Some(Family::Attention))?,
            k: self.dense(&format!("{p}self_attn.k_proj.weight"), bias("k_proj").as_deref(), Some(Family::Attention))?,
            v: self.dense(&format!("{p}self_attn.v_proj.weight"), bias("v_proj").as_deref(), Some(Family::Attention))?,
            o: self.dense(&format!("{p}self_attn.o_proj.weight"), bias("o_proj").as_deref(), Some(Family::Attention))?,
            sinks: self.vector(&format!("{p}self_attn.sinks"))?,
            mlp_norm: self.vector(&format!("{p}post_attention_layernorm.weight"))?,
            router: self.dense(&format!("{p}mlp.router.weight"), Some(&format!("{p}mlp.router.bias")), Some(Family::Router))?,
            experts: if experts { Some(self.experts(l)?) } else { None },
        })
    }

    /// Layer `l`'s routed experts.
    pub fn experts(&mut self, l: usize) -> Result<Experts<B::Buffer>> {
        let p = layer_prefix(l);
        Ok(Experts {
            gate_up: self.mxfp4(&format!("{p}mlp.experts.gate_up_proj"))?,
            down: self.mxfp4(&format!("{p}mlp.experts.down_proj"))?,
        })
    }

    /// Layer `l`'s expert biases, f32 `[experts, 2·intermediate]` and `[experts, hidden]`.
    pub fn expert_biases(&mut self, l: usize) -> Result<(B::Buffer, B::Buffer)> {
        let p = layer_prefix(l);
        Ok((self.vector(&format!("{p}mlp.experts.gate_up_proj_bias"))?, self.vector(&format!("{p}mlp.experts.down_proj_bias"))?))
    }

    /// The embedding, the final norm and the unembedding, with `layers` for a whole model.
    pub fn globals(&mut self, layers: Vec<LayerWeights<B::Buffer>>) -> Result<Weights<B::Buffer>> {
        Ok(Weights {
            embed: self.dense("model.embed_tokens.weight", None, None)?,
            layers,
            norm: self.vector("model.norm.weight")?,
            unembed: self.dense("lm_head.weight", None, Some(Family::Unembedding))?,
        })
    }
}

/// The expected tensors of `c` by name.
pub fn spec_map(c: &GptOssConfig) -> std::collections::HashMap<String, TensorSpec> {
    expected_tensors(c).into_iter().map(|s| (s.name.clone(), s)).collect()
}

/// Checks that `convert` can be applied to `model`'s shapes.
pub fn check_convert(model: &OpenedModel, convert: Option<WeightOnly>) -> Result<()> {
    let c = &model.config;
    if let Some(q) = convert {
        let problems = q.shape_problems(c.hidden_size, c.q_dim());
        if !problems.is_empty() {
            return Err(EngineError::invalid(format!("cannot convert {} to {}: {}", model.source, q.format, problems.join("; "))).into());
        }
    }
    Ok(())
}

/// Loads every tensor of `model` into `backend`, converting the families `convert` names and
/// telling `progress` (bytes done, bytes in all). Refuses first a load that would not fit with
/// the working buffers of `max_batch` tokens (`memory::check_load`).
pub fn load<B: Backend>(
    backend: &mut B,
    model: &OpenedModel,
    convert: Option<WeightOnly>,
    max_batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Weights<B::Buffer>> {
    let c = &model.config;
    check_convert(model, convert)?;
    let specs = spec_map(c);
    let total = specs.values().map(|s| s.elements() * model.dtype(s).size()).sum();
    check_load(backend, model, specs.values(), convert, max_batch)?;
    let mut ld = Loader::new(backend, model, &specs, convert, total, progress);
    let layers = (0..c.num_hidden_layers).map(|l| ld.layer(c, l, true)).collect::<Result<Vec<_>>>()?;
    ld.globals(layers)
}
