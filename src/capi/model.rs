//! `gptoss_model`: a loaded model, reference counted, shared by its sessions.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard};

use gptoss_engine::WeightFormat;
use gptoss_engine::residency::Offload;
use gptoss_engine::residency::expert_cache::PolicyKind;
use gptoss_kernels_cpu::Activations;
use gptoss_model_gpt_oss::residency::plan::ResidencyOptions;
use gptoss_model_gpt_oss::weight_only::{DEFAULT_FAMILIES, WeightOnly};
use gptoss_model_gpt_oss::{LoadOptions, ModelSource};

use super::buffers::{c_str, fill_str, out};
use super::status::{Failure, gptoss_status};
use super::{entry, into_handle, release, retain};
use crate::runtime::{BackendKind, Model, RuntimeOptions};

/// The opaque model handle.
#[allow(non_camel_case_types)]
pub struct gptoss_model {
    inner: Mutex<Model>,
    pub(super) vocab_size: usize,
    pub(super) max_context: usize,
    pub(super) eos_tokens: Vec<u32>,
    /// Where it was loaded from (a draft model is checked against its target's).
    pub(super) source: ModelSource,
    backend: String,
}

impl gptoss_model {
    /// The loaded model, for one call at a time. A panic in an earlier call leaves no broken
    /// invariant behind (every op validates its inputs), so a poisoned lock is taken over.
    pub(super) fn lock(&self) -> MutexGuard<'_, Model> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Mirrors `gptoss_model_options`. Enum fields are plain integers: C may pass any value.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gptoss_model_options {
    pub backend: u32,
    pub threads: u32,
    pub max_batch: u32,
    pub weights: u32,
    pub int4_group: u32,
    pub offload: u32,
    pub expert_cache: u32,
    pub memory_budget: u64,
    pub cpu_activations: u32,
}

const DEFAULT_OPTIONS: gptoss_model_options = gptoss_model_options {
    backend: 0,
    threads: 0,
    max_batch: 128,
    weights: 0,
    int4_group: 32,
    offload: 0,
    expert_cache: 0,
    memory_budget: 0,
    cpu_activations: 0,
};

/// The memory budget and residency mode the options ask for.
fn residency(o: &gptoss_model_options) -> Result<ResidencyOptions, Failure> {
    let offload = match o.offload {
        0 => Offload::Auto,
        1 => Offload::None,
        2 => Offload::Mmap,
        3 => Offload::Layered,
        4 => Offload::Experts,
        5 => Offload::Host,
        other => return Err(Failure::invalid(format!("options.offload = {other} is not a gptoss_offload"))),
    };
    let policy = match o.expert_cache {
        0 => PolicyKind::Lru,
        1 => PolicyKind::Lfu,
        other => return Err(Failure::invalid(format!("options.expert_cache = {other} is not a gptoss_expert_cache"))),
    };
    let budget = (o.memory_budget != 0).then_some(o.memory_budget);
    Ok(ResidencyOptions { budget, offload, policy, ..ResidencyOptions::default() })
}

/// The load-time conversion the options ask for.
fn weight_only(o: &gptoss_model_options) -> Result<Option<WeightOnly>, Failure> {
    let format = match (o.weights, o.int4_group) {
        (0, _) => return Ok(None),
        (1, _) => WeightFormat::Int8,
        (2, 0) => WeightFormat::Int4 { group: 32 },
        (2, group) => WeightFormat::Int4 { group: group as usize },
        (other, _) => return Err(Failure::invalid(format!("options.weights = {other} is not a gptoss_weights"))),
    };
    WeightOnly::new(format, &DEFAULT_FAMILIES).map(Some).map_err(|e| Failure::invalid(format!("options: {e}")))
}

/// A handle from the caller, checked for NULL.
///
/// # Safety
/// `ptr` is NULL or a live handle returned by this library.
pub(super) unsafe fn model_ref<'a>(ptr: *mut gptoss_model) -> Result<&'a gptoss_model, Failure> {
    // SAFETY: a non-NULL pointer is a live handle (the header's contract).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null("model"))
}

