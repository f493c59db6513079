//! The `experts` residency mode's store: routed experts read on demand into a fixed pool of
//! slots, allocated once on the backend as two stacked MXFP4 weights of `slots` experts each,
//! so the backend's fused `moe_experts` runs on the pool unchanged, with each routed expert's
//! id replaced by its slot.
//!
//! One layer of a step (`run`): the router's choice is read back, the tokens are cut into
//! groups whose experts fit the pool (`expert_cache::run_layer`: a chunk whose experts all fit
//! is one group, so each expert is read at most once per chunk), and per group the missing
//! experts' four pieces are queued on the I/O threads at once, copied into their slots as they
//! arrive, and the group's experts computed in one call. A group's experts must all be present
//! before that call: the call's per-token weighted sum over its `top_k` experts is what keeps
//! the logits identical to the other modes.
//!
//! With prefetch (decode steps), the next layer's router is applied to the current residual
//! (normalised with the next layer's gain) right after routing, and its likely experts are
//! queued behind this layer's misses, into slots marked busy until their pieces arrive.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gptoss_engine::residency::expert_cache::{ExpertCache, ExpertKey, GroupAccess, Lookup, run_layer};
use gptoss_engine::residency::{AlignedBuf, DirectFile, IoPool, ReadDone, ReadRequest};
use gptoss_engine::{Backend, DType, EngineError, MoeExpertsArgs, MoeRouteArgs, RmsNormArgs, Swiglu, Weight, WeightFormat};

use super::layout::Layout;
use super::plan::ResidencyPlan;
use crate::config::GptOssConfig;
use crate::context::{Activations, OffloadScratch};
use crate::error::Result;

/// The engine's result: what the forward pass returns.
type Run<T> = gptoss_engine::Result<T>;
use crate::residency::read::take_buffer;
use crate::weights::LayerWeights;

/// What the store has done, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExpertStats {
    /// Bytes read from disk (whole blocks), reads (pieces, or chunks of the larger ones), and
    /// experts read.
    pub bytes_read: u64,
    pub reads: u64,
    pub experts_read: u64,
    /// Token groups run (one per layer of a step whose experts all fit the pool, more when
    /// they do not).
    pub groups: u64,
    /// Experts read ahead by prefetch, and those a later step used.
    pub prefetched: u64,
    pub prefetch_used: u64,
    /// Time the computing thread waited for reads, and spent copying them into the pool.
    pub wait: Duration,
    pub copy: Duration,
}

/// A read of one piece of one expert into one slot: the whole piece, or a chunk of it.
#[derive(Clone, Copy, Debug)]
struct Piece {
    slot: usize,
    part: usize,
    shard: usize,
    offset: u64,
    len: usize,
    /// Where the chunk starts in the piece, and the whole piece's length (a slot's stride).
    at: usize,
    piece_len: usize,
}

/// The pool on the backend: `slots` experts of every layer's shape, and each layer's biases.
struct Pool<Buf> {
    gate_up: Weight<Buf>,
    down: Weight<Buf>,
    /// Per layer, f32 `[experts, 2·intermediate]` and `[experts, hidden]`.
    biases: Vec<(Buf, Buf)>,
}

/// Reads in flight and their bookkeeping.
struct Reader {
    io: IoPool,
    files: Vec<Arc<DirectFile>>,
    staging: Vec<AlignedBuf>,
    /// Bytes a staging buffer holds, and the largest read.
    staging_bytes: usize,
    read_chunk: usize,
    queue: VecDeque<Piece>,
    /// Submitted pieces, by tag.
    submitted: Vec<Option<Piece>>,
    /// Reads of each slot not yet in the pool, and the first read error of each slot.
    outstanding: Vec<u16>,
    failed: Vec<Option<EngineError>>,
    /// Slots filled by prefetch and not used since.
    prefetched: Vec<bool>,
    stats: ExpertStats,
}

pub(crate) struct ExpertStore<Buf> {
    cache: ExpertCache,
    reader: Reader,
    pool: Pool<Buf>,
    layout: Arc<Layout>,
    prefetch: bool,
    /// Host copies of a layer's routed ids and of a group's slot ids (reused).
    ids: Vec<u32>,
    slot_bytes: Vec<u8>,
}

