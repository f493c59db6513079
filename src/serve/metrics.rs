//! Counters and gauges shared by the HTTP side and the scheduler, written out in the Prometheus
//! text format (`GET /metrics`). Everything is an atomic, so recording never blocks a step.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Seconds over which `tokens_per_second` gauges average.
const RATE_WINDOW: u64 = 10;

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 * 1e-6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Tokens per whole second since start, for the last `RATE_WINDOW` seconds.
struct Rate {
    start: Instant,
    buckets: Mutex<VecDeque<(u64, u64)>>,
}

impl Rate {
    fn new(start: Instant) -> Self {
        Self { start, buckets: Mutex::new(VecDeque::new()) }
    }

    fn add(&self, tokens: u64) {
        let now = self.start.elapsed().as_secs();
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match b.back_mut() {
            Some((second, n)) if *second == now => *n += tokens,
            _ => b.push_back((now, tokens)),
        }
        while b.front().is_some_and(|&(second, _)| second + RATE_WINDOW < now) {
            b.pop_front();
        }
    }

    /// Tokens per second over the last full `RATE_WINDOW` seconds (or since start).
    fn per_second(&self) -> f64 {
        let elapsed = self.start.elapsed().as_secs_f64();
        let now = elapsed as u64;
        let b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let tokens: u64 = b.iter().filter(|&&(second, _)| second + RATE_WINDOW > now && second < now).map(|&(_, n)| n).sum();
        let window = (RATE_WINDOW as f64).min(now as f64);
        if window > 0.0 { tokens as f64 / window } else { 0.0 }
    }
}

/// Which endpoint a request went to, for `gptoss_http_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Completions,
    Models,
    Tokenize,
    Health,
    Metrics,
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 8] = [
        Endpoint::ChatCompletions,
        Endpoint::Responses,
        Endpoint::Completions,
        Endpoint::Models,
        Endpoint::Tokenize,
        Endpoint::Health,
        Endpoint::Metrics,
        Endpoint::Other,
    ];

    pub fn of_path(path: &str) -> Self {
        match path {
            "/v1/chat/completions" => Endpoint::ChatCompletions,
            "/v1/responses" => Endpoint::Responses,
            "/v1/completions" => Endpoint::Completions,
            "/tokenize" => Endpoint::Tokenize,
            "/health" => Endpoint::Health,
            "/metrics" => Endpoint::Metrics,
            p if p == "/v1/models" || p.starts_with("/v1/models/") => Endpoint::Models,
            _ => Endpoint::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses => "responses",
            Endpoint::Completions => "completions",
            Endpoint::Models => "models",
            Endpoint::Tokenize => "tokenize",
            Endpoint::Health => "health",
            Endpoint::Metrics => "metrics",
            Endpoint::Other => "other",
        }
    }
}

/// Status classes counted per endpoint.
const CODES: [u16; 8] = [200, 400, 401, 404, 405, 429, 500, 503];

pub struct Metrics {
    start: Instant,
    slots: usize,
    /// [endpoint][code index], the last code index for anything else.
    http: [[AtomicU64; CODES.len() + 1]; Endpoint::ALL.len()],
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    prefill_seconds_us: AtomicU64,
    decode_steps: AtomicU64,
    decode_rows: AtomicU64,
    decode_seconds_us: AtomicU64,
    last_batch: AtomicUsize,
    running: AtomicUsize,
    waiting: AtomicUsize,
    cancelled: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    ttft: Histogram,
    queue_time: Histogram,
    decode_step: Histogram,
    rate: Rate,
}

impl Metrics {
    pub fn new(slots: usize) -> Self {
        let start = Instant::now();
        Self {
            start,
            slots,
            http: Default::default(),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            prefill_seconds_us: AtomicU64::new(0),
            decode_steps: AtomicU64::new(0),
            decode_rows: AtomicU64::new(0),
            decode_seconds_us: AtomicU64::new(0),
            last_batch: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            cancelled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            ttft: Histogram::default(),
            queue_time: Histogram::default(),
            decode_step: Histogram::default(),
            rate: Rate::new(start),
        }
    }

