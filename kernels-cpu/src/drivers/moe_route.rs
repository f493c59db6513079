//! Router driver: the logits as a matmul (`drivers::matmul`, products `P`), then per token
//! the top-k and the softmax over them, as the reference (`reference::moe_route`) does.

use gptoss_engine::MoeRouteArgs;

use super::matmul::{Products, run};
use crate::compiled::Compiled;
use crate::fast::matmul::format::Format;
use crate::host::Host;
use crate::reference::moe_route::top_k_softmax;
use crate::workspace::Workspace;

pub fn moe_route<H: Compiled, F: Format, P: Products<F>>(a: MoeRouteArgs<Host>, ws: &mut Workspace) {
    let (e, k, n) = (a.router.rows, a.top_k, a.n);
    let Workspace { act: scratch, iota, router_logits, .. } = ws;
    let logits = &mut router_logits[..n * e];
    let act = P::prepare::<H>(a.x, a.router.cols, n, scratch);
    run::<H, F, P>(&a.router, act, &iota[..n], &iota[..n], logits, e, false);
    for t in 0..n {
        top_k_softmax(&logits[t * e..(t + 1) * e], &mut a.ids[t * k..(t + 1) * k], &mut a.weights[t * k..(t + 1) * k]);
    }
}
