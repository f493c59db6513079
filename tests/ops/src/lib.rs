//! The op-test harness: case generators, the RNG, poisoned outputs, the metric and the budget
//! table, and one test body per op family (`families`), generic over the backend under test and
//! always compared with the scalar reference (`CpuBackend` on `Isa::Scalar`).

pub mod budgets;
pub mod cpu;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
pub mod cuda;
pub mod families;
pub mod io;
pub mod known;
pub mod metric;
pub mod rng;
pub mod shapes;
pub mod weights;

/// Runs `f` on `cases` values drawn from `strategy` (deterministically seeded), for tests that
/// set one backend up for many cases (a GPU context is costly to make per case). A failure
/// names the case (the families' messages print it).
pub fn each_case<S: proptest::strategy::Strategy>(strategy: S, cases: u32, mut f: impl FnMut(S::Value)) {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    for _ in 0..cases {
        f(strategy.new_tree(&mut runner).expect("a case").current());
    }
}
