//! The scheduler: one thread owns the model and the N slots (a context each, allocated at
//! start-up). It admits queued sequences into free slots, runs one prefill chunk per iteration
//! (the oldest admitted sequence's next chunk) interleaved with a decode step of every running
//! sequence, and sends each sampled token to the sequence's client as an [`Event`].
//!
//! Independence: a sequence's tokens depend only on its own job. Its prompt is cut into chunks at
//! fixed places (the model's prefill chunk, as `gptoss generate` cuts it), its random numbers
//! come from its own seeded source, and its context is emptied when it is admitted. What runs
//! beside it changes when its steps happen, never what they compute.
//!
//! Freeing: a slot is freed when its sequence finishes, fails, or its client is gone (the event
//! channel closed, or the request cancelled it, e.g. on a stop string); closed clients are
//! noticed at the start of every iteration, so a disconnect frees its slot by the next step.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use gptoss::{Batch, Context, Model};
use gptoss_engine::{Rng, SamplingParams};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use super::step::{self, DecodeRow, Draw, Sampled, TokenLogprobs};

/// One sequence to generate: what the HTTP side sends the scheduler.
pub struct Job {
    /// Which choice of its request this is (`n` > 1 sends one job per choice).
    pub choice: usize,
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    /// Generation ends after one of these (it is sent as a token, then `Finished`).
    pub stop_tokens: Vec<u32>,
    pub sampling: SamplingParams,
    pub seed: u64,
    pub top_logprobs: Option<usize>,
    /// Tokens to emit instead of sampled ones (the test hook, `--script`); the sequence ends
    /// when they run out.
    pub script: Option<Arc<[u32]>>,
    /// Where its events go; closed when the client is gone.
    pub events: UnboundedSender<(usize, Event)>,
    /// Set by the request to stop this sequence (a stop string was found).
    pub cancel: Arc<AtomicBool>,
    /// The admission permit, held until the sequence leaves its slot (dropping it frees the
    /// place for another request).
    pub _permit: Option<OwnedSemaphorePermit>,
    /// When the request arrived (time to first token counts from here).
    pub received: Instant,
}

impl Job {
    fn abandoned(&self) -> bool {
        self.events.is_closed() || self.cancel.load(Ordering::Relaxed)
    }
}

/// What happens to a sequence, in order: tokens, then one `Finished` or `Failed`.
#[derive(Debug)]
pub enum Event {
    Token { id: u32, logprobs: Option<TokenLogprobs> },
    Finished(Finish),
    Failed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// A stop token was produced (the last `Token`).
    StopToken(u32),
    /// `max_tokens` were produced.
    Length,
    /// The scripted tokens ran out.
    ScriptEnd,
}

/// A sequence in a slot.
struct Sequence {
    job: Job,
    /// Prompt tokens already in the cache.
    prefilled: usize,
    /// The token sampled last, fed at the next decode step; `None` while prefilling.
    next: Option<u32>,
    generated: usize,
    rng: Rng,
    /// Admission order: the oldest prefills first.
    admitted: u64,
}

struct Slot {
    ctx: Context,
    seq: Option<Sequence>,
}

pub struct Scheduler {
    model: Model,
    /// The activations of a decode step over the running sequences.
    batch: Batch,
    slots: Vec<Slot>,
    waiting: VecDeque<Job>,
    inbox: Receiver<Job>,
    metrics: Arc<Metrics>,
    admitted: u64,
    /// A logits row on the host, for log-probabilities.
    scratch: Vec<f32>,
}

impl Scheduler {
    /// A scheduler over `contexts`, one slot each, decoding them in steps of `batch`'s rows.
    pub fn new(model: Model, batch: Batch, contexts: Vec<Context>, inbox: Receiver<Job>, metrics: Arc<Metrics>) -> Self {
        let slots = contexts.into_iter().map(|ctx| Slot { ctx, seq: None }).collect();
        Self { model, batch, slots, waiting: VecDeque::new(), inbox, metrics, admitted: 0, scratch: Vec::new() }
    }

    /// Runs until the inbox is closed and every sequence has finished.
    pub fn run(mut self) {
        while self.receive() {
            self.reap();
            self.admit();
            self.prefill_step();
            let running: Vec<usize> =
                (0..self.slots.len()).filter(|&i| self.slots[i].seq.as_ref().is_some_and(|s| s.next.is_some())).collect();
            if !running.is_empty() {
                self.decode_step(&running);
            }
            self.publish();
        }
    }

    fn busy(&self) -> bool {
        !self.waiting.is_empty() || self.slots.iter().any(|s| s.seq.is_some())
    }

