//! The device's bandwidth ceiling: a large device-to-device copy timed with events.

use cudarc::driver::sys::CUevent_flags;
use gptoss_engine::Result;

use crate::device::{Device, cuda_err};

/// Bytes per copy: far beyond any L2.
const BYTES: usize = 1 << 30;
const WARMUP: usize = 3;
const REPEATS: usize = 20;

/// GB/s (1e9 bytes/s) of a 1 GiB device-to-device copy, counting bytes read plus written, the
/// mean over 20 copies after 3 unmeasured ones. Allocates 2 GiB for the measurement.
pub fn copy_bandwidth(dev: &Device) -> Result<f64> {
    let src = dev.stream.alloc_zeros::<u8>(BYTES).map_err(cuda_err("allocating 1 GiB to measure bandwidth"))?;
    let mut dst = dev.stream.alloc_zeros::<u8>(BYTES).map_err(cuda_err("allocating 1 GiB to measure bandwidth"))?;
    for _ in 0..WARMUP {
        dev.stream.memcpy_dtod(&src, &mut dst).map_err(cuda_err("bandwidth copy"))?;
    }
    let timed = Some(CUevent_flags::CU_EVENT_DEFAULT);
    let start = dev.stream.record_event(timed).map_err(cuda_err("recording an event"))?;
    for _ in 0..REPEATS {
        dev.stream.memcpy_dtod(&src, &mut dst).map_err(cuda_err("bandwidth copy"))?;
    }
    let end = dev.stream.record_event(timed).map_err(cuda_err("recording an event"))?;
    let ms = start.elapsed_ms(&end).map_err(cuda_err("timing the copies"))? as f64;
    Ok((2 * BYTES * REPEATS) as f64 / (ms * 1e-3) / 1e9)
}
