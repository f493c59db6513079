//! Generates Rust declarations from include/gptoss.h with bindgen, so the tests call the
//! library exactly as a C program including the header would.

use std::path::PathBuf;

fn main() {
    let header = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include/gptoss.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .allowlist_function("gptoss_.*")
        .allowlist_type("gptoss_.*")
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .layout_tests(true)
        .generate()
        .unwrap_or_else(|e| {
            panic!("bindgen could not read include/gptoss.h ({e}); it needs libclang: `apt-get install libclang-dev`, or `pip install libclang` and LIBCLANG_PATH set to its directory")
        });
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("bindings.rs");
    bindings.write_to_file(out).expect("write the bindings");
}
