//! Router: logits `Wr·x + br`, top-k (descending, lowest id first on ties), softmax over the k.

use crate::view::WeightView;

/// `logits` is scratch of at least `router.rows` floats.
pub fn f32_moe_route(router: &WeightView, x: &[f32], n: usize, top_k: usize, ids: &mut [u32], weights: &mut [f32], logits: &mut [f32]) {
    let e = router.rows;
    for t in 0..n {
        let xt = &x[t * router.cols..(t + 1) * router.cols];
        let logits = &mut logits[..e];
        for (r, l) in logits.iter_mut().enumerate() {
            // Rounded to f32 before selection, as an f32 implementation compares them.
            *l = (router.row_dot(r, xt) + router.bias_at(r)) as f32;
        }
        top_k_softmax(logits, &mut ids[t * top_k..(t + 1) * top_k], &mut weights[t * top_k..(t + 1) * top_k]);
    }
}

/// The `ids.len()` largest `logits` (descending, lowest id first on ties) and the softmax
/// over them, in f64.
pub fn top_k_softmax(logits: &[f32], ids: &mut [u32], weights: &mut [f32]) {
    for k in 0..ids.len() {
        let best = (0..logits.len())
            .filter(|c| !ids[..k].contains(&(*c as u32)))
            .fold(None::<usize>, |best, c| match best {
                Some(b) if logits[b] >= logits[c] => Some(b),
                _ => Some(c),
            })
            .expect("top_k ≤ experts is checked by the caller");
        ids[k] = best as u32;
    }
    let max = logits[ids[0] as usize] as f64;
    let sum: f64 = ids.iter().map(|&i| (logits[i as usize] as f64 - max).exp()).sum();
    for (w, &i) in weights.iter_mut().zip(ids.iter()) {
        *w = ((logits[i as usize] as f64 - max).exp() / sum) as f32;
    }
}
