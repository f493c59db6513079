//! `gptoss bench`: tok/s, bytes per token, achieved GB/s and % of the bandwidth measured in the
//! same run, gpt-fast style; then where a decode step's time goes. With no arguments it runs
//! the embedded default: synthetic:20b on the best backend, a short run.

use std::path::PathBuf;
use std::time::Instant;

use gptoss::speculation::DraftSpec;
use gptoss::{Error, Result, RuntimeOptions, Session};
use gptoss_bench::compare::compare;
use gptoss_bench::machine::{describe, peak_rss_bytes, reset_peak_rss};
use gptoss_bench::peak::{DEFAULT_BYTES, cpu_read_gb_s};
use gptoss_bench::speculative::SpecRow;
use gptoss_bench::{Case, OpRow, Results, Row, measure, plot, table};
use gptoss_engine::{DType, SamplingParams};
use gptoss_kernels_cpu::Activations;
use gptoss_model_gpt_oss::accounting::{OpFloor, op_floor, token_bytes};
use gptoss_model_gpt_oss::{ContextOptions, LoadOptions, ModelSource, OpenedModel};

use super::args::{parse_activations, parse_weights};
use super::bench_offload::{Ladder, OffloadArgs};
use super::bench_serve;
use super::bench_speculative::{self, SpecJob};
use super::concurrency;
use super::progress::{bytes_bar, updater};

#[derive(clap::Args)]
pub struct Args {
    /// Models to run (repeatable): directories or synthetic:tiny|20b|120b[@SEED].
    #[arg(long = "model")]
    models: Vec<String>,
    /// auto, cpu, cuda or cuda-sim (the emulated device: a check that the CUDA kernels run, not a speed).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Prefill lengths to time (comma-separated), e.g. 512.
    #[arg(short = 'p', long = "prompt", value_delimiter = ',')]
    prompts: Vec<usize>,
    /// Tokens to decode and time.
    #[arg(short = 'n', long = "gen")]
    gen_tokens: Option<usize>,
    /// Context depths at which decode is measured (comma-separated), e.g. 0,4096.
    #[arg(long, value_delimiter = ',')]
    depth: Vec<usize>,
    #[arg(long)]
    repetitions: Option<usize>,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// What the CPU's matmuls of integer weights multiply, one run each (comma-separated):
    /// f32, int8. Default on the CPU: both, side by side.
    #[arg(long, value_delimiter = ',')]
    cpu_activations: Vec<String>,
    /// Tokens per forward pass during prefill.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the tables as markdown.
    #[arg(long)]
    markdown: bool,
    /// Write an SVG: decode tok/s vs depth, and the per-op share of a decode step.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Only measure the machine's peak bandwidth.
    #[arg(long)]
    peak_only: bool,
    /// Compare two result files (old, new) and print the ratio per row.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    compare: Vec<PathBuf>,
    /// With --concurrency: also time each op of a batched step at every level.
    #[arg(long)]
    profile: bool,
    /// Decode steps timed op by op for the breakdown (0 skips it).
    #[arg(long, default_value_t = 4)]
    profile_tokens: usize,
    /// Instead of the table: aggregate decode tok/s of this many sequences at once
    /// (comma-separated, e.g. 1,2,4,8), batched as the server decodes them against one forward
    /// per sequence (first model and weights only; -n steps, --repetitions rounds).
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// With --concurrency: measure `gptoss serve` from outside instead — that many streaming
    /// clients at once, each sending --repetitions requests of -p prompt tokens and -n output
    /// tokens in turn: aggregate tok/s, time to first token, time per output token. The server
    /// is started on 127.0.0.1 with the first model and a slot per client.
    #[arg(long)]
    serve: bool,
    /// With --serve: measure the OpenAI-compatible server listening at HOST:PORT instead of
    /// starting one (its --model name is sent as the request's model).
    #[arg(long, value_name = "HOST:PORT")]
    url: Option<String>,
    /// With --serve: the API key the server wants.
    #[arg(long)]
    api_key: Option<String>,
    /// Weights of attention and unembedding, one run each (comma-separated): native (as
    /// stored), or quantized while loading to int8, int4 or int4:GROUP.
    #[arg(long, value_delimiter = ',', default_value = "native")]
    weights: Vec<String>,
    /// The residency ladder (`--offload MODES --memory-budget SIZE`), see `bench_offload`.
    #[command(flatten)]
    offload: OffloadArgs,
    /// Speculative decoding rows at these k (comma-separated), e.g. 1,2,4,8: the oracle and
    /// random drafts on every model, then each --draft, alternating with plain decoding.
    #[arg(long, value_delimiter = ',')]
    speculate: Vec<usize>,
    /// Drafts for the speculative rows (comma-separated or repeated): ngram:N, self:FORM, or
    /// a model with the same tokenizer. Alone, they run at k = 4.
    #[arg(long, value_delimiter = ',')]
    draft: Vec<String>,
}

