/* tests/threads/engine_shared.c — one loaded model shared by several engines and threads (issue 18,
 * include/lisa.h "Threads"): two engines stepping at once, three threads calling lisa_segment at
 * once, and both together; every answer, token, mask, logit and score must equal (bitwise, CPU)
 * what the same request gives when it runs alone on one thread. Before the model was made
 * shareable the ops of concurrent engines shared the backend's scratch arena: aborts
 * (core/arena.c) or wrong answers. Run under ThreadSanitizer in CI (LISA_SANITIZE_THREAD).
 * A plain program, not a Criterion test: Criterion cannot start under ThreadSanitizer (its
 * fork arena is mapped where TSan keeps its shadow memory). Usage: engine_shared [test name...];
 * the closing line is "N passed, M failed"; exit 0 only when nothing failed. */
#include "lisa.h"
#include "plain_check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TINY_LISA_DIR LISA_TESTDATA_DIR "/tiny-lisa"
#define TINY_CLIP_DIR LISA_TESTDATA_DIR "/tiny-clip"
#define IMAGES_DIR LISA_TESTDATA_DIR "/images"


typedef struct item {
    const char *image, *query;
    int32_t max_new;
} item;

/* different images and prompt lengths, so that a mix-up between requests shows */
static const item ITEMS[] = {
    {"chelsea_tiny.png", "What is the cat in this image? Please output segmentation mask.", 6},
    {"rocket_portrait.jpg", "Segment the rocket.", 4},
    {"coffee.png", "Where would I put the milk? Please respond with segmentation mask and explain why.", 5},
};
#define N_ITEMS ((int)(sizeof ITEMS / sizeof ITEMS[0]))

static lisa_model *load_tiny(void) {
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = TINY_CLIP_DIR;
    p.backend = LISA_BACKEND_CPU;
    p.n_threads = 1;
    lisa_model *m = NULL;
    MUST(lisa_model_load(TINY_LISA_DIR, &p, &m));
    return m;
}

static void path_of(const item *it, char *path, size_t cap) { snprintf(path, cap, "%s/%s", IMAGES_DIR, it->image); }

static lisa_segment_params params_of(const item *it) {
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = it->max_new;
    sp.keep_logits = true;
    return sp;
}

/* true when a and b hold the same answer, tokens, masks, logits and scores (bitwise) */
static bool same(const lisa_result *a, const lisa_result *b, char *why, size_t cap) {
    if (lisa_result_status(a) != LISA_OK || lisa_result_status(b) != LISA_OK) {
        snprintf(why, cap, "failed: %s / %s", lisa_result_error(a), lisa_result_error(b));
        return false;
    }
    if (strcmp(lisa_result_answer(a), lisa_result_answer(b)) != 0) {
        snprintf(why, cap, "answer \"%s\" vs \"%s\"", lisa_result_answer(a), lisa_result_answer(b));
        return false;
    }
    const int32_t n = lisa_result_n_tokens(a);
    if (n != lisa_result_n_tokens(b) || memcmp(lisa_result_tokens(a), lisa_result_tokens(b), sizeof(int32_t) * (size_t)n)) {
        snprintf(why, cap, "tokens differ");
        return false;
    }
    if (lisa_result_n_masks(a) != lisa_result_n_masks(b)) {
        snprintf(why, cap, "%d vs %d masks", lisa_result_n_masks(a), lisa_result_n_masks(b));
        return false;
    }
    for (int32_t i = 0; i < lisa_result_n_masks(a); i++) {
        int32_t h, w, h2, w2;
        const uint8_t *ma = lisa_result_mask(a, i, &h, &w), *mb = lisa_result_mask(b, i, &h2, &w2);
        if (h != h2 || w != w2 || memcmp(ma, mb, (size_t)h * w) ||
            memcmp(lisa_result_mask_logits(a, i), lisa_result_mask_logits(b, i), sizeof(float) * (size_t)h * w) ||
            lisa_result_mask_score(a, i) != lisa_result_mask_score(b, i)) {
            snprintf(why, cap, "mask %d differs", i);
            return false;
        }
    }
    return true;
}

typedef struct shared {
    lisa_model *m;
    lisa_result *ref[N_ITEMS]; /* single-threaded answers */
    int rounds;
} shared;

/* the reference: every item alone, on this thread, before anything else runs */
static void make_reference(shared *sh) {
    for (int i = 0; i < N_ITEMS; i++) {
        char path[1024];
        path_of(&ITEMS[i], path, sizeof path);
        lisa_segment_params sp = params_of(&ITEMS[i]);
        MUST(lisa_segment_file(sh->m, path, ITEMS[i].query, &sp, &sh->ref[i]));
        if (lisa_result_n_masks(sh->ref[i]) == 0) {
            fprintf(stderr, "item %d: no mask (the tiny model answers with [SEG])\n", i);
            exit(2);
        }
    }
}

static void free_reference(shared *sh) {
    for (int i = 0; i < N_ITEMS; i++) lisa_result_free(sh->ref[i]);
}

