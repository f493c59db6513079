//! A persistent worker pool for the per-op parallel loops of the forward pass.
//!
//! Why not rayon here: a decode step runs a few hundred short ops, and each `install` or `join`
//! through rayon's injector costs microseconds and allocates now and then (its queues grow
//! in blocks), while the decode step must allocate nothing. An op publishes one job (a
//! borrowed closure and a task count), every thread — the caller included — claims task
//! indices from an atomic counter, and the caller returns once every task has run and no
//! worker still holds the job. rayon stays in use for bulk work at load time.
//!
//! Between jobs a worker first spins on the published generation for up to `SPIN`, then parks
//! on a condition variable. A decode step's ops follow each other within microseconds, and a
//! parked worker takes a futex wake and a reschedule to start (10–20 µs measured per op on a
//! 2-core VM, ~300 ops per 20b token); the spin keeps that off the step while costing an idle
//! server nothing after `SPIN`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker polls for the next job before it parks.
const SPIN: Duration = Duration::from_micros(300);

/// The closure of the job in progress, its lifetime erased. Valid while `Shared::job` is
/// `Some` or a worker is counted in `Shared::inside`; `run` waits for both to end.
#[derive(Clone, Copy)]
struct JobRef {
    f: *const (dyn Fn(usize) + Sync),
    tasks: usize,
    generation: u64,
}

// SAFETY: the pointee is `Sync`, and `run` keeps it alive while any worker can reach it.
unsafe impl Send for JobRef {}

struct Shared {
    job: Mutex<Slot>,
    wake: Condvar,
    /// Next task index to claim in the current job.
    next: AtomicUsize,
    /// Tasks of the current job that have finished.
    done: AtomicUsize,
    /// Workers holding a copy of the current job's pointer.
    inside: AtomicUsize,
    /// The generation of the latest job published (`Slot::generation`), polled while spinning.
    published: AtomicU64,
    /// Workers parked on `wake` (changed under the `job` lock).
    parked: AtomicUsize,
}