    /// Takes new jobs: waits for one when idle. False once the inbox is closed and all is done.
    fn receive(&mut self) -> bool {
        if !self.busy() {
            self.publish();
            match self.inbox.recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(_) => return false,
            }
        }
        loop {
            match self.inbox.try_recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Drops queued and running sequences whose client is gone.
    fn reap(&mut self) {
        let before = self.waiting.len();
        self.waiting.retain(|job| !job.abandoned());
        let mut gone = before - self.waiting.len();
        for slot in &mut self.slots {
            if slot.seq.as_ref().is_some_and(|s| s.job.abandoned()) {
                slot.seq = None;
                gone += 1;
            }
        }
        self.metrics.cancelled(gone);
    }

    /// Moves queued jobs into free slots, oldest first.
    fn admit(&mut self) {
        for slot in self.slots.iter_mut().filter(|s| s.seq.is_none()) {
            let Some(job) = self.waiting.pop_front() else { break };
            if let Err(e) = step::reset(&mut self.model, &mut slot.ctx) {
                let _ = job.events.send((job.choice, Event::Failed(e.to_string())));
                continue;
            }
            self.metrics.queued(job.received.elapsed());
            self.admitted += 1;
            let rng = Rng::new(job.seed);
            slot.seq = Some(Sequence { job, prefilled: 0, next: None, generated: 0, rng, admitted: self.admitted });
        }
    }

    /// Runs the next prefill chunk of the oldest sequence still prefilling; its last chunk
    /// samples the first token.
    fn prefill_step(&mut self) {
        let Some(i) = (0..self.slots.len())
            .filter(|&i| self.slots[i].seq.as_ref().is_some_and(|s| s.next.is_none()))
            .min_by_key(|&i| self.slots[i].seq.as_ref().map_or(u64::MAX, |s| s.admitted))
        else {
            return;
        };
        let start = Instant::now();
        let Slot { ctx, seq } = &mut self.slots[i];
        let Some(seq) = seq.as_mut() else { return };
        let result = step::prefill_chunk(&mut self.model, ctx).and_then(|chunk| {
            let end = seq.job.prompt.len().min(seq.prefilled + chunk);
            let draw = (end == seq.job.prompt.len()).then(|| draw(seq));
            let sampled = step::prefill(&mut self.model, ctx, &seq.job.prompt[seq.prefilled..end], draw.as_ref(), &mut self.scratch)?;
            self.metrics.prefilled(end - seq.prefilled, start.elapsed());
            seq.prefilled = end;
            Ok(sampled)
        });
        match result {
            Ok(None) => {}
            Ok(Some(sampled)) => {
                self.metrics.first_token(seq.job.received.elapsed());
                self.emit(i, sampled);
            }
            Err(e) => self.fail(i, e.to_string()),
        }
    }

    /// One decode step: every running sequence (slots `running`) feeds its last token and
    /// samples its next, all in one forward ([`step::decode`]).
    fn decode_step(&mut self, running: &[usize]) {
        let start = Instant::now();
        let mut rows = Vec::with_capacity(running.len());
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let (true, Some(seq)) = (running.contains(&i), slot.seq.as_mut())
                && let Some(token) = seq.next
            {
                rows.push(DecodeRow { ctx: &mut slot.ctx, token, draw: draw(seq) });
            }
        }
        let results = step::decode(&mut self.model, &mut self.batch, &mut rows, &mut self.scratch);
        drop(rows);
        self.metrics.decoded(running.len(), start.elapsed());
        for (&i, result) in running.iter().zip(results) {
            match result {
                Ok(sampled) => self.emit(i, sampled),
                Err(e) => self.fail(i, e),
            }
        }
    }

    /// Sends a sampled (or scripted) token and decides whether the sequence goes on.
    fn emit(&mut self, i: usize, sampled: Sampled) {
        let Some(seq) = self.slots[i].seq.as_mut() else { return };
        let job = &seq.job;
        let (token, script_done) = match &job.script {
            Some(script) => match script.get(seq.generated) {
                Some(&t) => (t, seq.generated + 1 == script.len()),
                None => return self.end(i, Event::Finished(Finish::ScriptEnd)),
            },
            None => (sampled.token, false),
        };
        seq.generated += 1;
        self.metrics.generated(1);
        if job.events.send((job.choice, Event::Token { id: token, logprobs: sampled.logprobs })).is_err() {
            self.metrics.cancelled(1);
            self.slots[i].seq = None;
            return;
        }
        if job.stop_tokens.contains(&token) {
            self.end(i, Event::Finished(Finish::StopToken(token)));
        } else if seq.generated >= job.max_tokens {
            self.end(i, Event::Finished(Finish::Length));
        } else if script_done {
            self.end(i, Event::Finished(Finish::ScriptEnd));
        } else {
            seq.next = Some(token);
        }
    }

