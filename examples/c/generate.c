/*
 * Generates tokens with gptoss from C.
 *
 *   cc -Iinclude examples/c/generate.c target/release/libgptoss.a $(gptoss --print-link-flags) -o generate
 *   ./generate synthetic:tiny 16
 *
 * Prints each generated token id as it comes, then the speed; with a model that cannot be
 * loaded it prints the status and the library's message and exits with 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gptoss.h"

static int print_token(void* user_data, uint32_t token) {
    unsigned* count = user_data;
    printf("%s%u", *count == 0 ? "" : ",", token);
    fflush(stdout);
    *count += 1;
    return 0; /* keep going */
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL MAX_TOKENS\n", argv[0]);
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

    const uint32_t prompt[] = {200006, 1428, 200008, 12194, 200007, 200006, 173781};
    const gptoss_sampler sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 42};
    const uint32_t no_stop[] = {0};
    unsigned count = 0;
    gptoss_stats stats;
    status = gptoss_session_generate(session, prompt, sizeof prompt / sizeof prompt[0], max_tokens, &sampler, no_stop, 0,
                                     print_token, &count, &stats);
    printf("\n");
    if (status != GPTOSS_SUCCESS) {
        fprintf(stderr, "generation failed: %s\n", gptoss_last_error());
    } else {
        fprintf(stderr, "%llu tokens, %.1f tok/s decode, TTFT %.1f ms (gptoss %s)\n", (unsigned long long) stats.generated_tokens,
                stats.decode_tokens_per_second, stats.ttft_ms, gptoss_version());
    }
    gptoss_session_release(session);
    gptoss_model_release(model);
    return status == GPTOSS_SUCCESS && count == stats.generated_tokens ? 0 : 4;
}
