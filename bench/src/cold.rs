//! Cold starts under a memory limit, so that a model bigger than memory is measured against
//! the disk and not against the page cache: the page cache dropped before each run, and each run
//! in a fresh memory cgroup whose limit is the budget (the kernel then reclaims a memory-mapped
//! checkpoint's pages within it, as it would on a machine of that size). Both need root; what
//! could be done is reported with the results.

use std::io;
use std::path::{Path, PathBuf};

/// Writes dirty pages back and drops the clean page cache (root only).
pub fn drop_caches() -> io::Result<()> {
    // SAFETY: `sync` takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
}

/// A memory cgroup made for one run, removed when dropped.
pub struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    /// A new cgroup named `name` under this process's own memory cgroup (v1 or v2), limited
    /// to `limit` bytes of memory, page cache included.
    pub fn create(name: &str, limit: u64) -> io::Result<Self> {
        let (parent, v2) = own_memory_cgroup()?;
        let dir = parent.join(name);
        std::fs::create_dir(&dir)?;
        let cg = MemoryCgroup { dir, v2 };
        let file = if v2 { "memory.max" } else { "memory.limit_in_bytes" };
        std::fs::write(cg.dir.join(file), limit.to_string())?;
        Ok(cg)
    }

    /// The file a process's id is written to, to move it into the cgroup.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The most memory the cgroup has used, page cache included.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
        std::fs::read_to_string(self.dir.join(file)).ok()?.trim().parse().ok()
    }

    /// Times the kernel refused memory at the limit (and reclaimed instead).
    pub fn limit_hits(&self) -> Option<u64> {
        if self.v2 {
            let events = std::fs::read_to_string(self.dir.join("memory.events")).ok()?;
            events.lines().find_map(|l| l.strip_prefix("max ")).and_then(|v| v.trim().parse().ok())
        } else {
            std::fs::read_to_string(self.dir.join("memory.failcnt")).ok()?.trim().parse().ok()
        }
    }

    pub fn describe(&self) -> String {
        format!("memory cgroup {} ({})", self.dir.display(), if self.v2 { "v2" } else { "v1" })
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Empty once its processes have exited.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// This process's memory cgroup directory and whether it is cgroup v2.
fn own_memory_cgroup() -> io::Result<(PathBuf, bool)> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let root = Path::new("/sys/fs/cgroup/memory");
            if root.is_dir() {
                return Ok((root.join(rel), false));
            }
        }
        if controllers.is_empty() {
            let root = Path::new("/sys/fs/cgroup");
            let has_memory =
                std::fs::read_to_string(root.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
            if has_memory {
                return Ok((root.join(rel), true));
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, "no memory cgroup controller for this process"))
}
