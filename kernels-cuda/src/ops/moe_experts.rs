//! Launcher for `cuda/moe_experts.cu`: for small batches the GEMV kernels (gate_up + SwiGLU,
//! then down + weighted combine); for large ones the grouped GEMM on the tensor cores (the
//! routed pairs sorted by expert, gate_up + SwiGLU into bf16 planes, down + routing weight per
//! pair, then the combine in routing order).

use gptoss_engine::checks::MoeShape;
use gptoss_engine::checks::{self, buffer as need};
use gptoss_engine::{Buffers, DType, DeviceBuffer, EngineError, MoeExpertsArgs, Result};

use super::split::{self, Planes, Tiles};
use super::{Form, On, blocks, form, mma_rows_fit, stack, u32_of};
use crate::args::{
    GPTOSS_COPY_THREADS, GPTOSS_GEMM_BM, GPTOSS_GEMM_BN, GPTOSS_GEMM_WARPS, GPTOSS_MAX_EXPERTS, GPTOSS_MOE_SORT_THREADS, GPTOSS_MOE_WARPS,
    GPTOSS_WARP_THREADS, GptossMoeCombineArgs, GptossMoeDownArgs, GptossMoeDownMmaArgs, GptossMoeGateUpArgs, GptossMoeGateUpMmaArgs,
    GptossMoeGroups, GptossMoeSortArgs, GptossSplit,
};
use crate::buffer::CudaBuffer;
use crate::device::{Device, Launch};
use crate::registry::Resolved;

const OP: &str = "moe_experts";

/// The grouped GEMM's kernels that every weight format shares: the routing sort and the combine.
pub struct Grouping<D: Device> {
    pub sort: D::Function,
    pub combine: D::Function,
}

impl<D: Device> Grouping<D> {
    pub fn load(dev: &D) -> Result<Self> {
        Ok(Grouping { sort: dev.function("moe_experts", "moe_sort_pairs")?, combine: dev.function("moe_experts", "f32_moe_combine")? })
    }
}

/// The op's scratch, sized by `prepare` for the model's largest batch.
pub struct MoeScratch<D: Device> {
    /// f32 [tokens, top_k, intermediate]: the GEMV kernels' SwiGLU outputs
    pub act: CudaBuffer<D>,
    /// u32 [pairs]: the pairs sorted by expert
    pub order: CudaBuffer<D>,
    /// u32 [GPTOSS_MAX_EXPERTS + 1]: where each expert's pairs start in `order`
    pub offsets: CudaBuffer<D>,
    /// u32 [tiles(pairs, experts), 2]: each tile's expert and first place in `order`
    pub tiles: CudaBuffer<D>,
    /// bf16 [pairs, stride(intermediate)] ×2: the grouped gate_up's SwiGLU outputs, in `order`
    pub act_planes: Planes<D>,
    /// f32 [pairs, hidden]: each pair's down projection, times its routing weight
    pub y: CudaBuffer<D>,
}

impl<D: Device> MoeScratch<D> {
    /// Scratch for `max_tokens` tokens routed to `top_k` of `experts` experts.
    pub fn new(dev: &D, max_tokens: usize, top_k: usize, experts: usize, hidden: usize, intermediate: usize) -> Result<Self> {
        let alloc = |dtype, len| CudaBuffer::zeroed(dev, dtype, len);
        let pairs = max_tokens * top_k;
        let planes = pairs * split::stride(intermediate);
        Ok(MoeScratch {
            act: alloc(DType::F32, pairs * intermediate)?,
            order: alloc(DType::U32, pairs)?,
            offsets: alloc(DType::U32, GPTOSS_MAX_EXPERTS as usize + 1)?,
            tiles: alloc(DType::U32, 2 * tiles(pairs, experts))?,
            act_planes: Planes { hi: alloc(DType::Bf16, planes)?, lo: alloc(DType::Bf16, planes)? },
            y: alloc(DType::F32, pairs * hidden)?,
        })
    }
}

/// The most tiles `pairs` pairs over `experts` experts can form: every pair in a full tile,
/// plus one partial tile per expert that has pairs.
fn tiles(pairs: usize, experts: usize) -> usize {
    pairs.div_ceil(GPTOSS_GEMM_BN as usize) + experts.min(pairs)
}