/// Defaults sized for about two minutes of a 2-core CPU machine on synthetic:20b, per
/// activation setting.
const CPU_DEFAULTS: (usize, usize, usize) = (64, 16, 2);

pub fn run(a: Args) -> Result<()> {
    if !a.offload.offload.is_empty() {
        let model = match a.models.as_slice() {
            [m] => m.as_str(),
            _ => return Err(Error::Usage("--offload runs one model: give exactly one --model DIR".into())),
        };
        let ladder = Ladder {
            model,
            prompt: a.prompts.first().copied().unwrap_or(32),
            decode: a.gen_tokens.unwrap_or(16),
            threads: a.threads,
            batch: a.batch,
            json: a.json.as_deref(),
            markdown: a.markdown,
        };
        return super::bench_offload::run(&ladder, &a.offload);
    }
    if !a.compare.is_empty() {
        let old = Results::read(&a.compare[0])?;
        let new = Results::read(&a.compare[1])?;
        print!("{}", compare(&old, &new));
        return Ok(());
    }
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let backend = a.backend.parse()?;
    // Options are checked before anything is measured.
    let models = if a.models.is_empty() { vec!["synthetic:20b".to_string()] } else { a.models.clone() };
    let sources = models.iter().map(|m| m.parse::<ModelSource>()).collect::<std::result::Result<Vec<_>, _>>()?;
    let weight_formats = a.weights.iter().map(|w| Ok((w.as_str(), parse_weights(w)?))).collect::<Result<Vec<_>>>()?;
    let settings = if a.cpu_activations.is_empty() {
        Activations::ALL.to_vec()
    } else {
        a.cpu_activations.iter().map(|s| parse_activations(s)).collect::<Result<Vec<_>>>()?
    };
    let drafts = a.draft.iter().map(|d| d.parse()).collect::<Result<Vec<DraftSpec>>>()?;
    let ks = match (a.speculate.as_slice(), drafts.is_empty()) {
        ([], true) => vec![],
        ([], false) => vec![4],
        (ks, _) if ks.contains(&0) => return Err(Error::Usage("--speculate: k must be at least 1".into())),
        (ks, _) => ks.to_vec(),
    };
    if a.serve || a.url.is_some() {
        return run_serve(&a, &models[0], threads);
    }
    if !a.concurrency.is_empty() {
        return run_concurrency(&a, &sources[0], threads, backend);
    }
    let machine = describe(env!("GPTOSS_VERSION"));
    eprintln!("measuring the read bandwidth of {threads} threads…");
    let peak = cpu_read_gb_s(threads, DEFAULT_BYTES, 5);
    // The measurement's buffer is gone; the memory figures must be the model's alone.
    reset_peak_rss();
    eprintln!("peak read bandwidth: {peak:.1} GB/s ({threads} threads, {} MiB read, best of 5)", DEFAULT_BYTES >> 20);
    if a.peak_only {
        if let Some(path) = &a.json {
            Results { machine, rows: vec![], ops: vec![], speculative: vec![] }.write(path)?;
        }
        println!("{peak:.2}");
        return Ok(());
    }

    let (p_default, n_default, reps_default) = CPU_DEFAULTS;
    let prompts = if a.prompts.is_empty() { vec![p_default] } else { a.prompts.clone() };
    let depths = if a.depth.is_empty() { vec![0] } else { a.depth.clone() };
    let gen_tokens = a.gen_tokens.unwrap_or(n_default);
    let repetitions = a.repetitions.unwrap_or(reps_default).max(1);

    let mut results = Results { machine, rows: vec![], ops: vec![], speculative: vec![] };
    let spec_job = SpecJob { drafts: &drafts, ks: &ks, prompt_tokens: prompts[0], gen_tokens, repetitions };
    for source in sources {
        let model = source.open()?;
        let cases: Vec<Case> = depths
            .iter()
            .flat_map(|&depth| prompts.iter().map(move |&p| Case { prompt_tokens: p, gen_tokens, depth, repetitions }))
            .collect();
        let context = cases.iter().map(Case::context_needed).max().unwrap_or(1).max(a.profile_tokens + 1);
        if context > model.config.max_position_embeddings {
            return Err(Error::Usage(format!("the cases need {context} positions; {source} has {}", model.config.max_position_embeddings)));
        }
        // One load per weight format and activation setting, one after the other (the
        // activations are a CPU setting: other backends run once per weight format).
        for &(weights, weight_only) in &weight_formats {
            let speculation = (!ks.is_empty()).then_some(&spec_job);
            let job = Job { source: &source, model: &model, weights: weights_label(weights, &model), cases: &cases, peak, speculation };
            for &activations in &settings {
                let opts = RuntimeOptions {
                    backend,
                    threads: Some(threads),
                    cpu_activations: activations,
                    load: LoadOptions { max_batch: a.batch, weights: weight_only, ..LoadOptions::default() },
                    context: ContextOptions { max_context: context, kv_dtype: DType::Bf16 },
                    contexts: 1,
                    cpu_experts: false,
                };
                if run_session(&mut results, &job, &opts, a.profile_tokens)? != "cpu" {
                    break;
                }
            }
        }
    }

    if a.markdown {
        print!("{}", table::markdown(&results));
    } else {
        print!("{}", table::text(&results));
    }
    if let Some(path) = &a.json {
        results.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.plot {
        std::fs::write(path, plot::svg(&results))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Defaults of `--concurrency`: decode steps per measurement, rounds.
const CONCURRENCY_DEFAULTS: (usize, usize) = (8, 3);

/// `--concurrency`: the levels checked, then `concurrency::run` on the first model.
fn run_concurrency(a: &Args, source: &ModelSource, threads: usize, backend: gptoss::BackendKind) -> Result<()> {
    if a.concurrency.contains(&0) {
        return Err(Error::Usage("--concurrency: every level must be at least 1 sequence".into()));
    }
    let plan = concurrency::Plan {
        levels: a.concurrency.clone(),
        steps: a.gen_tokens.unwrap_or(CONCURRENCY_DEFAULTS.0).max(1),
        rounds: a.repetitions.unwrap_or(CONCURRENCY_DEFAULTS.1).max(1),
        profile: a.profile,
    };
    let rows = a.concurrency.iter().copied().max().unwrap_or(1);
    let model = source.open()?;
    let opts = RuntimeOptions {
        backend,
        threads: Some(threads),
        cpu_activations: match a.cpu_activations.first() {
            Some(s) => parse_activations(s)?,
            None => Activations::default(),
        },
        load: LoadOptions {
            max_batch: a.batch.max(rows).max(concurrency::PROMPT),
            weights: parse_weights(&a.weights[0])?,
            ..LoadOptions::default()
        },
        context: ContextOptions { max_context: concurrency::PROMPT + plan.steps, kv_dtype: DType::Bf16 },
        contexts: rows,
        cpu_experts: false,
    };
    concurrency::run(&model, &source.to_string(), &opts, &plan)
}

/// Defaults of `--serve`: prompt tokens, output tokens, requests per client.
const SERVE_DEFAULTS: (usize, usize, usize) = (32, 32, 2);

/// `--serve`: the server at each `--concurrency` level (default 1, 2, 4, 8).
fn run_serve(a: &Args, model: &str, threads: usize) -> Result<()> {
    let levels = if a.concurrency.is_empty() { vec![1, 2, 4, 8] } else { a.concurrency.clone() };
    if levels.contains(&0) {
        return Err(Error::Usage("--concurrency: every level must be at least 1 client".into()));
    }
    let mut server_args: Vec<String> =
        ["--model", model, "--backend", &a.backend, "--threads", &threads.to_string()].into_iter().map(String::from).collect();
    server_args.extend(["--batch".into(), a.batch.to_string(), "--weights".into(), a.weights[0].clone()]);
    if let Some(act) = a.cpu_activations.first() {
        server_args.extend(["--cpu-activations".into(), act.clone()]);
    }
    let bench = bench_serve::ServeBench {
        levels: &levels,
        load: gptoss_bench::load::Load {
            model: model.to_owned(),
            prompt_tokens: a.prompts.first().copied().unwrap_or(SERVE_DEFAULTS.0).max(1),
            max_tokens: a.gen_tokens.unwrap_or(SERVE_DEFAULTS.1).max(1),
            requests_per_client: a.repetitions.unwrap_or(SERVE_DEFAULTS.2).max(1),
            timeout: std::time::Duration::from_secs(3600),
        },
        url: a.url.as_deref(),
        api_key: a.api_key.clone(),
        server_args,
        json: a.json.as_deref(),
    };
    bench_serve::run(&bench)
}

/// What one load of a model is benchmarked on.
struct Job<'a> {
    source: &'a ModelSource,
    model: &'a OpenedModel,
    /// The weights column.
    weights: String,
    cases: &'a [Case],
    /// The read bandwidth measured at the start, GB/s.
    peak: f64,
    /// Speculative decoding rows to add, if asked for.
    speculation: Option<&'a SpecJob<'a>>,
}

/// Loads the job's model with `opts`, runs every case and the per-op profile into `results`,
/// and returns the backend's name.
fn run_session(results: &mut Results, job: &Job, opts: &RuntimeOptions, profile_tokens: usize) -> Result<&'static str> {
    let Job { source, model, cases, peak, .. } = *job;
    // The memory figures must be this load's alone.
    reset_peak_rss();
    let bar = bytes_bar(&format!("loading {source}"));
    let start = Instant::now();
    let mut session = Session::load_with_progress(model, opts, &mut updater(&bar))?;
    let load_s = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let info = session.model.backend_info();
    let kv_mib = session.context.kv_cache_bytes() as f64 / (1u64 << 20) as f64;
    eprintln!("loaded {source} on {} ({}, {} threads) in {load_s:.1} s; KV cache {kv_mib:.1} MiB", info.name, info.device, info.threads);
    // A device with its own memory is measured against its own ceiling.
    let peak = match session.model.measure_peak_gb_s()? {
        Some(device) => {
            eprintln!("device copy bandwidth: {device:.1} GB/s");
            device
        }
        None => peak,
    };

    for case in cases {
        eprintln!("running pp{} tg{} @d{} × {}…", case.prompt_tokens, case.gen_tokens, case.depth, case.repetitions);
        let m = measure(session.lm()?.as_mut(), case)?;
        let bytes = token_bytes(
            session.model.config(),
            &session.formats()?,
            session.model.config().num_experts_per_tok as f64,
            case.depth + case.prompt_tokens.max(1),
        );
        let mut row = Row {
            model: source.to_string(),
            backend: info.name.to_string(),
            isa_or_device: info.device.clone(),
            weights: job.weights.clone(),
            threads: info.threads,
            prompt_tokens: case.prompt_tokens,
            gen_tokens: case.gen_tokens,
            depth: case.depth,
            pp_tok_s: m.pp_tok_s.map(|s| s.median),
            tg_tok_s: m.tg_tok_s.map(|s| s.median),
            ttft_ms: m.ttft_ms.map(|s| s.median),
            bytes_per_token: bytes.total(),
            gb_s: None,
            peak_gb_s: Some(peak),
            pct_of_peak: None,
            peak_rss_bytes: peak_rss_bytes(),
            pp_spread: m.pp_tok_s,
            tg_spread: m.tg_tok_s,
            ttft_spread: m.ttft_ms,
            bytes_by_family: bytes.families().iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            repetitions: case.repetitions,
            load_s,
            device_memory_bytes: session.model.device_memory().map(|(used, _)| used),
            kernels: session.model.kernels().iter().map(|k| k.to_string()).collect(),
        };
        row.derive_bandwidth();
        results.rows.push(row);
    }
    if profile_tokens > 0 {
        results.ops.extend(profile(&mut session, &format!("{source} {} ({})", job.weights, info.device), profile_tokens)?);
    }
    if let Some(spec) = job.speculation {
        let head = SpecRow::head(
            source.to_string(),
            info.name.to_string(),
            info.device.clone(),
            job.weights.clone(),
            info.threads,
            spec.prompt_tokens,
            spec.gen_tokens,
        );
        results.speculative.extend(bench_speculative::run(&mut session, model, opts, &head, spec)?);
    }
    Ok(info.name)
}

/// Times `tokens` decode steps op by op (after a one-token prompt) and returns each op site's
/// share, with the bytes it must read per token where the model's accounting knows them.
fn profile(session: &mut Session, model: &str, tokens: usize) -> Result<Vec<OpRow>> {
    let mut token = {
        let mut lm = session.lm()?;
        lm.rollback(0)?;
        lm.forward(&[0], 1)?;
        lm.sample(0, &SamplingParams::GREEDY, 0.0)?
    };
    session.model.set_profiling(true);
    {
        let mut lm = session.lm()?;
        for _ in 0..tokens {
            lm.forward(std::slice::from_ref(&token), 1)?;
            token = lm.sample(0, &SamplingParams::GREEDY, 0.0)?;
        }
    }
    session.model.set_profiling(false);
    let times = session.model.op_times();
    let formats = session.formats()?;
    let bytes = token_bytes(session.model.config(), &formats, session.model.config().num_experts_per_tok as f64, 1);
    let total: f64 = times.iter().map(|(_, t)| t.total.as_secs_f64()).sum();
    Ok(times
        .iter()
        .map(|(site, t)| {
            let OpFloor { name, bytes: floor } = op_floor(session.model.config(), &formats, &bytes, site);
            let ms = t.total.as_secs_f64() * 1e3 / tokens as f64;
            OpRow {
                model: model.to_string(),
                op: name.to_string(),
                calls_per_token: t.calls as f64 / tokens as f64,
                ms_per_token: ms,
                share_pct: 100.0 * t.total.as_secs_f64() / total,
                bytes_per_token: floor,
                gb_s: floor.map(|b| b / (ms / 1e3) / 1e9),
            }
        })
        .collect())
}

/// What the weights column says: the load-time conversion, else how the checkpoint stores
/// attention and unembedding.
fn weights_label(weights: &str, model: &OpenedModel) -> String {
    match model.config.quantization.weight_only() {
        Some(q) if weights == "native" => q.format.to_string(),
        _ => weights.to_string(),
    }
}
