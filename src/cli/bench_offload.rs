//! `gptoss bench --model DIR --memory-budget SIZE --offload none,mmap,layered,experts`: the
//! residency modes side by side in one run. Each mode runs in a process of its own, from a cold
//! start (the page cache dropped) and in a fresh memory cgroup limited to the budget (the page
//! cache counts in it, so a mapped checkpoint is paged against the disk, not against spare RAM);
//! the disk's random-read bandwidth for expert-sized chunks is measured before and after.
//! Per mode: prefill and decode tok/s, disk bytes per decoded token (`/proc/self/io`), the
//! expert cache's hit rate, the achieved read rate against the disk's, the time spent waiting
//! for reads, the peak RSS and the cgroup's peak.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gptoss::{BackendKind, Error, Result, RuntimeOptions, Session};
use gptoss_bench::cold::{MemoryCgroup, drop_caches};
use gptoss_bench::disk::random_read;
use gptoss_bench::machine::{describe, peak_rss_bytes};
use gptoss_bench::offload::{OffloadResults, OffloadRow};
use gptoss_bench::run::synthetic_tokens;
use gptoss_engine::residency::Offload;
use gptoss_engine::residency::expert_cache::{CacheStats, PolicyKind};
use gptoss_engine::{DType, Logits, SamplingParams, prefill};
use gptoss_model_gpt_oss::residency::StreamStats;
use gptoss_model_gpt_oss::residency::layout::Layout;
use gptoss_model_gpt_oss::residency::plan::{DEFAULT_IO_THREADS, ResidencyOptions};
use gptoss_model_gpt_oss::{ContextOptions, LoadOptions, ModelSource};

use super::args::parse_budget;

#[derive(clap::Args)]
pub struct OffloadArgs {
    /// Residency modes to run side by side (comma-separated): none, mmap, layered, experts.
    /// Each runs in its own process from a cold start under --memory-budget.
    #[arg(long, value_delimiter = ',')]
    pub offload: Vec<String>,
    /// The memory budget of every mode (and the cgroup's limit).
    #[arg(long)]
    pub memory_budget: Option<String>,
    /// Expert cache policies to run in the experts mode (comma-separated): lru, lfu.
    #[arg(long, value_delimiter = ',', default_value = "lru")]
    pub expert_cache: Vec<String>,
    /// Next-layer prefetch in the experts mode (comma-separated): off, on.
    #[arg(long, value_delimiter = ',', default_value = "off")]
    pub prefetch: Vec<String>,
    /// I/O threads (0: the default, 4); also the reads in flight when the disk is measured.
    #[arg(long, default_value_t = 0)]
    pub io_threads: usize,
    /// How each mode starts cold: cgroup (caches dropped and a fresh memory cgroup limited to
    /// the budget; needs root), drop-caches (no limit: mmap then measures spare RAM once warm),
    /// none.
    #[arg(long, default_value = "cgroup")]
    pub cold: String,
    /// Internal: run one mode in this process and write its row to FILE.
    #[arg(long, hide = true)]
    pub offload_child: Option<PathBuf>,
}

/// What the ladder runs besides the offload arguments.
pub struct Ladder<'a> {
    pub model: &'a str,
    pub prompt: usize,
    pub decode: usize,
    pub threads: Option<usize>,
    pub batch: usize,
    pub json: Option<&'a Path>,
    pub markdown: bool,
}

/// One run of the ladder: a mode with its policy and prefetch setting.
#[derive(Clone, Debug)]
struct Run {
    mode: Offload,
    policy: PolicyKind,
    prefetch: bool,
}

