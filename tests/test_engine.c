/* tests/test_engine.c — the batching engine (issue #8): results identical (bitwise on the CPU)
 * whether requests run alone or in mixed batches; KV-pool exhaustion makes requests wait, never
 * fail; bad items fail alone; prefix sharing; thread-safe submission; queue limits. */
#include "golden.h"
#include "loader/image.h"
#include "runtime/engine.h"
#include "runtime/kv_cache.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lisa_model *load_tiny(void) {
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = TINY_CLIP_DIR;
    p.backend = LISA_BACKEND_CPU;
    p.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &p, &m), LISA_OK, "%s", lisa_last_error());
    return m;
}

typedef struct item {
    const char *image, *query;
    int32_t max_new;
} item;

/* mixed image sizes and prompt lengths; the tiny model answers "Sure, [SEG] ..." */
static const item ITEMS[] = {
    {"chelsea_tiny.png", "What is the cat in this image? Please output segmentation mask.", 8},
    {"rocket_portrait.jpg", "Segment the rocket.", 5},
    {"coffee.png", "Where would I put the milk? Please respond with segmentation mask and explain why.", 6},
    {"chelsea.png", "cat", 3},
    {"rocket.jpg", "Please segment the smoke in this image, the big white cloud below the launch tower.", 8},
};
#define N_ITEMS ((int)(sizeof ITEMS / sizeof ITEMS[0]))

static lisa_request make_request(const item *it, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", IMAGES_DIR, it->image);
    lisa_request rq = lisa_request_default();
    rq.image_path = path;
    rq.query = it->query;
    rq.params.max_new_tokens = it->max_new;
    rq.params.keep_logits = true;
    return rq;
}

static void expect_same(const lisa_result *a, const lisa_result *b, const char *what) {
    cr_assert_eq(lisa_result_status(a), LISA_OK, "%s: %s", what, lisa_result_error(a));
    cr_assert_eq(lisa_result_status(b), LISA_OK, "%s: %s", what, lisa_result_error(b));
    cr_assert_eq(lisa_result_n_tokens(a), lisa_result_n_tokens(b), "%s: token count", what);
    cr_expect(memcmp(lisa_result_tokens(a), lisa_result_tokens(b), sizeof(int32_t) * (size_t)lisa_result_n_tokens(a)) == 0,
              "%s: tokens differ", what);
    cr_expect_str_eq(lisa_result_answer(a), lisa_result_answer(b), "%s", what);
    cr_assert_eq(lisa_result_n_masks(a), lisa_result_n_masks(b), "%s: mask count", what);
    for (int i = 0; i < lisa_result_n_masks(a); i++) {
        int32_t h, w, h2, w2;
        const uint8_t *ma = lisa_result_mask(a, i, &h, &w), *mb = lisa_result_mask(b, i, &h2, &w2);
        cr_assert(h == h2 && w == w2);
        cr_expect(memcmp(ma, mb, (size_t)h * w) == 0, "%s: mask %d differs", what, i);
        cr_expect(memcmp(lisa_result_mask_logits(a, i), lisa_result_mask_logits(b, i), sizeof(float) * (size_t)h * w) == 0,
                  "%s: mask logits %d differ (bitwise)", what, i);
        cr_expect(lisa_result_mask_score(a, i) == lisa_result_mask_score(b, i), "%s: score %d", what, i);
    }
}

/* Runs every item through `e` (all submitted at once when batched, else one at a time). */
static void run_items(lisa_engine *e, bool all_at_once, lisa_result **out) {
    char paths[N_ITEMS][1024];
    uint64_t ids[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++) {
        lisa_request rq = make_request(&ITEMS[i], paths[i], sizeof paths[i]);
        rq.user_data = 100 + (uint64_t)i;
        cr_assert_eq(lisa_engine_submit(e, &rq, &ids[i]), LISA_OK, "%s", lisa_last_error());
        if (!all_at_once) cr_assert_eq(lisa_engine_wait(e, ids[i], &out[i]), LISA_OK, "%s", lisa_last_error());
    }
    if (all_at_once)
        for (int i = 0; i < N_ITEMS; i++) cr_assert_eq(lisa_engine_wait(e, ids[i], &out[i]), LISA_OK, "%s", lisa_last_error());
    for (int i = 0; i < N_ITEMS; i++) {
        cr_expect_eq(lisa_result_id(out[i]), ids[i]);
        cr_expect_eq(lisa_result_user_data(out[i]), 100 + (uint64_t)i);
    }
}