    fn fail(&mut self, i: usize, message: String) {
        if self.slots[i].seq.is_some() {
            self.metrics.failed(1);
            self.end(i, Event::Failed(message));
        }
    }

    /// Frees slot `i` and sends its sequence's last event. The slot and the admission place are
    /// free before the client hears the end, so a client that sends its next request at once
    /// finds them free.
    fn end(&mut self, i: usize, last: Event) {
        if let Some(seq) = self.slots[i].seq.take() {
            let Job { events, choice, _permit, .. } = seq.job;
            drop(_permit);
            self.publish();
            let _ = events.send((choice, last));
        }
    }

    fn publish(&self) {
        let running = self.slots.iter().filter(|s| s.seq.is_some()).count();
        self.metrics.occupancy(running, self.waiting.len());
    }
}

/// The next token's draw for `seq`: its parameters and its next uniform number.
fn draw(seq: &mut Sequence) -> Draw {
    Draw { sampling: seq.job.sampling, u: seq.rng.next_unit(), top_logprobs: seq.job.top_logprobs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gptoss::{BackendKind, RuntimeOptions};
    use gptoss_engine::DType;
    use gptoss_model_gpt_oss::{ContextOptions, LoadOptions, ModelSource};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    /// A scheduler over synthetic:tiny with `slots` slots and prefill chunks of 16 tokens.
    fn scheduler(slots: usize) -> (std::sync::mpsc::Sender<Job>, std::thread::JoinHandle<()>) {
        let model: ModelSource = "synthetic:tiny".parse().unwrap();
        let opts = RuntimeOptions {
            backend: BackendKind::Cpu,
            threads: Some(1),
            load: LoadOptions { max_batch: 16, ..Default::default() },
            context: ContextOptions { max_context: 512, kv_dtype: DType::Bf16 },
            ..Default::default()
        };
        let mut loaded = Model::load(&model.open().unwrap(), &opts, &mut |_, _| {}).unwrap();
        let contexts = (0..slots).map(|_| loaded.new_context(opts.context).unwrap()).collect();
        let batch = loaded.new_batch(slots).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Scheduler::new(loaded, batch, contexts, rx, Arc::new(Metrics::new(slots)));
        (tx, std::thread::spawn(move || s.run()))
    }

    fn job(choice: usize, prompt: Vec<u32>, max_tokens: usize, events: &UnboundedSender<(usize, Event)>) -> Job {
        Job {
            choice,
            prompt,
            max_tokens,
            stop_tokens: Vec::new(),
            sampling: SamplingParams::GREEDY,
            seed: 0,
            top_logprobs: None,
            script: None,
            events: events.clone(),
            cancel: Arc::new(AtomicBool::new(false)),
            _permit: None,
            received: Instant::now(),
        }
    }

    /// The next event, waiting for it.
    fn next(rx: &mut UnboundedReceiver<(usize, Event)>) -> (usize, Event) {
        rx.blocking_recv().expect("the scheduler sends events")
    }

    #[test]
    fn a_long_prefill_is_interleaved_with_decode_steps() {
        let (inbox, thread) = scheduler(2);
        let (events, mut rx) = unbounded_channel();
        inbox.send(job(0, vec![1, 2, 3], 40, &events)).unwrap();
        assert!(matches!(next(&mut rx), (0, Event::Token { .. })), "sequence 0 decodes");
        // 160 prompt tokens: ten chunks of 16, each followed by a decode step of sequence 0.
        inbox.send(job(1, (0..160).map(|i| 1000 + i).collect(), 1, &events)).unwrap();
        let mut decoded_before_first_token = 0;
        loop {
            match next(&mut rx) {
                (0, Event::Token { .. }) => decoded_before_first_token += 1,
                (1, Event::Token { .. }) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(decoded_before_first_token >= 8, "only {decoded_before_first_token} decode steps during a 10-chunk prefill");
        assert!(decoded_before_first_token <= 11, "{decoded_before_first_token} decode steps during a 10-chunk prefill");
        drop((inbox, events, rx));
        thread.join().unwrap();
    }

    #[test]
    fn sequences_leave_their_slots_when_the_client_is_gone() {
        let (inbox, thread) = scheduler(1);
        let (events, mut rx) = unbounded_channel();
        inbox.send(job(0, vec![1, 2, 3], 400, &events)).unwrap();
        next(&mut rx);
        let (later, mut later_rx) = unbounded_channel();
        inbox.send(job(0, vec![4, 5], 3, &later)).unwrap();
        drop((events, rx));
        // The only slot is freed for the queued sequence, which runs to its end.
        let mut tokens = 0;
        loop {
            match next(&mut later_rx) {
                (_, Event::Token { .. }) => tokens += 1,
                (_, Event::Finished(Finish::Length)) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(tokens, 3);
        drop((inbox, later, later_rx));
        thread.join().unwrap();
    }
}