fn runs(a: &OffloadArgs) -> Result<Vec<Run>> {
    let usage = |flag: &str, e: String| Error::Usage(format!("{flag}: {e}"));
    let policies =
        a.expert_cache.iter().map(|p| p.parse::<PolicyKind>().map_err(|e| usage("--expert-cache", e))).collect::<Result<Vec<_>>>()?;
    let prefetch = a
        .prefetch
        .iter()
        .map(|p| match p.as_str() {
            "off" => Ok(false),
            "on" => Ok(true),
            other => Err(usage("--prefetch", format!("'{other}': expected off or on"))),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for m in &a.offload {
        let mode = m.parse::<Offload>().map_err(|e| usage("--offload", e))?;
        if matches!(mode, Offload::Auto | Offload::Host) {
            return Err(Error::Usage(
                "--offload in the bench names modes: none, mmap, layered, experts (the host mode needs a GPU: measure it with generate --backend cuda)".into(),
            ));
        }
        if mode == Offload::Experts {
            for &policy in &policies {
                out.extend(prefetch.iter().map(|&prefetch| Run { mode, policy, prefetch }));
            }
        } else {
            out.push(Run { mode, policy: PolicyKind::Lru, prefetch: false });
        }
    }
    Ok(out)
}

pub fn run(l: &Ladder, a: &OffloadArgs) -> Result<()> {
    let budget = parse_budget(a.memory_budget.as_deref().ok_or_else(|| Error::Usage("--offload needs --memory-budget".into()))?)?;
    if let Some(out) = &a.offload_child {
        let run = runs(a)?.into_iter().next().ok_or_else(|| Error::Usage("no mode to run".into()))?;
        let row = measure(l, a, &run, budget);
        std::fs::write(out, serde_json::to_string(&row).map_err(std::io::Error::other)?)?;
        return Ok(());
    }
    let source: ModelSource = l.model.parse()?;
    let opened = source.open()?;
    let ckpt = opened.checkpoint().ok_or_else(|| {
        Error::Usage(format!("{source} is generated in memory: the ladder streams from disk, write it with `gptoss synth`"))
    })?;
    let layout = Layout::new(&opened.config, ckpt)?;
    let io_threads = if a.io_threads == 0 { DEFAULT_IO_THREADS } else { a.io_threads };
    let cold = |what: &str| -> Result<()> {
        if a.cold != "none" {
            drop_caches()
                .map_err(|e| Error::Usage(format!("dropping the page cache before {what}: {e} (needs root; --cold none skips it)")))?;
        }
        Ok(())
    };
    let disk = |seed: u64| -> Result<_> {
        cold("the disk measurement")?;
        eprintln!("measuring random {:.1} MB reads of {}…", layout.expert_bytes() as f64 / 1e6, source);
        Ok(Some(random_read(&layout.shards, layout.expert_bytes(), 96, io_threads, seed)?))
    };
    let cold_start = match a.cold.as_str() {
        "cgroup" => "page cache dropped before each run; each run in a fresh memory cgroup limited to the budget".to_string(),
        "drop-caches" => "page cache dropped before each run; no memory limit beyond the budget's planning".to_string(),
        "none" => "no cold start: the page cache as it was".to_string(),
        other => return Err(Error::Usage(format!("--cold {other}: expected cgroup, drop-caches or none"))),
    };
    let mut results = OffloadResults {
        machine: describe(env!("GPTOSS_VERSION")),
        model: source.to_string(),
        budget_bytes: budget,
        cold_start,
        disk_before: disk(1)?,
        disk_after: None,
        rows: Vec::new(),
    };
    for (i, run) in runs(a)?.iter().enumerate() {
        cold(run.mode.name())?;
        let cgroup = match a.cold.as_str() {
            "cgroup" => Some(MemoryCgroup::create(&format!("gptoss-bench-{}-{i}", std::process::id()), budget).map_err(|e| {
                Error::Usage(format!(
                    "creating a memory cgroup: {e} (needs root and a memory controller; --cold drop-caches runs without one)"
                ))
            })?),
            _ => None,
        };
        eprintln!("{} ({}{})…", run.mode, run.policy, if run.prefetch { ", prefetch" } else { "" });
        let mut row = spawn(l, a, run, budget, cgroup.as_ref())?;
        row.cgroup_peak_bytes = cgroup.as_ref().and_then(MemoryCgroup::peak_bytes);
        results.rows.push(row);
    }
    results.disk_after = disk(2)?;
    if l.markdown {
        print!("{}", results.markdown());
    } else {
        print!("{}", results.text());
    }
    if let Some(path) = l.json {
        results.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `run` in a child process (inside `cgroup` when there is one) and reads its row back.
fn spawn(l: &Ladder, a: &OffloadArgs, run: &Run, budget: u64, cgroup: Option<&MemoryCgroup>) -> Result<OffloadRow> {
    let out = std::env::temp_dir().join(format!("gptoss-bench-row-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let exe = std::env::current_exe()?;
    let mut args: Vec<String> = vec![
        "bench".into(),
        "--backend".into(),
        "cpu".into(),
        "--model".into(),
        l.model.into(),
        "-p".into(),
        l.prompt.to_string(),
        "-n".into(),
        l.decode.to_string(),
        "--batch".into(),
        l.batch.to_string(),
        "--memory-budget".into(),
        budget.to_string(),
        "--offload".into(),
        run.mode.name().into(),
        "--expert-cache".into(),
        run.policy.name().into(),
        "--prefetch".into(),
        if run.prefetch { "on" } else { "off" }.into(),
        "--io-threads".into(),
        a.io_threads.to_string(),
        "--offload-child".into(),
        out.display().to_string(),
    ];
    if let Some(t) = l.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    // The child moves itself into the cgroup before it starts: everything it allocates counts.
    let status = match cgroup {
        Some(cg) => std::process::Command::new("sh")
            .args(["-c", "echo $$ > \"$1\" && shift && exec \"$@\"", "sh"])
            .arg(cg.procs())
            .arg(&exe)
            .args(&args)
            .status()?,
        None => std::process::Command::new(&exe).args(&args).status()?,
    };
    let failed = |why: String| OffloadRow {
        mode: run.mode.name().into(),
        policy: (run.mode == Offload::Experts).then(|| run.policy.name().into()),
        prefetch: run.prefetch,
        failed: Some(why),
        prompt_tokens: l.prompt,
        gen_tokens: l.decode,
        ..Default::default()
    };
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let why = match status.signal() {
            Some(9) => "killed (SIGKILL: out of memory at the limit)".to_string(),
            Some(s) => format!("killed by signal {s}"),
            None => format!("exited with {status}"),
        };
        return Ok(failed(why));
    }
    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).map_err(|e| Error::Usage(format!("the child's row: {e}")))
}

/// CPU time this process has used, user and system, every thread.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` fills the zeroed struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

/// Bytes this process has had read from storage (direct reads and page faults alike).
fn disk_read_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines().find_map(|l| l.strip_prefix("read_bytes:")).and_then(|v| v.trim().parse().ok())
}

/// The read-wait and copy times and the expert cache's counts so far.
fn waits(s: &StreamStats) -> (Duration, Duration, Option<CacheStats>) {
    match s {
        StreamStats::None => (Duration::ZERO, Duration::ZERO, None),
        StreamStats::Layered(l) => (l.wait, Duration::ZERO, None),
        StreamStats::Experts { store, cache } => (store.wait, store.copy, Some(*cache)),
        StreamStats::Host { cache, .. } => (Duration::ZERO, Duration::ZERO, Some(*cache)),
    }
}

/// One mode in this process: load, prefill, decode; a refused load is a row that says why.
fn measure(l: &Ladder, a: &OffloadArgs, run: &Run, budget: u64) -> OffloadRow {
    let mut row = OffloadRow {
        mode: run.mode.name().into(),
        policy: (run.mode == Offload::Experts).then(|| run.policy.name().into()),
        prefetch: run.prefetch,
        prompt_tokens: l.prompt,
        gen_tokens: l.decode,
        ..Default::default()
    };
    if let Err(e) = measure_into(&mut row, l, a, run, budget) {
        row.failed = Some(e.to_string());
    }
    row.peak_rss_bytes = peak_rss_bytes();
    row
}

fn measure_into(row: &mut OffloadRow, l: &Ladder, a: &OffloadArgs, run: &Run, budget: u64) -> Result<()> {
    let opened = l.model.parse::<ModelSource>()?.open()?;
    let residency = ResidencyOptions {
        budget: Some(budget),
        offload: run.mode,
        policy: run.policy,
        prefetch: run.prefetch,
        io_threads: a.io_threads,
        read_chunk: 0,
        reserved: 0,
    };
    let opts = RuntimeOptions {
        backend: BackendKind::Cpu,
        threads: l.threads,
        load: LoadOptions { max_batch: l.batch, weights: None, residency },
        context: ContextOptions { max_context: l.prompt + l.decode + 1, kv_dtype: DType::Bf16 },
        ..RuntimeOptions::default()
    };
    let start = Instant::now();
    let mut session = Session::load_observed(&opened, &opts, &mut |plan| eprintln!("{plan}"), &mut |_, _| {})?;
    row.load_s = Some(start.elapsed().as_secs_f64());
    let plan = session.model.residency_plan();
    (row.resident_bytes, row.slots, row.experts) = (Some(plan.resident), Some(plan.slots), Some(plan.experts));
    let vocab = opened.config.vocab_size;
    let prompt = synthetic_tokens(l.prompt.max(1), vocab, 2);
    let mut token = {
        let mut lm = session.lm()?;
        let start = Instant::now();
        prefill(lm.as_mut(), &prompt, Logits::Last)?;
        row.pp_tok_s = Some(prompt.len() as f64 / start.elapsed().as_secs_f64());
        lm.sample(0, &SamplingParams::GREEDY, 0.0)?
    };
    let (io0, (wait0, copy0, cache0), cpu0) = (disk_read_bytes(), waits(&session.model.stream_stats()), cpu_time());
    let start = Instant::now();
    {
        let mut lm = session.lm()?;
        for _ in 0..l.decode {
            lm.forward(std::slice::from_ref(&token), 1)?;
            token = lm.sample(0, &SamplingParams::GREEDY, 0.0)?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (io1, (wait1, copy1, cache1), cpu1) = (disk_read_bytes(), waits(&session.model.stream_stats()), cpu_time());
    let n = l.decode.max(1) as f64;
    row.tg_tok_s = Some(l.decode as f64 / secs);
    if let (Some(a), Some(b)) = (io0, io1) {
        row.disk_bytes_per_token = Some((b - a) as f64 / n);
        row.read_gb_s = Some((b - a) as f64 / secs / 1e9);
    }
    row.io_wait_ms_per_token = Some((wait1 - wait0).as_secs_f64() * 1e3 / n);
    row.copy_ms_per_token = Some((copy1 - copy0).as_secs_f64() * 1e3 / n);
    row.cpu_ms_per_token = Some((cpu1 - cpu0).as_secs_f64() * 1e3 / n);
    if let (Some(c0), Some(c1)) = (cache0, cache1) {
        let (hits, lookups) = (c1.hits - c0.hits, c1.lookups() - c0.lookups());
        row.hit_rate = (lookups > 0).then(|| hits as f64 / lookups as f64);
    }
    Ok(())
}
