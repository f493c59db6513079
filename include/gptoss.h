/*
 * gptoss.h — the C interface of gptoss, an inference engine for OpenAI's gpt-oss models.
 *
 * Link with libgptoss.a and the system libraries `gptoss --print-link-flags` prints
 * (on Linux: -lpthread -ldl -lm -lrt -lutil -lc -lgcc_s).
 *
 * Conventions
 * - Every function returns a gptoss_status; GPTOSS_SUCCESS is 0. On failure a message naming
 *   the problem is available from gptoss_last_error() on the calling thread.
 * - Out-parameters are written only on success, except where a function says otherwise (the
 *   "needed size" of GPTOSS_BUFFER_TOO_SMALL). Handle out-parameters are set to NULL on failure.
 * - A NULL where a pointer is required gives GPTOSS_INVALID_ARGUMENT.
 * - Handles are reference counted: *_retain adds a reference, *_release drops one and frees the
 *   object with the last. Releasing NULL is a no-op. Using a handle after its last release is
 *   undefined behaviour.
 * - Thread safety: every function may be called from any thread. Calls on one model (and on
 *   its sessions) are serialized internally. A token callback runs inside such a call and must
 *   not call back into gptoss with the same model or session.
 * - No Rust panic crosses this interface: an internal failure returns GPTOSS_INTERNAL_ERROR.
 */
#ifndef GPTOSS_H
#define GPTOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gptoss_status {
    GPTOSS_SUCCESS = 0,
    /* A NULL pointer, an out-of-range value, an unknown token id or option. */
    GPTOSS_INVALID_ARGUMENT = 1,
    /* An output buffer is too small; the needed size was written to the size out-parameter. */
    GPTOSS_BUFFER_TOO_SMALL = 2,
    /* A file could not be read. */
    GPTOSS_IO_ERROR = 3,
    /* A checkpoint or config is malformed or does not match gpt-oss. */
    GPTOSS_INVALID_MODEL = 4,
    /* The request needs a backend, format or feature this build or machine lacks. */
    GPTOSS_UNSUPPORTED = 5,
    /* More tokens than the session's context holds. */
    GPTOSS_CONTEXT_OVERFLOW = 6,
    GPTOSS_OUT_OF_MEMORY = 7,
    /* A device reported an error. */
    GPTOSS_BACKEND_ERROR = 8,
    /* A bug in gptoss; the message says where. */
    GPTOSS_INTERNAL_ERROR = 9,
} gptoss_status;

typedef enum gptoss_backend {
    /* CUDA when built with it and a GPU is present, else the CPU. */
    GPTOSS_BACKEND_AUTO = 0,
    GPTOSS_BACKEND_CPU = 1,
    GPTOSS_BACKEND_CUDA = 2,
    /* The CUDA kernels on the emulated device (a library built with the `cuda-sim` feature):
     * for checking them without a GPU; slow. */
    GPTOSS_BACKEND_CUDA_SIM = 3,
} gptoss_backend;

/* How attention and unembedding weights are held once loaded (MXFP4 experts stay as they are). */
typedef enum gptoss_weights {
    /* As the checkpoint stores them. */
    GPTOSS_WEIGHTS_NATIVE = 0,
    /* Converted at load to int8 with one scale per output row. */
    GPTOSS_WEIGHTS_INT8 = 1,
    /* Converted at load to int4 in groups of `int4_group` inputs. */
    GPTOSS_WEIGHTS_INT4 = 2,
} gptoss_weights;

/* What the CPU's matmuls of int8, int4 and MXFP4 weights multiply (bf16 and f32 weights always
 * take f32 activations). */
typedef enum gptoss_cpu_activations {
    /* Activations quantized to int8 blocks of 32 (integer dot products; ~1e-3 nats of KL on
     * the reference fixture, bench/NOTES.md). The default. */
    GPTOSS_CPU_ACTIVATIONS_INT8 = 0,
    /* Exact f32 activations: the stored weights' exact products. */
    GPTOSS_CPU_ACTIVATIONS_F32 = 1,
} gptoss_cpu_activations;

