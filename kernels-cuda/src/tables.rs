//! The `host` residency mode's device side (`engine::residency::tables`): stacks of experts
//! found through a table of addresses in device memory, host memory mapped for the device, and
//! copies into slots beside the step. `cuda/common.cuh`'s `expert_data` / `expert_scales` read
//! the table; `ops::stack` hands it to `moe_experts`, the only kernels that take one.

use gptoss_engine::residency::ExpertTables;
use gptoss_engine::{DType, DeviceBuffer, EngineError, Result, Weight, checks};

use crate::backend::CudaBackend;
use crate::buffer::{CudaBuffer, Holds};
use crate::device::Device;

/// Bytes of one table entry: an expert's data and scales addresses.
const ENTRY: usize = 16;

/// The alignment every matrix of a stack has, allocations being 16-byte aligned: the largest
/// power of two dividing a matrix's `bytes`, at most 16. A table entry must keep it, so the
/// kernels' vector loads see what they would in a stack.
fn stack_alignment(bytes: usize) -> u64 {
    1u64 << bytes.trailing_zeros().min(4)
}

/// Matrix `m` of `w`: the device addresses of its data and its scales (0 without scales).
fn matrix<D: Device>(w: &Weight<CudaBuffer<D>>, m: usize, op: &'static str) -> Result<[u64; 2]> {
    if w.data.holds() != Holds::Values {
        return Err(EngineError::invalid(format!("{op}: the source is itself reached through a table")));
    }
    if m >= w.experts {
        return Err(EngineError::shape(op, format!("matrix {m} of a stack of {}", w.experts)));
    }
    let (dt, data) = w.format.data_layout(w.rows, w.cols);
    let (st, scales) = w.format.scales_layout(w.rows, w.cols).unwrap_or((DType::U8, 0));
    let at = [w.data.at(m * data), w.scales.as_ref().map_or(0, |s| s.at(m * scales))];
    let align = [stack_alignment(data * dt.size()), stack_alignment((scales * st.size()).max(1))];
    if at.iter().zip(align).any(|(a, al)| a % al != 0) {
        return Err(EngineError::unsupported(op, format!("matrix {m} lacks its stack's alignment ({} × {})", w.rows, w.cols)));
    }
    Ok(at)
}

/// An error unless `a` and `b` are stacks of the same format and matrix shape.
fn same_shape<D: Device>(a: &Weight<CudaBuffer<D>>, b: &Weight<CudaBuffer<D>>, op: &'static str) -> Result<()> {
    if (a.format, a.rows, a.cols) != (b.format, b.rows, b.cols) {
        return Err(EngineError::shape(op, format!("{} {}×{} against {} {}×{}", a.format, a.rows, a.cols, b.format, b.rows, b.cols)));
    }
    Ok(())
}

impl<D: Device> CudaBackend<D> {
    fn not_recording(&self, op: &'static str) -> Result<()> {
        if self.steps.capturing() {
            return Err(EngineError::invalid(format!("{op}: not while a step is recorded")));
        }
        Ok(())
    }
}

impl<D: Device> ExpertTables<CudaBuffer<D>> for CudaBackend<D> {
    fn alloc_mapped(&mut self, dtype: DType, len: usize) -> Result<CudaBuffer<D>> {
        CudaBuffer::mapped(&self.dev, dtype, len)
    }

    fn table_stack(&mut self, home: &Weight<CudaBuffer<D>>, bias: CudaBuffer<D>) -> Result<Weight<CudaBuffer<D>>> {
        const OP: &str = "table_stack";
        checks::weight(home, OP)?;
        if bias.dtype() != DType::F32 || bias.len() != home.experts * home.rows {
            return Err(EngineError::shape(
                OP,
                format!("bias must be {} × f32, got {} × {}", home.experts * home.rows, bias.len(), bias.dtype()),
            ));
        }
        let mut entries = Vec::with_capacity(home.experts * ENTRY);
        for m in 0..home.experts {
            for a in matrix(home, m, OP)? {
                entries.extend_from_slice(&a.to_le_bytes());
            }
        }
        let mut data = CudaBuffer::standing_for(&self.dev, home.data.dtype(), home.data.len(), entries.len(), Holds::ExpertTable)?;
        self.dev.write(data.memory_mut(), 0, &entries)?;
        let scales = match &home.scales {
            Some(s) => Some(CudaBuffer::standing_for(&self.dev, s.dtype(), s.len(), 0, Holds::Nothing)?),
            None => None,
        };
        Ok(Weight { format: home.format, experts: home.experts, rows: home.rows, cols: home.cols, data, scales, bias: Some(bias) })
    }

    fn point(&mut self, table: &mut Weight<CudaBuffer<D>>, e: usize, src: &Weight<CudaBuffer<D>>, m: usize) -> Result<()> {
        const OP: &str = "point";
        self.not_recording(OP)?;
        if table.data.holds() != Holds::ExpertTable {
            return Err(EngineError::invalid("point: the stack has no table"));
        }
        if e >= table.experts {
            return Err(EngineError::shape(OP, format!("expert {e} of a table of {}", table.experts)));
        }
        same_shape(table, src, OP)?;
        let mut entry = [0u8; ENTRY];
        for (bytes, a) in entry.chunks_exact_mut(8).zip(matrix(src, m, OP)?) {
            bytes.copy_from_slice(&a.to_le_bytes());
        }
        // Queued on the step's stream: steps queued before read the old entry.
        self.dev.write(table.data.memory_mut(), e * ENTRY, &entry)
    }

    fn copy_beside(&mut self, src: &Weight<CudaBuffer<D>>, m: usize, dst: &mut Weight<CudaBuffer<D>>, slot: usize) -> Result<u64> {
        const OP: &str = "copy_beside";
        self.not_recording(OP)?;
        same_shape(src, dst, OP)?;
        matrix(src, m, OP)?;
        matrix(dst, slot, OP)?;
        let (_, data) = src.format.data_layout(src.rows, src.cols);
        let size = src.data.dtype().size();
        let mut ticket =
            self.dev.copy_beside(src.data.memory(), m * data * size, dst.data.memory_mut(), slot * data * size, data * size)?;
        if let (Some(from), Some(to), Some((dt, n))) = (&src.scales, &mut dst.scales, src.format.scales_layout(src.rows, src.cols)) {
            let size = dt.size();
            ticket = self.dev.copy_beside(from.memory(), m * n * size, to.memory_mut(), slot * n * size, n * size)?;
        }
        // Copies land in order: the last one landed means both have.
        Ok(ticket)
    }

    fn copied(&mut self, ticket: u64) -> Result<bool> {
        self.dev.copied(ticket)
    }
}
