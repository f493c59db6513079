//! The residency plan: where each weight lives under a memory budget, decided before anything
//! is read, printed for the user, and refused up front when the budget cannot work.
//!
//! Memory is counted as the loaded model holds it: matrices as stored (or as converted),
//! vectors widened to f32, the expert slot pool, the I/O buffers, the contexts the caller
//! will create (`reserved`), and a fixed allowance for what the plan does not itemise (the
//! program, the tokenizer, the backend's scratch): [`UNPLANNED_BYTES`].
//!
//! The smallest `experts` budget holds the resident weights plus `2 × top_k` expert slots: the
//! engine streams one layer at a time, so a step needs at most one layer's experts at once
//! (a prefill chunk whose experts do not fit is cut into groups of tokens that do), and a
//! second set leaves room for reads in flight. Below that a budget is refused, naming both
//! numbers.

use std::fmt;

use gptoss_engine::WeightFormat;
use gptoss_engine::residency::ByteSize;
use gptoss_engine::residency::Offload;
use gptoss_engine::residency::aligned::ALIGN;
use gptoss_engine::residency::expert_cache::PolicyKind;

use super::layout::{is_expert_stack, layer_of};
use crate::config::Quantization;
use crate::error::{ModelError, Result};
use crate::source::OpenedModel;
use crate::tensors::{Kind, expected_tensors};
use crate::weight_only::WeightOnly;

/// A margin for what the plan does not itemise: the program, the o200k tokenizer, thread
/// stacks, the CPU backend's scratch (~30 MB for 120b at 128-token batches). Measured, the
/// whole process stays below the itemised bytes alone, because buffers sized for the largest
/// batch are only partly touched: peak RSS 87 MiB against 149 MiB itemised (synthetic:tiny,
/// smallest pool), 4.55 GiB against 4.56 GiB (120b-L6 at 4.75 GiB); see bench/NOTES.md.
pub const UNPLANNED_BYTES: u64 = 192 << 20;

/// I/O threads unless told otherwise: enough reads in flight for the disk's queue (random
/// 13 MB reads reach 1.0–1.2 GB/s alone, more with several queued).
pub const DEFAULT_IO_THREADS: usize = 4;

/// Staging buffers per I/O thread: one being read while the other waits to be copied.
const STAGING_PER_THREAD: usize = 2;

/// The largest read of an expert's piece unless told otherwise: larger pieces (the gate/up
/// codes of 20b and 120b are 8.3 MB) are read in chunks of this size on several I/O threads at
/// once, so one missed expert is not one thread reading its largest piece while the others
/// idle (1 MiB decoded 20b under 8 GiB faster than 2 or 4 MiB and than 256 KiB: bench/NOTES.md).
pub const DEFAULT_READ_CHUNK: u64 = 1 << 20;

/// How a load places weights (part of `LoadOptions`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ResidencyOptions {
    /// The most memory the model may take, contexts included; `None`: no budget.
    pub budget: Option<u64>,
    pub offload: Offload,
    /// The expert cache's replacement policy (`experts` mode).
    pub policy: PolicyKind,
    /// Read the next layer's likely experts (its router on the current hidden state) while
    /// this layer computes (`experts` mode, decode steps).
    pub prefetch: bool,
    /// I/O threads for streamed reads (0: [`DEFAULT_IO_THREADS`]).
    pub io_threads: usize,
    /// The largest read of a piece of a missed expert, in bytes (0: [`DEFAULT_READ_CHUNK`]).
    pub read_chunk: u64,
    /// Bytes the caller's contexts (KV caches, activations) will take, counted in the budget.
    pub reserved: u64,
}

/// Where each weight lives, and the bytes of each part.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidencyPlan {
    pub mode: Offload,
    pub budget: Option<u64>,
    /// Weights held in memory for the whole run.
    pub resident: u64,
    /// `mmap`: checkpoint bytes computed from in place, paged by the OS; `host`: the experts
    /// in host memory the device reads in place (outside the budget, which is the device's).
    pub mapped: u64,
    /// `layered`: bytes read per forward step (every layer), the layer buffers, and whether
    /// there are two (the next layer read while this one computes) or, when the budget holds
    /// only one, a single one (each layer read, then computed).
    pub streamed_per_step: u64,
    pub layer_buffers: u64,
    pub read_ahead: bool,
    /// What `layer_buffers` would be with a single buffer.
    single_layer_buffer: u64,
    /// `experts`: slots in the pool, bytes per slot, and experts in the model.
    pub slots: usize,
    pub slot_bytes: u64,
    pub experts: usize,
    /// I/O buffers.
    pub staging: u64,
    pub reserved: u64,
    pub unplanned: u64,
    pub io_threads: usize,
    /// `experts`: the largest read of an expert's piece.
    pub read_chunk: u64,
    pub policy: PolicyKind,
    pub prefetch: bool,
    pub top_k: usize,
}