/* Where a model's weights live while it runs (the command line's `--offload`). */
typedef enum gptoss_offload {
    /* Chosen from the memory budget: every weight in memory when the model fits, else
     * GPTOSS_OFFLOAD_EXPERTS; without a budget, as the backend does by default (the CPU
     * computes from a memory-mapped checkpoint). */
    GPTOSS_OFFLOAD_AUTO = 0,
    /* Every weight in memory of the library's own (or on the device). */
    GPTOSS_OFFLOAD_NONE = 1,
    /* The checkpoint memory-mapped and used in place; the OS pages it (CPU only). */
    GPTOSS_OFFLOAD_MMAP = 2,
    /* Each layer read from disk before it runs, the next one while it computes. */
    GPTOSS_OFFLOAD_LAYERED = 3,
    /* Dense weights in memory; routed experts read on demand into a cache of expert slots. */
    GPTOSS_OFFLOAD_EXPERTS = 4,
    /* A GPU's mode: dense weights on the device, every routed expert in pinned host memory the
     * device reads in place, the hot ones copied into device slots beside the steps. */
    GPTOSS_OFFLOAD_HOST = 5,
} gptoss_offload;

/* The expert cache's replacement policy (GPTOSS_OFFLOAD_EXPERTS). */
typedef enum gptoss_expert_cache {
    /* Evict the least recently used (layer, expert). */
    GPTOSS_EXPERT_CACHE_LRU = 0,
    /* Evict the least used since it was read, the least recently used among equals. */
    GPTOSS_EXPERT_CACHE_LFU = 1,
} gptoss_expert_cache;

typedef struct gptoss_model gptoss_model;
typedef struct gptoss_session gptoss_session;
typedef struct gptoss_tokenizer gptoss_tokenizer;

/* How a model is loaded. Fill with gptoss_model_options_default, then change fields. */
typedef struct gptoss_model_options {
    gptoss_backend backend;
    /* CPU worker threads; 0 uses every core. */
    uint32_t threads;
    /* Tokens one forward pass takes at most (prefill chunk); 0 uses the default (128). */
    uint32_t max_batch;
    /* A gptoss_weights value. Conversion needs a backend that supports it (the CPU does). */
    uint32_t weights;
    /* Group size for GPTOSS_WEIGHTS_INT4: 32 or 64 (0 means 32); ignored otherwise. */
    uint32_t int4_group;
    /* A gptoss_offload value. Streaming modes need a model directory on disk. */
    uint32_t offload;
    /* A gptoss_expert_cache value. */
    uint32_t expert_cache;
    /* The most memory the model may take, in bytes, one session of 4096 tokens included; 0
     * means no budget. A budget too small for the mode fails the load with
     * GPTOSS_OUT_OF_MEMORY and a message naming the budget and the bytes needed. */
    uint64_t memory_budget;
    /* A gptoss_cpu_activations value (CPU backend only). */
    uint32_t cpu_activations;
} gptoss_model_options;

/* How the next token is drawn. temperature 0 (or top_k 1) is greedy. */
typedef struct gptoss_sampler {
    float temperature;
    /* 0: no top-k cut. */
    uint32_t top_k;
    /* In (0, 1]; 1: no nucleus cut. */
    float top_p;
    /* Seeds the random source of gptoss_session_generate; equal seeds give equal tokens. */
    uint64_t seed;
} gptoss_sampler;

/* Returns non-zero to stop generation after this token. */
typedef int (*gptoss_token_callback)(void* user_data, uint32_t token);

typedef enum gptoss_stop_reason {
    GPTOSS_STOP_MAX_TOKENS = 0,
    GPTOSS_STOP_TOKEN = 1,
    GPTOSS_STOP_CALLBACK = 2,
} gptoss_stop_reason;

typedef struct gptoss_stats {
    uint64_t prompt_tokens;
    uint64_t generated_tokens;
    /* Prefill plus the first sample, in milliseconds. */
    double ttft_ms;
    double prefill_tokens_per_second;
    /* Tokens after the first over the time they took. */
    double decode_tokens_per_second;
    gptoss_stop_reason stop_reason;
} gptoss_stats;

/* ---- library -------------------------------------------------------------------------- */

/* The version, e.g. "0.1.0 (abcdef123456)". A static string. */
const char* gptoss_version(void);

/* A static description of a status. Unknown values give "unknown status". */
const char* gptoss_status_string(gptoss_status status);

/* The message of the last failed call on this thread ("" if none). Valid until the next
 * gptoss call on this thread. */
const char* gptoss_last_error(void);

/* ---- models --------------------------------------------------------------------------- */

