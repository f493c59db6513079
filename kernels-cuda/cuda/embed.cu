// Embedding lookup: out[t, :] = table[tokens[t], :] widened to f32.
//
// Parallel strategy: one block per token, threads striding over the row's columns (coalesced
// reads of one table row, coalesced f32 writes). A copy: nothing to fuse, nothing to reduce.
// A token id beyond the table is reported through the status word and its row is zeroed
// (ids live in device memory, so the host cannot check them before the launch).
#include "common.cuh"

template <class F>
__device__ void embed(const GptossEmbedArgs &a) {
    const unsigned int t = blockIdx.x;
    const unsigned int id = a.tokens[t];
    const unsigned int cols = a.table.cols;
    float *out = a.out + (unsigned long long)t * cols;
    if (id >= a.table.rows) {
        if (threadIdx.x == 0) report(a.status, GPTOSS_STATUS_TOKEN_RANGE);
        for (unsigned int c = threadIdx.x; c < cols; c += blockDim.x) out[c] = 0.0f;
        return;
    }
    const unsigned char *row = static_cast<const unsigned char *>(a.table.data) + (unsigned long long)id * F::row_bytes(cols);
    for (unsigned int c = threadIdx.x; c < cols; c += blockDim.x) out[c] = F::element(row, c);
}

extern "C" __global__ void __launch_bounds__(GPTOSS_COPY_THREADS) f32_f32w_embed(const GptossEmbedArgs a) { embed<FmtF32>(a); }
extern "C" __global__ void __launch_bounds__(GPTOSS_COPY_THREADS) f32_bf16w_embed(const GptossEmbedArgs a) { embed<FmtBf16>(a); }