Test(engine, batched_equals_alone_bitwise, .timeout = 900) {
    lisa_model *m = load_tiny();
    lisa_result *alone[N_ITEMS], *batched[N_ITEMS];
    lisa_engine_params p = lisa_engine_default_params();
    p.max_batch = 1;
    p.max_images = 1;
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    run_items(e, false, alone);
    lisa_engine_free(e);

    p.max_batch = 8;
    p.max_images = 3; /* admissions spread over steps: prefills join running decodes */
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    run_items(e, true, batched);
    lisa_engine_stats st = lisa_engine_get_stats(e);
    cr_expect_eq(st.completed, N_ITEMS);
    cr_expect_eq(st.failed, 0);
    cr_expect_gt(st.kv_prefix_pages, 0);
    lisa_engine_free(e);

    int n_masks = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        char what[64];
        snprintf(what, sizeof what, "item %d", i);
        expect_same(alone[i], batched[i], what);
        n_masks += lisa_result_n_masks(alone[i]);
        lisa_result_free(alone[i]);
        lisa_result_free(batched[i]);
    }
    cr_expect_gt(n_masks, 2, "the shaped tiny model should produce [SEG]s");
    lisa_model_free(m);
}

Test(engine, kv_exhaustion_waits_and_completes, .timeout = 900) {
    lisa_model *m = load_tiny();
    const lisa_llama_config *lc = &m->cfg.llm;
    lisa_engine_params p = lisa_engine_default_params();
    p.max_batch = 8;
    p.page_size = 16;
    /* the prefix pages plus room for about one request (prompt ~310 tokens + a few new ones) */
    p.kv_cache_bytes = (int64_t)(3 + 22) * (int64_t)lisa_kv_page_bytes(lc->n_layers, 16, lc->n_kv_heads, lc->head_dim,
                                                                      LISA_DTYPE_F32);
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    lisa_result *res[N_ITEMS];
    run_items(e, true, res);
    lisa_engine_stats st = lisa_engine_get_stats(e);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.completed, N_ITEMS);
    cr_expect_eq(st.kv_pages_used, st.kv_prefix_pages, "every request's pages were returned");
    lisa_engine_free(e);
    /* same results as with plenty of memory */
    p.kv_cache_bytes = 0;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    lisa_result *ref[N_ITEMS];
    run_items(e, true, ref);
    lisa_engine_free(e);
    for (int i = 0; i < N_ITEMS; i++) {
        expect_same(res[i], ref[i], "kv-limited vs roomy");
        lisa_result_free(res[i]);
        lisa_result_free(ref[i]);
    }
    lisa_model_free(m);
}

