//! gptoss-bench: the benchmark harness. Timing configurations through the `CausalLm`
//! interface (any backend), the machine's own bandwidth ceiling, and the reports: tables, a
//! stable JSON schema, an SVG plot, and a comparison of two result files.

pub mod cold;
pub mod compare;
pub mod disk;
pub mod load;
pub mod machine;
pub mod offload;
pub mod peak;
pub mod plot;
pub mod results;
pub mod run;
pub mod speculative;
pub mod sse;
pub mod stats;
pub mod table;

pub use results::{Machine, OpRow, Results, Row};
pub use run::{Case, Measured, measure};
