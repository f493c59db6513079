//! The residency modes against each other: `none`, `mmap`, `layered` and `experts` (with room
//! for every expert, and with the smallest pool the plan accepts, where every token evicts
//! everything) give bit-identical logits through chunked prefill and token-by-token decode,
//! and the same greedy tokens, on the reference fixture and on a synthetic model with more
//! experts than the smallest pool holds (so a prefill chunk is cut into token groups). The
//! expert cache's hit counts equal the offline simulator's on the routing trace the same run
//! records; a checkpoint truncated while streaming fails the step with an error naming the file,
//! and once it is whole again the next step works; a deleted one keeps working from its open
//! descriptors; a budget below the minimum is refused naming both numbers.

use std::path::{Path, PathBuf};

use gptoss_engine::residency::Offload;
use gptoss_engine::residency::expert_cache::PolicyKind;
use gptoss_engine::residency::expert_cache::simulate::simulate;
use gptoss_engine::residency::expert_cache::trace::Trace;
use gptoss_engine::{CausalLm, DType, Logits, SamplingParams, prefill_chunks};
use gptoss_kernels_cpu::CpuBackend;
use gptoss_model_gpt_oss::config::LayerTypes;
use gptoss_model_gpt_oss::residency::StreamStats;
use gptoss_model_gpt_oss::residency::plan::ResidencyOptions;
use gptoss_model_gpt_oss::residency::routing::RoutingProfile;
use gptoss_model_gpt_oss::synth_writer::write_synthetic_config;
use gptoss_model_gpt_oss::synthetic::Preset;
use gptoss_model_gpt_oss::{ContextOptions, GptOss, LoadOptions, ModelSource};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/fixture")
}

/// A small synthetic model whose 32 experts per layer are more than the smallest pool (2 × 4
/// slots) holds, with a skewed router so that some experts repeat.
fn many_experts(dir: &Path) {
    let mut c = Preset::TINY.config();
    c.num_local_experts = 32;
    c.num_hidden_layers = 3;
    c.layer_types = LayerTypes::Listed((0..3).map(|l| c.layer_type(l)).collect());
    c.vocab_size = 1024;
    write_synthetic_config(&c, 5, RoutingProfile::SKEWED, dir, |_, _| {}).unwrap();
}

/// How one run was set up.
#[derive(Clone, Copy, Debug)]
struct Setup {
    offload: Offload,
    /// `None`: no budget; `Some(0)`: the smallest budget the mode accepts.
    budget: Option<u64>,
    policy: PolicyKind,
    /// The largest read of an expert's piece (0: the default).
    read_chunk: u64,
}

/// What a run produced: every logit's bits (each prefill position, then each decode step)
/// and the greedy tokens.
#[derive(Debug, PartialEq)]
struct Outputs {
    logits: Vec<u32>,
    tokens: Vec<u32>,
}

const PROMPT: [u32; 21] = [3, 17, 250, 9, 9, 401, 77, 3, 500, 12, 64, 65, 66, 1, 2, 300, 301, 9, 17, 3, 44];
const CHUNK: usize = 8;
const DECODE: usize = 12;

fn load(dir: &Path, s: Setup, trace: Option<&Path>) -> (GptOss<CpuBackend>, gptoss_model_gpt_oss::Context<gptoss_kernels_cpu::CpuBuffer>) {
    let opened = ModelSource::Dir(dir.to_path_buf()).open().unwrap();
    let residency =
        ResidencyOptions { offload: s.offload, policy: s.policy, io_threads: 2, read_chunk: s.read_chunk, ..ResidencyOptions::default() };
    let mut opts = LoadOptions { max_batch: CHUNK, weights: None, residency };
    if let Some(b) = s.budget {
        let plan = GptOss::plan_residency(&CpuBackend::new(Some(2)).unwrap(), &opened, &opts).unwrap();
        opts.residency.budget = Some(if b == 0 { plan.minimum() } else { b });
    }
    let mut model = GptOss::load(CpuBackend::new(Some(2)).unwrap(), &opened, opts).unwrap();
    if let Some(path) = trace {
        model.record_routing(path, "test").unwrap();
    }
    let ctx = model.new_context(ContextOptions { max_context: 64, kv_dtype: DType::F32 }).unwrap();
    (model, ctx)
}

/// Prefills `PROMPT` in chunks (every position's logits), then decodes greedily.
fn run_model(model: &mut GptOss<CpuBackend>, ctx: &mut gptoss_model_gpt_oss::Context<gptoss_kernels_cpu::CpuBuffer>) -> Outputs {
    let mut lm = model.session(ctx);
    let vocab = lm.vocab_size();
    let mut logits = Vec::new();
    let mut row = vec![0f32; vocab];
    prefill_chunks(&mut lm, &PROMPT, Logits::All, |lm, _, chunk| {
        for i in 0..chunk.len() {
            lm.logits(i, &mut row)?;
            logits.extend(row.iter().map(|v| v.to_bits()));
        }
        Ok::<(), gptoss_engine::EngineError>(())
    })
    .unwrap();
    let last = PROMPT.len() % CHUNK;
    let mut token = lm.sample(if last == 0 { CHUNK - 1 } else { last - 1 }, &SamplingParams::GREEDY, 0.0).unwrap();
    let mut tokens = vec![token];
    for _ in 0..DECODE {
        lm.forward(&[token], 1).unwrap();
        lm.logits(0, &mut row).unwrap();
        logits.extend(row.iter().map(|v| v.to_bits()));
        token = lm.sample(0, &SamplingParams::GREEDY, 0.0).unwrap();
        tokens.push(token);
    }
    Outputs { logits, tokens }
}