impl<Buf: 'static> ExpertStore<Buf> {
    /// A pool of `plan.slots` slots on `backend` and `plan.io_threads` readers of `files`.
    pub fn new<B: Backend<Buffer = Buf>>(
        backend: &mut B,
        c: &GptOssConfig,
        plan: &ResidencyPlan,
        layout: Arc<Layout>,
        files: Vec<Arc<DirectFile>>,
        biases: Vec<(Buf, Buf)>,
    ) -> Result<Self> {
        let slots = plan.slots;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let p = layout.part_bytes;
        let mut stack = |rows: usize, cols: usize, blocks: usize, scales: usize| -> Result<Weight<Buf>> {
            Ok(Weight {
                format: WeightFormat::Mxfp4,
                experts: slots,
                rows,
                cols,
                data: backend.alloc(DType::U8, slots * blocks)?,
                scales: Some(backend.alloc(DType::U8, slots * scales)?),
                bias: Some(backend.alloc(DType::F32, slots * rows)?),
            })
        };
        let pool = Pool { gate_up: stack(2 * i, h, p[0], p[1])?, down: stack(h, i, p[2], p[3])?, biases };
        let read_chunk = plan.read_chunk as usize;
        let staging_bytes =
            p.iter().map(|&len| DirectFile::span(0, len.min(read_chunk)) + gptoss_engine::residency::aligned::ALIGN).max().unwrap_or(0);
        let buffers = plan.io_threads * 2;
        let staging = (0..buffers).map(|_| take_buffer(&mut Vec::new(), staging_bytes)).collect::<Result<Vec<_>>>()?;
        let reader = Reader {
            io: IoPool::new(plan.io_threads)?,
            files,
            staging,
            staging_bytes,
            read_chunk,
            queue: VecDeque::new(),
            submitted: Vec::new(),
            outstanding: vec![0; slots],
            failed: (0..slots).map(|_| None).collect(),
            prefetched: vec![false; slots],
            stats: ExpertStats::default(),
        };
        Ok(ExpertStore {
            cache: ExpertCache::new(slots, plan.policy),
            reader,
            pool,
            layout,
            prefetch: plan.prefetch,
            ids: Vec::new(),
            slot_bytes: Vec::new(),
        })
    }

    pub fn cache(&self) -> &ExpertCache {
        &self.cache
    }

    pub fn stats(&self) -> ExpertStats {
        self.reader.stats
    }

    /// Layer `l`'s experts for the `n` tokens routed in `a`: `a.x += Σ weight · expert(a.h)`.
    /// `next` is layer `l + 1`'s weights, for prefetch. On an error the experts whose reads
    /// failed are forgotten, every slot released, and the store ready for the next call.
    #[allow(clippy::too_many_arguments)]
    pub fn run<B: Backend<Buffer = Buf>>(
        &mut self,
        b: &mut B,
        c: &GptOssConfig,
        l: usize,
        next: Option<&LayerWeights<Buf>>,
        a: &mut Activations<Buf>,
        s: &mut OffloadScratch<Buf>,
        n: usize,
        swiglu: Swiglu,
    ) -> Run<()> {
        let top_k = c.num_experts_per_tok;
        self.ids.resize(n * top_k, 0);
        b.read(&a.expert_ids, 0, bytemuck::cast_slice_mut(&mut self.ids))?;
        let ExpertStore { cache, reader, pool, layout, prefetch, ids, slot_bytes } = self;
        let layout: &Layout = layout;
        let predict = next.filter(|_| *prefetch && n == 1);
        run_layer(cache, l, ids, top_k, |cache, tokens, accesses| -> Run<()> {
            reader.stats.groups += 1;
            for g in accesses {
                match g.lookup {
                    Lookup::Miss { slot, .. } => reader.request(b, pool, layout, cache, slot, l, g.expert as usize)?,
                    Lookup::Hit(slot) if reader.prefetched[slot] => {
                        reader.prefetched[slot] = false;
                        reader.stats.prefetch_used += 1;
                    }
                    Lookup::Hit(_) => {}
                }
            }
            if let Some(next) = predict {
                prefetch_next(b, c, l + 1, next, a, s, reader, pool, layout, cache)?;
            }
            let slots: Vec<usize> = accesses.iter().map(|g| g.lookup.slot()).collect();
            reader.wait_for(b, pool, cache, &slots)?;
            compute_group(b, pool, a, s, slot_bytes, ids, tokens, (n, c.hidden_size, top_k), accesses, swiglu)
        })
    }
}

