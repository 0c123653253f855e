/* tests/test_engine_wait.c — lisa_engine_wait_timeout (added for `lisa serve`): LISA_ERR_BUSY when
 * the time passes, the request runs on and is claimed by a later wait; NOT_FOUND for unknown ids;
 * and the decode batch-size statistics add up (both scheduling modes). */
#include "golden.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

static void run(bool background) {
    lisa_model_params mp = lisa_model_default_params();
    mp.vision_tower = TINY_CLIP_DIR;
    mp.backend = LISA_BACKEND_CPU;
    mp.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &mp, &m), LISA_OK, "%s", lisa_last_error());
    lisa_engine_params ep = lisa_engine_default_params();
    ep.max_batch = 2;
    ep.background = background;
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &ep, &e), LISA_OK, "%s", lisa_last_error());
    lisa_request rq = lisa_request_default();
    rq.image_path = IMAGES_DIR "/chelsea_tiny.png";
    rq.query = "Where is the cat? Please output segmentation mask.";
    rq.params.max_new_tokens = 8;
    uint64_t id[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(lisa_engine_submit(e, &rq, &id[i]), LISA_OK);
    lisa_result *r = NULL;
    /* a tiny request takes far more than 1 ms (the SAM encoder alone) */
    cr_expect_eq(lisa_engine_wait_timeout(e, id[0], 1, &r), LISA_ERR_BUSY);
    cr_expect_null(r);
    cr_expect(strstr(lisa_last_error(), "not finished after 1 ms"), "%s", lisa_last_error());
    cr_expect_eq(lisa_engine_wait_timeout(e, 12345, 1000, &r), LISA_ERR_NOT_FOUND);
    int32_t n_tokens = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(lisa_engine_wait_timeout(e, id[i], 600000, &r), LISA_OK, "%s", lisa_last_error());
        cr_expect_eq(lisa_result_status(r), LISA_OK, "%s", lisa_result_error(r));
        cr_expect_eq(lisa_result_id(r), id[i]);
        n_tokens += lisa_result_n_tokens(r);
        lisa_result_free(r);
    }
    /* each request decodes every token after the one its prefill produced */
    const lisa_engine_stats st = lisa_engine_get_stats(e);
    int64_t steps = 0;
    for (int k = 0; k < LISA_ENGINE_BATCH_BUCKETS; k++)
        steps += st.decode_batch_hist[k];
    cr_expect_eq(steps, st.decode_steps);
    cr_expect_eq(st.decode_rows, n_tokens - 2, "decode rows %lld, tokens %d", (long long)st.decode_rows, n_tokens);
    cr_expect_eq(st.decode_batch_hist[0] + 2 * st.decode_batch_hist[1], st.decode_rows, "batches of 1 and 2 only");
    lisa_engine_free(e);
    lisa_model_free(m);
}

Test(engine_wait, timeout_background) { run(true); }
Test(engine_wait, timeout_caller_driven) { run(false); }
