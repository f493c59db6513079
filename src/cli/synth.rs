//! `gptoss synth`: write a synthetic model directory, streaming (a chunk of one tensor in
//! memory at a time), after checking the disk has room for it.

use std::path::{Path, PathBuf};

use gptoss::{Error, Result};
use gptoss_engine::residency::ByteSize;
use gptoss_model_gpt_oss::residency::routing::RoutingProfile;
use gptoss_model_gpt_oss::synth_writer::{synthetic_bytes, write_synthetic};
use gptoss_model_gpt_oss::synthetic::Preset;

use super::progress::{bytes_bar, updater};

#[derive(clap::Args)]
pub struct Args {
    /// tiny, 20b or 120b, or fewer layers of 20b or 120b's shapes: 120b-L6, 20b-L4, …
    #[arg(long)]
    preset: String,
    /// The directory to write (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The router's profile: uniform (the synthetic default), skewed, or
    /// skewed&popularity=A&warm=W (see `synthetic:NAME?routing=…`).
    #[arg(long, default_value = "uniform")]
    routing: String,
}

pub fn run(a: Args) -> Result<()> {
    let preset = Preset::from_name(&a.preset).ok_or_else(|| {
        Error::Usage(format!("--preset {}: expected tiny, 20b, 120b, or 20b-LN / 120b-LN with fewer layers than the model", a.preset))
    })?;
    let routing = RoutingProfile::parse(&format!("routing={}", a.routing)).map_err(|e| Error::Usage(format!("--routing: {e}")))?;
    let needed = synthetic_bytes(preset);
    std::fs::create_dir_all(&a.out)?;
    let free = free_bytes(&a.out)?;
    eprintln!("synthetic:{} needs {} of disk; {} is free at {}", preset.name(), ByteSize(needed), ByteSize(free), a.out.display());
    if needed > free {
        return Err(Error::Usage(format!(
            "not enough disk space at {}: {} needed, {} free",
            a.out.display(),
            ByteSize(needed),
            ByteSize(free)
        )));
    }
    let bar = bytes_bar(&format!("writing {}", a.out.display()));
    write_synthetic(preset, a.seed, routing, &a.out, updater(&bar))?;
    bar.finish_and_clear();
    let query = routing.query().map(|q| format!("?{q}")).unwrap_or_default();
    eprintln!("wrote synthetic:{}{query} (seed {}) to {}", preset.name(), a.seed, a.out.display());
    Ok(())
}

/// Bytes free for an unprivileged writer on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path =
        std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| Error::Usage(format!("{}: a NUL in the path", dir.display())))?;
    // SAFETY: `statvfs` fills the zeroed struct for a valid NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}
