//! gptoss-bench: the benchmark harness (to come; see the README).