    pub fn http(&self, endpoint: Endpoint, code: u16) {
        let e = Endpoint::ALL.iter().position(|&x| x == endpoint).unwrap_or(Endpoint::ALL.len() - 1);
        let c = CODES.iter().position(|&x| x == code).unwrap_or(CODES.len());
        self.http[e][c].fetch_add(1, Relaxed);
    }

    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub fn prefilled(&self, tokens: usize, took: Duration) {
        self.prompt_tokens.fetch_add(tokens as u64, Relaxed);
        self.prefill_seconds_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    pub fn decoded(&self, rows: usize, took: Duration) {
        self.decode_steps.fetch_add(1, Relaxed);
        self.decode_rows.fetch_add(rows as u64, Relaxed);
        self.decode_seconds_us.fetch_add(took.as_micros() as u64, Relaxed);
        self.last_batch.store(rows, Relaxed);
        self.decode_step.observe(took);
    }

    pub fn generated(&self, tokens: usize) {
        self.generated_tokens.fetch_add(tokens as u64, Relaxed);
        self.rate.add(tokens as u64);
    }

    pub fn first_token(&self, since_arrival: Duration) {
        self.ttft.observe(since_arrival);
    }

    pub fn queued(&self, waited: Duration) {
        self.queue_time.observe(waited);
    }

    pub fn cancelled(&self, n: usize) {
        self.cancelled.fetch_add(n as u64, Relaxed);
    }

    pub fn failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Relaxed);
    }

    pub fn occupancy(&self, running: usize, waiting: usize) {
        self.running.store(running, Relaxed);
        self.waiting.store(waiting, Relaxed);
        if running == 0 {
            self.last_batch.store(0, Relaxed);
        }
    }

    /// The Prometheus text exposition of everything, plus the process's resident memory.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let mut counter = |name: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("gptoss_prompt_tokens_total", "Prompt tokens run through the model (prefill).", self.prompt_tokens.load(Relaxed) as f64);
        counter("gptoss_generated_tokens_total", "Tokens generated.", self.generated_tokens.load(Relaxed) as f64);
        counter("gptoss_prefill_seconds_total", "Time spent in prefill chunks.", self.prefill_seconds_us.load(Relaxed) as f64 * 1e-6);
        counter(
            "gptoss_decode_steps_total",
            "Decode steps (one forward for all running sequences).",
            self.decode_steps.load(Relaxed) as f64,
        );
        counter(
            "gptoss_decode_rows_total",
            "Sequences decoded, summed over steps (rows / steps = mean batch size).",
            self.decode_rows.load(Relaxed) as f64,
        );
        counter("gptoss_decode_seconds_total", "Time spent in decode steps.", self.decode_seconds_us.load(Relaxed) as f64 * 1e-6);
        counter(
            "gptoss_requests_rejected_total",
            "Requests answered 429 because every slot and queue place was taken.",
            self.rejected.load(Relaxed) as f64,
        );
        counter(
            "gptoss_sequences_cancelled_total",
            "Sequences stopped because the client went away or a stop string ended them.",
            self.cancelled.load(Relaxed) as f64,
        );
        counter("gptoss_sequences_failed_total", "Sequences ended by a model error.", self.failed.load(Relaxed) as f64);
        let mut gauge = |name: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge("gptoss_slots", "Sequence slots (--parallel), each with its own KV cache.", self.slots as f64);
        gauge("gptoss_sequences_running", "Sequences in a slot (prefilling or decoding).", self.running.load(Relaxed) as f64);
        gauge("gptoss_queue_depth", "Sequences waiting for a slot.", self.waiting.load(Relaxed) as f64);
        gauge("gptoss_batch_size", "Sequences in the last decode step (0 when idle).", self.last_batch.load(Relaxed) as f64);
        gauge("gptoss_generated_tokens_per_second", "Generated tokens per second over the last 10 s.", self.rate.per_second());
        gauge("gptoss_uptime_seconds", "Seconds since the server started.", self.start.elapsed().as_secs_f64());
        gauge("process_resident_memory_bytes", "Resident memory of the server process.", resident_bytes().unwrap_or(0) as f64);
        self.ttft.write(&mut out, "gptoss_time_to_first_token_seconds", "From a request's arrival to its first token.");
        self.queue_time.write(&mut out, "gptoss_queue_seconds", "From a request's arrival to its admission into a slot.");
        self.decode_step.write(&mut out, "gptoss_decode_step_seconds", "Duration of a decode step.");
        let _ = writeln!(
            out,
            "# HELP gptoss_http_requests_total HTTP requests by endpoint and status.\n# TYPE gptoss_http_requests_total counter"
        );
        for (e, row) in Endpoint::ALL.iter().zip(&self.http) {
            for (i, count) in row.iter().enumerate() {
                let n = count.load(Relaxed);
                if n > 0 {
                    let code = CODES.get(i).map_or("other".to_owned(), u16::to_string);
                    let _ = writeln!(out, "gptoss_http_requests_total{{endpoint=\"{}\",code=\"{code}\"}} {n}", e.label());
                }
            }
        }
        out
    }
}

/// Resident set size from /proc (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_has_every_family_once() {
        let m = Metrics::new(4);
        m.http(Endpoint::ChatCompletions, 200);
        m.http(Endpoint::of_path("/v1/models/x"), 404);
        m.decoded(3, Duration::from_millis(20));
        m.generated(3);
        m.first_token(Duration::from_millis(70));
        let text = m.render();
        for line in [
            "gptoss_slots 4",
            "gptoss_batch_size 3",
            "gptoss_generated_tokens_total 3",
            "gptoss_http_requests_total{endpoint=\"chat_completions\",code=\"200\"} 1",
            "gptoss_http_requests_total{endpoint=\"models\",code=\"404\"} 1",
            "gptoss_time_to_first_token_seconds_bucket{le=\"0.1\"} 1",
            "gptoss_time_to_first_token_seconds_bucket{le=\"0.05\"} 0",
            "gptoss_time_to_first_token_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, helps);
        assert!(text.lines().filter(|l| !l.starts_with('#')).all(|l| l.rsplit(' ').next().unwrap().parse::<f64>().is_ok()));
    }
}
