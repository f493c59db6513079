//! Causal grouped-query attention with learned sinks and an optional sliding window, for one
//! token and one kv head: the query heads that share that kv head (8 in gpt-oss), up to
//! `MAX_GROUP` at a time.
//!
//! Parallel strategy: one task per (token, kv head) (`drivers::attention`); prefill has
//! tokens × kv heads tasks, decode 8, enough for a few cores. Within a task the keys go in
//! chunks of `KEYS`: the chunk's K and V rows are widened to f32 once (bf16 cache) and serve
//! every query head of the group. An online softmax (running max and denominator, rescaled
//! accumulators) visits each key once; the sink enters as the initial max with weight 1,
//! so it joins the denominator only: `out = Σ e^{z−m} v / (e^{sink−m} + Σ e^{z−m})`.

use std::mem::MaybeUninit;

use crate::simd::{MAX_LANES, Simd};
use crate::view::{KvData, KvView, MAX_HEAD_DIM};

/// Keys per chunk.
const KEYS: usize = 32;
/// Query heads per kv head the stack buffers hold.
pub const MAX_GROUP: usize = 16;

/// One task. `q` and `out` are the token's rows `[q_heads · head_dim]`.
pub struct AttnTask<'a> {
    pub q: &'a [f32],
    pub kv: &'a KvView<'a>,
    pub pos: usize,
    /// The kv head, and the query heads `h0 .. h0 + heads` (≤ `MAX_GROUP`) that read it.
    pub g: usize,
    pub h0: usize,
    pub heads: usize,
    pub sinks: &'a [f32],
    pub scale: f32,
    pub out: *mut f32,
}

/// `n` cache elements from `base` widened to f32 in `dst`.
#[inline(always)]
unsafe fn widen<S: Simd>(src: &KvData, base: usize, n: usize, dst: *mut f32) {
    unsafe {
        match src {
            KvData::F32(d) => std::ptr::copy_nonoverlapping(d.as_ptr().add(base), dst, n),
            KvData::Bf16(d) => {
                let mut i = 0;
                while i + S::LANES <= n {
                    S::store(dst.add(i), S::load_bf16(d.as_ptr().add(base + i)));
                    i += S::LANES;
                }
                for j in i..n {
                    *dst.add(j) = f32::from_bits((d[base + j] as u32) << 16);
                }
            }
        }
    }
}

/// `Σ a[i] · b[i]` over `n` floats.
#[inline(always)]
unsafe fn dot<S: Simd>(a: *const f32, b: *const f32, n: usize) -> f32 {
    unsafe {
        let mut acc = S::zero();
        let mut i = 0;
        while i + S::LANES <= n {
            acc = S::fma(S::load(a.add(i)), S::load(b.add(i)), acc);
            i += S::LANES;
        }
        let mut s = S::sum(acc);
        for j in i..n {
            s += *a.add(j) * *b.add(j);
        }
        s
    }
}

/// `p[j] = e^{p[j] − m}` in place (`Simd::exp`), returning their sum. A partial last vector
/// is padded with `m` (e^0), which is neither stored nor summed.
#[inline(always)]
unsafe fn exp_shifted<S: Simd>(p: &mut [f32], m: f32) -> f32 {
    unsafe {
        let neg_m = S::splat(-m);
        let mut acc = S::zero();
        let mut i = 0;
        while i + S::LANES <= p.len() {
            let e = S::exp(S::add(S::load(p.as_ptr().add(i)), neg_m));
            S::store(p.as_mut_ptr().add(i), e);
            acc = S::add(acc, e);
            i += S::LANES;
        }
        let mut sum = S::sum(acc);
        let rest = p.len() - i;
        if rest > 0 {
            let mut tail = [m; MAX_LANES];
            tail[..rest].copy_from_slice(&p[i..]);
            S::store(tail.as_mut_ptr(), S::exp(S::add(S::load(tail.as_ptr()), neg_m)));
            for (pj, &e) in p[i..].iter_mut().zip(&tail[..rest]) {
                *pj = e;
                sum += e;
            }
        }
        sum
    }
}

/// # Safety
/// The CPU supports `S`; `head_dim ≤ MAX_HEAD_DIM`, `heads ≤ MAX_GROUP`; `out` is valid for
/// the token's row and no other task writes this group's heads.
#[inline(always)]
pub unsafe fn group<S: Simd>(t: &AttnTask) {
    let d = t.kv.shape.head_dim;
    let h0 = t.h0;
    // Stack buffers, left uninitialised (zeroing 80 KB per task would cost more than decode's
    // attention itself); only what is written is read.
    let mut k = MaybeUninit::<[f32; KEYS * MAX_HEAD_DIM]>::uninit();
    let mut v = MaybeUninit::<[f32; KEYS * MAX_HEAD_DIM]>::uninit();
    let mut acc = MaybeUninit::<[f32; MAX_GROUP * MAX_HEAD_DIM]>::uninit();
    let (k, v, acc) = (k.as_mut_ptr() as *mut f32, v.as_mut_ptr() as *mut f32, acc.as_mut_ptr() as *mut f32);
    let mut p = [0f32; KEYS];
    // Running max (starting at the sink) and denominator (the sink's own e^0 = 1).
    let mut m: [f32; MAX_GROUP] = core::array::from_fn(|i| if i < t.heads { t.sinks[h0 + i] } else { 0.0 });
    let mut l = [1f32; MAX_GROUP];
    let first = t.kv.shape.first_key(t.pos);
    let mut s0 = first;
    unsafe {
        std::ptr::write_bytes(acc, 0, t.heads * d);
        while s0 <= t.pos {
            let keys = (t.pos + 1 - s0).min(KEYS);
            for j in 0..keys {
                let base = t.kv.shape.offset(s0 + j, t.g);
                widen::<S>(&t.kv.k, base, d, k.add(j * d));
                widen::<S>(&t.kv.v, base, d, v.add(j * d));
            }
            for h in 0..t.heads {
                let q = t.q.as_ptr().add((h0 + h) * d);
                let mut cmax = f32::NEG_INFINITY;
                for (j, pj) in p[..keys].iter_mut().enumerate() {
                    *pj = dot::<S>(q, k.add(j * d), d) * t.scale;
                    cmax = cmax.max(*pj);
                }
                // Rescale what was accumulated under the old max.
                let m_new = m[h].max(cmax);
                let corr = (m[h] - m_new).exp();
                m[h] = m_new;
                let sum = exp_shifted::<S>(&mut p[..keys], m_new);
                l[h] = l[h] * corr + sum;
                let a = acc.add(h * d);
                let cv = S::splat(corr);
                let mut i = 0;
                while i + S::LANES <= d {
                    let mut av = S::mul(S::load(a.add(i)), cv);
                    for (j, &pj) in p[..keys].iter().enumerate() {
                        av = S::fma(S::splat(pj), S::load(v.add(j * d + i)), av);
                    }
                    S::store(a.add(i), av);
                    i += S::LANES;
                }
                for i in i..d {
                    let mut av = *a.add(i) * corr;
                    for (j, &pj) in p[..keys].iter().enumerate() {
                        av += pj * *v.add(j * d + i);
                    }
                    *a.add(i) = av;
                }
            }
            s0 += keys;
        }
        for (h, lh) in l.iter().enumerate().take(t.heads) {
            let inv = 1.0 / lh;
            let o = t.out.add((h0 + h) * d);
            for i in 0..d {
                *o.add(i) = *acc.add(h * d + i) * inv;
            }
        }
    }
}