/* Writes the default options (auto backend, all cores, batch 128, native weights, no memory
 * budget, int8 CPU activations) to *options. */
gptoss_status gptoss_model_options_default(gptoss_model_options* options);

/* Loads a model from a Hugging Face-layout directory or a name `synthetic:tiny`,
 * `synthetic:20b`, `synthetic:120b` (optionally `@SEED`). `options` may be NULL for the
 * defaults. On success *model_out holds a new handle with one reference; on failure it is
 * set to NULL: GPTOSS_IO_ERROR for a file that cannot be read, GPTOSS_INVALID_MODEL for a
 * malformed one, GPTOSS_UNSUPPORTED for a backend this build or machine lacks,
 * GPTOSS_OUT_OF_MEMORY for weights that would not fit. */
gptoss_status gptoss_model_load(const char* path, const gptoss_model_options* options, gptoss_model** model_out);

gptoss_status gptoss_model_retain(gptoss_model* model);
/* Drops a reference; NULL is a no-op. Sessions keep their model alive. */
gptoss_status gptoss_model_release(gptoss_model* model);

gptoss_status gptoss_model_vocab_size(gptoss_model* model, uint32_t* vocab_size_out);
/* The largest context a session of this model can have (max_position_embeddings). */
gptoss_status gptoss_model_max_context(gptoss_model* model, uint64_t* max_context_out);

/* The backend's description, e.g. "cpu (avx2, 16 threads)", as a NUL-terminated string.
 * If `capacity` is too small, returns GPTOSS_BUFFER_TOO_SMALL and writes the needed size
 * (including the NUL) to *size_out; on success *size_out is the length without the NUL.
 * `buffer` may be NULL when `capacity` is 0. */
gptoss_status gptoss_model_backend(gptoss_model* model, char* buffer, size_t capacity, size_t* size_out);

/* ---- sessions: one conversation's KV cache -------------------------------------------- */

/* A new, empty session of `model` holding up to `context_length` tokens (0: 4096, capped at
 * the model's maximum). Takes a reference to the model. On failure *session_out is NULL;
 * GPTOSS_OUT_OF_MEMORY, with both sizes in the message, when its KV cache and activations
 * would not fit in the backend's memory. */
gptoss_status gptoss_session_create(gptoss_model* model, uint64_t context_length, gptoss_session** session_out);

gptoss_status gptoss_session_retain(gptoss_session* session);
gptoss_status gptoss_session_release(gptoss_session* session);

/* Runs `count` tokens through the model after those already in the session (a prefill), so
 * that the next sample continues from the last of them. The request is checked first: on an
 * unknown id or too little room the session is unchanged. If the device fails midway, the
 * tokens already processed stay appended (see gptoss_session_position). `tokens` may be NULL
 * when `count` is 0 (then nothing happens). */
gptoss_status gptoss_session_append(gptoss_session* session, const uint32_t* tokens, size_t count);

/* Empties the session. */
gptoss_status gptoss_session_reset(gptoss_session* session);

/* Forgets the tokens from `position` on. Fails (session unchanged) beyond the current
 * position, or further back than a sliding-window layer keeps. */
gptoss_status gptoss_session_rollback(gptoss_session* session, uint64_t position);

/* Tokens in the session: the position of the next token. */
gptoss_status gptoss_session_position(gptoss_session* session, uint64_t* position_out);

/* Samples the next token from the logits of the last appended token with `sampler`, whose
 * seed starts the session's random source on the first sample after create, reset or a seed
 * change. Does not append the token. Fails if nothing has been appended since the session was
 * created, reset or rolled back, and with GPTOSS_INVALID_MODEL if those logits hold NaN or an
 * infinity (the message names the first; `gptoss inspect --check` finds such weights). */
gptoss_status gptoss_session_sample(gptoss_session* session, const gptoss_sampler* sampler, uint32_t* token_out);

/* Copies the logits of the last appended token (vocab_size floats) and writes their count to
 * *count_out. If `capacity` is smaller, returns GPTOSS_BUFFER_TOO_SMALL and writes vocab_size
 * to *count_out. Fails like gptoss_session_sample when there are no logits. */
gptoss_status gptoss_session_logits(gptoss_session* session, float* logits, size_t capacity, size_t* count_out);

