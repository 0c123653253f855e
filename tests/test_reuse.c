/* tests/test_reuse.c — encode once, ask many (issue #17): the image-embedding cache and the KV
 * prefix tree. Results with reuse are bitwise those without it (CPU), whatever the image source
 * (path, bytes, RGB, lisa_image handle) and the submission pattern; eviction under pressure (a
 * one-image cache, a KV pool for about one request) loses nothing; a request whose image left the
 * cache between its worker and its admission gets its pixels after all; image_cache_bytes = 0
 * turns reuse off; the lisa_image handle's errors and lifetime. */
#include "golden.h"
#include "loader/image.h"
#include "runtime/engine.h"
#include "runtime/image_cache.h"
#include "runtime/kv_cache.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lisa_model *load_tiny(void) {
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = TINY_CLIP_DIR;
    p.backend = LISA_BACKEND_CPU;
    p.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &p, &m), LISA_OK, "%s", lisa_last_error());
    return m;
}

typedef struct job {
    const char *image, *query;
    int32_t max_new;
} job;

/* three pictures, several questions each, in the order `lisa annotate` submits multi-query items,
 * plus a late return to the first picture */
static const job JOBS[] = {
    {"chelsea.png", "What is the cat in this image? Please output segmentation mask.", 6},
    {"chelsea.png", "Segment the cat.", 5},
    {"chelsea.png", "cat", 4},
    {"rocket.jpg", "Please segment the smoke in this image, the big white cloud below the launch tower.", 6},
    {"rocket.jpg", "Segment the rocket.", 5},
    {"coffee.png", "Where would I put the milk? Please respond with segmentation mask and explain why.", 6},
    {"coffee.png", "the cup", 3},
    {"chelsea.png", "What is the cat lying on? Please output segmentation mask.", 5},
};
#define N_JOBS ((int)(sizeof JOBS / sizeof JOBS[0]))

typedef enum how { BY_PATH, BY_BYTES, BY_RGB, BY_HANDLE, BY_MIX } how;

typedef struct source {
    char path[1024];
    void *bytes;
    size_t n_bytes;
    lisa_bitmap rgb;
} source;

static void load_source(source *s, const char *image) {
    snprintf(s->path, sizeof s->path, "%s/%s", IMAGES_DIR, image);
    s->bytes = tu_read_file(s->path, &s->n_bytes);
    cr_assert(s->bytes, "%s", s->path);
    cr_assert_eq(lisa_image_load(&s->rgb, s->path, NULL), LISA_OK, "%s", lisa_last_error());
}

static void free_source(source *s) {
    free(s->bytes);
    lisa_bitmap_free(&s->rgb);
}

/* Submits job i the way `h` says (BY_MIX: rotates through the four); a handle is freed right after
 * submitting (the request holds its own reference). */
static uint64_t submit_job(lisa_engine *e, int i, how h) {
    source src;
    load_source(&src, JOBS[i].image);
    if (h == BY_MIX) h = (how)(i % 4);
    lisa_request rq = lisa_request_default();
    rq.query = JOBS[i].query;
    rq.params.max_new_tokens = JOBS[i].max_new;
    rq.params.keep_logits = true;
    rq.user_data = 1000 + (uint64_t)i;
    lisa_image *img = NULL;
    switch (h) {
    case BY_PATH: rq.image_path = src.path; break;
    case BY_BYTES: rq.image_data = src.bytes, rq.image_size = src.n_bytes; break;
    case BY_RGB: rq.rgb = src.rgb.data, rq.height = src.rgb.h, rq.width = src.rgb.w; break;
    default:
        cr_assert_eq(lisa_image_create_file(src.path, &img), LISA_OK, "%s", lisa_last_error());
        rq.image = img;
        break;
    }
    uint64_t id = 0;
    cr_assert_eq(lisa_engine_submit(e, &rq, &id), LISA_OK, "%s", lisa_last_error());
    lisa_image_free(img);
    free_source(&src); /* inputs are copied */
    return id;
}

/* every job (all queued at once, or one at a time), results in job order */
static void run_jobs(lisa_engine *e, how h, bool all_at_once, lisa_result **out) {
    uint64_t ids[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        ids[i] = submit_job(e, i, h);
        if (!all_at_once) cr_assert_eq(lisa_engine_wait(e, ids[i], &out[i]), LISA_OK, "%s", lisa_last_error());
    }
    if (all_at_once)
        for (int i = 0; i < N_JOBS; i++)
            cr_assert_eq(lisa_engine_wait(e, ids[i], &out[i]), LISA_OK, "%s", lisa_last_error());
    for (int i = 0; i < N_JOBS; i++)
        cr_expect_eq(lisa_result_user_data(out[i]), 1000 + (uint64_t)i);
}

