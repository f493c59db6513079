//! Probes: a way for tests to watch intermediate results of the forward pass (embeddings, each
//! block's residual stream, the router's choice, the final norm, logits) and compare them layer
//! by layer with a reference. Probing copies buffers to the host; it is off unless installed.

use gptoss_engine::{Backend, Result};

use crate::context::Activations;
use crate::model::GptOss;

/// Something that watches intermediate results (tests comparing layer by layer). Names:
/// `embeddings`, `layers.L.attention_residual`, `layers.L.router_ids`,
/// `layers.L.router_weights`, `layers.L.output`, `final_norm`, `logits`.
pub type Probe = Box<dyn FnMut(&str, ProbeData) + Send>;

pub enum ProbeData<'a> {
    F32(&'a [f32]),
    U32(&'a [u32]),
}

/// Which activation buffer a probe reads.
#[derive(Clone, Copy)]
pub(crate) enum Probed {
    X,
    Last,
    Logits,
    ExpertIds,
    ExpertWeights,
}

impl<B: Backend> GptOss<B> {
    /// Installs (or removes) a probe that sees intermediate results. Probing copies buffers to
    /// the host and is meant for tests.
    pub fn set_probe(&mut self, probe: Option<Probe>) {
        self.probe = probe;
    }

    /// Shows the first `elems` elements of `buf` to the probe under `name`, if one is installed.
    pub(crate) fn probe_buffer(&mut self, act: &Activations<B::Buffer>, name: &str, buf: Probed, elems: usize) -> Result<()> {
        let Some(probe) = self.probe.as_mut() else {
            return Ok(());
        };
        let src = match buf {
            Probed::X => &act.x,
            Probed::Last => &act.last,
            Probed::Logits => &act.logits,
            Probed::ExpertWeights => &act.expert_weights,
            Probed::ExpertIds => &act.expert_ids,
        };
        if let Probed::ExpertIds = buf {
            let mut v = vec![0u32; elems];
            self.backend.read(src, 0, bytemuck::cast_slice_mut(&mut v))?;
            probe(name, ProbeData::U32(&v));
        } else {
            let mut v = vec![0f32; elems];
            self.backend.read(src, 0, bytemuck::cast_slice_mut(&mut v))?;
            probe(name, ProbeData::F32(&v));
        }
        Ok(())
    }
}
