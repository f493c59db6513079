//! Builds the kernels of `cuda/*.cu` for the features that are on; does nothing otherwise.
//!
//! Both features: the kernel argument structs of `cuda/args.h` mirrored into Rust by bindgen.
//! `cuda`: per kernel file, nvcc's fatbin with SASS for sm_80, sm_86, sm_89, sm_90a and
//! compute_90 PTX (embedded in the crate), the compute_90 PTX as text for readers, and ptxas's
//! `-v` report; the build fails on any register spill to local memory. Everything lands in
//! `$OUT_DIR/cuda/`; the crate exposes that path as `ARTIFACTS` and prints it once per build.
//! `cuda-sim`: the same files compiled as C++ for the host with the emulator (`sim/`): each
//! `.cu` preprocessed to find its kernels (every `extern "C"` function), then wrapped in a
//! generated file that includes it and lists them, all linked as one static library.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
    common::bindings();
    #[cfg(feature = "cuda")]
    kernels::build();
    #[cfg(feature = "cuda-sim")]
    sim::build();
}

/// What both builds need: the kernel files and the argument structs.
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
mod common {
    use std::env;
    use std::fs;
    use std::path::{Path, PathBuf};

    pub fn manifest() -> PathBuf {
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
    }

    /// `$OUT_DIR/<sub>`, created.
    pub fn out(sub: &str) -> PathBuf {
        let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(sub);
        fs::create_dir_all(&out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
        out
    }

    /// The `.cu` files of `dir`, sorted; every `.cu`, `.cuh` and `.h` there reruns the build.
    pub fn units(dir: &Path) -> Vec<PathBuf> {
        let mut units = Vec::new();
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
            let path = entry.expect("readable directory entry").path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("cu") => units.push(path.clone()),
                Some("cuh" | "h") => {}
                _ => continue,
            }
            println!("cargo::rerun-if-changed={}", path.display());
        }
        units.sort();
        units
    }

    pub fn stem(unit: &Path) -> String {
        unit.file_stem().and_then(|s| s.to_str()).expect("UTF-8 kernel file names").to_string()
    }

    /// bindgen over `args.h` into `$OUT_DIR/cuda/args.rs`. libclang comes from `LIBCLANG_PATH`
    /// or the system (`scripts/test` finds or installs one).
    pub fn bindings() {
        for var in ["LIBCLANG_PATH", "BINDGEN_EXTRA_CLANG_ARGS"] {
            println!("cargo::rerun-if-env-changed={var}");
        }
        let header = manifest().join("cuda").join("args.h");
        println!("cargo::rerun-if-changed={}", header.display());
        let bindings = bindgen::Builder::default()
            .header(header.to_string_lossy())
            .clang_arg("-std=c11")
            .allowlist_type("Gptoss.*")
            .allowlist_var("GPTOSS_.*")
            .derive_default(true)
            .derive_debug(true)
            .generate()
            .unwrap_or_else(|e| {
                panic!(
                    "bindgen on {}: {e} (it needs libclang: run `scripts/test`, which finds or installs it, or set LIBCLANG_PATH)",
                    header.display()
                )
            });
        bindings.write_to_file(out("cuda").join("args.rs")).expect("writable OUT_DIR");
    }
}

/// The emulated build: the kernels as C++ for the host, with the emulator.
#[cfg(feature = "cuda-sim")]
mod sim {
    use std::fmt::Write as _;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::common::{manifest, out, stem, units};

    /// Flags of every emulated unit: the emulator's CUDA header first, every operation rounded
    /// as written (no contraction into FMAs the source does not ask for), no type-based alias
    /// analysis (kernels reinterpret bytes as vectors, as CUDA code does).
    fn configure(b: &mut cc::Build, root: &Path) {
        b.cpp(true)
            .std("c++17")
            .opt_level(2)
            .include(root.join("sim"))
            .include(root.join("sim").join("include"))
            .include(root.join("cuda"))
            .flag("-ffp-contract=off")
            .flag("-fno-strict-aliasing")
            .flag("-ftls-model=initial-exec")
            .flag("-Wno-unknown-pragmas")
            .flag("-Wno-unused-parameter")
            .warnings(true);
    }

