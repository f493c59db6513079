//! The static KV cache: allocated once for the maximum context, written in place.
//!
//! Layout of one layer: `k` and `v` are `[capacity, kv_heads, head_dim]`, token-major, in the
//! cache's element type (bf16 by default, f32 for bit-tight comparisons). Position `p` lives in
//! slot `p % capacity`. Full-attention layers have `capacity = max_context`; sliding-window
//! layers keep a ring of `window + max_batch` slots, enough for a batch of new tokens to see
//! `window − 1` older ones.

use crate::backend::{Backend, DeviceBuffer};
use crate::dtype::DType;
use crate::error::{EngineError, Result};

/// One layer's keys and values.
pub struct KvLayer<Buf> {
    pub k: Buf,
    pub v: Buf,
    /// Slots in the ring (= max context for full layers).
    pub capacity: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// The sliding window in tokens, if the layer has one.
    pub window: Option<usize>,
}

impl<Buf: DeviceBuffer> KvLayer<Buf> {
    /// Elements per cached token (`kv_heads · head_dim`).
    pub fn row(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    pub fn dtype(&self) -> DType {
        self.k.dtype()
    }
}

/// Per-layer description used to allocate a cache.
#[derive(Clone, Copy, Debug)]
pub struct KvLayerSpec {
    pub kv_heads: usize,
    pub head_dim: usize,
    pub window: Option<usize>,
}

pub struct KvCache<Buf> {
    pub layers: Vec<KvLayer<Buf>>,
    max_context: usize,
    max_batch: usize,
    /// Tokens currently cached (the next token's position).
    len: usize,
}

impl<Buf: DeviceBuffer> KvCache<Buf> {
    pub fn new<B: Backend<Buffer = Buf>>(
        backend: &mut B,
        specs: &[KvLayerSpec],
        dtype: DType,
        max_context: usize,
        max_batch: usize,
    ) -> Result<Self> {
        if !matches!(dtype, DType::Bf16 | DType::F32) {
            return Err(EngineError::invalid(format!("kv cache dtype {dtype} must be bf16 or f32")));
        }
        if max_context == 0 || max_batch == 0 {
            return Err(EngineError::invalid("kv cache: max context and max batch must be positive"));
        }
        let mut layers = Vec::with_capacity(specs.len());
        for s in specs {
            let capacity = match s.window {
                Some(0) => {
                    return Err(EngineError::invalid("kv cache: a sliding window of 0 tokens"));
                }
                Some(w) => max_context.min(w.saturating_add(max_batch)),
                None => max_context,
            };
            let elems = capacity.checked_mul(s.kv_heads * s.head_dim).ok_or_else(|| EngineError::invalid("kv cache size overflows"))?;
            layers.push(KvLayer {
                k: backend.alloc(dtype, elems)?,
                v: backend.alloc(dtype, elems)?,
                capacity,
                kv_heads: s.kv_heads,
                head_dim: s.head_dim,
                window: s.window,
            });
        }
        Ok(KvCache { layers, max_context, max_batch, len: 0 })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// Bytes held by all layers.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|l| 2 * l.k.len() * l.k.dtype().size()).sum()
    }

    /// Checks that `n` more tokens fit, batch and context wise.
    pub fn check_append(&self, n: usize) -> Result<()> {
        if n > self.max_batch {
            return Err(EngineError::invalid(format!("{n} tokens in one step; the model was loaded for at most {}", self.max_batch)));
        }
        let needed = self.len + n;
        if needed > self.max_context {
            return Err(EngineError::ContextOverflow { needed, capacity: self.max_context });
        }
        Ok(())
    }

    /// Records that `n` tokens were written (after a successful step).
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Forgets every token from position `to` on, e.g. rejected draft tokens. Fails if a
    /// sliding layer's ring has already overwritten entries that position `to` would need.
    /// Emptying the cache (`to == 0`) always succeeds: position 0 needs no earlier entries.
    pub fn rollback(&mut self, to: usize) -> Result<()> {
        if to > self.len {
            return Err(EngineError::invalid(format!("rollback to position {to} beyond the {} cached tokens", self.len)));
        }
        if to == 0 {
            self.len = 0;
            return Ok(());
        }
        for l in &self.layers {
            if let Some(w) = l.window
                && l.capacity < self.max_context
                && self.len - to > l.capacity - w
            {
                return Err(EngineError::invalid(format!(
                    "rollback of {} tokens exceeds the {} a sliding-window layer's ring keeps",
                    self.len - to,
                    l.capacity - w
                )));
            }
        }
        self.len = to;
        Ok(())
    }
}