/// Queues layer `l`'s likely experts for the one token routed now: layer `l`'s router on the
/// residual normalised with its gain.
#[allow(clippy::too_many_arguments)]
fn prefetch_next<B: Backend>(
    b: &mut B,
    c: &GptOssConfig,
    l: usize,
    next: &LayerWeights<B::Buffer>,
    a: &Activations<B::Buffer>,
    s: &mut OffloadScratch<B::Buffer>,
    reader: &mut Reader,
    pool: &mut Pool<B::Buffer>,
    layout: &Layout,
    cache: &mut ExpertCache,
) -> Run<()> {
    let top_k = c.num_experts_per_tok;
    b.rms_norm(RmsNormArgs { x: &a.x, gain: &next.mlp_norm, n: 1, eps: c.rms_norm_eps, out: &mut s.h })?;
    b.moe_route(MoeRouteArgs { router: &next.router, x: &s.h, n: 1, top_k, ids: &mut s.predicted, weights: &mut s.weights })?;
    let mut predicted = vec![0u32; top_k];
    b.read(&s.predicted, 0, bytemuck::cast_slice_mut(&mut predicted))?;
    for e in predicted {
        if let Some(slot) = cache.prefetch(ExpertKey { layer: l as u32, expert: e }) {
            reader.prefetched[slot] = true;
            reader.stats.prefetched += 1;
            reader.request(b, pool, layout, cache, slot, l, e as usize)?;
        }
    }
    Ok(())
}

/// Runs the experts of tokens `tokens` (of `n`) from the pool: the slot of each routed expert
/// written for the backend, and for a group that is not the whole step its rows moved through
/// the scratch (the backend's ops take the first rows of their buffers).
#[allow(clippy::too_many_arguments)]
fn compute_group<B: Backend>(
    b: &mut B,
    pool: &Pool<B::Buffer>,
    a: &mut Activations<B::Buffer>,
    s: &mut OffloadScratch<B::Buffer>,
    slot_bytes: &mut Vec<u8>,
    ids: &[u32],
    tokens: Range<usize>,
    (n, hidden, top_k): (usize, usize, usize),
    accesses: &[GroupAccess],
    swiglu: Swiglu,
) -> Run<()> {
    slot_bytes.clear();
    for &e in &ids[tokens.start * top_k..tokens.end * top_k] {
        let slot = accesses
            .iter()
            .find(|g| g.expert == e)
            .map(|g| g.lookup.slot())
            .ok_or_else(|| EngineError::invalid(format!("expert {e} of a group was not looked up")))?;
        slot_bytes.extend_from_slice(&(slot as u32).to_le_bytes());
    }
    b.write(&mut s.slot_ids, 0, slot_bytes)?;
    let (gate_up, down) = (&pool.gate_up, &pool.down);
    if tokens == (0..n) {
        let args =
            MoeExpertsArgs { gate_up, down, x: &a.h, n, ids: &s.slot_ids, weights: &a.expert_weights, top_k, swiglu, residual: &mut a.x };
        return b.moe_experts(args);
    }
    let m = tokens.len();
    b.copy(&a.h, tokens.start * hidden, &mut s.h, 0, m * hidden)?;
    b.copy(&a.x, tokens.start * hidden, &mut s.x, 0, m * hidden)?;
    b.copy(&a.expert_weights, tokens.start * top_k, &mut s.weights, 0, m * top_k)?;
    let args = MoeExpertsArgs { gate_up, down, x: &s.h, n: m, ids: &s.slot_ids, weights: &s.weights, top_k, swiglu, residual: &mut s.x };
    b.moe_experts(args)?;
    b.copy(&s.x, 0, &mut a.x, tokens.start * hidden, m * hidden)?;
    Ok(())
}

/// Copies expert `e` of layer `l`'s biases into `slot` of the pool.
fn copy_biases<B: Backend>(b: &mut B, pool: &mut Pool<B::Buffer>, slot: usize, l: usize, e: usize) -> Run<()> {
    let (gb, db) = &pool.biases[l];
    for (src, w) in [(gb, &mut pool.gate_up), (db, &mut pool.down)] {
        let rows = w.rows;
        let dst = w.bias.as_mut().ok_or_else(|| EngineError::invalid("expert store: the pool has no biases"))?;
        b.copy(src, e * rows, dst, slot * rows, rows)?;
    }
    Ok(())
}