    /// The names of the kernels `unit` defines: its `__global__` functions once preprocessed
    /// (macros that define kernels expanded), found through a marker `__global__` becomes.
    fn kernels(unit: &Path, root: &Path) -> Vec<String> {
        const MARKER: &str = "gptoss_sim_kernel_marker";
        let compiler = cc::Build::new().cpp(true).get_compiler();
        let output = Command::new(compiler.path())
            .args(["-E", "-P", "-x", "c++", "-std=c++17", "-include", "gptoss_sim.h"])
            .arg(format!("-D__global__={MARKER}"))
            .arg("-I")
            .arg(root.join("sim").join("include"))
            .arg("-I")
            .arg(root.join("cuda"))
            .arg(unit)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the C++ preprocessor on {}: {e}", unit.display()));
        if !output.status.success() {
            panic!("preprocessing {} failed:\n{}", unit.display(), String::from_utf8_lossy(&output.stderr));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let mut names = Vec::new();
        for part in text.split(MARKER).skip(1) {
            let head = part.split('(').next().unwrap_or_default();
            if let Some(name) = head.split_whitespace().last()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
        if names.is_empty() {
            panic!("{} defines no kernel (no __global__ function)", unit.display());
        }
        names
    }

    /// The generated file that compiles `unit` and lists its kernels as module `name`.
    fn wrapper(unit: &Path, name: &str, kernels: &[String], dir: &Path) -> PathBuf {
        let mut s = format!("#include \"{}\"\n#include \"runtime.h\"\n\nstatic const gptoss_sim::Kernel kernels[] = {{\n", unit.display());
        for k in kernels {
            let _ = writeln!(s, "    GPTOSS_SIM_KERNEL({k}),");
        }
        let _ = writeln!(
            s,
            "}};\n\nextern \"C\" const gptoss_sim::Module gptoss_sim_module_{name} = {{\"{name}\", kernels, sizeof kernels / sizeof *kernels}};"
        );
        let path = dir.join(format!("{name}.cpp"));
        fs::write(&path, s).expect("writable OUT_DIR");
        path
    }

    pub fn build() {
        let root = manifest();
        let dir = out("sim");
        let sim = root.join("sim");
        for f in ["runtime.cpp", "runtime.h", "selftest.cu", "include/gptoss_sim.h", "include/cuda_bf16.h", "include/cuda_fp16.h"] {
            println!("cargo::rerun-if-changed={}", sim.join(f).display());
        }
        // The kernel files, and the emulator's own test kernels (sim/selftest.cu).
        let mut modules: Vec<(String, PathBuf)> = units(&root.join("cuda")).into_iter().map(|u| (stem(&u), u)).collect();
        modules.push(("selftest".into(), sim.join("selftest.cu")));
        let mut b = cc::Build::new();
        configure(&mut b, &root);
        b.flag("-include").flag("gptoss_sim.h");
        let mut table = String::from("#include \"runtime.h\"\n\n");
        for (name, unit) in &modules {
            b.file(wrapper(unit, name, &kernels(unit, &root), &dir));
            let _ = writeln!(table, "extern \"C\" const gptoss_sim::Module gptoss_sim_module_{name};");
        }
        table.push_str("\nextern \"C\" const gptoss_sim::Module *const gptoss_sim_modules[] = {\n");
        for (name, _) in &modules {
            let _ = writeln!(table, "    &gptoss_sim_module_{name},");
        }
        table.push_str("    nullptr,\n};\n");
        let modules_cpp = dir.join("modules.cpp");
        fs::write(&modules_cpp, table).expect("writable OUT_DIR");
        b.file(modules_cpp).file(sim.join("runtime.cpp"));
        b.compile("gptoss_cuda_sim");
    }
}

/// Everything that needs nvcc, compiled only with the `cuda` feature.
#[cfg(feature = "cuda")]
mod kernels {
    use std::env;
    use std::fmt::Write as _;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::common::{manifest, out, units};

    /// SASS targets, then the PTX the driver can JIT for newer GPUs.
    const GENCODE: [&str; 5] = [
        "arch=compute_80,code=sm_80",
        "arch=compute_86,code=sm_86",
        "arch=compute_89,code=sm_89",
        "arch=compute_90a,code=sm_90a",
        "arch=compute_90,code=compute_90",
    ];

    const HOW_TO_GET_NVCC: &str = "nvcc (CUDA 13.0) was not found. Set NVCC=/path/to/nvcc or CUDA_HOME, put nvcc on PATH, or install it \
from PyPI into the workspace (found automatically there):
    python3 -m venv .venv-cuda && .venv-cuda/bin/pip install nvidia-cuda-nvcc==13.0.88 'nvidia-nvvm==13.0.*' \
nvidia-cuda-crt==13.0.88 'nvidia-cuda-runtime==13.0.*' 'nvidia-cuda-cccl==13.0.*'
(pin 13.0: PTX from a newer nvcc does not load on CUDA 13.0 drivers).";

    /// `NVCC`, then `$CUDA_HOME/bin/nvcc` / `$CUDA_PATH/bin/nvcc`, then `PATH`, then the
    /// workspace's PyPI venv (`.venv-cuda`).
    fn find_nvcc(manifest: &Path) -> Option<PathBuf> {
        if let Some(p) = env::var_os("NVCC") {
            return Some(PathBuf::from(p));
        }
        for var in ["CUDA_HOME", "CUDA_PATH"] {
            if let Some(root) = env::var_os(var) {
                let p = PathBuf::from(root).join("bin").join("nvcc");
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        if let Some(path) = env::var_os("PATH")
            && let Some(p) = env::split_paths(&path).map(|d| d.join("nvcc")).find(|p| p.is_file())
        {
            return Some(p);
        }
        let venv_lib = manifest.parent()?.join(".venv-cuda").join("lib");
        fs::read_dir(venv_lib).ok()?.flatten().map(|py| py.path().join("site-packages/nvidia/cu13/bin/nvcc")).find(|p| p.is_file())
    }

    struct Report {
        unit: String,
        ptxas: String,
    }

    /// Compiles every unit, a few at a time (each nvcc runs ptxas for five targets).
    fn compile_all(nvcc: &Path, units: &[PathBuf], out: &Path) -> Vec<Report> {
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()).max(1);
        let mut reports = Vec::new();
        for batch in units.chunks(jobs) {
            let handles: Vec<_> = batch
                .iter()
                .map(|unit| {
                    let (nvcc, unit, out) = (nvcc.to_path_buf(), unit.clone(), out.to_path_buf());
                    std::thread::spawn(move || compile(&nvcc, &unit, &out))
                })
                .collect();
            reports.extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("a CUDA compile thread panicked"))));
        }
        reports
    }