static void expect_same(const lisa_result *a, const lisa_result *b, const char *what) {
    cr_assert_eq(lisa_result_status(a), LISA_OK, "%s: %s", what, lisa_result_error(a));
    cr_assert_eq(lisa_result_status(b), LISA_OK, "%s: %s", what, lisa_result_error(b));
    cr_assert_eq(lisa_result_n_tokens(a), lisa_result_n_tokens(b), "%s: token count", what);
    cr_expect(memcmp(lisa_result_tokens(a), lisa_result_tokens(b), sizeof(int32_t) * (size_t)lisa_result_n_tokens(a)) ==
                  0,
              "%s: tokens differ", what);
    cr_expect_str_eq(lisa_result_answer(a), lisa_result_answer(b), "%s", what);
    cr_expect_str_eq(lisa_result_text_output(a), lisa_result_text_output(b), "%s", what);
    cr_assert_eq(lisa_result_n_masks(a), lisa_result_n_masks(b), "%s: mask count", what);
    for (int i = 0; i < lisa_result_n_masks(a); i++) {
        int32_t h, w, h2, w2;
        const uint8_t *ma = lisa_result_mask(a, i, &h, &w), *mb = lisa_result_mask(b, i, &h2, &w2);
        cr_assert(h == h2 && w == w2);
        cr_expect(memcmp(ma, mb, (size_t)h * w) == 0, "%s: mask %d differs", what, i);
        cr_expect(memcmp(lisa_result_mask_logits(a, i), lisa_result_mask_logits(b, i), sizeof(float) * (size_t)h * w) ==
                      0,
                  "%s: mask logits %d differ (bitwise)", what, i);
        cr_expect(lisa_result_mask_score(a, i) == lisa_result_mask_score(b, i), "%s: score %d", what, i);
    }
}

static void expect_all_same(lisa_result **a, lisa_result **b, const char *what) {
    int n_masks = 0;
    for (int i = 0; i < N_JOBS; i++) {
        char w[128];
        snprintf(w, sizeof w, "%s, job %d (%s)", what, i, JOBS[i].image);
        expect_same(a[i], b[i], w);
        n_masks += lisa_result_n_masks(a[i]);
    }
    cr_expect_gt(n_masks, 3, "the shaped tiny model should produce [SEG]s");
}

static void free_all(lisa_result **r) {
    for (int i = 0; i < N_JOBS; i++)
        lisa_result_free(r[i]);
}

/* the reference: no reuse at all */
static void run_reference(lisa_model *m, lisa_result **ref) {
    lisa_engine_params p = lisa_engine_default_params();
    p.image_cache_bytes = 0;
    p.max_batch = 4;
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    run_jobs(e, BY_PATH, true, ref);
    lisa_engine_stats st = lisa_engine_get_stats(e);
    cr_expect_eq(st.image_cache_hits, 0, "image cache off: no hits");
    cr_expect_eq(st.image_cache_misses, N_JOBS, "image cache off: every request encodes");
    cr_expect_eq(st.image_cache_capacity, 0);
    cr_expect_eq(st.kv_prefix_hits, 0, "image cache off: no prefix through an image");
    cr_expect_eq(st.kv_prefix_nodes, 1, "only the system prompt is kept");
    cr_expect_eq(st.failed, 0);
    lisa_engine_free(e);
}

