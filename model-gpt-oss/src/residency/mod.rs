//! Where a loaded model's weights live while it runs, under a memory budget: the `--offload`
//! modes. `plan` decides (and prints, and refuses); this module loads accordingly and gives
//! the forward pass each layer's weights and its experts' step.
//!
//! - `none`: every weight in memory of our own (a checkpoint read with `O_DIRECT`, a synthetic
//!   model generated), or on the device.
//! - `mmap`: the checkpoint's mapping used in place (CPU): the OS pages it.
//! - `layered` (`layered.rs`): each layer read before it runs, the next one read meanwhile.
//! - `experts` (`experts.rs`): dense weights resident; routed experts read on demand into a
//!   pool of slots.
//! - `host` (`host.rs`, a device with memory of its own): dense weights on the device, every
//!   expert in host memory the device reads in place, the hot ones copied into device slots.
//! - experts elsewhere (`elsewhere.rs`, `--cpu-experts`): dense weights on the device, the
//!   experts computed by a second backend (the CPU).
//!
//! Every mode computes with the same ops on the same bytes, so the logits are identical.

pub mod elsewhere;
pub mod experts;
pub mod host;
pub mod layered;
pub mod layout;
pub mod plan;
pub mod read;
pub mod record;
pub mod routing;

use std::collections::HashMap;
use std::sync::Arc;

use gptoss_engine::residency::{DirectFile, IoPool, Offload};
use gptoss_engine::{Backend, EngineError, MoeExpertsArgs, Swiglu, Weight};

use self::elsewhere::{Elsewhere, OnBackend};
use self::experts::{ExpertStats, ExpertStore};
use self::host::{HostExperts, HostStats};
use self::layered::{LayerStats, LayerStream};
use self::layout::{Extent, Layout, is_expert_stack};
use self::plan::ResidencyPlan;
use self::read::{ReadTensors, collect_runs, plan_runs, submit_runs};
use crate::config::GptOssConfig;
use crate::context::{Activations, OffloadScratch};
use crate::error::{ModelError, Result};
use crate::safetensors::StDtype;
use crate::source::OpenedModel;
use crate::tensors::{Kind, TensorSpec};
use crate::weight_only::WeightOnly;
use crate::weights::{self, LayerWeights, Loader, Weights, spec_map};

pub(crate) enum Residency<Buf> {
    /// Every layer in `Weights` (`none`, `mmap`).
    Resident,
    Layered(LayerStream<Buf>),
    Experts(ExpertStore<Buf>),
    Host(HostExperts<Buf>),
    /// The routed experts on a second backend (`--cpu-experts`).
    Elsewhere(Elsewhere),
}

/// What streaming has done since the model was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum StreamStats {
    /// Nothing streams.
    #[default]
    None,
    Layered(LayerStats),
    Experts {
        store: ExpertStats,
        cache: gptoss_engine::residency::expert_cache::CacheStats,
    },
    Host {
        host: HostStats,
        cache: gptoss_engine::residency::expert_cache::CacheStats,
    },
}

impl StreamStats {
    /// Bytes read from disk while running.
    pub fn bytes_read(&self) -> u64 {
        match self {
            StreamStats::None => 0,
            StreamStats::Layered(s) => s.bytes_read,
            StreamStats::Experts { store, .. } => store.bytes_read,
            StreamStats::Host { .. } => 0,
        }
    }
}

impl<Buf: 'static> Residency<Buf> {
    pub fn stats(&self) -> StreamStats {
        match self {
            Residency::Resident | Residency::Elsewhere(_) => StreamStats::None,
            Residency::Layered(s) => StreamStats::Layered(s.stats()),
            Residency::Experts(s) => StreamStats::Experts { store: s.stats(), cache: s.cache().stats() },
            Residency::Host(h) => StreamStats::Host { host: h.stats(), cache: h.cache().stats() },
        }
    }

    /// Whether a step does only device work, so it may be recorded and replayed.
    pub fn replayable(&self) -> bool {
        matches!(self, Residency::Resident | Residency::Host(_))
    }

    /// After a forward step of `n` tokens, run or replayed (`host`: moves experts between host
    /// memory and the device's slots as the step's routing says).
    pub fn after_step<B: Backend<Buffer = Buf>>(&mut self, b: &mut B, n: usize) -> gptoss_engine::Result<()> {
        match self {
            Residency::Host(h) => h.after_step(b, n),
            _ => Ok(()),
        }
    }

    /// Makes layer `l`'s weights available (`layered`: read them).
    pub fn enter_layer<B: Backend<Buffer = Buf>>(&mut self, b: &mut B, c: &GptOssConfig, l: usize) -> gptoss_engine::Result<()> {
        match self {
            Residency::Layered(s) => s.enter(b, c, l),
            _ => Ok(()),
        }
    }
}