impl Reader {
    /// Queues the four pieces of expert `e` of layer `l` into `slot` (marked busy until they
    /// are in), in reads of at most `read_chunk` bytes, copies its biases into the slot, and
    /// starts what the staging buffers allow.
    #[allow(clippy::too_many_arguments)]
    fn request<B: Backend>(
        &mut self,
        b: &mut B,
        pool: &mut Pool<B::Buffer>,
        layout: &Layout,
        cache: &mut ExpertCache,
        slot: usize,
        l: usize,
        e: usize,
    ) -> Run<()> {
        if let Err(e) = copy_biases(b, pool, slot, l, e) {
            cache.forget(slot);
            return Err(e);
        }
        let mut reads = 0;
        for part in 0..4 {
            let (shard, offset, piece_len) = layout.expert_piece(l, e, part);
            for at in (0..piece_len).step_by(self.read_chunk) {
                let len = (piece_len - at).min(self.read_chunk);
                self.queue.push_back(Piece { slot, part, shard, offset: offset + at as u64, len, at, piece_len });
                reads += 1;
            }
        }
        self.outstanding[slot] = reads;
        self.failed[slot] = None;
        cache.set_busy(slot, true);
        self.stats.experts_read += 1;
        self.pump()
    }

    /// Submits queued pieces while staging buffers are free.
    fn pump(&mut self) -> Run<()> {
        while let Some(buf) = self.staging.pop() {
            let Some(p) = self.queue.pop_front() else {
                self.staging.push(buf);
                break;
            };
            let tag = match self.submitted.iter().position(Option::is_none) {
                Some(t) => t,
                None => {
                    self.submitted.push(None);
                    self.submitted.len() - 1
                }
            };
            self.submitted[tag] = Some(p);
            debug_assert!(DirectFile::span(p.offset, p.len) <= self.staging_bytes);
            self.io.submit(ReadRequest { tag: tag as u64, file: Arc::clone(&self.files[p.shard]), offset: p.offset, len: p.len, buf })?;
        }
        Ok(())
    }

    /// Copies finished reads into the pool until every slot of `slots` is complete, then
    /// forgets every slot whose read failed; an error if one of `slots` did.
    fn wait_for<B: Backend>(&mut self, b: &mut B, pool: &mut Pool<B::Buffer>, cache: &mut ExpertCache, slots: &[usize]) -> Run<()> {
        let (start, copied) = (Instant::now(), self.stats.copy);
        while slots.iter().any(|&s| self.outstanding[s] > 0) {
            let Some(done) = self.io.wait()? else {
                return Err(EngineError::invalid("expert store: pieces outstanding but no read in flight"));
            };
            self.finish(b, pool, cache, done)?;
            self.pump()?;
        }
        // Waiting is what the loop took beyond its copies into the pool.
        self.stats.wait += start.elapsed().saturating_sub(self.stats.copy - copied);
        let mut first_error = None;
        for slot in 0..self.failed.len() {
            if self.outstanding[slot] == 0 && self.failed[slot].is_some() {
                let e = self.failed[slot].take();
                cache.forget(slot);
                self.prefetched[slot] = false;
                if slots.contains(&slot) && first_error.is_none() {
                    first_error = e;
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One finished read: its bytes into the pool, its buffer back.
    fn finish<B: Backend>(&mut self, b: &mut B, pool: &mut Pool<B::Buffer>, cache: &mut ExpertCache, done: ReadDone) -> Run<()> {
        let ReadDone { tag, buf, result, span } = done;
        let p = self.submitted[tag as usize].take().ok_or_else(|| EngineError::invalid("expert store: a read nobody asked for"))?;
        let written = result.and_then(|range| {
            let start = Instant::now();
            let (w, scales) = if p.part < 2 { (&mut pool.gate_up, p.part == 1) } else { (&mut pool.down, p.part == 3) };
            let at = p.slot * p.piece_len + p.at;
            let r = match (scales, &mut w.scales) {
                (false, _) => b.write(&mut w.data, at, &buf.as_slice()[range]),
                (true, Some(dst)) => b.write(dst, at, &buf.as_slice()[range]),
                (true, None) => Err(EngineError::invalid("expert store: the pool has no scales")),
            };
            self.stats.copy += start.elapsed();
            r
        });
        self.staging.push(buf);
        self.stats.bytes_read += span as u64;
        self.stats.reads += 1;
        if let Err(e) = written {
            self.failed[p.slot].get_or_insert(e);
        }
        self.outstanding[p.slot] -= 1;
        if self.outstanding[p.slot] == 0 {
            cache.set_busy(p.slot, false);
        }
        Ok(())
    }
}