    fn compile(nvcc: &Path, unit: &Path, out: &Path) -> Report {
        let stem = unit.file_stem().and_then(|s| s.to_str()).expect("UTF-8 kernel file names").to_string();
        let mut fatbin = nvcc_cmd(nvcc);
        fatbin.arg("--fatbin").arg("-Xptxas=-v");
        for g in GENCODE {
            fatbin.arg("-gencode").arg(g);
        }
        fatbin.arg("-o").arg(out.join(format!("{stem}.fatbin"))).arg(unit);
        let ptxas = run(fatbin, unit);
        fs::write(out.join(format!("{stem}.ptxas.txt")), &ptxas).expect("writable OUT_DIR");

        let mut ptx = nvcc_cmd(nvcc);
        ptx.arg("--ptx").arg("-arch=compute_90").arg("-o").arg(out.join(format!("{stem}.ptx"))).arg(unit);
        run(ptx, unit);
        Report { unit: stem, ptxas }
    }

    /// Flags common to every invocation: optimised, line info for profilers, C++17, no fast-math
    /// (results are compared with the CPU reference; kernels opt into fast intrinsics explicitly).
    fn nvcc_cmd(nvcc: &Path) -> Command {
        let mut c = Command::new(nvcc);
        c.args(["-O3", "-std=c++17", "-lineinfo"]);
        if let Some(ccbin) = env::var_os("NVCC_CCBIN") {
            c.arg("-ccbin").arg(ccbin);
        }
        c
    }

