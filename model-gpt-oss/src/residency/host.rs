//! The `host` residency mode (a device with memory of its own, such as a GPU): dense weights on
//! the device; every routed expert in host memory the device reads in place (pinned and
//! mapped), so a step never waits for a read; a pool of device slots for the hot experts.
//!
//! `moe_experts` reads each layer's experts through a table (`engine::residency::tables`):
//! an expert's entry points at its matrix in host memory, or at a slot once a copy has put it
//! there. The step itself does no host work, so it can be recorded and replayed (a CUDA graph):
//! it only copies each layer's routed ids into a trace. Between steps (`after_step`) the host
//! reads the trace, asks the cache (LRU or LFU over (layer, expert)) which experts to keep, and
//! moves the table behind the step: a newly hot expert is copied into its slot beside the next
//! steps and pointed at once its copy has landed; an evicted one is pointed back at host memory
//! first, and its slot overwritten only by a copy queued behind that change.

use std::collections::VecDeque;

use gptoss_engine::residency::expert_cache::{ExpertCache, ExpertKey, Lookup, PolicyKind};
use gptoss_engine::{Backend, DType, EngineError, Swiglu, Weight};

use crate::config::GptOssConfig;
use crate::context::Activations;
use crate::weights::Experts;

/// The engine's result: what the forward pass returns.
type Run<T> = gptoss_engine::Result<T>;

/// What the mode has done since the model was loaded, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HostStats {
    /// Forward steps, and routed (token, expert) choices in them.
    pub steps: u64,
    pub routed: u64,
    /// Distinct experts per layer and step read from a device slot, and from host memory.
    pub from_slots: u64,
    pub from_host: u64,
    /// Bytes of experts read from host memory by the steps (each distinct expert of a layer
    /// of a step counted once), and copied into slots.
    pub host_bytes: u64,
    pub copied_bytes: u64,
    /// Experts copied into slots (those whose copy landed, of those queued).
    pub landed: u64,
    pub queued: u64,
}

/// Copies beside the step queued at once, at most: each is an expert's bytes over the bus,
/// which the steps also read from there; more in flight would only delay the ones that matter.
const MAX_IN_FLIGHT: usize = 64;

/// A layer's experts in host memory (`home`, gate_up and down) and the stacks the step reads
/// through tables (`table`, with the biases).
pub(crate) struct HostLayer<Buf> {
    home: [Weight<Buf>; 2],
    table: [Weight<Buf>; 2],
}

pub(crate) struct HostExperts<Buf> {
    layers: Vec<HostLayer<Buf>>,
    /// `slots` experts of each stack's shape, on the device.
    pool: [Weight<Buf>; 2],
    cache: ExpertCache,
    /// Per (layer, expert): whether its table entry points at its slot.
    in_slot: Vec<bool>,
    experts: usize,
    /// Copies queued beside the step, oldest first: (ticket, slot, expert).
    landing: VecDeque<(u64, usize, ExpertKey)>,
    /// u32 [layers, tokens, top_k] of the last step, written by the step itself.
    trace: Buf,
    max_tokens: usize,
    top_k: usize,
    /// The last step's routed ids on the host; per layer, which experts it used; the step's
    /// distinct (layer, expert) uses. Kept between steps: a step allocates nothing.
    ids: Vec<u32>,
    seen: Vec<bool>,
    used: Vec<ExpertKey>,
    /// Bytes of one expert's codes and scales (both stacks).
    expert_bytes: u64,
    stats: HostStats,
}

/// Moves a layer's experts into host memory the device reads in place, the tables keeping the
/// biases on the device. The device stacks are freed on return.
pub(crate) fn adopt<B: Backend>(b: &mut B, experts: Experts<B::Buffer>) -> Run<HostLayer<B::Buffer>> {
    let (gate_up, gate_up_table) = to_host(b, experts.gate_up)?;
    let (down, down_table) = to_host(b, experts.down)?;
    Ok(HostLayer { home: [gate_up, down], table: [gate_up_table, down_table] })
}

