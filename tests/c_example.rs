//! The C example, compiled with the system C compiler against libgptoss.a and
//! `gptoss --print-link-flags`, generates tokens from synthetic:tiny; with a bad model path it
//! reports a status and a message. Under valgrind (when installed) it must be clean.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The profile directory this test was built in (target/release or target/debug).
fn profile_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds libgptoss.a (cargo test builds only the rlib) and the example; returns its path.
fn build_example() -> PathBuf {
    let release = profile_dir().ends_with("release");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--lib", "-p", "gptoss"]).current_dir(root());
    if release {
        cargo.arg("--release");
    }
    let out = cargo.output().unwrap();
    assert!(out.status.success(), "cargo build --lib: {}", String::from_utf8_lossy(&out.stderr));
    let lib = profile_dir().join("libgptoss.a");
    assert!(lib.exists(), "{} missing", lib.display());
    let flags = String::from_utf8(Command::new(env!("CARGO_BIN_EXE_gptoss")).arg("--print-link-flags").output().unwrap().stdout).unwrap();
    let exe = profile_dir().join("c-example-generate");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/c/generate.c"))
        .arg(&lib)
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    exe
}

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe).args(args).output().unwrap()
}

#[test]
fn the_c_example_generates_and_reports_errors() {
    let exe = build_example();
    let out = run(&exe, &["synthetic:tiny", "12"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let ids: Vec<u32> = stdout.trim().split(',').map(|t| t.parse().unwrap()).collect();
    // Random weights rarely sample a stop token; when they do, fewer tokens come.
    assert!(!ids.is_empty() && ids.len() <= 12, "{stdout}");
    assert!(stderr.contains(&format!("{} tokens after a", ids.len())) && stderr.contains("tok/s") && stderr.contains("text: "), "{stderr}");
    assert_eq!(run(&exe, &["synthetic:tiny", "12"]).stdout, out.stdout, "seeded generation repeats");

    // With a draft: as many tokens at most, and what the draft did.
    let spec = run(&exe, &["synthetic:tiny", "12", "self:int8"]);
    let stderr = String::from_utf8_lossy(&spec.stderr);
    assert!(spec.status.success(), "{stderr}");
    let n = String::from_utf8_lossy(&spec.stdout).trim().split(',').count();
    assert!(n <= 12 && stderr.contains("speculation: ") && stderr.contains("tokens per step"), "{stderr}");
    let bad = run(&exe, &["synthetic:tiny", "4", "ngram:0"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("ngram:0"), "{}", String::from_utf8_lossy(&bad.stderr));

    let bad = run(&exe, &["/no/such/model", "4"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("I/O error") && err.contains("/no/such/model"), "{err}");

    let valgrind = Command::new("valgrind").arg("--version").output();
    if valgrind.is_err() {
        eprintln!("valgrind is not installed: the memcheck run is skipped");
        return;
    }
    for args in [&["synthetic:tiny", "4"][..], &["/no/such/model", "4"], &["synthetic:tiny", "4", "self:native:top2"]] {
        let out = Command::new("valgrind")
            .args([
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "--show-leak-kinds=definite,indirect",
                "-q",
            ])
            .arg(&exe)
            .args(args)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(99), "valgrind {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