    /// Runs nvcc; returns its stderr (ptxas writes its report there); panics with it on failure.
    fn run(mut cmd: Command, unit: &Path) -> String {
        let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}\n{HOW_TO_GET_NVCC}", cmd.get_program()));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            panic!("nvcc failed on {} ({}):\n{stderr}", unit.display(), output.status);
        }
        stderr
    }

    /// One entry per (kernel, target) of a ptxas report.
    struct Entry {
        kernel: String,
        arch: String,
        registers: u32,
        stack: u32,
        spill_stores: u32,
        spill_loads: u32,
        smem: u32,
    }

    /// Parses `ptxas -v`: "Compiling entry function 'k' for 'sm_90a'", then "N bytes stack frame,
    /// N bytes spill stores, N bytes spill loads", then "Used N registers, …, N bytes smem".
    fn parse(ptxas: &str) -> Vec<Entry> {
        let number_before = |line: &str, unit: &str| -> u32 {
            line.find(unit).and_then(|i| line[..i].split_whitespace().last()).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        let mut entries: Vec<Entry> = Vec::new();
        for line in ptxas.lines() {
            if let Some(rest) = line.split("Compiling entry function '").nth(1) {
                let mut parts = rest.split('\'');
                let kernel = parts.next().unwrap_or_default().to_string();
                let arch = parts.nth(1).unwrap_or_default().to_string();
                entries.push(Entry { kernel, arch, registers: 0, stack: 0, spill_stores: 0, spill_loads: 0, smem: 0 });
            } else if let Some(e) = entries.last_mut() {
                if line.contains("bytes stack frame") {
                    e.stack = number_before(line, "bytes stack frame");
                    e.spill_stores = number_before(line, "bytes spill stores");
                    e.spill_loads = number_before(line, "bytes spill loads");
                } else if line.contains("Used") && line.contains("registers") {
                    e.registers = number_before(line, "registers");
                    e.smem = number_before(line, "bytes smem");
                }
            }
        }
        entries
    }

    fn summarize(reports: &[Report]) -> String {
        let mut s = String::from("file\tkernel\tarch\tregisters\tstack_bytes\tspill_store_bytes\tspill_load_bytes\tsmem_bytes\n");
        for r in reports {
            for e in parse(&r.ptxas) {
                let _ = writeln!(
                    s,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.unit, e.kernel, e.arch, e.registers, e.stack, e.spill_stores, e.spill_loads, e.smem
                );
            }
        }
        s
    }

    /// Fails the build when any kernel spills registers to local memory on any target. (A stack
    /// frame without spills is allowed: libdevice's sincos keeps its rarely taken slow path there.)
    fn spill_check(reports: &[Report]) {
        let mut bad = Vec::new();
        for r in reports {
            let entries = parse(&r.ptxas);
            if entries.is_empty() {
                panic!("no ptxas report for {}.cu: was -Xptxas=-v dropped?", r.unit);
            }
            for e in entries.iter().filter(|e| e.spill_stores > 0 || e.spill_loads > 0) {
                bad.push(format!(
                    "{}.cu: {} on {}: {} bytes spill stores, {} bytes spill loads ({} registers)",
                    r.unit, e.kernel, e.arch, e.spill_stores, e.spill_loads, e.registers
                ));
            }
        }
        if !bad.is_empty() {
            panic!("register spills to local memory (fix the kernel: fewer live values, static register indices):\n{}", bad.join("\n"));
        }
    }

    /// `modules.rs`: (name, fatbin bytes) of every kernel file, for the loader.
    fn module_table(units: &[PathBuf], out: &Path) {
        let mut s = String::from("/// Every kernel file's fatbin: (file stem, image).\npub const MODULES: &[(&str, &[u8])] = &[\n");
        for u in units {
            let stem = u.file_stem().and_then(|s| s.to_str()).expect("UTF-8 kernel file names");
            let _ = writeln!(s, "    ({stem:?}, include_bytes!({:?})),", out.join(format!("{stem}.fatbin")).display().to_string());
        }
        s.push_str("];\n");
        fs::write(out.join("modules.rs"), s).expect("writable OUT_DIR");
    }

    pub fn build() {
        for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "PATH", "NVCC_CCBIN"] {
            println!("cargo::rerun-if-env-changed={var}");
        }
        let (manifest, out) = (manifest(), out("cuda"));
        let units = units(&manifest.join("cuda"));
        let nvcc = find_nvcc(&manifest).unwrap_or_else(|| panic!("{HOW_TO_GET_NVCC}"));
        let reports = compile_all(&nvcc, &units, &out);
        let summary = summarize(&reports);
        fs::write(out.join("ptxas-summary.txt"), &summary).expect("writable OUT_DIR");
        spill_check(&reports);
        module_table(&units, &out);
        println!("cargo::rustc-env=GPTOSS_CUDA_ARTIFACTS={}", out.display());
        println!("cargo::warning=CUDA kernels built with {}: fatbins, PTX and ptxas reports in {}", nvcc.display(), out.display());
    }
}
