//! Where a checkpoint's bytes are: each tensor's shard and byte range, the tensors of each
//! layer, and each routed expert's four pieces (gate_up and down codes and scales), which lie
//! at a fixed stride inside their stacked tensors. Reads are planned from this alone, so
//! nothing of the memory map is touched while streaming.

use std::path::PathBuf;

use crate::checkpoint::Checkpoint;
use crate::config::GptOssConfig;
use crate::error::{ModelError, Result};
use crate::tensors::{Kind, TensorSpec, expected_tensors, layer_prefix};

/// One tensor's bytes in the checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extent {
    pub name: String,
    pub shard: usize,
    /// Absolute offset in the shard file.
    pub offset: u64,
    pub len: usize,
}

/// The four stacked tensors a routed expert is cut from, in this order.
pub const EXPERT_PARTS: [&str; 4] = ["gate_up_proj_blocks", "gate_up_proj_scales", "down_proj_blocks", "down_proj_scales"];

/// Where one layer's experts are: for each of [`EXPERT_PARTS`], the stacked tensor's extent;
/// expert `e`'s piece starts `e · part_bytes[i]` into it.
#[derive(Clone, Debug)]
pub struct ExpertParts {
    pub stacks: [Extent; 4],
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub shards: Vec<PathBuf>,
    /// Per layer, every tensor whose name has the layer's prefix, in file order.
    pub layers: Vec<Vec<Extent>>,
    /// The tensors of no layer (embedding, final norm, unembedding).
    pub globals: Vec<Extent>,
    pub experts: Vec<ExpertParts>,
    /// Bytes of one expert's piece of each part.
    pub part_bytes: [usize; 4],
}

impl Layout {
    pub fn new(c: &GptOssConfig, ckpt: &Checkpoint) -> Result<Self> {
        let extent = |spec: &TensorSpec| -> Result<Extent> {
            let t = ckpt.get(&spec.name).ok_or_else(|| ModelError::checkpoint(&ckpt.dir, format!("no tensor '{}'", spec.name)))?;
            Ok(Extent { name: spec.name.clone(), shard: t.shard, offset: t.info.start as u64, len: t.info.end - t.info.start })
        };
        let specs = expected_tensors(c);
        let mut layers: Vec<Vec<Extent>> = vec![Vec::new(); c.num_hidden_layers];
        let mut globals = Vec::new();
        for s in &specs {
            let e = extent(s)?;
            match layer_of(&s.name) {
                Some(l) => layers[l].push(e),
                None => globals.push(e),
            }
        }
        for l in &mut layers {
            l.sort_by_key(|e| (e.shard, e.offset));
        }
        let experts_n = c.num_local_experts;
        let mut experts = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let part = |i: usize| {
                let name = format!("{}mlp.experts.{}", layer_prefix(l), EXPERT_PARTS[i]);
                let spec = specs.iter().find(|s| s.name == name).expect("every layer has its experts");
                debug_assert_eq!(spec.kind, Kind::Mx);
                extent(spec)
            };
            experts.push(ExpertParts { stacks: [part(0)?, part(1)?, part(2)?, part(3)?] });
        }
        let part_bytes = std::array::from_fn(|i| experts[0].stacks[i].len / experts_n);
        Ok(Layout { shards: ckpt.shard_paths().into_iter().map(|p| p.to_path_buf()).collect(), layers, globals, experts, part_bytes })
    }

    /// Where expert `e` of layer `l`'s piece of part `i` is: (shard, offset, length).
    pub fn expert_piece(&self, l: usize, e: usize, i: usize) -> (usize, u64, usize) {
        let stack = &self.experts[l].stacks[i];
        (stack.shard, stack.offset + (e * self.part_bytes[i]) as u64, self.part_bytes[i])
    }

    /// Bytes of one expert (its four pieces).
    pub fn expert_bytes(&self) -> usize {
        self.part_bytes.iter().sum()
    }

    /// Bytes of layer `l`'s tensors as stored.
    pub fn layer_bytes(&self, l: usize) -> usize {
        self.layers[l].iter().map(|e| e.len).sum()
    }
}

/// The layer a tensor belongs to, from its name.
pub fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("model.layers.")?.split('.').next()?.parse().ok()
}

/// Whether a tensor is one of the stacked expert codes or scales (read per expert in the
/// `experts` mode, never held whole).
pub fn is_expert_stack(name: &str) -> bool {
    EXPERT_PARTS.iter().any(|p| name.ends_with(&format!("mlp.experts.{p}")))
}
