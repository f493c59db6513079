//! The q8 kernels (int8 activations) against the scalar reference, through the Backend API, on
//! every ISA this CPU has (with the q8 extension it has: VNNI, dotprod), two ways: against the
//! exact reference, within the int8 rounding's bound element by element (and an NMSE budget
//! where there are enough outputs); against the q8 definition (the same roundings, then f64),
//! within f32 rounding. Budgets: `common::BUDGETS`. Shapes as for the exact kernels, plus
//! partial groups: AVX2 takes MXFP4 two blocks at a time, AVX-512 four, and int8 rows may end
//! inside a block.

mod common;

use common::*;
use gptoss_engine::kernels::KernelOverrides;
use gptoss_engine::{Backend, OpKind, WeightFormat};
use gptoss_kernels_cpu::reference::moe_experts::swiglu;
use gptoss_kernels_cpu::registry::Chosen;
use gptoss_kernels_cpu::{Activations, Isa};
use proptest::prelude::*;

/// The formats with q8 kernels.
const Q8_FORMATS: [WeightFormat; 5] = [
    WeightFormat::Int8,
    WeightFormat::Int4 { group: 32 },
    WeightFormat::Int4 { group: 64 },
    WeightFormat::Int4 { group: 128 },
    WeightFormat::Mxfp4,
];

/// The kernel-name suffix of the q8 path on `isa` here: `avx2`, `avx512_vnni`, `neon_dotprod`, …
fn q8_suffix(isa: Isa) -> String {
    isa.q8_extension().map_or_else(|| isa.name().to_string(), |e| format!("{}_{e}", isa.name()))
}

/// Per output of `n` tokens through `spec` (token-major), the q8 bound; with `head_dim`, the
/// outputs are heads rotated by RoPE, each element mixed with its partner half a head away.
fn bounds(spec: &Spec, x: &[f32], n: usize, head_dim: Option<usize>) -> Vec<f64> {
    let (w, cols, rows) = (spec.decoded(), spec.cols, spec.rows);
    let per_row: Vec<f64> = (0..n * rows).map(|i| spec.q8_bound(i % rows, &w[i % rows], &x[i / rows * cols..][..cols])).collect();
    let Some(d) = head_dim else { return per_row };
    let partner = |i: usize| if i % d < d / 2 { i + d / 2 } else { i - d / 2 };
    (0..per_row.len()).map(|i| budget("qkv_rope_q8") * CONCENTRATION as f64 * (per_row[i] + per_row[partner(i)])).collect()
}

/// One activation as the q8 kernels see it: `d · q`, the step `d`, and how far (in steps)
/// `x / d` lay from a rounding boundary.
struct Rounded {
    value: f64,
    step: f64,
    margin: f64,
}

/// `x` rounded as the kernels round it, in f32: per block of 32, `q = round(x · 127 / max|x|)`,
/// ties to even.
fn q8_round(x: &[f32]) -> Vec<Rounded> {
    x.chunks(32)
        .flat_map(|b| {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (d, inv) = (amax / 127.0, if amax > 0.0 { 127.0 / amax } else { 0.0 });
            b.iter().map(move |&v| {
                let l = v * inv;
                Rounded {
                    value: d as f64 * l.round_ties_even().clamp(-127.0, 127.0) as f64,
                    step: d as f64,
                    margin: ((l.abs().fract() - 0.5).abs()) as f64,
                }
            })
        })
        .collect()
}

fn dot(w: &[f64], x: &[Rounded]) -> f64 {
    w.iter().zip(x).map(|(w, x)| w * x.value).sum()
}