pub fn moe_experts<D: Device>(
    on: &On<D>,
    kernels: &Resolved<D>,
    grouping: &Grouping<D>,
    tiles: Tiles<'_, D>,
    scratch: &mut MoeScratch<D>,
    a: MoeExpertsArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    let shape = checks::moe_experts(&a)?;
    let fits = mma_rows_fit(a.gate_up).and_then(|()| mma_rows_fit(a.down)).and_then(|()| match shape.experts {
        e if e <= GPTOSS_MAX_EXPERTS as usize => Ok(()),
        e => Err(format!("{e} experts exceed the routing sort's {GPTOSS_MAX_EXPERTS}")),
    });
    let chosen = form(kernels, a.n, tiles.mma_from, fits, OP)?;
    if a.n == 0 {
        return Ok(());
    }
    match chosen {
        Form::Gemv(k) => gemv(on, k.moe(OP)?, &mut scratch.act, &shape, a),
        Form::Mma(k, terms) => grouped(on, k.moe(OP)?, terms, grouping, tiles, scratch, &shape, a),
    }
}

/// The GEMV form: one warp per (gate, up) row pair of a routed slot, then one per output row.
fn gemv<D: Device>(
    on: &On<D>,
    (f_gate_up, f_down): (&D::Function, &D::Function),
    act: &mut CudaBuffer<D>,
    shape: &MoeShape,
    a: MoeExpertsArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    let (n, top_k, inter) = (a.n, a.top_k, shape.intermediate);
    need(act, DType::F32, n * top_k * inter, OP, "activation scratch (prepared batch, top-k, intermediate)")?;
    let slots = u32_of(n * top_k, OP, "tokens × top-k")?;
    let status = on.status as *mut u32;
    let gate_up_args = GptossMoeGateUpArgs {
        w: stack(a.gate_up, OP)?,
        x: a.x.ptr() as *const f32,
        ids: a.ids.ptr() as *const u32,
        act: act.ptr() as *mut f32,
        status,
        n: n as u32,
        top_k: top_k as u32,
        alpha: a.swiglu.alpha,
        limit: a.swiglu.limit,
    };
    let down_args = GptossMoeDownArgs {
        w: stack(a.down, OP)?,
        act: act.ptr() as *const f32,
        ids: a.ids.ptr() as *const u32,
        weights: a.weights.ptr() as *const f32,
        residual: a.residual.ptr() as *mut f32,
        status,
        n: n as u32,
        top_k: top_k as u32,
    };
    let block = GPTOSS_MOE_WARPS * GPTOSS_WARP_THREADS;
    let gate_up_cfg = Launch::linear([blocks(inter, GPTOSS_MOE_WARPS, OP)?, slots, 1], block);
    let down_cfg = Launch::linear([blocks(shape.hidden, GPTOSS_MOE_WARPS, OP)?, n as u32, 1], block);
    // SAFETY: both weights match their formats and form an expert MLP, x / ids / weights /
    // residual / act are long enough (checked above); expert ids (device memory) are range-checked
    // by the kernels, which skip and report an out-of-range id.
    unsafe {
        on.dev.launch(f_gate_up, gate_up_cfg, &gate_up_args)?;
        on.dev.launch(f_down, down_cfg, &down_args)
    }
}

/// A scratch buffer too small for this batch: an error naming what it would need.
fn too_small(what: &str, needed: usize, capacity: usize, n: usize, top_k: usize) -> Result<()> {
    match needed <= capacity {
        true => Ok(()),
        false => Err(EngineError::invalid(format!(
            "{OP}: {n} tokens × top-{top_k} need {needed} elements of {what}; the backend was prepared for {capacity} (a larger batch, width or expert count than the model plan)"
        ))),
    }
}

