// Attention input projections with everything after them fused: q, k, v = W x + b; RoPE (YaRN
// frequencies, split halves (u[i], u[i + d/2])) on q and k; q to q_out, k and v straight into
// the KV cache at slot pos % capacity (bf16 round-to-nearest-even or f32).
//
// Parallel strategy: one warp per rotation pair, i.e. rows i and i + d/2 of one head of q, k
// or v (v pairs are not rotated but are computed the same way), GPTOSS_QKV_WARPS pairs per
// block; grid = (q_heads + 2 kv_heads) · d/2 / GPTOSS_QKV_WARPS (320 blocks for gpt-oss). The two rows' 16-byte
// chunks form one task list over the warp, so both are in flight together and the rotation
// needs no shared memory: after the shuffle reduction every lane holds both dot products.
// Positions are read from device memory, so a captured decode step replays for any position.
// Trade-offs: q, k and v are separate weights (no offline repacking), which costs nothing here
// because every warp reads exactly its own two rows.
#include "common.cuh"

template <class F, class KV>
__device__ void qkv_rope(const GptossQkvRopeArgs &a) {
    const unsigned int half = a.head_dim / 2;
    const unsigned int pair = blockIdx.x * GPTOSS_QKV_WARPS + threadIdx.x / GPTOSS_WARP;
    const unsigned int heads = a.q_heads + 2 * a.kv_heads;
    if (pair >= heads * half) return;  // whole warps exit together
    const unsigned int lane = threadIdx.x % GPTOSS_WARP;
    const unsigned int head = pair / half, i = pair % half;

    // Which projection this head belongs to, and its head index within it.
    const bool is_q = head < a.q_heads, is_k = !is_q && head < a.q_heads + a.kv_heads;
    const GptossWeight &w = is_q ? a.q : is_k ? a.k : a.v;
    const unsigned int h = is_q ? head : is_k ? head - a.q_heads : head - a.q_heads - a.kv_heads;
    const unsigned int rows[2] = {h * a.head_dim + i, h * a.head_dim + i + half};
    const float b0 = bias_at(w, 0, rows[0]), b1 = bias_at(w, 0, rows[1]);
    const float inv_freq = a.inv_freq[i];

    constexpr int NT = tokens_per_pass<F>();
    for (unsigned int t0 = 0; t0 < a.n; t0 += NT) {
        const unsigned int nt = min(a.n - t0, (unsigned int)NT);
        float acc[2][NT];
        warp_rows_dot<F, 2, NT>(w, 0, rows, a.x + (unsigned long long)t0 * w.cols, w.cols, nt, acc);
        // Lane t finishes token t0 + t (static indices into acc).
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (lane != (unsigned int)t || t >= (int)nt) continue;
            const unsigned int pos = a.positions[t0 + t];
            float x0 = acc[0][t] + b0, x1 = acc[1][t] + b1;
            if (is_q || is_k) {
                // The angle is rounded to f32 as the references compute it, then its sine and
                // cosine taken in f64 (as the CPU reference does): angles reach 1.3e5 radians,
                // where f32 sincosf needs its slow, stack-using reduction path.
                double sd, cd;
                sincos((double)((float)pos * inv_freq), &sd, &cd);
                const float c = (float)(cd * a.concentration), s = (float)(sd * a.concentration);
                const float r0 = x0 * c - x1 * s, r1 = x1 * c + x0 * s;
                x0 = r0, x1 = r1;
            }
            if (is_q) {
                float *q = a.q_out + (unsigned long long)(t0 + t) * a.q.rows;
                q[rows[0]] = x0;
                q[rows[1]] = x1;
            } else {
                const unsigned long long slot = ((unsigned long long)(pos % a.capacity) * a.kv_heads + h) * a.head_dim;
                KV *cache = static_cast<KV *>(is_k ? a.k_cache : a.v_cache) + slot;
                KvStore<KV>::put(cache + i, x0);
                KvStore<KV>::put(cache + i + half, x1);
            }
        }
    }
}

#define QKV_KERNEL(name, F, KV) \
    extern "C" __global__ void __launch_bounds__(GPTOSS_QKV_WARPS * GPTOSS_WARP, 2) name(const GptossQkvRopeArgs a) { qkv_rope<F, KV>(a); }

QKV_KERNEL(f32_f32w_qkv_rope_kvbf16, FmtF32, unsigned short)
QKV_KERNEL(f32_bf16w_qkv_rope_kvbf16, FmtBf16, unsigned short)
QKV_KERNEL(f32_i8w_qkv_rope_kvbf16, FmtI8, unsigned short)
QKV_KERNEL(f32_i4w_qkv_rope_kvbf16, FmtI4, unsigned short)
QKV_KERNEL(f32_f32w_qkv_rope_kvf32, FmtF32, float)
QKV_KERNEL(f32_bf16w_qkv_rope_kvf32, FmtBf16, float)
QKV_KERNEL(f32_i8w_qkv_rope_kvf32, FmtI8, float)
QKV_KERNEL(f32_i4w_qkv_rope_kvf32, FmtI4, float)
