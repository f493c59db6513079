// The routed experts of a MoE block in two launches, expert ids and weights read from device
// memory (no host round trip, so a decode step stays one CUDA graph):
// 1. gate_up: act[t, k, j] = swiglu(W1[e] x[t] + b1[e] at rows 2j, 2j + 1), e = ids[t, k], with
//    gpt-oss's clamped SwiGLU (gate ≤ limit, |up| ≤ limit, the +1 on the linear branch);
// 2. down: residual[t, r] += Σ_k weights[t, k] · (W2[ids[t, k]] act[t, k] + b2[ids[t, k]])[r].
//
// Parallel strategy. gate_up: grid (intermediate / GPTOSS_MOE_WARPS, tokens · top_k), one warp per (gate, up)
// row pair of the slot's expert, both rows' chunks dealt to the lanes as one task list (an MXFP4
// row of 2880 is only 90 chunks). down: grid (hidden / GPTOSS_MOE_WARPS, tokens), one warp per output row that
// loops over the token's k experts, so the weighted sum, the bias and the residual add happen in
// the lane that owns the row: no atomics and no separate combine kernel; the grid does not
// depend on the routing. Trade-offs: the k experts of a row are visited one after another, so
// fewer loads are in flight per lane than a flat (expert, chunk) task list would give; at
// prefill, tokens sharing an expert re-read its rows (a grouped MoE GEMM over tokens sorted by
// expert is future work).
#include "common.cuh"

__device__ __forceinline__ float swiglu(float gate, float up, float alpha, float limit) {
    const float g = fminf(gate, limit), u = fminf(fmaxf(up, -limit), limit);
    return g / (1.0f + expf(-alpha * g)) * (u + 1.0f);
}

template <class F>
__device__ void moe_gate_up(const GptossMoeGateUpArgs &a) {
    const unsigned int inter = a.w.rows / 2;
    const unsigned int j = blockIdx.x * GPTOSS_MOE_WARPS + threadIdx.x / GPTOSS_WARP;
    if (j >= inter) return;  // whole warps exit together
    const unsigned int slot = blockIdx.y, t = slot / a.top_k;
    const unsigned int e = a.ids[slot];
    float *out = a.act + (unsigned long long)slot * inter + j;
    if (e >= a.w.experts) {
        if (threadIdx.x % GPTOSS_WARP == 0) {
            report(a.status, GPTOSS_STATUS_EXPERT_RANGE);
            *out = 0.0f;
        }
        return;
    }
    const unsigned int rows[2] = {2 * j, 2 * j + 1};
    float acc[2][1];
    warp_rows_dot<F, 2, 1>(a.w, e, rows, a.x + (unsigned long long)t * a.w.cols, a.w.cols, 1, acc);
    if (threadIdx.x % GPTOSS_WARP == 0) *out = swiglu(acc[0][0] + bias_at(a.w, e, 2 * j), acc[1][0] + bias_at(a.w, e, 2 * j + 1), a.alpha, a.limit);
}

template <class F>
__device__ void moe_down(const GptossMoeDownArgs &a) {
    const unsigned int r = blockIdx.x * GPTOSS_MOE_WARPS + threadIdx.x / GPTOSS_WARP;
    if (r >= a.w.rows) return;  // whole warps exit together
    const unsigned int t = blockIdx.y, lane = threadIdx.x % GPTOSS_WARP, cols = a.w.cols;
    const unsigned int *ids = a.ids + (unsigned long long)t * a.top_k;
    const float *weights = a.weights + (unsigned long long)t * a.top_k;
    float sum = 0.0f;
    for (unsigned int k = 0; k < a.top_k; k++) {
        const unsigned int e = ids[k];
        if (e >= a.w.experts) {
            if (lane == 0 && r == 0) report(a.status, GPTOSS_STATUS_EXPERT_RANGE);
            continue;
        }
        const unsigned int rows[1] = {r};
        float acc[1][1];
        warp_rows_dot<F, 1, 1>(a.w, e, rows, a.act + ((unsigned long long)t * a.top_k + k) * cols, cols, 1, acc);
        sum = fmaf(weights[k], acc[0][0] + bias_at(a.w, e, r), sum);
    }
    if (lane == 0) a.residual[(unsigned long long)t * a.w.rows + r] += sum;
}

// Each format's two kernels, their names spelled out as in the PTX.
#define MOE_BOUNDS __launch_bounds__(GPTOSS_MOE_WARPS * GPTOSS_WARP, 2)
extern "C" __global__ void MOE_BOUNDS f32_mf4w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtMf4>(a); }
extern "C" __global__ void MOE_BOUNDS f32_mf4w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtMf4>(a); }
extern "C" __global__ void MOE_BOUNDS f32_bf16w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtBf16>(a); }
extern "C" __global__ void MOE_BOUNDS f32_bf16w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtBf16>(a); }
extern "C" __global__ void MOE_BOUNDS f32_f32w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtF32>(a); }
extern "C" __global__ void MOE_BOUNDS f32_f32w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtF32>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i8w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtI8>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i8w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtI8>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i4w_moe_gate_up_swiglu(const GptossMoeGateUpArgs a) { moe_gate_up<FmtI4>(a); }
extern "C" __global__ void MOE_BOUNDS f32_i4w_moe_down_combine(const GptossMoeDownArgs a) { moe_down<FmtI4>(a); }