Test(reuse, bitwise_equal_to_no_reuse, .timeout = 1200) {
    lisa_model *m = load_tiny();
    lisa_result *ref[N_JOBS], *got[N_JOBS];
    run_reference(m, ref);

    /* all at once, by path: the later queries of a picture wait one step for its encoding, then
     * share it and its KV prefix */
    lisa_engine_params p = lisa_engine_default_params();
    p.max_batch = 4;
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    run_jobs(e, BY_PATH, true, got);
    lisa_engine_stats st = lisa_engine_get_stats(e);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.image_cache_misses, 3, "three pictures, each encoded once (got %lld)",
                 (long long)st.image_cache_misses);
    cr_expect_eq(st.image_cache_hits, N_JOBS - 3);
    cr_expect_eq(st.kv_prefix_hits, N_JOBS - 3, "every later query prefills only its own tokens");
    cr_expect_eq(st.kv_prefix_nodes, 4, "the system prompt and one prefix per picture");
    cr_expect_gt(st.kv_reused_tokens, (int64_t)(N_JOBS - 3) * 256, "the image rows were reused");
    cr_expect_eq(st.image_cache_entries, 3);
    cr_expect_eq(st.kv_pages_used, st.kv_prefix_pages, "only the kept prefixes hold pages when idle");
    /* the encoders ran for one query of each picture (whichever a worker readied first) */
    const char *pictures[3] = {"chelsea.png", "rocket.jpg", "coffee.png"};
    for (int k = 0; k < 3; k++) {
        int n_enc = 0;
        for (int i = 0; i < N_JOBS; i++)
            if (!strcmp(JOBS[i].image, pictures[k])) n_enc += lisa_result_timings(got[i]).sam_encoder_ms > 0;
        cr_expect_eq(n_enc, 1, "%s encoded for %d queries", pictures[k], n_enc);
    }
    for (int i = 0; i < N_JOBS; i++)
        cr_expect_eq(lisa_result_timings(got[i]).n_prompt_tokens, lisa_result_timings(ref[i]).n_prompt_tokens);
    expect_all_same(ref, got, "reuse, all at once, by path");
    free_all(got);

    /* the same engine again, the sources mixed (bytes, RGB, handles, paths): every image is a hit
     * now, and the same pixels meet whatever they came as */
    run_jobs(e, BY_MIX, true, got);
    st = lisa_engine_get_stats(e);
    cr_expect_eq(st.image_cache_misses, 3, "no new encoding");
    cr_expect_eq(st.image_cache_hits, 2 * N_JOBS - 3);
    expect_all_same(ref, got, "reuse, warm cache, mixed sources");
    free_all(got);
    lisa_engine_free(e);

    /* one at a time through handles on a fresh engine */
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    run_jobs(e, BY_HANDLE, false, got);
    st = lisa_engine_get_stats(e);
    cr_expect_eq(st.image_cache_misses, 3);
    cr_expect_eq(st.kv_prefix_hits, N_JOBS - 3);
    expect_all_same(ref, got, "reuse, one at a time, handles");
    free_all(got);
    lisa_engine_free(e);
    free_all(ref);
    lisa_model_free(m);
}

Test(reuse, eviction_under_pressure, .timeout = 1200) {
    lisa_model *m = load_tiny();
    lisa_result *ref[N_JOBS], *got[N_JOBS];
    run_reference(m, ref);
    const lisa_llama_config *lc = &m->cfg.llm;
    lisa_engine_params p = lisa_engine_default_params();
    p.max_batch = 2;
    p.max_images = 2;
    /* one picture kept beyond those in flight; KV pages for the system prompt and about one and a
     * half requests (~310 prompt tokens + a few new ones: 20 pages each) */
    p.image_cache_bytes = (int64_t)lisa_image_cache_entry_bytes(LISA_DTYPE_F32, m->n_patches, lc->hidden,
                                                                m->cfg.out_dim, m->sam->enc.grid);
    p.kv_cache_bytes =
        (int64_t)(2 + 32) * (int64_t)lisa_kv_page_bytes(lc->n_layers, 16, lc->n_kv_heads, lc->head_dim, LISA_DTYPE_F32);
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    run_jobs(e, BY_MIX, true, got);
    lisa_engine_stats st = lisa_engine_get_stats(e);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.completed, N_JOBS);
    cr_expect_gt(st.image_cache_evictions, 0, "a one-picture cache over three pictures evicts");
    cr_expect_gt(st.kv_prefix_evictions, 0, "a small KV pool drops kept prefixes");
    cr_expect_gt(st.image_cache_hits, 0, "the queries right after their picture's first still hit");
    cr_expect_eq(st.kv_pages_used, st.kv_prefix_pages, "every request's pages were returned");
    cr_expect_leq(st.image_cache_entries, 1, "at most one picture kept when idle");
    expect_all_same(ref, got, "tiny caches");
    free_all(got);
    lisa_engine_free(e);
    free_all(ref);
    lisa_model_free(m);
}

/* A worker finds the picture cached and skips its pixels, but the picture is evicted before the
 * request is admitted: the request goes back to a worker for its pixels, and its result is the same. */
