//! `gptoss bench --concurrency 1,2,4,8`: aggregate decode tok/s of R sequences decoded together,
//! as the server's scheduler decodes its running slots — one batched forward per step
//! (`Model::forward_rows`) — against the same R sequences decoded one forward each, as the
//! server did before batching — with the time between a sequence's tokens (one step), p50 and
//! p99 over every step. Levels and both ways alternate round by round, so a noisy
//! machine's drift falls on all of them alike; every measurement decodes the same tokens from
//! the same prompts, and the two ways' tokens are compared. With `--profile`, the ms per step
//! of each op at each level follow.

use std::time::Instant;

use gptoss::{Batch, Context, Model, Result, RuntimeOptions};
use gptoss_bench::stats::{Spread, percentile};
use gptoss_engine::SamplingParams;
use gptoss_model_gpt_oss::OpenedModel;
use gptoss_model_gpt_oss::accounting::{op_floor, token_bytes};

/// Prompt tokens of each sequence (distinct per sequence).
pub const PROMPT: usize = 16;

/// What to measure.
pub struct Plan {
    pub levels: Vec<usize>,
    /// Decode steps timed per measurement.
    pub steps: usize,
    pub rounds: usize,
    /// After the rounds, one more batched measurement per level with per-op timing.
    pub profile: bool,
}

/// The sequences of a run: their contexts holding their prompts, and each one's first token.
struct Sequences {
    contexts: Vec<Context>,
    first: Vec<u32>,
}

/// One measurement: each sequence's greedy tokens, and every step's seconds.
type Measured = (Vec<Vec<u32>>, Vec<f64>);

pub fn run(model: &OpenedModel, name: &str, opts: &RuntimeOptions, plan: &Plan) -> Result<()> {
    let rows = plan.levels.iter().copied().max().unwrap_or(1);
    let mut model = Model::load(model, opts, &mut |_, _| {})?;
    let info = model.backend_info();
    eprintln!("loaded {name} on {} ({}, {} threads); prefilling {rows} prompts of {PROMPT} tokens…", info.name, info.device, info.threads);
    let mut batch = model.new_batch(rows)?;
    let mut seqs = Sequences { contexts: Vec::new(), first: Vec::new() };
    let vocab = model.config().vocab_size;
    for i in 0..rows {
        let mut ctx = model.new_context(opts.context)?;
        let prompt: Vec<u32> = (0..PROMPT).map(|j| ((i * 7919 + j * 104_729 + 13) % vocab) as u32).collect();
        let mut lm = model.session(&mut ctx)?;
        lm.forward(&prompt, 1)?;
        seqs.first.push(lm.sample(0, &SamplingParams::GREEDY, 0.0)?);
        drop(lm);
        seqs.contexts.push(ctx);
    }

    // Per level, [batched, one by one]: tok/s of every round, and the seconds of every step.
    let mut tok_s: Vec<[Vec<f64>; 2]> = plan.levels.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    let mut step_s: Vec<[Vec<f64>; 2]> = plan.levels.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    let mut identical = true;
    for round in 0..plan.rounds {
        eprintln!("round {} of {}…", round + 1, plan.rounds);
        for (l, &r) in plan.levels.iter().enumerate() {
            let (batched, steps_b) = decode_batched(&mut model, &mut batch, &mut seqs, r, plan.steps)?;
            let (alone, steps_a) = decode_one_by_one(&mut model, &mut seqs, r, plan.steps)?;
            identical &= batched == alone;
            for (way, steps) in [steps_b, steps_a].into_iter().enumerate() {
                tok_s[l][way].push((r * plan.steps) as f64 / steps.iter().sum::<f64>());
                step_s[l][way].extend(steps);
            }
        }
    }

    println!(
        "{name} on {} ({}, {} threads), {} decode steps after {PROMPT}-token prompts, {} rounds",
        info.name, info.device, info.threads, plan.steps, plan.rounds
    );
    println!();
    println!(
        "| sequences | batched tok/s | one by one tok/s | batched / one by one | batched / batched at 1 | step ms p50 / p99, batched | one by one |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let spread = |samples: &[f64]| Spread::of(samples).unwrap_or_default();
    let base = spread(&tok_s[0][0]).median;
    for ((&r, [b, a]), [sb, sa]) in plan.levels.iter().zip(&tok_s).zip(&step_s) {
        let (b, a) = (spread(b), spread(a));
        println!(
            "| {r} | {} | {} | {:.2}× | {:.2}× | {} | {} |",
            cell(&b),
            cell(&a),
            b.median / a.median,
            b.median / base,
            percentiles_ms(sb),
            percentiles_ms(sa)
        );
    }
    println!();
    println!(
        "Medians over the rounds ± half their range in % of the median. Greedy tokens of the two ways identical: {}.",
        if identical { "yes" } else { "NO" }
    );
    if plan.profile {
        profile(&mut model, &mut batch, &mut seqs, plan)?;
    }
    Ok(())
}

/// Where a batched step's time goes at each level: ms per step of each op, from one more
/// measurement per level with the backend's per-op timing on (the timing's synchronisation is
/// in these figures, not in the table above).
fn profile(model: &mut Model, batch: &mut Batch, seqs: &mut Sequences, plan: &Plan) -> Result<()> {
    let formats = model.formats(&seqs.contexts[0])?;
    let config = model.config().clone();
    let bytes = token_bytes(&config, &formats, config.num_experts_per_tok as f64, 1);
    // Per op name, ms per step at each level.
    let mut ops: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for (l, &r) in plan.levels.iter().enumerate() {
        model.set_profiling(true);
        decode_batched(model, batch, seqs, r, plan.steps)?;
        model.set_profiling(false);
        for (site, t) in model.op_times() {
            let name = op_floor(&config, &formats, &bytes, &site).name;
            let at = match ops.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    ops.push((name, vec![0.0; plan.levels.len()]));
                    ops.len() - 1
                }
            };
            ops[at].1[l] += t.total.as_secs_f64() * 1e3 / plan.steps as f64;
        }
    }
    println!();
    println!("ms per batched step, by op ({} profiled steps per level):", plan.steps);
    println!();
    let levels: Vec<String> = plan.levels.iter().map(|r| format!("{r} seq")).collect();
    println!("| op | {} |", levels.join(" | "));
    println!("|---|{}", "---:|".repeat(levels.len()));
    for (name, ms) in &ops {
        let cells: Vec<String> = ms.iter().map(|m| format!("{m:.1}")).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = (0..plan.levels.len()).map(|l| format!("{:.1}", ops.iter().map(|(_, ms)| ms[l]).sum::<f64>())).collect();
    println!("| total | {} |", totals.join(" | "));
    Ok(())
}

