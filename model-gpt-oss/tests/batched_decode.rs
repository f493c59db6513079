//! Decode steps over several contexts at once (`forward_rows`): a row's logits equal, bit for
//! bit, those of its context decoded alone, whatever else is in the step — rows joining and
//! leaving, contexts at different positions (past the sliding window, so rings wrap), bf16 and
//! f32 caches; and bad steps are errors that advance no context.

use gptoss_engine::{CausalLm, DType, SamplingParams};
use gptoss_kernels_cpu::{CpuBackend, CpuBuffer};
use gptoss_model_gpt_oss::{Batch, Context, ContextOptions, GptOss, LoadOptions, ModelSource};

const VOCAB: usize = 512;

fn model() -> GptOss<CpuBackend> {
    let m = ModelSource::Dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/reference/fixture").into()).open().unwrap();
    GptOss::load(CpuBackend::new(Some(2)).unwrap(), &m, LoadOptions { max_batch: 6, ..LoadOptions::default() }).unwrap()
}

/// The prompt of sequence `i`: 1 to 16 tokens (the fixture's window is 8).
fn prompt(i: usize) -> Vec<u32> {
    (0..1 + 3 * i).map(|j| ((i * 131 + j * 37 + 5) % VOCAB) as u32).collect()
}

/// Whether sequence `i` takes part in decode step `s`: rows join and leave.
fn in_step(i: usize, s: usize) -> bool {
    !(s + i).is_multiple_of(3) || i == 0
}

/// Greedy tokens and the logits after each, for sequence `i` decoded alone, `steps` steps:
/// a step the sequence sits out changes nothing for it.
fn alone(kv: DType, i: usize, steps: usize) -> Vec<Vec<f32>> {
    let mut m = model();
    let mut ctx = m.new_context(ContextOptions { max_context: 64, kv_dtype: kv }).unwrap();
    let mut lm = m.session(&mut ctx);
    for c in prompt(i).chunks(6) {
        lm.forward(c, 1).unwrap();
    }
    let mut rows = Vec::new();
    for _ in (0..steps).filter(|&s| in_step(i, s)) {
        let token = lm.sample(0, &SamplingParams::GREEDY, 0.0).unwrap();
        lm.forward(&[token], 1).unwrap();
        let mut row = vec![0f32; VOCAB];
        lm.logits(0, &mut row).unwrap();
        rows.push(row);
    }
    rows
}

#[test]
fn a_row_equals_its_context_decoded_alone() {
    const SEQS: usize = 5;
    const STEPS: usize = 12;
    for kv in [DType::Bf16, DType::F32] {
        let want: Vec<_> = (0..SEQS).map(|i| alone(kv, i, STEPS)).collect();
        let mut m = model();
        let mut batch = m.new_batch(SEQS).unwrap();
        let mut contexts: Vec<_> = (0..SEQS).map(|_| m.new_context(ContextOptions { max_context: 64, kv_dtype: kv }).unwrap()).collect();
        let mut next = Vec::new();
        for (i, ctx) in contexts.iter_mut().enumerate() {
            let mut lm = m.session(ctx);
            for c in prompt(i).chunks(6) {
                lm.forward(c, 1).unwrap();
            }
            next.push(lm.sample(0, &SamplingParams::GREEDY, 0.0).unwrap());
        }
        let mut done = [0usize; SEQS];
        for s in 0..STEPS {
            let ids: Vec<usize> = (0..SEQS).filter(|&i| in_step(i, s)).collect();
            let mut rows: Vec<_> = contexts.iter_mut().enumerate().filter(|(i, _)| ids.contains(i)).map(|(_, c)| c).collect();
            let tokens: Vec<u32> = ids.iter().map(|&i| next[i]).collect();
            m.forward_rows(&mut batch, &mut rows, &tokens).unwrap();
            for (r, &i) in ids.iter().enumerate() {
                let mut row = vec![0f32; VOCAB];
                m.batch_logits(&batch, r, &mut row).unwrap();
                assert!(row == want[i][done[i]], "{kv} cache: sequence {i}, its decode step {} (step {s} of {} rows)", done[i], ids.len());
                next[i] = m.batch_sample(&batch, r, &SamplingParams::GREEDY, 0.0).unwrap();
                done[i] += 1;
            }
        }
        assert!(done.iter().all(|&d| d > STEPS / 2), "every sequence decoded: {done:?}");
    }
}

/// The message of the error `forward_rows` must give.
fn err(m: &mut GptOss<CpuBackend>, batch: &mut Batch<CpuBuffer>, rows: &mut [&mut Context<CpuBuffer>], tokens: &[u32]) -> String {
    m.forward_rows(batch, rows, tokens).expect_err("a bad step").to_string()
}

#[test]
fn a_bad_step_is_an_error_and_advances_no_context() {
    let mut m = model();
    assert!(m.new_batch(0).is_err());
    assert!(m.new_batch(7).err().map(|e| e.to_string()).unwrap_or_default().contains("6 tokens"), "beyond the model's max_batch");
    let mut batch = m.new_batch(2).unwrap();
    let opts = ContextOptions { max_context: 4, kv_dtype: DType::F32 };
    let mut a = m.new_context(opts).unwrap();
    let mut b = m.new_context(opts).unwrap();
    let mut wide = m.new_context(ContextOptions { max_context: 8, ..opts }).unwrap();
    m.forward(&mut b, &[1, 2, 3, 4], 1).unwrap();
    // b is full; a token beyond the vocabulary; contexts of two shapes; too many rows.
    assert!(err(&mut m, &mut batch, &mut [&mut a, &mut b], &[1, 2]).contains("context"));
    assert!(err(&mut m, &mut batch, &mut [&mut a], &[VOCAB as u32]).contains("512"));
    assert!(err(&mut m, &mut batch, &mut [&mut a, &mut wide], &[1, 2]).contains("one shape"));
    let mut c = m.new_context(opts).unwrap();
    assert!(err(&mut m, &mut batch, &mut [&mut a, &mut c, &mut wide], &[1, 2, 3]).contains("at most the batch's 2"));
    assert!(err(&mut m, &mut batch, &mut [&mut a], &[1, 2]).contains("one each"));
    assert_eq!((a.position(), b.position(), wide.position()), (0, 4, 0));
    let mut row = vec![0f32; VOCAB];
    assert!(m.batch_logits(&batch, 0, &mut row).is_err(), "no step has produced logits");
    m.forward_rows(&mut batch, &mut [&mut a, &mut c], &[1, 2]).unwrap();
    assert_eq!((a.position(), c.position()), (1, 1));
    m.batch_logits(&batch, 1, &mut row).unwrap();
    assert!(m.batch_logits(&batch, 2, &mut row).is_err());
    // A context's own logits are those of its own last forward, gone once a step has moved it.
    assert!(m.session(&mut a).logits(0, &mut row).is_err());
}