/* Appends `prompt` (at least one token), then samples up to `max_tokens` tokens, calling
 * `callback` (may be NULL) with each; sampled tokens are appended as generation goes, except
 * the last. Generation stops after a token in `stop_tokens` (if `stop_tokens` is NULL and
 * `stop_count` 0, the model's end-of-sequence ids), after `max_tokens`, or when the callback
 * returns non-zero. The random source is seeded with `sampler->seed` at the start. The request
 * is checked first — known ids, room for the prompt and every sampled token but the last, valid
 * sampler — and on failure nothing is appended; after a device failure the tokens processed
 * stay appended. Stops with GPTOSS_INVALID_MODEL when the logits a token would be sampled from
 * are not finite. `stats_out` may be NULL; it is written on success. With speculation set
 * (gptoss_session_set_speculation below) a draft proposes the tokens and the model verifies
 * them; the session then holds the same tokens, but keeps no logits (gptoss_session_sample and
 * gptoss_session_logits need an append first). */
gptoss_status gptoss_session_generate(gptoss_session* session, const uint32_t* prompt, size_t prompt_count, uint32_t max_tokens,
                                      const gptoss_sampler* sampler, const uint32_t* stop_tokens, size_t stop_count,
                                      gptoss_token_callback callback, void* user_data, gptoss_stats* stats_out);

/* ---- speculative decoding ------------------------------------------------------------ */

/* Speculative decoding for a session's generations: a draft proposes up to `tokens` tokens per
 * step and the model checks them all in one forward pass, keeping the longest acceptable
 * prefix plus one token of its own. Greedy generation gives exactly the tokens it gives
 * without speculation on the CPU (on CUDA, within the tolerance of batched kernels: a proposal
 * may be judged on logits that differ from a one-token step's in the last bits); sampled
 * generation draws each token from the same distribution (not the same tokens for a seed). */
typedef struct gptoss_speculation {
    /* The draft, as text: "ngram:N" (copies what followed the last N tokens earlier in the
     * sequence), "self:FORM" (the session's model with attention and unembedding in FORM =
     * native, int8 or int4[:GROUP], then optionally ":topN" experts per token; the experts are
     * shared, not copied) or "random" (uniform ids: the floor). NULL to use `draft_model`. */
    const char* draft;
    /* Another model drafting (from gptoss_model_load, with the same vocabulary and tokenizer:
     * refused otherwise, naming both). NULL to use `draft`. The session takes a reference. The
     * session's own model is its self-draft at full precision ("self:native"). */
    gptoss_model* draft_model;
    /* Tokens proposed per step (at most the model's max_batch − 1 and the context left are
     * used); 0 chooses per step from the measured acceptance and step times. */
    uint32_t tokens;
} gptoss_speculation;

/* What the last speculative generation of a session did. */
typedef struct gptoss_speculation_stats {
    /* Verification steps: forward passes over the last token and a proposal. */
    uint64_t steps;
    uint64_t proposed;
    uint64_t accepted;
    /* Tokens generated per step: accepted proposals plus the model's own. */
    double tokens_per_step;
    /* Time spent drafting and verifying, in milliseconds. */
    double draft_ms;
    double verify_ms;
    /* Mean bytes a verification step read (dense weights once, the union of the experts its
     * tokens were routed to, the KV cache attended), and the distinct experts per layer. */
    double verify_bytes_per_step;
    double experts_per_layer;
} gptoss_speculation_stats;

/* Sets speculative decoding for the session's later gptoss_session_generate calls, or clears
 * it when `speculation` is NULL. The draft is checked and prepared now (a self-draft's
 * converted weights, a draft model's KV cache); a draft model with another vocabulary or
 * tokenizer gives GPTOSS_INVALID_ARGUMENT naming both. On failure the session keeps its
 * earlier setting. */
gptoss_status gptoss_session_set_speculation(gptoss_session* session, const gptoss_speculation* speculation);

/* The figures of the session's last speculative generation. Fails if none has run since the
 * speculation was set. */
gptoss_status gptoss_session_speculation_stats(gptoss_session* session, gptoss_speculation_stats* stats_out);

/* The acceptance of the last speculative generation by position in the proposal (from 0):
 * accepted over reached, a position being reached when the ones before it were accepted.
 * Output as for gptoss_session_logits (doubles). */
gptoss_status gptoss_session_speculation_acceptance(gptoss_session* session, double* acceptance, size_t capacity, size_t* count_out);

