//! Rust declarations generated from include/gptoss.h; see the tests.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code)]

// Linking the library provides the symbols the generated declarations name.
extern crate gptoss;

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The generated text, to list what the header declares.
pub const BINDINGS: &str = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// Every function the header declares.
pub fn header_functions() -> Vec<String> {
    let mut names: Vec<String> = BINDINGS
        .split("pub fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| name.starts_with("gptoss_"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}