/// The routed experts by the q8 definition, in f64 from the kernels' roundings (x once per
/// token, each SwiGLU output from its f32 value): the residual, and per element the tolerance
/// (`q8_definition` in `common::BUDGETS`).
fn moe_by_definition(case: &MoeCase) -> (Vec<f64>, Vec<f64>) {
    let (gate_up, down) = (&case.gate_up, &case.down);
    let (w1, w2, hidden, inter) = (gate_up.decoded(), down.decoded(), gate_up.cols, down.cols);
    let (b1, b2) = (gate_up.bias.as_ref().unwrap(), down.bias.as_ref().unwrap());
    let eps = budget("q8_definition");
    let mut res: Vec<f64> = case.res0.iter().map(|&v| v as f64).collect();
    let mut tol: Vec<f64> = case.res0.iter().map(|&v| eps * v.abs() as f64).collect();
    for (slot, (&e, &wk)) in case.ids.iter().zip(&case.weights).enumerate() {
        let t = slot / case.top_k;
        let xq = q8_round(&case.x[t * hidden..(t + 1) * hidden]);
        let row1 = |j: usize| e as usize * 2 * inter + j;
        let u: Vec<f64> = (0..2 * inter).map(|j| dot(&w1[row1(j)], &xq) + b1[row1(j)] as f64).collect();
        let du: Vec<f64> = (0..2 * inter).map(|j| eps * gate_up.q8_slack(row1(j), &w1[row1(j)], |c| xq[c].value.abs())).collect();
        let a: Vec<f32> = (0..inter).map(|j| swiglu(u[2 * j], u[2 * j + 1], SWIGLU) as f32).collect();
        // |∂swiglu/∂gate| ≤ 1.1 · (7 + 1), |∂swiglu/∂up| ≤ 7, plus the f32 evaluation.
        let da: Vec<f64> = (0..inter).map(|j| 9.0 * du[2 * j] + 7.0 * du[2 * j + 1] + eps * a[j].abs() as f64).collect();
        let aq = q8_round(&a);
        for r in 0..hidden {
            let g = e as usize * hidden + r;
            let y = dot(&w2[g], &aq) + b2[g] as f64;
            // An output that f32 may have moved across a rounding boundary may be one step off.
            let tipped = |c: usize| if aq[c].margin < 1e-3 + da[c] / aq[c].step.max(f64::MIN_POSITIVE) { aq[c].step } else { 0.0 };
            let ty = (0..inter).map(|c| w2[g][c].abs() * (da[c] + tipped(c))).sum::<f64>()
                + eps * down.q8_slack(g, &w2[g], |c| aq[c].value.abs());
            res[t * hidden + r] += wk as f64 * y;
            tol[t * hidden + r] += wk as f64 * ty + eps * (wk as f64 * y).abs();
        }
    }
    (res, tol)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn q8_matmul_stays_within_the_rounding_bound(f in 0..Q8_FORMATS.len(), r in 0..ROWS.len(), k in 0..12usize, t in 0..TOKENS.len(),
                                                 accumulate: bool, bias: bool, seed in 1..u64::MAX) {
        let (format, rows, n) = (Q8_FORMATS[f], ROWS[r], TOKENS[t]);
        let cols = cols_for(format, k);
        let mut rng = Rng(seed);
        let spec = Spec::random(format, 1, rows, cols, bias, &mut rng);
        let x = rng.floats(n * cols, 4.0);
        let out0 = rng.floats(n * rows, 2.0);
        let bound = bounds(&spec, &x, n, None);
        let (w, xq): (_, Vec<Rounded>) = (spec.decoded(), x.chunks(cols.max(1)).flat_map(q8_round).collect());
        let bias_of = |r: usize| spec.bias.as_ref().map_or(0.0, |b| b[r] as f64);
        for (mut fast, mut reference) in pairs(Activations::Int8) {
            let outs = [&mut fast, &mut reference].map(|b| run_matmul(b, &spec, &x, n, &out0, accumulate));
            let what = format!("q8 matmul {format} {rows}×{cols}, {n} tokens on {}", fast.isa());
            let earlier = |i: usize| if accumulate { out0[i] as f64 } else { 0.0 };
            check(&what, &outs[0], &outs[1], |i| bound[i] + budget("matmul") * earlier(i).abs() + 1e-30);
            let want: Vec<f32> = (0..n * rows).map(|i| (dot(&w[i % rows], &xq[i / rows * cols..][..cols]) + bias_of(i % rows) + earlier(i)) as f32).collect();
            let tol = |i: usize| budget("q8_definition") * (spec.q8_slack(i % rows, &w[i % rows], |c| xq[i / rows * cols + c].value.abs()) + earlier(i).abs()) + 1e-30;
            check(&format!("{what}, against the q8 definition"), &outs[0], &want, tol);
            if cols >= 64 && n * rows >= 64 {
                let part = |i: usize| {
                    let b = spec.bias.as_ref().map_or(0.0, |b| b[i % rows]);
                    (outs[1][i] - b - if accumulate { out0[i] } else { 0.0 }) as f64
                };
                let e = nmse(&outs[0], &outs[1], part);
                prop_assert!(e <= budget("matmul_q8_nmse"), "{}: NMSE {:.3e} > {:.0e}", what, e, budget("matmul_q8_nmse"));
            }
        }
    }

    #[test]
    fn q8_qkv_rope_stays_within_the_rounding_bound(f in 0..Q8_FORMATS.len(), k in 0..12usize, d in prop::sample::select(vec![2usize, 16, 64]),
                                                   kv_heads in 1..3usize, group in 1..5usize, bf16_cache: bool, n in 1..6usize,
                                                   start in 0..1000usize, seed in 1..u64::MAX) {
        let format = Q8_FORMATS[f];
        let hidden = cols_for(format, k);
        let case = QkvCase::random(format, hidden, d, kv_heads, group, bf16_cache, n, start, &mut Rng(seed));
        let [bq, bk, bv] = [0, 1, 2].map(|i| bounds(&case.w[i], &case.x, n, (i < 2).then_some(d)));
        let kv_row = kv_heads * d;
        for (mut fast, mut reference) in pairs(Activations::Int8) {
            let outs = [&mut fast, &mut reference].map(|b| case.run(b));
            let what = format!("q8 qkv_rope {format}, hidden {hidden}, d {d} on {}", fast.isa());
            let qmax = outs[1][0].iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
            check(&format!("{what}: q"), &outs[0][0], &outs[1][0], |i| bq[i] + budget("qkv_rope") * qmax + 1e-30);
            // The cache holds position p at slot p: the token p − start wrote it.
            for (name, got, want, bound) in [("k cache", &outs[0][1], &outs[1][1], &bk), ("v cache", &outs[0][2], &outs[1][2], &bv)] {
                let m = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
                let ours = |i: usize| (start..start + n).contains(&(i / kv_row)).then(|| bound[(i / kv_row - start) * kv_row + i % kv_row]);
                let rounding = |i: usize| if bf16_cache { budget("qkv_rope_bf16_cache") * want[i].abs() as f64 } else { 0.0 };
                check(&format!("{what}: {name}"), got, want, |i| ours(i).unwrap_or(0.0) * (1.0 + rounding(i)) + rounding(i) + budget("qkv_rope") * m + 1e-30);
            }
        }
    }

    #[test]
    fn q8_moe_experts_match_their_definition(f in 0..Q8_FORMATS.len(), experts in 1..9usize, top in 1..5usize, n in 0..10usize,
                                              hidden in prop::sample::select(vec![32usize, 128, 288]), inter in prop::sample::select(vec![32usize, 64, 128, 544]),
                                              seed in 1..u64::MAX) {
        let (format, top_k) = (Q8_FORMATS[f], top.min(experts));
        let group = if let WeightFormat::Int4 { group } = format { group } else { 32 };
        let (hidden, inter) = (hidden.next_multiple_of(group), inter.next_multiple_of(group));
        let case = MoeCase::random(format, experts, top_k, n, hidden, inter, &mut Rng(seed));
        let (want, tol) = moe_by_definition(&case);
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        for (mut b, _) in pairs(Activations::Int8) {
            let got = case.run(&mut b);
            check(&format!("q8 moe_experts {format}, {experts} experts top-{top_k}, {hidden}/{inter} on {}", b.isa()), &got, &want, |i| tol[i] + 1e-30);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// As for the exact kernels: a batch of n equals n single tokens bit for bit.
    #[test]
    fn q8_results_do_not_depend_on_the_batch(f in 0..Q8_FORMATS.len(), k in 0..12usize, n in 1..13usize, seed in 1..u64::MAX) {
        let differs = batch_dependence(Q8_FORMATS[f], k, n, seed, Activations::Int8);
        prop_assert!(differs.is_none(), "{:?}", differs);
    }
}

#[test]
fn int8_activations_choose_the_q8_kernels_for_integer_weights_only() {
    for (mut fast, _) in pairs(Activations::Int8) {
        let (isa, q8) = (fast.isa().name(), q8_suffix(fast.isa()));
        println!("{}: the q8 kernels are *_q8_{q8}", fast.info().device);
        let choices = fast.prepare(&plan()).unwrap();
        let name =
            |op: OpKind, format: Option<WeightFormat>| choices.iter().find(|c| c.case.op == op && c.case.format == format).unwrap().kernel;
        assert_eq!(name(OpKind::Matmul, Some(WeightFormat::Int8)), format!("f32_i8w_matmul_q8_{q8}"));
        assert_eq!(name(OpKind::QkvRope, Some(WeightFormat::Int4 { group: 64 })), format!("f32_i4w_qkv_rope_q8_{q8}"));
        assert_eq!(name(OpKind::MoeExperts, Some(WeightFormat::Mxfp4)), format!("f32_mf4w_moe_experts_swiglu_q8_{q8}"));
        // bf16 weights, the router and everything without weights stay exact.
        assert_eq!(name(OpKind::Matmul, Some(WeightFormat::Bf16)), format!("f32_bf16w_matmul_{isa}"));
        assert_eq!(name(OpKind::MoeRoute, Some(WeightFormat::Mxfp4)), format!("f32_mf4w_moe_route_{isa}"));
        assert_eq!(name(OpKind::Attention, None), format!("f32_sdpa_sinks_{isa}"));
        assert!(fast.info().device.ends_with(", int8 activations"), "{}", fast.info().device);
    }
}

#[test]
fn f32_activations_keep_the_exact_kernels_and_can_name_a_q8_one() {
    for isa in Isa::available_all().into_iter().filter(|&i| i != Isa::Scalar) {
        let q8 = format!("f32_mf4w_matmul_q8_{}", q8_suffix(isa));
        let cases = plan().cases;
        let default = Chosen::new(isa, Activations::F32, &cases, &KernelOverrides::default()).unwrap();
        let pick = |c: &Chosen| {
            c.report.iter().find(|k| k.case.op == OpKind::Matmul && k.case.format == Some(WeightFormat::Mxfp4)).unwrap().kernel
        };
        assert_eq!(pick(&default), format!("f32_mf4w_matmul_{}", isa.name()));
        let forced = Chosen::new(isa, Activations::F32, &cases, &KernelOverrides::parse(&format!("matmul={q8}")).unwrap()).unwrap();
        assert_eq!(pick(&forced), q8);
    }
}
