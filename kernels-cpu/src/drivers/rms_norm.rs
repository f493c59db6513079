//! RMSNorm driver: one task per token row (`fast::rms_norm`).

use gptoss_engine::RmsNormArgs;

use crate::compiled::Compiled;
use crate::host::Host;
use crate::pool::{SendPtr, for_each_task};
use crate::workspace::Workspace;

pub fn rms_norm<H: Compiled>(a: RmsNormArgs<Host>, _: &mut Workspace) {
    let d = a.gain.len();
    let op = SendPtr(a.out.as_mut_ptr());
    for_each_task(a.n, |t| {
        // SAFETY: each task owns row t of `out` (as long as `x`); the registry listed `H` only
        // because this CPU runs it.
        unsafe { H::rms_norm(&a.x[t * d..(t + 1) * d], a.gain, a.eps, std::slice::from_raw_parts_mut(op.get().add(t * d), d)) }
    });
}