fn tables<B: Backend>(b: &mut B) -> Run<&mut dyn gptoss_engine::residency::ExpertTables<B::Buffer>> {
    b.expert_tables().ok_or_else(|| {
        EngineError::unsupported(
            "host residency",
            "this backend has no memory of its own to keep experts out of (the host mode is for --backend cuda; on the CPU use none or mmap)",
        )
    })
}

/// A stack moved to host memory, and the table stack that reads it.
type HomeAndTable<Buf> = (Weight<Buf>, Weight<Buf>);

fn to_host<B: Backend>(b: &mut B, mut w: Weight<B::Buffer>) -> Run<HomeAndTable<B::Buffer>> {
    use gptoss_engine::DeviceBuffer;
    let bias = w.bias.take().ok_or_else(|| EngineError::invalid("an expert stack without biases"))?;
    let t = tables(b)?;
    let data = t.alloc_mapped(w.data.dtype(), w.data.len())?;
    let scales = match &w.scales {
        Some(s) => Some(t.alloc_mapped(s.dtype(), s.len())?),
        None => None,
    };
    let mut home = Weight { format: w.format, experts: w.experts, rows: w.rows, cols: w.cols, data, scales, bias: None };
    b.copy(&w.data, 0, &mut home.data, 0, w.data.len())?;
    if let (Some(from), Some(to)) = (&w.scales, &mut home.scales) {
        b.copy(from, 0, to, 0, from.len())?;
    }
    let table = tables(b)?.table_stack(&home, bias)?;
    Ok((home, table))
}