Test(engine, bad_items_fail_alone, .timeout = 600) {
    lisa_model *m = load_tiny();
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, NULL, &e), LISA_OK, "%s", lisa_last_error());
    char path[1024];
    lisa_request good = make_request(&ITEMS[0], path, sizeof path);
    lisa_request bad_bytes = lisa_request_default();
    const char junk[] = "\x89PNG\r\n\x1a\nthis is not a png";
    bad_bytes.image_data = junk;
    bad_bytes.image_size = sizeof junk;
    bad_bytes.query = "what?";
    lisa_request missing = lisa_request_default();
    missing.image_path = IMAGES_DIR "/no-such-image.png";
    missing.query = "what?";
    lisa_request empty_q = good;
    empty_q.query = "  ";
    uint64_t ids[4];
    cr_assert_eq(lisa_engine_submit(e, &bad_bytes, &ids[0]), LISA_OK);
    cr_assert_eq(lisa_engine_submit(e, &good, &ids[1]), LISA_OK);
    cr_assert_eq(lisa_engine_submit(e, &missing, &ids[2]), LISA_OK);
    cr_assert_eq(lisa_engine_submit(e, &empty_q, &ids[3]), LISA_OK);
    lisa_result *r[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(lisa_engine_wait(e, ids[i], &r[i]), LISA_OK);
    cr_expect_eq(lisa_result_status(r[0]), LISA_ERR_FORMAT, "%s", lisa_result_error(r[0]));
    cr_expect_eq(lisa_result_status(r[1]), LISA_OK, "%s", lisa_result_error(r[1]));
    cr_expect_gt(lisa_result_n_masks(r[1]), 0);
    cr_expect_eq(lisa_result_status(r[2]), LISA_ERR_IO);
    cr_expect(strstr(lisa_result_error(r[2]), "no-such-image.png") != NULL, "%s", lisa_result_error(r[2]));
    cr_expect_eq(lisa_result_status(r[3]), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_result_error(r[3]), "empty") != NULL, "%s", lisa_result_error(r[3]));
    for (int i = 0; i < 4; i++) lisa_result_free(r[i]);
    /* malformed submissions are refused at once */
    lisa_request none = lisa_request_default();
    none.query = "q";
    uint64_t id = 77;
    cr_expect_eq(lisa_engine_submit(e, &none, &id), LISA_ERR_INVALID_ARG);
    cr_expect_eq(id, 0);
    lisa_request two = good;
    two.image_data = junk;
    two.image_size = sizeof junk;
    cr_expect_eq(lisa_engine_submit(e, &two, &id), LISA_ERR_INVALID_ARG);
    lisa_result *x;
    cr_expect_eq(lisa_engine_wait(e, 12345, &x), LISA_ERR_NOT_FOUND);
    cr_expect_eq(lisa_engine_poll(e, &x), LISA_ERR_NOT_FOUND);
    lisa_engine_free(e);
    lisa_model_free(m);
}

typedef struct submitter {
    lisa_engine *e;
    int base;
    uint64_t ids[3];
    lisa_status st[3];
} submitter;

static void *submit_thread(void *arg) {
    submitter *s = arg;
    char path[1024];
    for (int i = 0; i < 3; i++) {
        lisa_request rq = make_request(&ITEMS[(s->base + i) % N_ITEMS], path, sizeof path);
        rq.user_data = (uint64_t)(s->base * 10 + i);
        s->st[i] = lisa_engine_submit(s->e, &rq, &s->ids[i]);
    }
    return NULL;
}

Test(engine, concurrent_submission_and_queue_limit, .timeout = 900) {
    lisa_model *m = load_tiny();
    lisa_engine_params p = lisa_engine_default_params();
    p.max_queue = 64;
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    submitter subs[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        subs[t] = (submitter){.e = e, .base = t};
        pthread_create(&th[t], NULL, submit_thread, &subs[t]);
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    int n_ok = 0;
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(subs[t].st[i], LISA_OK);
            lisa_result *r;
            cr_assert_eq(lisa_engine_wait(e, subs[t].ids[i], &r), LISA_OK);
            cr_expect_eq(lisa_result_user_data(r), (uint64_t)(t * 10 + i));
            n_ok += lisa_result_status(r) == LISA_OK;
            lisa_result_free(r);
        }
    cr_expect_eq(n_ok, 12);
    lisa_engine_free(e);

    /* a full queue answers LISA_ERR_BUSY; results not claimed are freed with the engine */
    p.max_queue = 2;
    p.background = false; /* nothing progresses until we step */
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    char path[1024];
    lisa_request rq = make_request(&ITEMS[0], path, sizeof path);
    uint64_t id;
    cr_expect_eq(lisa_engine_submit(e, &rq, &id), LISA_OK);
    cr_expect_eq(lisa_engine_submit(e, &rq, &id), LISA_OK);
    cr_expect_eq(lisa_engine_submit(e, &rq, &id), LISA_ERR_BUSY);
    cr_expect(strstr(lisa_last_error(), "full") != NULL, "%s", lisa_last_error());
    lisa_engine_free(e);
    lisa_model_free(m);
}
