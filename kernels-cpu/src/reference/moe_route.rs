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
        let ids_t = &mut ids[t * top_k..(t + 1) * top_k];
        for k in 0..top_k {
            let best = (0..e)
                .filter(|c| !ids_t[..k].contains(&(*c as u32)))
                .fold(None::<usize>, |best, c| match best {
                    Some(b) if logits[b] >= logits[c] => Some(b),
                    _ => Some(c),
                })
                .expect("top_k ≤ experts is checked by the caller");
            ids_t[k] = best as u32;
        }
        let max = logits[ids_t[0] as usize] as f64;
        let w_t = &mut weights[t * top_k..(t + 1) * top_k];
        let sum: f64 = ids_t.iter().map(|&i| (logits[i as usize] as f64 - max).exp()).sum();
        for (w, &i) in w_t.iter_mut().zip(ids_t.iter()) {
            *w = ((logits[i as usize] as f64 - max).exp() / sum) as f32;
        }
    }
}