fn outputs(dir: &Path, s: Setup) -> (Outputs, StreamStats) {
    let (mut model, mut ctx) = load(dir, s, None);
    let out = run_model(&mut model, &mut ctx);
    (out, model.stream_stats())
}

fn setups() -> Vec<Setup> {
    let s = |offload, budget| Setup { offload, budget, policy: PolicyKind::Lru, read_chunk: 0 };
    vec![
        s(Offload::Mmap, None),
        s(Offload::Layered, None),
        // A budget for one layer buffer: no read-ahead.
        s(Offload::Layered, Some(0)),
        s(Offload::Experts, None),
        s(Offload::Experts, Some(0)),
        Setup { offload: Offload::Experts, budget: Some(0), policy: PolicyKind::Lfu, read_chunk: 0 },
        // Every piece read in chunks of an odd size: reads that start and end inside blocks,
        // several per piece, landing at their place in the slot.
        Setup { read_chunk: 1000, ..s(Offload::Experts, Some(0)) },
    ]
}

/// Checks every setup against `none`; returns the token groups each `experts` setup ran.
fn all_modes_agree(dir: &Path, layer_count: usize) -> Vec<u64> {
    let mut groups = Vec::new();
    let (want, _) = outputs(dir, Setup { offload: Offload::None, budget: None, policy: PolicyKind::Lru, read_chunk: 0 });
    for s in setups() {
        let (got, stats) = outputs(dir, s);
        assert_eq!(got.tokens, want.tokens, "{s:?}");
        assert!(got.logits == want.logits, "{s:?}: logits differ from the none mode's");
        match (s.offload, stats) {
            (Offload::Experts, StreamStats::Experts { cache, store }) => {
                assert!(cache.misses > 0 && store.bytes_read > 0, "{s:?}: {cache:?}");
                // Four pieces an expert, more reads when they are cut into chunks.
                let chunked = store.reads > 4 * store.experts_read;
                assert_eq!(chunked, s.read_chunk != 0, "{s:?}: {} reads for {} experts", store.reads, store.experts_read);
                groups.push(store.groups);
            }
            (Offload::Layered, StreamStats::Layered(l)) => {
                // Every layer of every step; with read-ahead one more (the next step's first).
                let steps = PROMPT.len().div_ceil(CHUNK) + DECODE;
                let layers = l.layers_read as usize;
                assert!(
                    layers == steps * layer_count || (s.budget.is_none() && layers == steps * layer_count + 1),
                    "{s:?}: {layers} layers read"
                );
            }
            (Offload::Mmap, StreamStats::None) => {}
            (mode, stats) => panic!("{mode}: {stats:?}"),
        }
    }
    groups
}

/// Forward steps of a run (prefill chunks, then decode steps) times layers: the token groups
/// when every step's experts fit the pool at once.
fn step_layers(layers: usize) -> u64 {
    ((PROMPT.len().div_ceil(CHUNK) + DECODE) * layers) as u64
}

#[test]
fn every_mode_gives_the_same_logits_on_the_fixture() {
    // 8 experts per layer: even the smallest pool holds a whole layer's.
    let groups = all_modes_agree(&fixture(), 4);
    assert!(groups.iter().all(|&g| g == step_layers(4)), "{groups:?}");
}

#[test]
fn every_mode_gives_the_same_logits_on_a_model_with_more_experts_than_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    many_experts(dir.path());
    let groups = all_modes_agree(dir.path(), 3);
    // With room for all 96 experts a step is one group per layer; with 8 slots the prefill
    // chunks are cut into several.
    assert_eq!(groups[0], step_layers(3));
    assert!(groups[1..].iter().all(|&g| g > step_layers(3)), "{groups:?}");
}