/// The bytes of a model's tensors as held once loaded.
struct Sizes {
    /// Per layer: dense tensors (vectors as f32) and expert stacks (codes and scales).
    layer_dense: Vec<u64>,
    layer_experts: Vec<u64>,
    /// Per layer: every tensor as stored (what `layered` reads).
    layer_stored: Vec<u64>,
    /// The largest vectors' f32 bytes of one layer (made while a streamed layer is used).
    layer_vectors: u64,
    globals: u64,
    /// Bytes the `mmap` mode cannot map (vectors widened, converted matrices).
    unmappable: u64,
    /// Bytes of one expert's codes and scales, and the largest piece.
    expert_bytes: u64,
    largest_piece: u64,
}

fn sizes(model: &OpenedModel, convert: Option<WeightOnly>) -> Sizes {
    let c = &model.config;
    let converted: std::collections::HashMap<String, WeightFormat> = match convert {
        Some(q) => {
            let mut target = c.clone();
            target.quantization = Quantization::WeightOnly(q);
            expected_tensors(&target)
                .into_iter()
                .filter_map(|t| if let Kind::Codes(f) = t.kind { Some((t.name, f)) } else { None })
                .collect()
        }
        None => Default::default(),
    };
    let layers = c.num_hidden_layers;
    let mut s = Sizes {
        layer_dense: vec![0; layers],
        layer_experts: vec![0; layers],
        layer_stored: vec![0; layers],
        layer_vectors: 0,
        globals: 0,
        unmappable: 0,
        expert_bytes: 0,
        largest_piece: 0,
    };
    let mut vectors = vec![0u64; layers];
    for spec in expected_tensors(c) {
        let stored = (spec.elements() * model.dtype(&spec).size()) as u64;
        let held = match (spec.kind, converted.get(&spec.name)) {
            (Kind::Vector, _) => 4 * spec.elements() as u64,
            (Kind::Matrix, Some(f)) => f.matrix_bytes(spec.shape[0], spec.shape[1]) as u64,
            _ => stored,
        };
        if held != stored {
            s.unmappable += held;
        }
        match layer_of(&spec.name) {
            Some(l) if is_expert_stack(&spec.name) => {
                s.layer_experts[l] += held;
                s.layer_stored[l] += stored;
                let piece = stored / c.num_local_experts as u64;
                s.largest_piece = s.largest_piece.max(piece);
                if l == 0 {
                    s.expert_bytes += piece;
                }
            }
            Some(l) => {
                s.layer_dense[l] += held;
                s.layer_stored[l] += stored;
                if spec.kind == Kind::Vector {
                    vectors[l] += held;
                }
            }
            None => s.globals += held,
        }
    }
    s.layer_vectors = vectors.into_iter().max().unwrap_or(0);
    s
}