/// The grouped form on `terms` bf16 planes: sort, gate_up, down, combine (`cuda/moe_experts.cu`).
#[allow(clippy::too_many_arguments)]
fn grouped<D: Device>(
    on: &On<D>,
    (f_gate_up, f_down): (&D::Function, &D::Function),
    terms: u32,
    grouping: &Grouping<D>,
    mut x_tiles: Tiles<'_, D>,
    s: &mut MoeScratch<D>,
    shape: &MoeShape,
    a: MoeExpertsArgs<'_, Buffers<CudaBuffer<D>>>,
) -> Result<()> {
    let (n, top_k, hidden, inter, experts) = (a.n, a.top_k, shape.hidden, shape.intermediate, shape.experts);
    let pairs = n * top_k;
    let max_tiles = tiles(pairs, experts);
    let act_stride = split::stride(inter);
    too_small("sorted pairs", pairs, s.order.len(), n, top_k)?;
    too_small("tiles", 2 * max_tiles, s.tiles.len(), n, top_k)?;
    too_small("activation planes", pairs * act_stride, s.act_planes.hi.len(), n, top_k)?;
    too_small("per-pair outputs", pairs * hidden, s.y.len(), n, top_k)?;
    let xs = x_tiles.split(on, a.x, n, hidden, terms, OP)?;

    let groups = GptossMoeGroups {
        order: s.order.ptr() as *mut u32,
        offsets: s.offsets.ptr() as *mut u32,
        tiles: s.tiles.ptr() as *mut u32,
        max_tiles: u32_of(max_tiles, OP, "tiles")?,
        pad_: 0,
    };
    let status = on.status as *mut u32;
    let (act_hi, act_lo) = (s.act_planes.hi.ptr(), if terms == 2 { s.act_planes.lo.ptr() } else { 0 });
    let sort_args =
        GptossMoeSortArgs { ids: a.ids.ptr() as *const u32, groups, status, pairs: u32_of(pairs, OP, "pairs")?, experts: experts as u32 };
    let gate_up_args = GptossMoeGateUpMmaArgs {
        w: stack(a.gate_up, OP)?,
        xs,
        groups,
        act_hi: act_hi as *mut u16,
        act_lo: act_lo as *mut u16,
        act_stride: u32_of(act_stride, OP, "intermediate")?,
        top_k: top_k as u32,
        alpha: a.swiglu.alpha,
        limit: a.swiglu.limit,
    };
    let down_args = GptossMoeDownMmaArgs {
        w: stack(a.down, OP)?,
        acts: GptossSplit { hi: act_hi as *const u16, lo: act_lo as *const u16, stride: gate_up_args.act_stride, pad_: 0 },
        groups,
        weights: a.weights.ptr() as *const f32,
        y: s.y.ptr() as *mut f32,
    };
    let combine_args = GptossMoeCombineArgs {
        y: s.y.ptr() as *const f32,
        ids: a.ids.ptr() as *const u32,
        residual: a.residual.ptr() as *mut f32,
        n: n as u32,
        top_k: top_k as u32,
        hidden: u32_of(hidden, OP, "hidden")?,
        experts: experts as u32,
    };
    let gemm = GPTOSS_GEMM_WARPS * GPTOSS_WARP_THREADS;
    let sort_cfg = Launch::linear([1, 1, 1], GPTOSS_MOE_SORT_THREADS);
    let gate_up_cfg = Launch::linear([groups.max_tiles, blocks(2 * inter, GPTOSS_GEMM_BM, OP)?, 1], gemm);
    let down_cfg = Launch::linear([groups.max_tiles, blocks(hidden, GPTOSS_GEMM_BM, OP)?, 1], gemm);
    let combine_cfg = Launch::linear([blocks(n * hidden, GPTOSS_COPY_THREADS, OP)?, 1, 1], GPTOSS_COPY_THREADS);
    // SAFETY: both weights match their formats, form an expert MLP of whole 16-byte rows
    // (`mma_rows_fit`) and have at most GPTOSS_MAX_EXPERTS experts (the sort's shared arrays);
    // x / ids / weights / residual are long enough (`checks::moe_experts`), the scratch holds
    // this batch (checked above: `order` its pairs, `tiles` max_tiles entries, the planes
    // pairs rows of act_stride, y pairs rows of hidden; `offsets` GPTOSS_MAX_EXPERTS + 1). The
    // sort range-checks the expert ids (device memory), leaves bad pairs out of every group and
    // reports them; the GEMMs touch only the pairs the sort placed, the combine skips the rest.
    unsafe {
        on.dev.launch(&grouping.sort, sort_cfg, &sort_args)?;
        on.dev.launch(f_gate_up, gate_up_cfg, &gate_up_args)?;
        on.dev.launch(f_down, down_cfg, &down_args)?;
        on.dev.launch(&grouping.combine, combine_cfg, &combine_args)
    }
}

#[cfg(all(test, feature = "cuda-sim"))]
mod tests {
    use super::*;
    use crate::args::{GPTOSS_MOE_NO_TILE, GPTOSS_STATUS_EXPERT_RANGE};
    use crate::sim::Sim;

    /// The sort's outputs: `order`, `offsets` and the tile table.
    type Groups = (Vec<u32>, Vec<u32>, Vec<u32>);