/// Layer `l`'s weights, wherever they are.
pub(crate) fn layer<'a, Buf: 'static>(
    weights: &'a Weights<Buf>,
    residency: &'a Residency<Buf>,
    l: usize,
) -> gptoss_engine::Result<&'a LayerWeights<Buf>> {
    let w = match residency {
        Residency::Layered(s) => s.current(l),
        _ => weights.layers.get(l),
    };
    w.ok_or_else(|| EngineError::invalid(format!("layer {l} is not loaded")))
}

/// The routed experts of layer `l` for the `n` rows of `a`:
/// `x += Σ weight · expert(h)`, from the layer's own expert weights or the expert store.
#[allow(clippy::too_many_arguments)]
pub(crate) fn moe_experts<B: Backend>(
    b: &mut B,
    c: &GptOssConfig,
    weights: &Weights<B::Buffer>,
    residency: &mut Residency<B::Buffer>,
    a: &mut Activations<B::Buffer>,
    offload: Option<&mut OffloadScratch<B::Buffer>>,
    l: usize,
    n: usize,
    top_k: usize,
    swiglu: Swiglu,
) -> gptoss_engine::Result<()> {
    if let Residency::Elsewhere(e) = residency {
        return e.run(b, l, a, n, c.hidden_size, top_k, swiglu);
    }
    if let Residency::Host(h) = residency {
        if top_k != c.num_experts_per_tok {
            return Err(EngineError::unsupported(
                "moe_experts",
                format!("{top_k} experts per token (a self-draft's) in the host mode; the model routes to {}", c.num_experts_per_tok),
            ));
        }
        return h.run(b, l, a, n, swiglu);
    }
    if let Residency::Experts(store) = residency {
        // The pool reads the model's own number of experts per token for every token.
        if top_k != c.num_experts_per_tok {
            return Err(EngineError::unsupported(
                "moe_experts",
                format!(
                    "{top_k} experts per token (a self-draft's) with the experts read on demand; the model routes to {}",
                    c.num_experts_per_tok
                ),
            ));
        }
        let s = offload.ok_or_else(|| EngineError::invalid("these activations were made for another model"))?;
        return store.run(b, c, l, weights.layers.get(l + 1), a, s, n, swiglu);
    }
    let w = layer(weights, residency, l)?;
    let e = w.experts.as_ref().ok_or_else(|| EngineError::invalid(format!("layer {l} holds no experts")))?;
    experts_of(b, &e.gate_up, &e.down, a, n, top_k, swiglu)
}

/// `a.x += Σ weight · expert(a.h)` over the `n` rows routed in `a`, by the stacks given.
pub(crate) fn experts_of<B: Backend>(
    b: &mut B,
    gate_up: &Weight<B::Buffer>,
    down: &Weight<B::Buffer>,
    a: &mut Activations<B::Buffer>,
    n: usize,
    top_k: usize,
    swiglu: Swiglu,
) -> gptoss_engine::Result<()> {
    b.moe_experts(MoeExpertsArgs {
        gate_up,
        down,
        x: &a.h,
        n,
        ids: &a.expert_ids,
        weights: &a.expert_weights,
        top_k,
        swiglu,
        residual: &mut a.x,
    })
}

/// A loaded model's weights: those held for the whole run, and what streams.
pub(crate) type Loaded<Buf> = (Weights<Buf>, Residency<Buf>);