#[test]
fn with_the_smallest_pool_every_decoded_token_misses_every_expert() {
    let dir = tempfile::tempdir().unwrap();
    many_experts(dir.path());
    let (mut model, mut ctx) =
        load(dir.path(), Setup { offload: Offload::Experts, budget: Some(0), policy: PolicyKind::Lru, read_chunk: 0 }, None);
    assert_eq!(model.residency_plan().slots, 8);
    let mut lm = model.session(&mut ctx);
    prefill_chunks(&mut lm, &PROMPT, Logits::None, |_, _, _| Ok::<(), gptoss_engine::EngineError>(())).unwrap();
    let before = match model.stream_stats() {
        StreamStats::Experts { cache, .. } => cache,
        other => panic!("{other:?}"),
    };
    let mut lm = model.session(&mut ctx);
    for t in 0..DECODE as u32 {
        lm.forward(&[t], 1).unwrap();
    }
    let StreamStats::Experts { cache, .. } = model.stream_stats() else { panic!() };
    // 3 layers × 4 experts per token, 8 slots: each layer evicts the one before last.
    assert_eq!(cache.hits, before.hits, "{cache:?}");
    assert_eq!(cache.misses - before.misses, (DECODE * 3 * 4) as u64);
}

#[test]
fn the_simulator_gets_the_engine_s_hit_counts_from_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    many_experts(dir.path());
    let trace_path = dir.path().join("routing.trace");
    for policy in PolicyKind::ALL {
        let (mut model, mut ctx) =
            load(dir.path(), Setup { offload: Offload::Experts, budget: Some(0), policy, read_chunk: 0 }, Some(&trace_path));
        run_model(&mut model, &mut ctx);
        let StreamStats::Experts { cache, .. } = model.stream_stats() else { panic!() };
        let slots = model.residency_plan().slots;
        drop(model);
        let trace = Trace::read(&trace_path).unwrap();
        assert_eq!(trace.tokens(), PROMPT.len() + DECODE);
        assert_eq!(simulate(&trace, slots, policy).unwrap(), cache, "{policy}");
    }
}

#[test]
fn a_budget_below_the_minimum_is_refused_naming_both_numbers() {
    let opened = ModelSource::Dir(fixture()).open().unwrap();
    let residency = ResidencyOptions { offload: Offload::Experts, ..ResidencyOptions::default() };
    let mut opts = LoadOptions { max_batch: CHUNK, weights: None, residency };
    let plan = GptOss::plan_residency(&CpuBackend::new(Some(1)).unwrap(), &opened, &opts).unwrap();
    opts.residency.budget = Some(plan.minimum() - 1);
    let e = GptOss::load(CpuBackend::new(Some(1)).unwrap(), &opened, opts).err().unwrap().to_string();
    let mib = |b: u64| format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64);
    assert!(e.contains(&mib(plan.minimum() - 1)) && e.contains(&mib(plan.minimum())), "{e}");
    assert!(e.contains("8 expert slots"), "{e}");
    // A synthetic model cannot stream: it is generated in memory.
    let synthetic = ModelSource::Synthetic { preset: Preset::TINY, seed: 0, routing: RoutingProfile::Uniform }.open().unwrap();
    opts.residency.budget = None;
    let e = GptOss::load(CpuBackend::new(Some(1)).unwrap(), &synthetic, opts).err().unwrap().to_string();
    assert!(e.contains("gptoss synth"), "{e}");
}

/// Copies the fixture (or another model directory) so a test can damage it.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The shard holding layer 1's experts.
fn expert_shard(dir: &Path) -> PathBuf {
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    dir.join(index["weight_map"]["model.layers.1.mlp.experts.down_proj_blocks"].as_str().unwrap())
}

#[test]
fn a_checkpoint_truncated_while_streaming_fails_the_step_and_the_next_one_works() {
    for offload in [Offload::Experts, Offload::Layered] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture(), dir.path());
        let setup = Setup { offload, budget: Some(0), policy: PolicyKind::Lru, read_chunk: 0 };
        let (want, _) = outputs(dir.path(), setup);
        let (mut model, mut ctx) = load(dir.path(), setup, None);
        let shard = expert_shard(dir.path());
        let whole = std::fs::read(&shard).unwrap();
        std::fs::OpenOptions::new().write(true).open(&shard).unwrap().set_len(whole.len() as u64 / 3).unwrap();
        let mut lm = model.session(&mut ctx);
        let e = lm.forward(&PROMPT[..CHUNK], 0).unwrap_err().to_string();
        assert!(e.contains(&shard.display().to_string()) && e.contains("truncated"), "{offload}: {e}");
        assert_eq!(lm.position(), 0, "a failed step leaves the cache as it was");
        // The same file made whole again (same inode: the open descriptors see it).
        std::fs::write(&shard, &whole).unwrap();
        let got = run_model(&mut model, &mut ctx);
        assert_eq!(got, want, "{offload}: after the failure");
    }
}

#[test]
fn a_checkpoint_deleted_while_streaming_goes_on_from_its_open_files() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("m");
    std::fs::create_dir(&model_dir).unwrap();
    copy_dir(&fixture(), &model_dir);
    let setup = Setup { offload: Offload::Experts, budget: Some(0), policy: PolicyKind::Lru, read_chunk: 0 };
    let (want, _) = outputs(&model_dir, setup);
    let (mut model, mut ctx) = load(&model_dir, setup, None);
    std::fs::remove_dir_all(&model_dir).unwrap();
    assert_eq!(run_model(&mut model, &mut ctx), want);
}
