//! Stamps the version string with the commit the binary was built from, when git knows it.

use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    let full = match commit {
        Some(c) if !c.is_empty() => format!("{version} ({c})"),
        _ => version.to_string(),
    };
    println!("cargo:rustc-env=GPTOSS_VERSION={full}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
