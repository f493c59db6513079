//! Router: logits `Wr·x + br`, top-k (descending, lowest id first on ties), softmax over the k.

use gptoss_engine::MoeRouteArgs;

use crate::host::Host;
use crate::workspace::Workspace;

pub fn moe_route(a: MoeRouteArgs<Host>, ws: &mut Workspace) {
    let (r, k) = (&a.router, a.top_k);
    let logits = &mut ws.router_logits[..r.rows];
    for (t, xt) in a.x.chunks_exact(r.cols).enumerate() {
        for (e, l) in logits.iter_mut().enumerate() {
            // Rounded to f32 before selection, as an f32 implementation compares them.
            *l = (r.row_dot(e, xt) + r.bias_at(e)) as f32;
        }
        top_k_softmax(logits, &mut a.ids[t * k..(t + 1) * k], &mut a.weights[t * k..(t + 1) * k]);
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