/* ---- tokenizer and the harmony chat format --------------------------------------------- */

typedef enum gptoss_reasoning_effort {
    GPTOSS_REASONING_LOW = 0,
    GPTOSS_REASONING_MEDIUM = 1,
    GPTOSS_REASONING_HIGH = 2,
} gptoss_reasoning_effort;

/* One message of a conversation. `role` is "system", "developer", "user", "assistant", or a
 * tool's name such as "functions.get_weather" for that tool's output. `content` is the text;
 * a "system" message may leave it NULL for harmony's default system message (model identity,
 * knowledge cutoff, reasoning effort, channels); a "developer" message's text is rendered as
 * its instructions. `channel` ("analysis", "commentary", "final"), `recipient` (e.g.
 * "functions.get_weather" for a tool call) and `content_type` (e.g. "<|constrain|>json") may be
 * NULL. All strings are NUL-terminated UTF-8. */
typedef struct gptoss_chat_message {
    const char* role;
    const char* channel;
    const char* recipient;
    const char* content_type;
    const char* content;
} gptoss_chat_message;

/* The tokenizer of a model, chosen as the `gptoss` command chooses it: for a model directory
 * with a tokenizer.json, that file; otherwise (`model_dir` NULL, a synthetic model such as
 * "synthetic:20b", a directory without one) the embedded o200k_harmony, which every gpt-oss
 * model uses. On failure *tokenizer_out is NULL:
 * GPTOSS_IO_ERROR when tokenizer.json cannot be read, GPTOSS_INVALID_MODEL when it is malformed. */
gptoss_status gptoss_tokenizer_load(const char* model_dir, gptoss_tokenizer** tokenizer_out);

gptoss_status gptoss_tokenizer_retain(gptoss_tokenizer* tokenizer);
gptoss_status gptoss_tokenizer_release(gptoss_tokenizer* tokenizer);

/* Encodes `length` bytes of UTF-8 text (need not be NUL-terminated). With `allow_special`
 * zero, special-token text such as "<|start|>" is encoded as ordinary text; non-zero turns it
 * into the special ids. Writes the ids to `tokens` and their count to *count_out; if
 * `capacity` is too small, returns GPTOSS_BUFFER_TOO_SMALL with the needed count in
 * *count_out. `tokens` may be NULL when `capacity` is 0. */
gptoss_status gptoss_tokenizer_encode(gptoss_tokenizer* tokenizer, const char* text, size_t length, int allow_special, uint32_t* tokens,
                                      size_t capacity, size_t* count_out);

/* Decodes ids to the exact bytes they stand for (not NUL-terminated; a token may end inside a
 * UTF-8 character). Writes *size_out like gptoss_tokenizer_encode writes *count_out. An
 * unknown id gives GPTOSS_INVALID_ARGUMENT. */
gptoss_status gptoss_tokenizer_decode(gptoss_tokenizer* tokenizer, const uint32_t* tokens, size_t count, char* bytes, size_t capacity,
                                      size_t* size_out);

/* The id of a token given as its text: a special token such as "<|start|>" or an ordinary
 * token such as "Hello". */
gptoss_status gptoss_tokenizer_token_id(gptoss_tokenizer* tokenizer, const char* token, uint32_t* id_out);

/* Renders `count` messages in the harmony format, token for token as OpenAI's harmony library
 * does (earlier analysis messages are dropped once a final answer exists). With
 * `add_generation_prompt` non-zero, appends "<|start|>assistant" so a model continues with its
 * reply. `reasoning_effort` is a gptoss_reasoning_effort, used by a default system message.
 * Output as for gptoss_tokenizer_encode. */
gptoss_status gptoss_tokenizer_render_chat(gptoss_tokenizer* tokenizer, const gptoss_chat_message* messages, size_t count,
                                           uint32_t reasoning_effort, int add_generation_prompt, uint32_t* tokens, size_t capacity,
                                           size_t* count_out);

/* The ids that end an assistant's turn when sampling: <|return|> and <|call|> (not <|end|>,
 * which separates the analysis from the final answer). Output as for gptoss_tokenizer_encode. */
gptoss_status gptoss_tokenizer_stop_tokens(gptoss_tokenizer* tokenizer, uint32_t* tokens, size_t capacity, size_t* count_out);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_H */
