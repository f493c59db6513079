//! `gptoss bench --serve --concurrency 1,2,4,8,16`: the server measured from outside, as its
//! clients see it. The bench starts `gptoss serve` on 127.0.0.1 (a free port, `--parallel` =
//! the largest level, so every client has a slot) or uses a server already listening
//! (`--url HOST:PORT`, any OpenAI-compatible one), then runs each level's clients
//! (`gptoss_bench::load`): aggregate output tok/s, time to first token, time per output token
//! and the gaps between streamed chunks, p50 and p99.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gptoss::{Error, Result};
use gptoss_bench::load::{self, Level, Load};
use gptoss_bench::machine::describe;
use gptoss_bench::sse::Endpoint;
use serde_json::json;

/// What to run.
pub struct ServeBench<'a> {
    pub levels: &'a [usize],
    pub load: Load,
    /// Measure this server instead of starting one.
    pub url: Option<&'a str>,
    pub api_key: Option<String>,
    /// The model options of the started server (`--model …`, `--threads …`, …).
    pub server_args: Vec<String>,
    pub json: Option<&'a Path>,
}

pub fn run(b: &ServeBench) -> Result<()> {
    let (endpoint, mut server) = match b.url {
        Some(url) => (Endpoint { addr: address(url)?, api_key: b.api_key.clone() }, None),
        None => {
            let slots = b.levels.iter().copied().max().unwrap_or(1);
            let server = Server::start(&b.server_args, slots, b.load.prompt_tokens + b.load.max_tokens, b.api_key.as_deref())?;
            (Endpoint { addr: server.addr, api_key: b.api_key.clone() }, Some(server))
        }
    };
    let result = measure(&endpoint, b);
    if let Some(server) = &mut server {
        server.stop();
    }
    let levels = result?;
    println!(
        "{} at {}: {}-token prompts, {} tokens per request, {} requests per client, greedy",
        b.load.model, endpoint.addr, b.load.prompt_tokens, b.load.max_tokens, b.load.requests_per_client
    );
    println!();
    print!("{}", load::markdown(&levels));
    println!();
    println!("TTFT: sending to the first streamed text; TPOT: (last − first chunk) / (tokens − 1) per request; ITL: gaps between chunks.");
    if let Some(failure) = levels.iter().find_map(|l| l.failure.as_deref()) {
        println!("First failure: {failure}");
    }
    if let Some(path) = b.json {
        let doc = json!({
            "machine": describe(env!("GPTOSS_VERSION")),
            "server": b.url.map_or_else(|| json!({"started": b.server_args}), |u| json!({"url": u})),
            "load": {
                "model": b.load.model, "prompt_tokens": b.load.prompt_tokens, "max_tokens": b.load.max_tokens,
                "requests_per_client": b.load.requests_per_client,
            },
            "levels": levels,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).map_err(|e| Error::Usage(e.to_string()))? + "\n")?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// A warm-up request, then every level in turn.
fn measure(to: &Endpoint, b: &ServeBench) -> Result<Vec<Level>> {
    let warm = Load { max_tokens: 2, requests_per_client: 1, ..b.load.clone() };
    load::request(to, &warm, usize::MAX / 2)
        .map_err(|e| Error::Usage(format!("the server at {} did not answer a warm-up request: {e}", to.addr)))?;
    let mut levels = Vec::new();
    let mut first_id = 0;
    for &clients in b.levels {
        eprintln!("{clients} clients × {} requests…", b.load.requests_per_client);
        let level = load::level(to, &b.load, clients, first_id);
        eprintln!("  {:.2} output tok/s, TTFT p50 {:.0} ms, {} failed", level.output_tok_s, level.ttft_p50 * 1e3, level.failed);
        first_id += clients * b.load.requests_per_client;
        levels.push(level);
    }
    Ok(levels)
}

/// `HOST:PORT`, with or without `http://` and a trailing slash.
fn address(url: &str) -> Result<SocketAddr> {
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    if url.starts_with("https://") || hostport.contains('/') {
        return Err(Error::Usage(format!("--url {url}: give HOST:PORT of a plain-HTTP server (e.g. 127.0.0.1:8000)")));
    }
    hostport
        .to_socket_addrs()
        .map_err(|e| Error::Usage(format!("--url {url}: {e}")))?
        .next()
        .ok_or_else(|| Error::Usage(format!("--url {url}: no address")))
}

/// `gptoss serve` started by the bench; stopped (SIGTERM, then killed) by `stop` or on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(model_args: &[String], slots: usize, context: usize, api_key: Option<&str>) -> Result<Server> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(["--parallel", &slots.to_string(), "--queue", &slots.to_string(), "--context", &context.to_string()])
            .args(model_args)
            .env_remove("GPTOSS_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(key) = api_key {
            cmd.args(["--api-key", key]);
        }
        eprintln!("starting gptoss serve with {slots} slots of {context} tokens…");
        let mut child = cmd.spawn()?;
        let stderr = child.stderr.take().ok_or_else(|| Error::Usage("the server's stderr is not piped".into()))?;
        // Its log goes on to ours (the plan, the load's progress); the address is taken from it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
                eprintln!("  serve: {line}");
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let started = Instant::now();
        let mut server = Server { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(addr) => {
                    server.addr =
                        addr.parse().map_err(|_| Error::Usage(format!("the server printed an address that is not one: {addr}")))?;
                    return Ok(server);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = server.child.try_wait()? {
                        return Err(Error::Usage(format!("gptoss serve exited before listening ({status}); its log is above")));
                    }
                    if started.elapsed() > Duration::from_secs(3600) {
                        return Err(Error::Usage("gptoss serve did not listen within an hour".into()));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait()?;
                    return Err(Error::Usage(format!("gptoss serve exited before listening ({status}); its log is above")));
                }
            }
        }
    }

    /// SIGTERM (the server drains and exits), then a kill after 30 s.
    fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_host_and_port() {
        assert_eq!(address("127.0.0.1:8000").unwrap(), SocketAddr::from(([127, 0, 0, 1], 8000)));
        assert_eq!(address("http://127.0.0.1:9/").unwrap().port(), 9);
        for bad in ["https://127.0.0.1:1", "127.0.0.1:1/v1", "127.0.0.1", "127.0.0.1:port"] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }
}
