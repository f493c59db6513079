/*
 * Generates tokens with gptoss from C.
 *
 *   cc -Iinclude examples/c/generate.c target/release/libgptoss.a $(gptoss --print-link-flags) -o generate
 *   ./generate synthetic:tiny 16
 *   ./generate synthetic:tiny 16 self:int8     (speculative decoding with a draft)
 *
 * Renders a one-question chat in the harmony format, prints each generated token id as it
 * comes, then the decoded text and the speed; with a model that cannot be loaded it prints the
 * status and the library's message and exits with 2. A third argument names a draft for
 * speculative decoding (ngram:N, self:FORM, random): the tokens are drawn from the same
 * distribution, and what the draft did is printed at the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gptoss.h"

#define MAX_GENERATED 4096

struct generated {
    uint32_t ids[MAX_GENERATED];
    unsigned count;
};

static int print_token(void* user_data, uint32_t token) {
    struct generated* g = user_data;
    printf("%s%u", g->count == 0 ? "" : ",", token);
    fflush(stdout);
    if (g->count < MAX_GENERATED) g->ids[g->count] = token;
    g->count += 1;
    return 0; /* keep going */
}

int main(int argc, char** argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s MODEL MAX_TOKENS [DRAFT]\n", argv[0]);
        return 1;
    }
    const uint32_t max_tokens = (uint32_t) strtoul(argv[2], NULL, 10);

    gptoss_model_options options;
    gptoss_model_options_default(&options);
    options.backend = GPTOSS_BACKEND_CPU;

    gptoss_model* model = NULL;
    gptoss_status status = gptoss_model_load(argv[1], &options, &model);
    if (status != GPTOSS_SUCCESS) {
        fprintf(stderr, "cannot load %s: %s: %s\n", argv[1], gptoss_status_string(status), gptoss_last_error());
        return 2;
    }

    gptoss_session* session = NULL;
    status = gptoss_session_create(model, 256, &session);
    if (status != GPTOSS_SUCCESS) {
        fprintf(stderr, "cannot create a session: %s\n", gptoss_last_error());
        gptoss_model_release(model);
        return 3;
    }

    /* The prompt: harmony's default system message and one question, then <|start|>assistant. */
    gptoss_tokenizer* tokenizer = NULL;
    status = gptoss_tokenizer_load(NULL, &tokenizer);
    const gptoss_chat_message chat[] = {
        {.role = "system"},
        {.role = "user", .content = "What is the capital of France?"},
    };
    uint32_t prompt[256];
    size_t prompt_count = 0;
    if (status == GPTOSS_SUCCESS) {
        status = gptoss_tokenizer_render_chat(tokenizer, chat, 2, GPTOSS_REASONING_LOW, 1, prompt, 256, &prompt_count);
    }
    /* Only the tokens that end the turn stop it (not <|end|>, between analysis and answer). */
    uint32_t stops[2];
    size_t stop_count = 0;
    if (status == GPTOSS_SUCCESS) {
        status = gptoss_tokenizer_stop_tokens(tokenizer, stops, 2, &stop_count);
    }

    if (status == GPTOSS_SUCCESS && argc == 4) {
        const gptoss_speculation speculation = {.draft = argv[3], .draft_model = NULL, .tokens = 4};
        status = gptoss_session_set_speculation(session, &speculation);
    }

    static struct generated g;
    gptoss_stats stats = {0};
    const gptoss_sampler sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 42};
    if (status == GPTOSS_SUCCESS) {
        status = gptoss_session_generate(session, prompt, prompt_count, max_tokens, &sampler, stops, stop_count, print_token, &g, &stats);
    }
    printf("\n");
    if (status != GPTOSS_SUCCESS) {
        fprintf(stderr, "failed: %s: %s\n", gptoss_status_string(status), gptoss_last_error());
    } else {
        char text[1 << 16];
        size_t size = 0;
        unsigned n = g.count < MAX_GENERATED ? g.count : MAX_GENERATED;
        if (gptoss_tokenizer_decode(tokenizer, g.ids, n, text, sizeof text, &size) == GPTOSS_SUCCESS) {
            fprintf(stderr, "text: %.*s\n", (int) size, text);
        }
        fprintf(stderr, "%llu tokens after a %zu-token prompt, %.1f tok/s decode, TTFT %.1f ms (gptoss %s)\n",
                (unsigned long long) stats.generated_tokens, prompt_count, stats.decode_tokens_per_second, stats.ttft_ms,
                gptoss_version());
        gptoss_speculation_stats spec;
        if (argc == 4 && gptoss_session_speculation_stats(session, &spec) == GPTOSS_SUCCESS) {
            fprintf(stderr, "speculation: %llu of %llu proposed tokens accepted in %llu steps, %.2f tokens per step\n",
                    (unsigned long long) spec.accepted, (unsigned long long) spec.proposed, (unsigned long long) spec.steps,
                    spec.tokens_per_step);
        }
    }
    gptoss_tokenizer_release(tokenizer);
    gptoss_session_release(session);
    gptoss_model_release(model);
    return status == GPTOSS_SUCCESS && g.count == stats.generated_tokens ? 0 : 4;
}
