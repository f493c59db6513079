//! The one error metric: the normalised mean squared error of what an op computed,
//! `NMSE = Σ (got − want)² / Σ want²` over a tensor (as llama.cpp's test-backend-ops), with a
//! budget per op from `budgets`. Ops that add to their output (an accumulating matmul, the
//! experts' residual) are measured on what they added: the output's first contents are taken
//! off both sides. A NaN where the reference has a number (an element left poisoned, or a
//! kernel's NaN) fails whatever the budget. A failure prints the largest mismatches with index,
//! expected and actual values.

/// `Σ (got − want)² / Σ want²` of the parts the op computed (`base` subtracted from both), in
/// f64; NaN when `got` has a NaN that `want` has not.
pub fn nmse(got: &[f32], want: &[f32], base: Option<&[f32]>) -> f64 {
    assert_eq!(got.len(), want.len(), "compared tensors differ in length");
    let (mut err, mut sig) = (0f64, 0f64);
    for i in 0..got.len() {
        let b = base.map_or(0.0, |b| b[i] as f64);
        let (g, w) = (got[i] as f64 - b, want[i] as f64 - b);
        match (g.is_nan(), w.is_nan()) {
            (true, false) => return f64::NAN,
            (true, true) => continue,
            _ => {}
        }
        err += (g - w).powi(2);
        sig += w.powi(2);
    }
    if sig > 0.0 { err / sig } else { err }
}

/// Fails, naming `what`, unless `got` is within `budget` of `want` (see the module).
pub fn check(what: &str, got: &[f32], want: &[f32], base: Option<&[f32]>, budget: f64) {
    let e = nmse(got, want, base);
    if e <= budget {
        return;
    }
    let mut worst: Vec<usize> = (0..got.len()).collect();
    let diff = |i: usize| if got[i].is_nan() != want[i].is_nan() { f64::INFINITY } else { (got[i] as f64 - want[i] as f64).abs() };
    worst.sort_by(|&a, &b| diff(b).total_cmp(&diff(a)));
    let lines: Vec<String> =
        worst.iter().take(6).map(|&i| format!("  [{i}] expected {} actual {} (|Δ| {:.3e})", want[i], got[i], diff(i))).collect();
    panic!("{what}: NMSE {e:.3e} > budget {budget:.0e} over {} values; largest mismatches:\n{}", got.len(), lines.join("\n"));
}

/// Fails unless two integer outputs (ids) are equal, naming the first difference.
pub fn check_exact(what: &str, got: &[u32], want: &[u32]) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!("{what}: [{i}] expected {:?} actual {:?}", want.get(i), got.get(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmse_measures_the_computed_part_and_catches_poison() {
        assert_eq!(nmse(&[1.0, 2.0], &[1.0, 2.0], None), 0.0);
        assert!((nmse(&[1.1, 2.0], &[1.0, 2.0], None) - 0.01 / 5.0).abs() < 1e-9);
        // Only the added part counts: 0.1 off an addition of 1.
        assert!((nmse(&[101.1], &[101.0], Some(&[100.0])) - 0.01).abs() < 1e-6);
        assert!(nmse(&[f32::NAN], &[1.0], None).is_nan());
        assert_eq!(nmse(&[f32::NAN], &[f32::NAN], None), 0.0);
    }

    #[test]
    #[should_panic(expected = "NMSE")]
    fn a_poisoned_element_fails() {
        check("t", &[1.0, f32::NAN], &[1.0, 2.0], None, 1.0);
    }
}
