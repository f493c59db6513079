//! Scratch memory of the CPU kernels, sized once by `prepare` from the model plan so that no
//! op allocates.

use gptoss_engine::ModelPlan;

use crate::fast::matmul::q8::max_row_bytes;

#[derive(Default)]
pub struct Workspace {
    /// f32 [max_tokens, kv_heads · head_dim]: projected keys and values before the cache write.
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// f32 [max_tokens, experts]: router logits.
    pub router_logits: Vec<f32>,
    /// Sampling candidates, capacity vocab.
    pub sample: Vec<(f32, u32)>,
    /// The activations of one matmul as its tiles read them.
    pub act: ActScratch,
    /// 0, 1, 2, … (max_tokens · top_k): the row lists of dense matmuls.
    pub iota: Vec<u32>,
    pub moe: MoeScratch,
    /// f64 [max_tokens, widest input]: activations as the q8 reference rounds them (empty
    /// unless a q8 reference kernel may run).
    pub q8_reference: Vec<f64>,
}

/// A matmul's prepared activations, for the widest input any matmul of the plan takes
/// (max_tokens rows of hidden or q_dim, max_tokens · top_k rows of intermediate or hidden).
#[derive(Default)]
pub struct ActScratch {
    /// f32 [rows, cols]: reordered for the 4-bit formats (`fast::matmul::prepare`); or, as u16
    /// [rows, 2 · cols], split into bf16 planes (`planes`).
    pub xp: Vec<f32>,
    /// u8 [rows, q8 row bytes] + 64: quantized to int8 blocks (`fast::matmul::q8`), from a 64-byte boundary.
    pub q8: Vec<u8>,
}

impl ActScratch {
    /// `len` u16 in the memory of `xp` (the bf16 planes of `len / 2` activations), or a panic
    /// when it holds fewer.
    pub fn planes(&mut self, len: usize) -> &mut [u16] {
        assert!(len <= 2 * self.xp.len(), "workspace too small for {len} bf16 values");
        // SAFETY: `xp` owns 2 · xp.len() u16 of memory, aligned for u16 (f32's alignment is
        // larger), every bit pattern is a valid u16 and a valid f32, and the slice borrows `xp`
        // mutably for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.xp.as_mut_ptr() as *mut u16, len) }
    }
}

/// The routed experts' intermediate results, one row per (token, k) slot.
#[derive(Default)]
pub struct MoeScratch {
    /// f32 [slots, 2 · intermediate]: gate_up outputs (gate at even, up at odd columns).
    pub u: Vec<f32>,
    /// f32 [slots, intermediate]: the SwiGLU activations.
    pub a: Vec<f32>,
    /// f32 [slots, hidden]: each expert's down projection plus bias.
    pub y: Vec<f32>,
    /// u32 [slots]: slots ordered by expert.
    pub order: Vec<u32>,
    /// u32 [slots]: the token of each slot in `order`.
    pub tokens: Vec<u32>,
    /// u32 [experts + 1]: where each expert's slots start in `order`.
    pub starts: Vec<u32>,
    /// u32 [experts + 1]: where each expert's tasks start in a grouped pass.
    pub task_starts: Vec<u32>,
}

impl Workspace {
    /// Whether `rows` activation rows of `cols` fit the buffers.
    pub fn fits(&self, rows: usize, cols: usize) -> bool {
        rows * cols <= self.act.xp.len() && rows * max_row_bytes(cols) + 64 <= self.act.q8.len() && rows <= self.iota.len()
    }

    /// Scratch for the model `p`; `q8_reference` when the q8 reference kernels may run.
    pub fn new(p: &ModelPlan, q8_reference: bool) -> Self {
        let slots = p.max_tokens * p.top_k.max(1);
        let q_dim = p.q_heads * p.head_dim;
        let (wide, deep) = (p.hidden.max(q_dim), p.intermediate.max(p.hidden));
        let xp_len = (p.max_tokens * wide).max(slots * deep);
        let q8_len = (p.max_tokens * max_row_bytes(wide)).max(slots * max_row_bytes(deep)) + 64;
        Workspace {
            k: vec![0.0; p.max_tokens * p.kv_heads * p.head_dim],
            v: vec![0.0; p.max_tokens * p.kv_heads * p.head_dim],
            router_logits: vec![0.0; p.max_tokens * p.experts],
            sample: Vec::with_capacity(p.vocab),
            act: ActScratch { xp: vec![0.0; xp_len], q8: vec![0; q8_len] },
            iota: (0..slots as u32).collect(),
            moe: MoeScratch {
                u: vec![0.0; slots * 2 * p.intermediate],
                a: vec![0.0; slots * p.intermediate],
                y: vec![0.0; slots * p.hidden],
                order: vec![0; slots],
                tokens: vec![0; slots],
                starts: vec![0; p.experts + 1],
                task_starts: vec![0; p.experts + 1],
            },
            q8_reference: if q8_reference { vec![0.0; p.max_tokens.max(p.top_k) * wide.max(deep)] } else { Vec::new() },
        }
    }
}
