/* tests/mpi/tp_engine.c — the batching engine under tensor parallelism, end to end on the tiny
 * LISA checkpoint (4 heads, vocab 32004), under `mpirun -np 1|2|4` (tests/CMakeLists.txt).
 * Rank 0 runs the same requests through the unsplit model (TP = 1, the reference) and through the
 * TP group's engine — batched (several requests per step, prefix sharing, a second query reusing an
 * image's embeddings and KV prefix, continuous batching)
 * and one request at a time (lisa_segment_file's private engine) — while ranks >= 1 follow. The
 * answers and tokens must be identical and the masks equal up to pixels whose logit is within
 * 1e-3 of the threshold (mask logits within 1e-4 relative). The [SEG] states come from the
 * replicated final-normed hidden states on rank 0 (no gather).
 * Plain program (no Criterion fork under MPI); closing line "N passed, M failed" on rank 0. */
#include "lisa.h"
#include "plain_check.h"
#include "kernels/comm.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct item {
    const char *image, *query;
    int32_t max_new;
} item;

static const item ITEMS[] = {
    {"chelsea_tiny.png", "What is the cat in this image? Please output segmentation mask.", 8},
    {"rocket_portrait.jpg", "Segment the rocket.", 5},
    /* the first image again: its cached embeddings and KV prefix (through a copy-on-write page that
     * the followers copy too, issue #17) */
    {"chelsea_tiny.png", "Segment the cat.", 6},
};
#define N_ITEMS ((int)(sizeof ITEMS / sizeof ITEMS[0]))

static lisa_model *load(int32_t tp) {
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = LISA_TESTDATA_DIR "/tiny-clip";
    p.backend = LISA_BACKEND_CPU;
    p.n_threads = 1;
    p.tensor_parallel = tp;
    lisa_model *m = NULL;
    MUST(lisa_model_load(LISA_TESTDATA_DIR "/tiny-lisa", &p, &m));
    return m;
}

static void path_of(char *buf, size_t cap, const item *it) {
    snprintf(buf, cap, "%s/images/%s", LISA_TESTDATA_DIR, it->image);
}

/* all items submitted at once (batched steps), results in item order */
static void run_batched(lisa_model *m, lisa_result **out) {
    lisa_engine_params ep = lisa_engine_default_params();
    ep.max_batch = 4;
    ep.max_images = 1; /* one admission per step: the second prefill runs beside the first decode */
    ep.n_workers = 2;
    lisa_engine *e = NULL;
    MUST(lisa_engine_create(m, &ep, &e));
    char paths[N_ITEMS][1024];
    uint64_t ids[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++) {
        path_of(paths[i], sizeof paths[i], &ITEMS[i]);
        lisa_request rq = lisa_request_default();
        rq.image_path = paths[i];
        rq.query = ITEMS[i].query;
        rq.params.max_new_tokens = ITEMS[i].max_new;
        rq.params.keep_logits = true;
        MUST(lisa_engine_submit(e, &rq, &ids[i]));
    }
    for (int i = 0; i < N_ITEMS; i++)
        MUST(lisa_engine_wait(e, ids[i], &out[i]));
    lisa_engine_free(e);
}