Test(reuse, evicted_before_admission, .timeout = 900) {
    lisa_model *m = load_tiny();
    lisa_engine_params p = lisa_engine_default_params();
    p.max_batch = 1;
    p.max_images = 1;
    p.background = false; /* steps happen only in lisa_engine_wait */
    const lisa_llama_config *lc = &m->cfg.llm;
    p.image_cache_bytes = (int64_t)lisa_image_cache_entry_bytes(LISA_DTYPE_F32, m->n_patches, lc->hidden,
                                                                m->cfg.out_dim, m->sam->enc.grid);
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    lisa_result *first = NULL, *b = NULL, *again = NULL;
    uint64_t id0 = submit_job(e, 0, BY_PATH); /* chelsea: encoded and kept */
    cr_assert_eq(lisa_engine_wait(e, id0, &first), LISA_OK, "%s", lisa_last_error());
    uint64_t idb = submit_job(e, 3, BY_PATH); /* rocket: admitted first, evicts chelsea when done */
    for (int spin = 0; spin < 20000 && lisa_engine_get_stats(e).ready < 1; spin++)
        usleep(1000);
    uint64_t ida = submit_job(e, 0, BY_HANDLE); /* chelsea again: its worker sees it cached */
    for (int spin = 0; spin < 20000 && lisa_engine_get_stats(e).ready < 2; spin++)
        usleep(1000);
    cr_assert_eq(lisa_engine_get_stats(e).ready, 2, "both prepared, nothing stepped yet");
    cr_assert_eq(lisa_engine_wait(e, idb, &b), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_engine_wait(e, ida, &again), LISA_OK, "%s", lisa_last_error());
    lisa_engine_stats st = lisa_engine_get_stats(e);
    cr_expect_eq(st.image_cache_misses, 3, "chelsea was encoded again (got %lld misses)",
                 (long long)st.image_cache_misses);
    cr_expect_gt(st.image_cache_evictions, 0);
    expect_same(first, again, "chelsea before and after its eviction");
    lisa_result_free(first);
    lisa_result_free(b);
    lisa_result_free(again);
    lisa_engine_free(e);
    lisa_model_free(m);
}

Test(reuse, image_handle_api) {
    lisa_image *img = NULL;
    cr_expect_eq(lisa_image_create_file(IMAGES_DIR "/no-such-image.png", &img), LISA_ERR_IO);
    cr_expect_null(img);
    cr_expect(strstr(lisa_last_error(), "no-such-image.png") != NULL, "%s", lisa_last_error());
    const char junk[] = "\x89PNG\r\n\x1a\nnot really";
    cr_expect_eq(lisa_image_create_bytes(junk, sizeof junk, &img), LISA_ERR_FORMAT);
    cr_expect_eq(lisa_image_create_bytes(NULL, 0, &img), LISA_ERR_INVALID_ARG);
    const uint8_t px[2 * 3 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
    cr_expect_eq(lisa_image_create_rgb(px, 0, 3, &img), LISA_ERR_INVALID_ARG);
    cr_assert_eq(lisa_image_create_rgb(px, 2, 3, &img), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_image_height(img), 2);
    cr_expect_eq(lisa_image_width(img), 3);
    lisa_image_free(img);
    lisa_image_free(NULL);
    cr_assert_eq(lisa_image_create_file(IMAGES_DIR "/rocket_portrait.jpg", &img), LISA_OK, "%s", lisa_last_error());
    lisa_bitmap bm;
    cr_assert_eq(lisa_image_load(&bm, IMAGES_DIR "/rocket_portrait.jpg", NULL), LISA_OK);
    cr_expect_eq(lisa_image_height(img), bm.h, "EXIF orientation applied as for files");
    cr_expect_eq(lisa_image_width(img), bm.w);
    lisa_bitmap_free(&bm);
    lisa_image_free(img);
}

Test(reuse, request_with_two_images_refused, .timeout = 300) {
    lisa_model *m = load_tiny();
    lisa_engine *e = NULL;
    lisa_engine_params p = lisa_engine_default_params();
    p.background = false;
    cr_assert_eq(lisa_engine_create(m, &p, &e), LISA_OK, "%s", lisa_last_error());
    lisa_image *img = NULL;
    cr_assert_eq(lisa_image_create_file(IMAGES_DIR "/chelsea_tiny.png", &img), LISA_OK, "%s", lisa_last_error());
    lisa_request rq = lisa_request_default();
    rq.image = img;
    rq.image_path = IMAGES_DIR "/chelsea_tiny.png";
    rq.query = "cat";
    uint64_t id = 5;
    cr_expect_eq(lisa_engine_submit(e, &rq, &id), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "image") != NULL, "%s", lisa_last_error());
    cr_expect_eq(id, 0);
    lisa_image_free(img);
    lisa_engine_free(e);
    lisa_model_free(m);
}