struct Slot {
    job: Option<JobRef>,
    generation: u64,
    shutdown: bool,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

thread_local! {
    /// The pool of the op running on this thread, set by `Pool::enter`.
    static CURRENT: Cell<*const Pool> = const { Cell::new(std::ptr::null()) };
}

impl Pool {
    /// A pool of `threads` threads in all: the caller plus `threads − 1` workers.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            job: Mutex::new(Slot { job: None, generation: 0, shutdown: false }),
            wake: Condvar::new(),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            inside: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            parked: AtomicUsize::new(0),
        });
        let mut workers = Vec::new();
        for i in 1..threads.max(1) {
            let s = Arc::clone(&shared);
            workers.push(std::thread::Builder::new().name(format!("gptoss-cpu-{i}")).spawn(move || worker(&s))?);
        }
        Ok(Pool { shared, workers })
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0) … f(tasks − 1)` across the pool and returns when all have run.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if tasks == 0 {
            return;
        }
        if tasks == 1 || self.workers.is_empty() {
            (0..tasks).for_each(f);
            return;
        }
        let s = &*self.shared;
        s.next.store(0, Ordering::Relaxed);
        s.done.store(0, Ordering::Relaxed);
        {
            let mut slot = s.job.lock().unwrap_or_else(|e| e.into_inner());
            slot.generation += 1;
            // SAFETY (lifetime erasure): the pointer is withdrawn below, and we wait for every
            // worker that copied it to leave, before `f`'s borrow ends.
            let f: *const (dyn Fn(usize) + Sync + '_) = f;
            let f: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
            slot.job = Some(JobRef { f, tasks, generation: slot.generation });
            s.published.store(slot.generation, Ordering::Release);
        }
        // A worker parks only under the lock, after seeing no new job: one that is not counted
        // here will find this job when it takes the lock.
        if s.parked.load(Ordering::Acquire) > 0 {
            s.wake.notify_all();
        }
        claim_tasks(s, f, tasks);
        while s.done.load(Ordering::Acquire) < tasks {
            std::hint::spin_loop();
        }
        s.job.lock().unwrap_or_else(|e| e.into_inner()).job = None;
        while s.inside.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
    }

    /// Makes this pool the one `for_each_chunk` uses on this thread while `f` runs.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let prev = CURRENT.with(|c| c.replace(self));
        let r = f();
        CURRENT.with(|c| c.set(prev));
        r
    }
}

fn claim_tasks(s: &Shared, f: &(dyn Fn(usize) + Sync), tasks: usize) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= tasks {
            return;
        }
        f(i);
        s.done.fetch_add(1, Ordering::Release);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Poll for the next job before taking the lock (and parking).
        let start = Instant::now();
        let mut polls = 0u32;
        while s.published.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(256) && start.elapsed() > SPIN {
                break;
            }
        }
        let job = {
            let mut slot = s.job.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if slot.shutdown {
                    return;
                }
                match slot.job {
                    Some(j) if j.generation != seen => {
                        // Counted before the lock is released, so `run` cannot miss us.
                        s.inside.fetch_add(1, Ordering::Acquire);
                        break j;
                    }
                    _ => {
                        s.parked.fetch_add(1, Ordering::AcqRel);
                        slot = s.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
                        s.parked.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
        };
        seen = job.generation;
        // SAFETY: `run` keeps the closure alive until `inside` drops back to zero.
        claim_tasks(s, unsafe { &*job.f }, job.tasks);
        s.inside.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            slot.shutdown = true;
            // Wakes the spinning workers too: they then take the lock and see the shutdown.
            slot.generation += 1;
            self.shared.published.store(slot.generation, Ordering::Release);
        }
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Splits `out` into chunks of `chunk` elements and runs `f(chunk_index, chunk)` for each, on
/// the pool entered on this thread (sequentially when there is none).
pub fn for_each_chunk<T: Send>(out: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let chunk = chunk.max(1);
    let n = out.len().div_ceil(chunk);
    let len = out.len();
    let base = SendPtr(out.as_mut_ptr());
    let task = |i: usize| {
        let start = i * chunk;
        let end = (start + chunk).min(len);
        // SAFETY: tasks cover disjoint ranges of `out`, which outlives the call.
        let part = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        f(i, part);
    };
    let pool = CURRENT.with(|c| c.get());
    if pool.is_null() {
        (0..n).for_each(task);
    } else {
        // SAFETY: `enter` set the pointer and clears it before the pool can be dropped.
        unsafe { &*pool }.run(n, &task);
    }
}

/// Runs `f(0) … f(tasks − 1)` on the pool entered on this thread (sequentially when there is
/// none).
pub fn for_each_task(tasks: usize, f: impl Fn(usize) + Sync) {
    let pool = CURRENT.with(|c| c.get());
    if pool.is_null() {
        (0..tasks).for_each(f);
    } else {
        // SAFETY: `enter` set the pointer and clears it before the pool can be dropped.
        unsafe { &*pool }.run(tasks, &f);
    }
}

/// Threads of the pool entered on this thread (1 when there is none).
pub fn current_threads() -> usize {
    let pool = CURRENT.with(|c| c.get());
    // SAFETY: as in `for_each_task`.
    if pool.is_null() { 1 } else { unsafe { &*pool }.threads() }
}

/// A raw pointer that tasks may share, for writing disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
// SAFETY: used only to hand disjoint parts of a buffer to tasks.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [1, 2, 3, 8] {
            let pool = Pool::new(threads).unwrap();
            for tasks in [0, 1, 2, 7, 100, 1000] {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                pool.run(tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{threads} threads, {tasks} tasks");
            }
        }
    }

    #[test]
    fn chunks_cover_the_slice() {
        let pool = Pool::new(3).unwrap();
        let mut v = vec![0usize; 1001];
        pool.enter(|| for_each_chunk(&mut v, 64, |c, part| part.iter_mut().enumerate().for_each(|(i, x)| *x = c * 64 + i)));
        assert!(v.iter().enumerate().all(|(i, &x)| i == x));
        // Without a pool the loop runs on the caller.
        let mut w = vec![0u8; 10];
        for_each_chunk(&mut w, 3, |_, p| p.fill(1));
        assert_eq!(w, vec![1; 10]);
    }

    #[test]
    fn many_small_jobs_in_a_row() {
        let pool = Pool::new(4).unwrap();
        let total = AtomicUsize::new(0);
        for _ in 0..20_000 {
            pool.run(3, &|_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(total.load(Ordering::Relaxed), 60_000);
    }
}
