/* examples/embed.c — embedding the LISA engine through its one header, lisa.h: load a model, start
 * the batching engine, submit every image named on the command line with one query, print each
 * answer and its masks as COCO RLE JSON.
 *
 *   embed MODEL_DIR [--vision-tower DIR] QUERY IMAGE...
 *
 * Build against an installed engine (see README "For embedders"):
 *   cmake: find_package(lisa REQUIRED) + target_link_libraries(embed PRIVATE lisa::lisa)
 *   pkg-config: cc embed.c $(pkg-config --cflags --libs lisa) -o embed */
#include <lisa.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, lisa_status s) {
    fprintf(stderr, "embed: %s: %s: %s\n", what, lisa_status_name(s), lisa_last_error());
    return 1;
}

int main(int argc, char **argv) {
    lisa_model_params mp = lisa_model_default_params();
    int a = 2;
    if (argc > 3 && !strcmp(argv[2], "--vision-tower")) {
        mp.vision_tower = argv[3];
        a = 4;
    }
    if (argc < a + 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [--vision-tower DIR] QUERY IMAGE...\n", argv[0]);
        return 2;
    }
    const char *query = argv[a];
    const int n = argc - a - 1;

    lisa_model *model = NULL;
    lisa_log_set(lisa_log_stderr, NULL); /* the library's warnings, if any, on stderr */
    lisa_status s = lisa_model_load(argv[1], &mp, &model);
    if (s != LISA_OK) return fail("loading the model", s);
    lisa_model_info info = {.size = sizeof info};
    if (lisa_model_get_info(model, &info) == LISA_OK)
        fprintf(stderr, "embed: lisa %s: %d-layer LLM on %s (%s), %.1f MiB of weights\n", lisa_version(),
                info.llm_layers, info.backend_name, info.device_name, (double)info.weight_bytes / 1048576.0);
    lisa_engine_params ep = lisa_engine_default_params();
    ep.max_batch = 4; /* decode up to 4 requests together */
    lisa_engine *engine = NULL;
    s = lisa_engine_create(model, &ep, &engine);
    if (s != LISA_OK) {
        lisa_model_free(model);
        return fail("starting the engine", s);
    }

    /* submit everything first: the engine batches what is in flight */
    uint64_t *ids = calloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n && s == LISA_OK; i++) {
        lisa_request rq = lisa_request_default();
        rq.image_path = argv[a + 1 + i];
        rq.query = query;
        rq.params.max_new_tokens = 64;
        s = lisa_engine_submit(engine, &rq, &ids[i]);
    }
    int rc = s == LISA_OK ? 0 : fail("submitting", s);
    for (int i = 0; i < n && rc == 0; i++) {
        lisa_result *r = NULL;
        if ((s = lisa_engine_wait(engine, ids[i], &r)) != LISA_OK) {
            rc = fail("waiting", s);
            break;
        }
        char *json = NULL;
        if (lisa_result_status(r) != LISA_OK) {
            /* a bad image fails its own request only */
            fprintf(stderr, "embed: %s: %s\n", argv[a + 1 + i], lisa_result_error(r));
            rc = 1;
        } else if ((s = lisa_result_to_json(r, LISA_JSON_TIMINGS, &json)) == LISA_OK) {
            printf("%s: %s (%d masks)\n%s\n", argv[a + 1 + i], lisa_result_answer(r), lisa_result_n_masks(r), json);
        } else {
            rc = fail("JSON", s);
        }
        lisa_free(json);
        lisa_result_free(r);
    }
    free(ids);
    lisa_engine_free(engine);
    lisa_model_free(model);
    return rc;
}