typedef struct worker {
    shared *sh;
    int index;
    bool use_engine;  /* an engine of its own, else lisa_segment_file */
    bool background;  /* the engine's scheduling mode */
    int n_ok, n_bad;
    char why[256];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    lisa_engine *e = NULL;
    if (w->use_engine) {
        lisa_engine_params ep = lisa_engine_default_params();
        ep.max_batch = 2;
        ep.n_workers = 1;
        ep.background = w->background;
        if (lisa_engine_create(w->sh->m, &ep, &e) != LISA_OK) {
            snprintf(w->why, sizeof w->why, "engine: %s", lisa_last_error());
            w->n_bad++;
            return NULL;
        }
    }
    for (int round = 0; round < w->sh->rounds; round++) {
        uint64_t ids[N_ITEMS] = {0};
        for (int k = 0; k < N_ITEMS; k++) {
            const int i = (k + w->index) % N_ITEMS; /* each thread in its own order */
            char path[1024];
            path_of(&ITEMS[i], path, sizeof path);
            lisa_result *r = NULL;
            if (e) {
                lisa_request rq = lisa_request_default();
                rq.image_path = path;
                rq.query = ITEMS[i].query;
                rq.params = params_of(&ITEMS[i]);
                if (lisa_engine_submit(e, &rq, &ids[i]) != LISA_OK) {
                    snprintf(w->why, sizeof w->why, "submit: %s", lisa_last_error());
                    w->n_bad++;
                }
                continue; /* all in flight at once: batches of 2 */
            }
            lisa_segment_params sp = params_of(&ITEMS[i]);
            if (lisa_segment_file(w->sh->m, path, ITEMS[i].query, &sp, &r) != LISA_OK) {
                snprintf(w->why, sizeof w->why, "lisa_segment_file: %s", lisa_last_error());
                w->n_bad++;
                continue;
            }
            char why[200];
            if (same(r, w->sh->ref[i], why, sizeof why)) w->n_ok++;
            else {
                snprintf(w->why, sizeof w->why, "item %d: %s", i, why);
                w->n_bad++;
            }
            lisa_result_free(r);
        }
        for (int i = 0; e && i < N_ITEMS; i++) {
            lisa_result *r = NULL;
            if (!ids[i]) continue;
            /* what `lisa serve`'s /metrics does while the scheduler runs */
            const lisa_engine_stats st = lisa_engine_get_stats(e);
            if (st.kv_pages_used < 0 || st.kv_pages_used > st.kv_pages_total) {
                snprintf(w->why, sizeof w->why, "stats: %d of %d KV pages used", st.kv_pages_used, st.kv_pages_total);
                w->n_bad++;
            }
            if (lisa_engine_wait(e, ids[i], &r) != LISA_OK) {
                snprintf(w->why, sizeof w->why, "wait: %s", lisa_last_error());
                w->n_bad++;
                continue;
            }
            char why[200];
            if (same(r, w->sh->ref[i], why, sizeof why)) w->n_ok++;
            else {
                snprintf(w->why, sizeof w->why, "item %d: %s", i, why);
                w->n_bad++;
            }
            lisa_result_free(r);
        }
    }
    lisa_engine_free(e);
    return NULL;
}

/* n_engine threads with an engine each (alternately background and caller-driven) and n_call
 * threads calling lisa_segment_file, all on one model at once */
static void hammer(int n_engine, int n_call, int rounds) {
    shared sh = {.m = load_tiny(), .rounds = rounds};
    make_reference(&sh);
    const int n = n_engine + n_call;
    worker w[8];
    pthread_t th[8];
    if (n > 8) exit(2);
    for (int t = 0; t < n; t++) {
        w[t] = (worker){.sh = &sh, .index = t, .use_engine = t < n_engine, .background = t % 2 == 0};
        if (pthread_create(&th[t], NULL, worker_main, &w[t]) != 0) exit(2);
    }
    for (int t = 0; t < n; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < n; t++) {
        CHECK(w[t].n_bad == 0, "thread %d (%s): %d wrong or failed answers, e.g. %s", t,
              w[t].use_engine ? "engine" : "lisa_segment", w[t].n_bad, w[t].why);
        CHECK(w[t].n_ok == rounds * N_ITEMS, "thread %d: %d of %d right answers", t, w[t].n_ok, rounds * N_ITEMS);
    }
    free_reference(&sh);
    lisa_model_free(sh.m);
}

typedef struct test {
    const char *name;
    int n_engine, n_call, rounds;
} test;

static const test TESTS[] = {
    {"two_engines_one_model", 2, 0, 2},      /* two engines stepping at once (one of each mode) */
    {"three_threads_segment", 0, 3, 1},      /* lisa_segment from three threads */
    {"engines_and_calls_together", 2, 2, 1}, /* both at once */
};

int main(int argc, char **argv) {
    int ran = 0;
    for (size_t t = 0; t < sizeof TESTS / sizeof TESTS[0]; t++) {
        bool pick = argc < 2;
        for (int a = 1; a < argc; a++) pick = pick || !strcmp(argv[a], TESTS[t].name);
        if (!pick) continue;
        const int before = plain_n_fail;
        hammer(TESTS[t].n_engine, TESTS[t].n_call, TESTS[t].rounds);
        printf("[%s] %s\n", plain_n_fail == before ? "PASS" : "FAIL", TESTS[t].name);
        fflush(stdout);
        ran++;
    }
    printf("%d passed, %d failed (%d tests)\n", plain_n_pass, plain_n_fail, ran);
    return plain_n_fail == 0 && ran > 0 ? 0 : 1;
}