impl ResidencyPlan {
    /// Plans `model` under `opts`: resolves `auto`, sizes the expert pool, and refuses a
    /// budget too small for the mode (naming both numbers) or a mode the model or backend
    /// cannot run. `copies_host_bytes` is the backend's (a GPU holds weights in its own memory,
    /// so nothing can be computed from a memory map). `available` is the memory the backend
    /// has, used as the budget of a streaming mode forced without one.
    pub fn new(
        model: &OpenedModel,
        opts: &ResidencyOptions,
        convert: Option<WeightOnly>,
        copies_host_bytes: bool,
        available: Option<u64>,
    ) -> Result<Self> {
        let c = &model.config;
        let s = sizes(model, convert);
        let on_disk = model.dir().is_some();
        let io_threads = if opts.io_threads == 0 { DEFAULT_IO_THREADS } else { opts.io_threads };
        let read_chunk = if opts.read_chunk == 0 { DEFAULT_READ_CHUNK } else { opts.read_chunk };
        let slot_bytes = s.expert_bytes + 4 * (2 * c.intermediate_size + c.hidden_size) as u64;
        let all_dense: u64 = s.globals + s.layer_dense.iter().sum::<u64>();
        let all_experts: u64 = s.layer_experts.iter().sum();
        let mut plan = ResidencyPlan {
            mode: opts.offload,
            budget: opts.budget,
            resident: 0,
            mapped: 0,
            streamed_per_step: 0,
            layer_buffers: 0,
            read_ahead: false,
            single_layer_buffer: 0,
            slots: 0,
            slot_bytes,
            experts: c.num_hidden_layers * c.num_local_experts,
            staging: 0,
            reserved: opts.reserved,
            unplanned: UNPLANNED_BYTES,
            io_threads,
            read_chunk,
            policy: opts.policy,
            prefetch: opts.prefetch,
            top_k: c.num_experts_per_tok,
        };
        let source = model.source.to_string();
        let needs_disk = |mode: Offload| -> Result<()> {
            if on_disk {
                Ok(())
            } else {
                Err(ModelError::Residency(format!(
                    "the {mode} mode streams weights from a checkpoint on disk, and {source} is generated in memory: write it with `gptoss synth` and load the directory"
                )))
            }
        };
        plan.mode = match (opts.offload, opts.budget) {
            // No budget: as the backend does by default (the CPU computes from a mapped checkpoint).
            (Offload::Auto, None) if on_disk && !copies_host_bytes => Offload::Mmap,
            (Offload::Auto, None) => Offload::None,
            (Offload::Auto, Some(budget)) => {
                let whole = all_dense + all_experts + plan.reserved + plan.unplanned;
                if whole <= budget || !on_disk { Offload::None } else { Offload::Experts }
            }
            (mode, _) => mode,
        };
        match plan.mode {
            Offload::None | Offload::Auto => plan.resident = all_dense + all_experts,
            Offload::Mmap => {
                needs_disk(Offload::Mmap)?;
                if copies_host_bytes {
                    return Err(ModelError::Residency(
                        "the mmap mode computes from the mapped checkpoint, which this backend cannot (it copies weights into its own memory)"
                            .into(),
                    ));
                }
                plan.resident = s.unmappable;
                plan.mapped = (all_dense + all_experts).saturating_sub(s.unmappable);
            }
            Offload::Layered => {
                needs_disk(Offload::Layered)?;
                if convert.is_some() {
                    return Err(ModelError::Residency(
                        "the layered mode streams layers as stored: it cannot quantize them while loading".into(),
                    ));
                }
                let largest = s.layer_stored.iter().copied().max().unwrap_or(0);
                plan.resident = s.globals;
                plan.streamed_per_step = s.layer_stored.iter().sum();
                // A layer's buffer: its runs rounded to whole blocks; plus one layer's vectors as
                // f32. Two buffers when the budget has room for them.
                let one = largest + 64 * ALIGN as u64;
                let without = plan.resident + s.layer_vectors + plan.reserved + plan.unplanned;
                plan.read_ahead = opts.budget.is_none_or(|b| without + 2 * one <= b);
                plan.single_layer_buffer = one + s.layer_vectors;
                plan.layer_buffers = if plan.read_ahead { 2 } else { 1 } * one + s.layer_vectors;
            }
            Offload::Experts => {
                needs_disk(Offload::Experts)?;
                plan.resident = all_dense;
                plan.staging = (io_threads * STAGING_PER_THREAD) as u64 * (s.largest_piece.min(read_chunk) + 2 * ALIGN as u64);
            }
            Offload::Host => {
                if !copies_host_bytes {
                    return Err(ModelError::Residency(
                        "the host mode keeps experts out of a device's own memory; this backend computes from host memory already (use none or mmap)"
                            .into(),
                    ));
                }
                // The device holds the dense weights, every expert's biases and two table
                // entries of 16 bytes; a slot holds an expert's codes and scales.
                let experts = plan.experts as u64;
                plan.resident = all_dense + experts * (slot_bytes - s.expert_bytes) + experts * 2 * 16;
                plan.mapped = all_experts;
                plan.slot_bytes = s.expert_bytes;
            }
        }
        let fixed = plan.resident + plan.layer_buffers + plan.staging + plan.reserved + plan.unplanned;
        if plan.mode == Offload::Host {
            let budget = opts.budget.or(available).unwrap_or(u64::MAX);
            let fit = budget.saturating_sub(fixed) / plan.slot_bytes.max(1);
            if fit == 0 {
                return Err(plan.too_small(&source, budget, fixed + plan.slot_bytes));
            }
            plan.slots = (fit as usize).min(plan.experts);
        } else if plan.mode == Offload::Experts {
            let min_slots = 2 * plan.top_k;
            let budget = opts.budget.or(available).unwrap_or(u64::MAX);
            let fit = budget.saturating_sub(fixed) / slot_bytes.max(1);
            if (fit as usize) < min_slots {
                return Err(plan.too_small(&source, budget, fixed + min_slots as u64 * slot_bytes));
            }
            plan.slots = (fit as usize).min(plan.experts);
        } else if let Some(budget) = opts.budget
            && fixed > budget
        {
            return Err(plan.too_small(&source, budget, fixed));
        }
        Ok(plan)
    }

