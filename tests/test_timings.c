/* tests/test_timings.c — lisa_timings add up (issue 18): every stage is timed on its own (CLIP and
 * the SAM encoder were one number stored twice, postprocessing was always 0), each is positive for
 * a request that goes through it, and the stages of a request sum to no more than its total, alone
 * (lisa_segment) and in a batch (the engine, where a batched stage's time is the whole step's). */
#include "golden.h"
#include "lisa.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define QUERY "What is the cat doing? Please output segmentation mask."

static lisa_model *load_tiny(void) {
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = TINY_CLIP_DIR;
    p.backend = LISA_BACKEND_CPU;
    p.n_threads = 1;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &p, &m), LISA_OK, "%s", lisa_last_error());
    return m;
}

static void expect_adds_up(const lisa_result *r, const char *what) {
    cr_assert_eq(lisa_result_status(r), LISA_OK, "%s: %s", what, lisa_result_error(r));
    cr_assert_gt(lisa_result_n_masks(r), 0, "%s: the tiny model answers with [SEG]", what);
    const lisa_timings t = lisa_result_timings(r);
    const struct {
        const char *name;
        double v;
    } st[] = {{"preprocess_ms", t.preprocess_ms}, {"clip_ms", t.clip_ms},           {"sam_encoder_ms", t.sam_encoder_ms},
              {"prefill_ms", t.prefill_ms},       {"decode_ms", t.decode_ms},       {"sam_decoder_ms", t.sam_decoder_ms},
              {"postprocess_ms", t.postprocess_ms}};
    double sum = 0;
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        cr_expect_gt(st[i].v, 0.0, "%s: %s = %g", what, st[i].name, st[i].v);
        sum += st[i].v;
    }
    cr_expect(t.clip_ms != t.sam_encoder_ms, "%s: clip_ms and sam_encoder_ms are the same number (%g)", what, t.clip_ms);
    cr_expect_leq(sum, t.total_ms, "%s: the stages sum to %.3f ms, more than total_ms %.3f", what, sum, t.total_ms);
    cr_expect_eq(t.n_generated, lisa_result_n_tokens(r), "%s", what);
    cr_expect_gt(t.n_prompt_tokens, 256, "%s: the prompt holds the image's 256 patches", what);
}

Test(timings, single_request_stages_add_up, .timeout = 300) {
    lisa_model *m = load_tiny();
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = 6;
    lisa_result *r = NULL;
    cr_assert_eq(lisa_segment_file(m, IMAGES_DIR "/chelsea_tiny.png", QUERY, &sp, &r), LISA_OK, "%s", lisa_last_error());
    expect_adds_up(r, "lisa_segment_file");
    lisa_result_free(r);
    lisa_model_free(m);
}

Test(timings, batched_requests_stages_add_up, .timeout = 300) {
    lisa_model *m = load_tiny();
    lisa_engine_params ep = lisa_engine_default_params();
    ep.max_batch = 4;
    ep.n_workers = 1;
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &ep, &e), LISA_OK, "%s", lisa_last_error());
    static const char *const images[] = {"chelsea_tiny.png", "rocket_portrait.jpg", "coffee.png"};
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", IMAGES_DIR, images[i]);
        lisa_request rq = lisa_request_default();
        rq.image_path = path;
        rq.query = QUERY;
        rq.params.max_new_tokens = 4 + i;
        cr_assert_eq(lisa_engine_submit(e, &rq, &ids[i]), LISA_OK, "%s", lisa_last_error());
    }
    for (int i = 0; i < 3; i++) {
        lisa_result *r = NULL;
        cr_assert_eq(lisa_engine_wait(e, ids[i], &r), LISA_OK, "%s", lisa_last_error());
        expect_adds_up(r, images[i]);
        lisa_result_free(r);
    }
    lisa_engine_free(e);
    lisa_model_free(m);
}
