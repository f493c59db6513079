//! gptoss-engine: the contract between a model graph and the devices that run it.
//!
//! It owns the `Backend` trait (typed buffers and coarse, fused ops), the weight formats and
//! their byte layouts, the static KV cache, kernel choice, sampling parameters, synthetic
//! tensor generation and the generator loop. It knows no model and no kernel.

pub mod backend;
pub mod checks;
pub mod dtype;
pub mod error;
pub mod fidelity;
pub mod generator;
pub mod host;
pub mod host_memory;
pub mod kernels;
pub mod kv;
pub mod model;
pub mod ops;
pub mod prefill;
pub mod profiled;
pub mod quant;
pub mod residency;
pub mod rope;
pub mod sampling;
pub mod synth;
pub mod weight;

pub use backend::{Backend, BackendInfo, DeviceBuffer, Rope, Step, StepMode, Swiglu};
pub use dtype::DType;
pub use error::{EngineError, Result};
pub use generator::{GenerateOptions, GenerationStats, StopReason, check_finite_logits, check_request, generate};
pub use host::HostBytes;
pub use kernels::{KernelChoice, KernelOverrides, ModelPlan, OpCase, OpKind};
pub use kv::{KvCache, KvLayer, KvLayerSpec};
pub use model::CausalLm;
pub use ops::{
    AttentionArgs, AttentionRowsArgs, Buffers, EmbedArgs, MatmulArgs, MoeExpertsArgs, MoeRouteArgs, Operands, QkvRopeArgs, QkvRopeRowsArgs,
    RmsNormArgs, SampleArgs,
};
pub use prefill::{Logits, prefill, prefill_chunks};
pub use sampling::{Rng, SamplingParams};
pub use synth::{SynthFill, SynthTensor};
pub use weight::{Weight, WeightFormat};