static void compare(const lisa_result *a, const lisa_result *b, const char *what) {
    CHECK(lisa_result_status(a) == LISA_OK && lisa_result_status(b) == LISA_OK, "%s: %s / %s", what,
          lisa_result_error(a), lisa_result_error(b));
    CHECK(lisa_result_n_tokens(a) == lisa_result_n_tokens(b) &&
              memcmp(lisa_result_tokens(a), lisa_result_tokens(b), sizeof(int32_t) * (size_t)lisa_result_n_tokens(a)) ==
                  0,
          "%s: tokens differ", what);
    CHECK(strcmp(lisa_result_answer(a), lisa_result_answer(b)) == 0, "%s: answers '%s' vs '%s'", what,
          lisa_result_answer(a), lisa_result_answer(b));
    CHECK(lisa_result_n_masks(a) == lisa_result_n_masks(b) && lisa_result_n_masks(a) > 0, "%s: %d vs %d masks", what,
          lisa_result_n_masks(a), lisa_result_n_masks(b));
    for (int i = 0; i < lisa_result_n_masks(a) && i < lisa_result_n_masks(b); i++) {
        int32_t h, w, h2, w2;
        const uint8_t *ma = lisa_result_mask(a, i, &h, &w), *mb = lisa_result_mask(b, i, &h2, &w2);
        const float *la = lisa_result_mask_logits(a, i), *lb = lisa_result_mask_logits(b, i);
        CHECK(h == h2 && w == w2, "%s: mask size", what);
        if (h != h2 || w != w2) continue;
        int64_t bad_px = 0, bad_logit = 0;
        double worst = 0;
        for (int64_t k = 0; k < (int64_t)h * w; k++) {
            const double d = fabs((double)la[k] - lb[k]);
            worst = fmax(worst, d / (1.0 + fabs(la[k])));
            bad_logit += d > 1e-4 * (1.0 + fabs(la[k]));
            bad_px += ma[k] != mb[k] && fabs(la[k]) > 1e-3;
        }
        CHECK(bad_logit == 0, "%s mask %d: %lld logits off (worst relative %.3g)", what, i, (long long)bad_logit,
              worst);
        CHECK(bad_px == 0, "%s mask %d: %lld pixels differ away from the threshold", what, i, (long long)bad_px);
        CHECK(fabs(lisa_result_mask_score(a, i) - lisa_result_mask_score(b, i)) <= 1e-4, "%s: score %d", what, i);
    }
}

int main(void) {
    int32_t rank = 0, size = 1;
    MUST(lisa_mpi_world(&rank, &size));
    lisa_model *tp = load(size);
    if (rank != 0) { /* follower: serve rank 0's engines until it frees its model */
        lisa_status s = lisa_model_tp_follow(tp);
        if (s != LISA_OK) fprintf(stderr, "rank %d: %s\n", rank, lisa_last_error());
        lisa_model_free(tp);
        return s == LISA_OK ? 0 : 1;
    }
    CHECK(lisa_model_tp_size(tp) == size && lisa_model_tp_rank(tp) == 0, "TP size %d", lisa_model_tp_size(tp));
    lisa_model *ref = load(0);
    lisa_result *want[N_ITEMS], *got[N_ITEMS];
    run_batched(ref, want);
    run_batched(tp, got);
    for (int i = 0; i < N_ITEMS; i++) {
        char what[128];
        snprintf(what, sizeof what, "TP=%d batched, item %d (%s)", size, i, ITEMS[i].image);
        compare(want[i], got[i], what);
        lisa_result_free(got[i]);
    }
    /* one request through lisa_segment_file: a private engine per call (CREATE/FREE each time) */
    for (int i = 0; i < 1; i++) {
        char path[1024], what[128];
        path_of(path, sizeof path, &ITEMS[i]);
        lisa_segment_params sp = lisa_segment_default_params();
        sp.max_new_tokens = ITEMS[i].max_new;
        sp.keep_logits = true;
        lisa_result *r = NULL;
        MUST(lisa_segment_file(tp, path, ITEMS[i].query, &sp, &r));
        snprintf(what, sizeof what, "TP=%d lisa_segment_file, item %d", size, i);
        compare(want[i], r, what);
        lisa_result_free(r);
    }
    /* a follower cannot create engines; the leader cannot follow */
    CHECK(lisa_model_tp_follow(tp) == LISA_ERR_INVALID_ARG, "leader follow: %s", lisa_last_error());
    for (int i = 0; i < N_ITEMS; i++)
        lisa_result_free(want[i]);
    lisa_model_free(ref);
    lisa_model_free(tp); /* releases the followers */
    printf("TP=%d engine\n%d passed, %d failed\n", size, plain_n_pass, plain_n_fail);
    return plain_n_fail ? 1 : 0;
}
