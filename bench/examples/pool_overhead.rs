//! What one parallel op costs beyond its work: the CPU backend's worker pool
//! (`gptoss_kernels_cpu::pool::Pool`) against rayon, used the ways an engine could use it.
//! A "step" is `--ops` small parallel loops in a row, as a decode step is a few hundred ops,
//! each split into `--tasks` tasks of `--floats` f32 additions; the work is the same for every
//! variant, so the differences are dispatch, wake-up and completion costs. A counting
//! allocator reports heap allocations per step (a decode step must allocate nothing).
//!
//! cargo run --release -p gptoss-bench --example pool_overhead -- [--threads N] [--ops N] [--tasks N] [--floats N] [--steps N] [--rounds N]
//!
//! Variants run in turn, `--rounds` times, `--steps` timed steps each, so a noisy neighbour
//! hits them alike; figures are medians over every timed step.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use gptoss_kernels_cpu::pool::Pool;
use rayon::prelude::*;

/// The system allocator, counting calls to `alloc` (on every thread).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Args {
    threads: usize,
    ops: usize,
    tasks: usize,
    floats: usize,
    steps: usize,
    rounds: usize,
}

fn args() -> Args {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut a = Args { threads, ops: 240, tasks: 32, floats: 256, steps: 100, rounds: 5 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{}: expected a number", pair[0]));
        match pair[0].as_str() {
            "--threads" => a.threads = v,
            "--ops" => a.ops = v,
            "--tasks" => a.tasks = v,
            "--floats" => a.floats = v,
            "--steps" => a.steps = v,
            "--rounds" => a.rounds = v,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Ways of running one step of `ops` parallel loops.
#[derive(Clone, Copy)]
enum Variant {
    /// Every task on the calling thread: the work alone.
    Sequential,
    /// `Pool::run` per op (what the CPU backend does).
    Pool,
    /// `ThreadPool::install` + `par_iter` per op: rayon as a drop-in for `Pool::run`.
    RayonInstall,
    /// `ThreadPool::scope` + one `spawn` per task, per op.
    RayonScope,
    /// One `install` per step, `par_iter` per op inside it: the whole step on rayon's workers.
    RayonStep,
}

const VARIANTS: [(Variant, &str); 5] = [
    (Variant::Sequential, "sequential (the work alone)"),
    (Variant::Pool, "gptoss Pool::run per op"),
    (Variant::RayonInstall, "rayon install + par_iter per op"),
    (Variant::RayonScope, "rayon scope + spawn per task"),
    (Variant::RayonStep, "rayon par_iter per op, one install per step"),
];

struct Setup {
    pool: Pool,
    rayon: rayon::ThreadPool,
    data: Vec<f32>,
    /// One slot per task, so the work has a visible result.
    sums: Vec<AtomicU64>,
    a: Args,
}

impl Setup {
    /// Task `i` of an op: a sum over its own `floats` values.
    fn task(&self, op: usize, i: usize) {
        let start = (op * 7 + i) * self.a.floats % (self.data.len() - self.a.floats);
        let s: f32 = self.data[start..start + self.a.floats].iter().sum();
        self.sums[i].store(black_box(s).to_bits() as u64, Ordering::Relaxed);
    }

    fn step(&self, v: Variant) {
        let tasks = self.a.tasks;
        match v {
            Variant::Sequential => (0..self.a.ops).for_each(|op| (0..tasks).for_each(|i| self.task(op, i))),
            Variant::Pool => (0..self.a.ops).for_each(|op| self.pool.run(tasks, &|i| self.task(op, i))),
            Variant::RayonInstall => {
                (0..self.a.ops).for_each(|op| self.rayon.install(|| (0..tasks).into_par_iter().for_each(|i| self.task(op, i))))
            }
            Variant::RayonScope => {
                (0..self.a.ops).for_each(|op| self.rayon.scope(|s| (0..tasks).for_each(|i| s.spawn(move |_| self.task(op, i)))))
            }
            Variant::RayonStep => {
                self.rayon.install(|| (0..self.a.ops).for_each(|op| (0..tasks).into_par_iter().for_each(|i| self.task(op, i))))
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn main() {
    let a = args();
    let pool = Pool::new(a.threads).expect("worker threads start");
    let rayon = rayon::ThreadPoolBuilder::new().num_threads(a.threads).build().expect("rayon's threads start");
    let data: Vec<f32> = (0..1 << 16).map(|i| (i % 97) as f32 * 0.01).collect();
    let sums = (0..a.tasks).map(|_| AtomicU64::new(0)).collect();
    let s = Setup { pool, rayon, data, sums, a };
    let a = &s.a;
    println!(
        "{} threads; a step is {} ops, each {} tasks of {} f32 additions; {} rounds × {} timed steps per variant",
        a.threads, a.ops, a.tasks, a.floats, a.rounds, a.steps
    );

    // Reserved up front: the measurement's own pushes must not count as the variants' allocations.
    let mut times: Vec<Vec<f64>> = (0..VARIANTS.len()).map(|_| Vec::with_capacity(a.rounds * a.steps)).collect();
    let mut allocs = vec![0usize; VARIANTS.len()];
    for _ in 0..a.rounds {
        for (k, &(v, _)) in VARIANTS.iter().enumerate() {
            // Warm-up: threads started and spinning as they would be mid-generation.
            (0..5).for_each(|_| s.step(v));
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for _ in 0..a.steps {
                let t = Instant::now();
                s.step(v);
                times[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
            allocs[k] += ALLOCATIONS.load(Ordering::Relaxed) - before;
        }
    }

    println!("| variant | µs per step | µs per op | time / sequential | allocations per step |");
    println!("|---|---:|---:|---:|---:|");
    let steps = (a.rounds * a.steps) as f64;
    let sequential = median(&mut times[0]);
    for (k, &(_, name)) in VARIANTS.iter().enumerate() {
        let step = median(&mut times[k]);
        let per_op = step / a.ops as f64;
        println!("| {name} | {step:.0} | {per_op:.2} | {:.2} | {:.2} |", step / sequential, allocs[k] as f64 / steps);
    }
}