/// Writes the default options.
///
/// # Safety
/// `options` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_model_options_default(options: *mut gptoss_model_options) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        *unsafe { out(options, "options") }? = DEFAULT_OPTIONS;
        Ok(())
    })
}

/// Loads a model from a directory or a `synthetic:NAME` name.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` NULL or valid; `model_out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_model_load(
    path: *const c_char,
    options: *const gptoss_model_options,
    model_out: *mut *mut gptoss_model,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let slot = unsafe { out(model_out, "model_out") }?;
        *slot = std::ptr::null_mut();
        // SAFETY: forwarded from the caller.
        let path = unsafe { c_str(path, "path") }?;
        // SAFETY: NULL or a valid options struct, per the header.
        let o = unsafe { options.as_ref() }.copied().unwrap_or(DEFAULT_OPTIONS);
        let backend = match o.backend {
            0 => BackendKind::Auto,
            1 => BackendKind::Cpu,
            2 => BackendKind::Cuda,
            3 => BackendKind::CudaSim,
            other => return Err(Failure::invalid(format!("options.backend = {other} is not a gptoss_backend"))),
        };
        let cpu_activations = match o.cpu_activations {
            0 => Activations::Int8,
            1 => Activations::F32,
            other => return Err(Failure::invalid(format!("options.cpu_activations = {other} is not a gptoss_cpu_activations"))),
        };
        let opts = RuntimeOptions {
            backend,
            cpu_activations,
            threads: (o.threads != 0).then_some(o.threads as usize),
            load: LoadOptions {
                max_batch: if o.max_batch == 0 { DEFAULT_OPTIONS.max_batch as usize } else { o.max_batch as usize },
                weights: weight_only(&o)?,
                residency: residency(&o)?,
            },
            ..RuntimeOptions::default()
        };
        let source = path.parse::<ModelSource>()?;
        let opened = source.open()?;
        let loaded = Model::load(&opened, &opts, &mut |_, _| {})?;
        let info = loaded.backend_info();
        let c = loaded.config();
        let handle = gptoss_model {
            vocab_size: c.vocab_size,
            max_context: c.max_position_embeddings,
            eos_tokens: c.eos_token_ids.clone(),
            source,
            backend: format!("{} ({}, {} threads)", info.name, info.device, info.threads),
            inner: Mutex::new(loaded),
        };
        *slot = into_handle(handle);
        Ok(())
    })
}

/// Adds a reference.
///
/// # Safety
/// `model` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_model_retain(model: *mut gptoss_model) -> gptoss_status {
    // SAFETY: forwarded from the caller.
    unsafe { retain(model, "model") }
}

/// Drops a reference; NULL is a no-op.
///
/// # Safety
/// `model` is NULL or a live handle whose reference the caller gives up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_model_release(model: *mut gptoss_model) -> gptoss_status {
    // SAFETY: forwarded from the caller.
    unsafe { release(model) }
}

/// # Safety
/// `model` is NULL or a live handle; `vocab_size_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_model_vocab_size(model: *mut gptoss_model, vocab_size_out: *mut u32) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (m, o) = unsafe { (model_ref(model)?, out(vocab_size_out, "vocab_size_out")?) };
        *o = m.vocab_size as u32;
        Ok(())
    })
}

/// # Safety
/// `model` is NULL or a live handle; `max_context_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_model_max_context(model: *mut gptoss_model, max_context_out: *mut u64) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (m, o) = unsafe { (model_ref(model)?, out(max_context_out, "max_context_out")?) };
        *o = m.max_context as u64;
        Ok(())
    })
}

/// # Safety
/// `model` is NULL or a live handle; `buffer` valid for `capacity` bytes; `size_out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gptoss_model_backend(
    model: *mut gptoss_model,
    buffer: *mut c_char,
    capacity: usize,
    size_out: *mut usize,
) -> gptoss_status {
    entry(|| {
        // SAFETY: forwarded from the caller.
        let (m, size) = unsafe { (model_ref(model)?, out(size_out, "size_out")?) };
        // SAFETY: forwarded from the caller.
        unsafe { fill_str(&m.backend, buffer, capacity, size, "backend description") }
    })
}