fn cell(s: &Spread) -> String {
    format!("{:.2} ± {:.1}%", s.median, s.half_range_pct())
}

/// "p50 / p99" of step times in seconds, in ms (nearest rank).
fn percentiles_ms(steps: &[f64]) -> String {
    let ms = |q: f64| percentile(steps, q).unwrap_or(f64::NAN) * 1e3;
    format!("{:.1} / {:.1}", ms(0.50), ms(0.99))
}

/// Empties sequences `0..r` back to their prompts and returns their first tokens.
fn rewind(model: &mut Model, seqs: &mut Sequences, r: usize) -> Result<Vec<u32>> {
    for ctx in &mut seqs.contexts[..r] {
        model.session(ctx)?.rollback(PROMPT)?;
    }
    Ok(seqs.first[..r].to_vec())
}

/// `steps` decode steps of sequences `0..r`, each step one forward over all of them: a
/// sequence's next token comes one step after its last.
fn decode_batched(model: &mut Model, batch: &mut Batch, seqs: &mut Sequences, r: usize, steps: usize) -> Result<Measured> {
    let mut next = rewind(model, seqs, r)?;
    let mut tokens = vec![Vec::with_capacity(steps); r];
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        let mut contexts: Vec<&mut Context> = seqs.contexts[..r].iter_mut().collect();
        model.forward_rows(batch, &mut contexts, &next)?;
        for (row, t) in next.iter_mut().enumerate() {
            *t = model.batch_sample(batch, row, &SamplingParams::GREEDY, 0.0)?;
            tokens[row].push(*t);
        }
        times.push(start.elapsed().as_secs_f64());
    }
    Ok((tokens, times))
}

/// `steps` decode steps of sequences `0..r`, each step one forward per sequence.
fn decode_one_by_one(model: &mut Model, seqs: &mut Sequences, r: usize, steps: usize) -> Result<Measured> {
    let mut next = rewind(model, seqs, r)?;
    let mut tokens = vec![Vec::with_capacity(steps); r];
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        for (i, ctx) in seqs.contexts[..r].iter_mut().enumerate() {
            let mut lm = model.session(ctx)?;
            lm.forward(std::slice::from_ref(&next[i]), 1)?;
            next[i] = lm.sample(0, &SamplingParams::GREEDY, 0.0)?;
            tokens[i].push(next[i]);
        }
        times.push(start.elapsed().as_secs_f64());
    }
    Ok((tokens, times))
}