impl<Buf: 'static> HostExperts<Buf> {
    /// The mode over `layers` (each `adopt`ed), with a pool of `slots` device slots and a
    /// trace for steps of up to `max_tokens` tokens.
    pub fn new<B: Backend<Buffer = Buf>>(
        b: &mut B,
        c: &GptOssConfig,
        layers: Vec<HostLayer<Buf>>,
        slots: usize,
        policy: PolicyKind,
        max_tokens: usize,
    ) -> Run<Self> {
        let first = layers.first().ok_or_else(|| EngineError::invalid("the host mode over a model without layers"))?;
        if slots == 0 {
            return Err(EngineError::invalid("the host mode needs at least one device slot"));
        }
        let slot_stack = |b: &mut B, w: &Weight<Buf>| -> Run<Weight<Buf>> {
            let (dt, n) = w.format.data_layout(w.rows, w.cols);
            let scales = match w.format.scales_layout(w.rows, w.cols) {
                Some((st, sn)) => Some(b.alloc(st, slots * sn)?),
                None => None,
            };
            Ok(Weight { format: w.format, experts: slots, rows: w.rows, cols: w.cols, data: b.alloc(dt, slots * n)?, scales, bias: None })
        };
        let pool = [slot_stack(b, &first.home[0])?, slot_stack(b, &first.home[1])?];
        let expert_bytes = first.home.iter().map(|w| w.matrix_bytes() as u64).sum();
        let experts = first.home[0].experts;
        let top_k = c.num_experts_per_tok;
        let trace = b.alloc(DType::U32, layers.len() * max_tokens * top_k)?;
        Ok(HostExperts {
            in_slot: vec![false; layers.len() * experts],
            layers,
            pool,
            cache: ExpertCache::new(slots, policy),
            experts,
            landing: VecDeque::new(),
            trace,
            max_tokens,
            top_k,
            ids: Vec::new(),
            seen: vec![false; experts],
            used: Vec::new(),
            expert_bytes,
            stats: HostStats::default(),
        })
    }

    pub fn stats(&self) -> HostStats {
        self.stats
    }

    pub fn cache(&self) -> &ExpertCache {
        &self.cache
    }

    /// Layer `l`'s experts for the `n` routed rows of `a`, through the layer's tables; the
    /// routed ids are copied into the trace (device work: the step can be recorded).
    pub fn run<B: Backend<Buffer = Buf>>(&mut self, b: &mut B, l: usize, a: &mut Activations<Buf>, n: usize, swiglu: Swiglu) -> Run<()> {
        if n > self.max_tokens {
            return Err(EngineError::invalid(format!("a step of {n} tokens in the host mode, which was sized for {}", self.max_tokens)));
        }
        let top_k = self.top_k;
        b.copy(&a.expert_ids, 0, &mut self.trace, l * n * top_k, n * top_k)?;
        let [gate_up, down] = &self.layers[l].table;
        super::experts_of(b, gate_up, down, a, n, top_k, swiglu)
    }

    /// After a step of `n` tokens (run or replayed): points the experts whose copies have
    /// landed at their slots, then reads the step's routing and, as the cache decides, queues
    /// copies of newly hot experts, pointing evicted ones back at host memory first.
    pub fn after_step<B: Backend<Buffer = Buf>>(&mut self, b: &mut B, n: usize) -> Run<()> {
        if n > self.max_tokens {
            return Err(EngineError::invalid(format!("a step of {n} tokens in the host mode, which was sized for {}", self.max_tokens)));
        }
        let (layers, top_k) = (self.layers.len(), self.top_k);
        self.ids.resize(layers * n * top_k, 0);
        b.read(&self.trace, 0, bytemuck::cast_slice_mut(&mut self.ids))?;
        // Each layer's distinct experts, where the step found them.
        self.used.clear();
        for l in 0..layers {
            self.seen.fill(false);
            for &e in &self.ids[l * n * top_k..(l + 1) * n * top_k] {
                let e = e as usize;
                if e >= self.experts {
                    return Err(EngineError::invalid(format!("layer {l} routed to expert {e} of {}", self.experts)));
                }
                if std::mem::replace(&mut self.seen[e], true) {
                    continue;
                }
                if self.in_slot[l * self.experts + e] {
                    self.stats.from_slots += 1;
                } else {
                    self.stats.from_host += 1;
                    self.stats.host_bytes += self.expert_bytes;
                }
                self.used.push(ExpertKey { layer: l as u32, expert: e as u32 });
            }
        }
        self.stats.steps += 1;
        self.stats.routed += self.ids.len() as u64;
        self.land(b)?;
        for i in 0..self.used.len() {
            self.keep(b, self.used[i])?;
        }
        self.cache.release_all();
        Ok(())
    }

    /// Tells the cache of a use of `key`; a newly placed expert is copied into its slot.
    fn keep<B: Backend<Buffer = Buf>>(&mut self, b: &mut B, key: ExpertKey) -> Run<()> {
        if self.cache.slot_of(key).is_none() && self.landing.len() >= MAX_IN_FLIGHT {
            return Ok(());
        }
        let Some(Lookup::Miss { slot, evicted }) = self.cache.acquire(key) else { return Ok(()) };
        if let Some(old) = evicted {
            // Back to host memory before anything overwrites the slot: the copy below is
            // queued behind this change, so no step still reading the slot sees it change.
            let (l, e) = (old.layer as usize, old.expert as usize);
            self.in_slot[l * self.experts + e] = false;
            for s in 0..2 {
                let HostLayer { home, table } = &mut self.layers[l];
                tables(b)?.point(&mut table[s], e, &home[s], e)?;
            }
        }
        let (l, e) = (key.layer as usize, key.expert as usize);
        let mut ticket = 0;
        for s in 0..2 {
            ticket = tables(b)?.copy_beside(&self.layers[l].home[s], e, &mut self.pool[s], slot)?;
        }
        self.cache.set_busy(slot, true);
        self.landing.push_back((ticket, slot, key));
        self.stats.queued += 1;
        Ok(())
    }

    /// Points every expert whose copy has landed at its slot, oldest first (copies land in
    /// the order they were queued).
    fn land<B: Backend<Buffer = Buf>>(&mut self, b: &mut B) -> Run<()> {
        while let Some(&(ticket, slot, key)) = self.landing.front() {
            if !tables(b)?.copied(ticket)? {
                break;
            }
            self.landing.pop_front();
            let (l, e) = (key.layer as usize, key.expert as usize);
            for s in 0..2 {
                let (pool, table) = (&self.pool[s], &mut self.layers[l].table[s]);
                tables(b)?.point(table, e, pool, slot)?;
            }
            self.in_slot[l * self.experts + e] = true;
            self.cache.set_busy(slot, false);
            self.stats.landed += 1;
            self.stats.copied_bytes += self.expert_bytes;
        }
        Ok(())
    }
}