    /// What the sort must produce for `ids`: the valid pairs stably sorted by expert, where
    /// each expert's pairs start (and the total), and the tile table (expert, first place),
    /// no-tiles after the last.
    fn reference(ids: &[u32], experts: usize) -> Groups {
        let mut order: Vec<u32> = (0..ids.len() as u32).filter(|&p| (ids[p as usize] as usize) < experts).collect();
        order.sort_by_key(|&p| ids[p as usize]);
        let mut offsets = vec![0u32; experts + 1];
        for &p in &order {
            offsets[ids[p as usize] as usize + 1] += 1;
        }
        for e in 0..experts {
            offsets[e + 1] += offsets[e];
        }
        let mut table = vec![];
        for e in 0..experts {
            for first in (offsets[e]..offsets[e + 1]).step_by(GPTOSS_GEMM_BN as usize) {
                table.extend([e as u32, first]);
            }
        }
        while table.len() < 2 * tiles(ids.len(), experts) {
            table.extend([GPTOSS_MOE_NO_TILE, 0]);
        }
        (order, offsets, table)
    }

    fn upload(dev: &Sim, v: &[u32]) -> CudaBuffer<Sim> {
        let mut b = CudaBuffer::zeroed(dev, DType::U32, v.len().max(1)).unwrap();
        b.write(dev, 0, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        b
    }

    fn download(dev: &Sim, b: &CudaBuffer<Sim>, len: usize) -> Vec<u32> {
        let mut bytes = vec![0u8; 4 * len];
        b.read(dev, 0, &mut bytes).unwrap();
        bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// The sort's outputs for `ids` on the emulator with block and thread orders from `seed`,
    /// and the status word.
    fn sorted(ids: &[u32], experts: usize, seed: u64) -> (Groups, u32) {
        let dev = Sim::with_seed(seed);
        let grouping = Grouping::load(&dev).unwrap();
        let (pairs, max_tiles) = (ids.len(), tiles(ids.len(), experts));
        let valid = ids.iter().filter(|&&e| (e as usize) < experts).count();
        let ids_buf = upload(&dev, ids);
        // Poisoned, so a place the sort leaves unwritten shows.
        let [order, offsets, table] = [pairs, experts + 1, 2 * max_tiles].map(|n| upload(&dev, &vec![u32::MAX; n]));
        let status_word = upload(&dev, &[0]);
        let args = GptossMoeSortArgs {
            ids: ids_buf.ptr() as *const u32,
            groups: GptossMoeGroups {
                order: order.ptr() as *mut u32,
                offsets: offsets.ptr() as *mut u32,
                tiles: table.ptr() as *mut u32,
                max_tiles: max_tiles as u32,
                pad_: 0,
            },
            status: status_word.ptr() as *mut u32,
            pairs: pairs as u32,
            experts: experts as u32,
        };
        // SAFETY: ids holds `pairs` values, order `pairs` places, offsets experts + 1, the table
        // max_tiles entries of two words, status one word; experts ≤ GPTOSS_MAX_EXPERTS.
        unsafe { dev.launch(&grouping.sort, Launch::linear([1, 1, 1], GPTOSS_MOE_SORT_THREADS), &args).unwrap() };
        let got = (download(&dev, &order, valid), download(&dev, &offsets, experts + 1), download(&dev, &table, 2 * max_tiles));
        (got, download(&dev, &status_word, 1)[0])
    }

    /// The routing sort is a stable sort by expert (within an expert, ascending pair index,
    /// whatever the emulator's thread order), with the offsets and tile table the grouped GEMMs
    /// read; bad ids are left out and reported. Several 256-pair chunks, skewed and idle
    /// experts, the most experts the sort takes.
    #[test]
    fn the_routing_sort_is_a_stable_sort_by_expert() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |below: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as u32
        };
        let spread: Vec<u32> = (0..1000).map(|_| next(8)).collect();
        let skewed: Vec<u32> = (0..700).map(|p| if p % 5 == 0 { next(3) } else { 6 }).collect();
        let many: Vec<u32> = (0..600).map(|_| next(GPTOSS_MAX_EXPERTS)).collect();
        let mut bad = spread.clone();
        bad[3] = 8;
        bad[517] = 1 << 30;
        let cases = [(spread, 8), (skewed, 7), (many, GPTOSS_MAX_EXPERTS as usize), (bad, 8), (vec![], 4), (vec![2], 4)];
        for (ids, experts) in cases {
            let want = reference(&ids, experts);
            let bad_ids = ids.iter().any(|&e| e as usize >= experts);
            for seed in [1, 7] {
                let (got, status) = sorted(&ids, experts, seed);
                assert_eq!(got, want, "{} pairs over {experts} experts, seed {seed}", ids.len());
                assert_eq!(status == GPTOSS_STATUS_EXPERT_RANGE, bad_ids, "status {status}");
            }
        }
    }
}
