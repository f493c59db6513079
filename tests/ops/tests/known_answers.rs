//! The known answers (`known`) on the scalar reference and every SIMD instruction set this CPU
//! has. They are answers of the exact definition: f32 activations (int8 ones round, e.g., the
//! SwiGLU test's smallest activation to 0, as they should).

use gptoss_kernels_cpu::Activations;
use gptoss_op_tests::{cpu, known};

#[test]
fn every_cpu_backend_gives_the_known_answers() {
    for mut b in std::iter::once(cpu::reference(Activations::F32)).chain(cpu::simd(Activations::F32)) {
        for (name, answer) in known::all() {
            eprintln!("{}: {name}", b.isa());
            answer(&mut b);
        }
    }
}