/// Loads `model` as `plan` says.
pub(crate) fn load<B: Backend>(
    backend: &mut B,
    model: &OpenedModel,
    plan: &ResidencyPlan,
    convert: Option<WeightOnly>,
    max_batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Loaded<B::Buffer>> {
    let ckpt = match (plan.mode, model.checkpoint()) {
        (Offload::Host, None) => return load_host_generated(backend, model, plan, convert, max_batch, progress),
        (Offload::Mmap | Offload::None | Offload::Auto, None) | (Offload::Mmap | Offload::Auto, Some(_)) => {
            return Ok((weights::load(backend, model, convert, max_batch, progress)?, Residency::Resident));
        }
        (_, None) => return Err(ModelError::Residency(format!("the {} mode needs a checkpoint on disk", plan.mode))),
        (_, Some(ckpt)) => ckpt,
    };
    let c = &model.config;
    weights::check_convert(model, convert)?;
    if plan.budget.is_none()
        && plan.mode == Offload::None
        && let Some(available) = backend.memory_available().filter(|&a| a < plan.resident)
    {
        return Err(ModelError::TooLarge {
            who: model.source.to_string(),
            backend: backend.info().name,
            needed: Some(plan.resident),
            available,
            what: "every weight read into memory of its own in the none mode".into(),
        });
    }
    let layout = Arc::new(Layout::new(c, ckpt)?);
    let files = layout.shards.iter().map(|p| DirectFile::open(p).map(Arc::new)).collect::<gptoss_engine::Result<Vec<_>>>()?;
    let specs = spec_map(c);
    let dtypes: HashMap<String, StDtype> = specs.values().map(|s| (s.name.clone(), model.dtype(s))).collect();
    let mut reader = ResidentReader { io: IoPool::new(plan.io_threads)?, files: &files, dtypes: &dtypes, specs: &specs, spare: Vec::new() };

    let streams_experts = plan.mode == Offload::Experts;
    let keep = |e: &&Extent| !(streams_experts && is_expert_stack(&e.name));
    let mut wanted: Vec<Vec<Extent>> = vec![layout.globals.clone()];
    if plan.mode != Offload::Layered {
        wanted.extend(layout.layers.iter().map(|l| l.iter().filter(keep).cloned().collect()));
    }
    let total: usize = wanted.iter().flatten().map(|e| e.len).sum();
    let mut done = 0;
    let mut told = |bytes: usize| {
        done += bytes;
        progress(done, total);
    };
    let globals = reader.read(&wanted[0], &mut told)?;
    let mut weights = Loader::new(backend, &globals, &specs, convert, 0, &mut |_, _| {}).globals(Vec::new())?;
    globals.release(&mut reader.spare);
    let mut biases = Vec::new();
    let mut host_layers = Vec::new();
    for (l, extents) in wanted[1..].iter().enumerate() {
        let t = reader.read(extents, &mut told)?;
        let mut quiet = |_, _| {};
        let mut ld = Loader::new(backend, &t, &specs, convert, 0, &mut quiet);
        let mut layer = ld.layer(c, l, !streams_experts)?;
        if streams_experts {
            biases.push(ld.expert_biases(l)?);
        }
        if plan.mode == Offload::Host {
            host_layers.push(host_layer(backend, &mut layer, l)?);
        }
        weights.layers.push(layer);
        t.release(&mut reader.spare);
    }
    let residency = match plan.mode {
        Offload::Layered => Residency::Layered(LayerStream::new(&layout, files.clone(), plan.io_threads, plan.read_ahead, dtypes, specs)?),
        Offload::Experts => Residency::Experts(ExpertStore::new(backend, c, plan, Arc::clone(&layout), files.clone(), biases)?),
        Offload::Host => Residency::Host(HostExperts::new(backend, c, host_layers, plan.slots, plan.policy, max_batch)?),
        _ => Residency::Resident,
    };
    Ok((weights, residency))
}

/// The dense weights on `backend` and the routed experts on `elsewhere` (`--cpu-experts`),
/// both from `model` as it is opened (a mapped checkpoint or a generator); only the dense
/// families are converted.
pub(crate) fn load_elsewhere<B: Backend, C: Backend + Send + 'static>(
    backend: &mut B,
    mut elsewhere: C,
    model: &OpenedModel,
    convert: Option<WeightOnly>,
    max_batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Loaded<B::Buffer>>
where
    C::Buffer: Send,
{
    let c = &model.config;
    weights::check_convert(model, convert)?;
    let specs = spec_map(c);
    let dense: usize = specs.values().filter(|s| !is_expert_stack(&s.name)).map(|s| s.elements() * model.dtype(s).size()).sum();
    let mut ld = Loader::new(backend, model, &specs, convert, dense, progress);
    let layers = (0..c.num_hidden_layers).map(|l| ld.layer(c, l, false)).collect::<Result<Vec<_>>>()?;
    let weights = ld.globals(layers)?;
    let mut quiet = |_, _| {};
    let mut ld = Loader::new(&mut elsewhere, model, &specs, None, 0, &mut quiet);
    let experts = (0..c.num_hidden_layers).map(|l| ld.experts(l)).collect::<Result<Vec<_>>>()?;
    let formats = crate::accounting::stored_formats(model);
    elsewhere.prepare(&crate::plan::plan::<C::Buffer>(c, &formats, &[], max_batch, c.num_local_experts))?;
    let on = OnBackend::new(elsewhere, experts, c, max_batch)?;
    Ok((weights, Residency::Elsewhere(Elsewhere::new(Box::new(on)))))
}

/// Layer `l`'s experts moved out of `layer` into host memory (`host` mode).
fn host_layer<B: Backend>(backend: &mut B, layer: &mut LayerWeights<B::Buffer>, l: usize) -> Result<host::HostLayer<B::Buffer>> {
    let experts = layer.experts.take().ok_or_else(|| EngineError::invalid(format!("layer {l} holds no experts")))?;
    Ok(host::adopt(backend, experts)?)
}

/// The `host` mode for a model generated in memory: each layer generated on the device, its
/// experts moved to host memory before the next, so the device never holds more than one
/// layer's experts.
fn load_host_generated<B: Backend>(
    backend: &mut B,
    model: &OpenedModel,
    plan: &ResidencyPlan,
    convert: Option<WeightOnly>,
    max_batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Loaded<B::Buffer>> {
    let c = &model.config;
    weights::check_convert(model, convert)?;
    let specs = spec_map(c);
    let total = specs.values().map(|s| s.elements() * model.dtype(s).size()).sum();
    let mut ld = Loader::new(backend, model, &specs, convert, total, progress);
    let (mut layers, mut host_layers) = (Vec::new(), Vec::new());
    for l in 0..c.num_hidden_layers {
        let mut layer = ld.layer(c, l, true)?;
        host_layers.push(host_layer(ld.backend(), &mut layer, l)?);
        layers.push(layer);
    }
    let weights = ld.globals(layers)?;
    let host = HostExperts::new(backend, c, host_layers, plan.slots, plan.policy, max_batch)?;
    Ok((weights, Residency::Host(host)))
}

/// Reads sets of tensors into memory at load time.
struct ResidentReader<'a> {
    io: IoPool,
    files: &'a [Arc<DirectFile>],
    dtypes: &'a HashMap<String, StDtype>,
    specs: &'a HashMap<String, TensorSpec>,
    spare: Vec<gptoss_engine::residency::AlignedBuf>,
}

impl ResidentReader<'_> {
    /// Reads `extents`: matrices in runs of neighbours, vectors apart (they are widened to f32
    /// on load, so their stored bytes must not keep a run's buffer alive).
    fn read(&mut self, extents: &[Extent], told: &mut dyn FnMut(usize)) -> Result<ReadTensors> {
        let (vectors, matrices): (Vec<Extent>, Vec<Extent>) =
            extents.iter().cloned().partition(|e| self.specs.get(&e.name).is_some_and(|s| s.kind == Kind::Vector));
        let mut runs = plan_runs(&matrices);
        runs.extend(vectors.into_iter().map(|e| read::Run {
            shard: e.shard,
            offset: e.offset,
            len: e.len,
            members: vec![(e.name, 0, e.len)],
        }));
        submit_runs(&mut self.io, self.files, &runs, &mut self.spare)?;
        collect_runs(&mut self.io, &runs, self.dtypes, &mut self.spare, told)
    }
}