    fn too_small(&self, source: &str, budget: u64, needed: u64) -> ModelError {
        ModelError::Budget { model: source.to_string(), mode: self.mode, budget, needed, parts: self.parts(needed) }
    }

    /// The itemised bytes, for messages.
    fn parts(&self, total: u64) -> String {
        let mut p = vec![format!("resident weights {}", ByteSize(self.resident))];
        if matches!(self.mode, Offload::Experts | Offload::Host) {
            let slots = ((total - self.fixed()) / self.slot_bytes.max(1)) as usize;
            p.push(format!("{slots} expert slots of {}", ByteSize(self.slot_bytes)));
        }
        if self.layer_buffers > 0 {
            p.push(format!("{} layer buffers {}", if self.read_ahead { "two" } else { "one" }, ByteSize(self.layer_buffers)));
        }
        if self.staging > 0 {
            p.push(format!("I/O buffers {}", ByteSize(self.staging)));
        }
        p.push(format!("contexts {}", ByteSize(self.reserved)));
        p.push(format!("unplanned allowance {}", ByteSize(self.unplanned)));
        p.join(" + ")
    }

    fn fixed(&self) -> u64 {
        self.resident + self.layer_buffers + self.staging + self.reserved + self.unplanned
    }

    /// The most matrices a stack `moe_experts` runs on holds: the pool in the `experts` mode
    /// (one stack of `slots`), else a layer's `local` experts.
    pub fn expert_matrices(&self, local: usize) -> usize {
        if self.mode == Offload::Experts { local.max(self.slots) } else { local }
    }

    /// Every byte the plan counts.
    pub fn planned(&self) -> u64 {
        self.fixed() + self.slots as u64 * self.slot_bytes
    }

    /// The smallest budget `mode` accepts for this model (what a refusal names).
    pub fn minimum(&self) -> u64 {
        match self.mode {
            Offload::Experts => self.fixed() + 2 * self.top_k as u64 * self.slot_bytes,
            Offload::Host => self.fixed() + self.slot_bytes,
            Offload::Layered => self.fixed() - self.layer_buffers + self.single_layer_buffer,
            _ => self.fixed(),
        }
    }
}

impl fmt::Display for ResidencyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let budget = self.budget.map_or("none".to_string(), |b| ByteSize(b).to_string());
        writeln!(f, "residency: {} (memory budget {budget}; planned {})", self.mode, ByteSize(self.planned()))?;
        writeln!(f, "  resident weights {}", ByteSize(self.resident))?;
        match self.mode {
            Offload::Mmap => writeln!(f, "  mapped from the checkpoint {} (paged in and out by the OS)", ByteSize(self.mapped))?,
            Offload::Layered => writeln!(
                f,
                "  streamed: every layer read per step, {} per step, into {} (I/O: {} threads)",
                ByteSize(self.streamed_per_step),
                match self.read_ahead {
                    true => format!("two layer buffers, {} in all: the next layer read while one computes", ByteSize(self.layer_buffers)),
                    false => format!(
                        "one layer buffer of {} (the budget holds no second): each layer read, then computed",
                        ByteSize(self.layer_buffers)
                    ),
                },
                self.io_threads
            )?,
            Offload::Experts => writeln!(
                f,
                "  expert cache: {} of {} experts ({:.1} %) in {} slots of {} = {}, policy {}{}; misses read on demand by {} I/O threads, in reads of at most {}, into {} of buffers",
                self.slots,
                self.experts,
                100.0 * self.slots as f64 / self.experts.max(1) as f64,
                self.slots,
                ByteSize(self.slot_bytes),
                ByteSize(self.slots as u64 * self.slot_bytes),
                self.policy,
                if self.prefetch { ", next-layer prefetch" } else { "" },
                self.io_threads,
                ByteSize(self.read_chunk),
                ByteSize(self.staging),
            )?,
            Offload::Host => writeln!(
                f,
                "  every expert in pinned host memory the device reads in place, {}; the hot ones in {} device slots of {} = {} ({:.1} % of {} experts), policy {}, copied beside the steps",
                ByteSize(self.mapped),
                self.slots,
                ByteSize(self.slot_bytes),
                ByteSize(self.slots as u64 * self.slot_bytes),
                100.0 * self.slots as f64 / self.experts.max(1) as f64,
                self.experts,
                self.policy,
            )?,
            Offload::None | Offload::Auto => {}
        }
        write!(f, "  contexts {}, unplanned allowance {}", ByteSize(self.reserved), ByteSize(self.unplanned))
    }
}
