//! Moving an opened model's tensors into a backend's buffers: matrices as stored (zero-copy
//! where the backend computes from host memory), small vectors widened to f32.

use gptoss_engine::{Backend, DType, HostBytes, Weight, WeightFormat};
use half::bf16;

use crate::error::Result;
use crate::safetensors::StDtype;
use crate::source::{OpenedModel, TensorData};
use crate::tensors::{TensorSpec, expected_tensors, layer_prefix};

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

    fn dense(&mut self, name: &str, bias: Option<&str>) -> Result<Weight<B::Buffer>> {
        let spec = self.spec(name).clone();
        let (format, dtype) = match self.model.dtype(&spec) {
            StDtype::F32 => (WeightFormat::F32, DType::F32),
            _ => (WeightFormat::Bf16, DType::Bf16),
        };
        Ok(Weight {
            format,
            experts: 1,
            rows: spec.shape[0],
            cols: spec.shape[1],
            data: self.raw(name, dtype)?,
            scales: None,
            bias: bias.map(|b| self.vector(b)).transpose()?,
        })
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

/// Loads every tensor of `model` into `backend`, telling `progress` (bytes done, bytes in all).
pub fn load<B: Backend>(backend: &mut B, model: &OpenedModel, progress: &mut dyn FnMut(usize, usize)) -> Result<Weights<B::Buffer>> {
    let c = &model.config;
    let specs: std::collections::HashMap<String, TensorSpec> = expected_tensors(c).into_iter().map(|s| (s.name.clone(), s)).collect();
    let total = specs.values().map(|s| s.elements() * model.dtype(s).size()).sum();
    let mut ld = Loader { backend, model, specs, progress, done: 0, total };
    let bias = |p: &str, proj: &str| c.attention_bias.then(|| format!("{p}self_attn.{proj}.bias"));
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for l in 0..c.num_hidden_layers {
        let p = layer_prefix(l);
        layers.push(LayerWeights {
            attn_norm: ld.vector(&format!("{p}input_layernorm.weight"))?,
            q: ld.dense(&format!("{p}self_attn.q_proj.weight"), bias(&p, "q_proj").as_deref())?,
            k: ld.dense(&format!("{p}self_attn.k_proj.weight"), bias(&p, "k_proj").as_deref())?,
            v: ld.dense(&format!("{p}self_attn.v_proj.weight"), bias(&p, "v_proj").as_deref())?,
            o: ld.dense(&format!("{p}self_attn.o_proj.weight"), bias(&p, "o_proj").as_deref())?,
            sinks: ld.vector(&format!("{p}self_attn.sinks"))?,
            mlp_norm: ld.vector(&format!("{p}post_attention_layernorm.weight"))?,
            router: ld.dense(&format!("{p}mlp.router.weight"), Some(&format!("{p}mlp.router.bias")))?,
            gate_up: ld.mxfp4(&format!("{p}mlp.experts.gate_up_proj"))?,
            down: ld.mxfp4(&format!("{p}mlp.experts.down_proj"))?,
        });
    }
    Ok(Weights {
        embed: ld.dense("model.embed_tokens.weight", None)?,
        layers,
        norm: ld.vector("model.norm.weight")?,
        unembed: ld.dense("lm_head.weight", None)?,
    })
}
