/* tests/common/golden.c */
#include "golden.h"

#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lisa_checkpoint *golden_open(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", GOLDEN_DIR, name);
    lisa_checkpoint *ck = NULL;
    if (lisa_checkpoint_open(&ck, path) != LISA_OK) cr_assert_fail("golden %s: %s", name, lisa_last_error());
    return ck;
}

bool golden_has(const lisa_checkpoint *g, const char *name) { return lisa_checkpoint_find(g, name) != NULL; }

lisa_tensor golden_get(const lisa_checkpoint *g, const char *name) {
    lisa_tensor t;
    if (lisa_checkpoint_get(g, name, &t) != LISA_OK) cr_assert_fail("golden: %s", lisa_last_error());
    return t;
}

long golden_meta_int(const lisa_checkpoint *g, const char *key) {
    const char *v = lisa_checkpoint_metadata(g, key);
    if (!v) cr_assert_fail("golden metadata '%s' missing", key);
    return strtol(v, NULL, 10);
}

bool golden_check(const lisa_checkpoint *g, const char *name, const lisa_tensor *got, double rtol, double atol_rel) {
    lisa_tensor ref = golden_get(g, name);
    int64_t n = lisa_tensor_numel(&ref);
    if (lisa_tensor_numel(got) != n) {
        char a[96], b[96];
        fprintf(stderr, "%s: engine %s vs golden %s\n", name, lisa_tensor_shape_str(got, a, sizeof a),
                lisa_tensor_shape_str(&ref, b, sizeof b));
        return false;
    }
    if (n == 0) return true;
    double *r = malloc((size_t)n * sizeof(double)), mx = 0;
    int64_t idx[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i;
        for (int d = ref.n_dims - 1; d >= 0; d--) {
            idx[d] = rem % ref.shape[d];
            rem /= ref.shape[d];
        }
        r[i] = lisa_tensor_get(&ref, idx);
        if (fabs(r[i]) > mx) mx = fabs(r[i]);
    }
    /* Compare in the golden's logical order: view `got` with the golden's shape when contiguous. */
    lisa_tensor view = *got;
    if (lisa_tensor_is_contiguous(got)) view = lisa_tensor_view(got->data, got->dtype, ref.n_dims, ref.shape);
    bool ok = tu_check_close(name, &view, r, atol_rel * mx, rtol);
    free(r);
    return ok;
}

lisa_tensor golden_subsample(const lisa_tensor *x, int s) {
    const int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2];
    const int64_t h = (H + s - 1) / s, w = (W + s - 1) / s;
    lisa_tensor o = tu_tensor(LISA_DTYPE_F32, 3, N, h, w, 0);
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                int64_t src[3] = {n, i * s, j * s}, dst[3] = {n, i, j};
                lisa_tensor_set(&o, dst, lisa_tensor_get(x, src));
            }
    return o;
}

long golden_mask_mismatches(const lisa_checkpoint *g, const lisa_tensor *logits, double near) {
    lisa_tensor mask = golden_get(g, "mask");
    const int64_t n = lisa_tensor_numel(&mask);
    if (lisa_tensor_numel(logits) != n) {
        fprintf(stderr, "mask: %lld logits vs %lld golden pixels\n", (long long)lisa_tensor_numel(logits), (long long)n);
        return n + 1;
    }
    const bool full = golden_has(g, "mask_logits");
    lisa_tensor ref = full ? golden_get(g, "mask_logits") : mask;
    const float *lg = logits->data;
    long bad = 0, flips = 0;
    for (int64_t i = 0; i < n; i++) {
        bool m = lg[i] > 0.0f, want = ((const uint8_t *)mask.data)[i] != 0;
        if (m == want) continue;
        flips++;
        if (full && fabsf(((const float *)ref.data)[i]) < near) continue;
        if (!full) continue; /* judged by count below */
        if (bad < 5) fprintf(stderr, "mask: pixel %lld differs (golden logit %g, engine %g)\n", (long long)i,
                             ((const float *)ref.data)[i], lg[i]);
        bad++;
    }
    if (!full) {
        /* Without full logits: allowed flips = pixels the generator found within 1e-4 of zero. */
        long allowed = golden_meta_int(g, near >= 1e-3 ? "mask_logits_abs_lt_1e-3" : "mask_logits_abs_lt_1e-4");
        if (flips > allowed) {
            fprintf(stderr, "mask: %ld flipped pixels, at most %ld have |golden logit| < %g\n", flips, allowed, near);
            bad = flips - allowed;
        }
    }
    if (flips) fprintf(stderr, "mask: %ld of %lld pixels flipped (%ld not near zero)\n", flips, (long long)n, bad);
    return bad;
}

void golden_tap_cb(void *ctx, const char *name, const lisa_tensor *t) {
    golden_taps *gt = ctx;
    if (!golden_has(gt->g, name)) return;
    gt->n_checked++;
    if (!golden_check(gt->g, name, t, gt->rtol, gt->atol_rel)) gt->n_failed++;
}

lisa_status golden_run_graph(lisa_backend *be, lisa_graph_fn fn, void *ctx,
                             void (*tap)(void *, const char *, const lisa_tensor *), void *tap_ctx) {
    size_t act_bytes = 0, meta_bytes = 0;
    LISA_TRY(lisa_graph_measure(be, LISA_DTYPE_F32, fn, ctx, &act_bytes, &meta_bytes));
    lisa_arena act, meta;
    LISA_TRY(lisa_arena_init(&act, "activations", act_bytes));
    lisa_status s = lisa_arena_init(&meta, "descriptors", meta_bytes);
    if (s != LISA_OK) {
        lisa_arena_free(&act);
        return s;
    }
    lisa_graph g;
    lisa_graph_init(&g, be, &act, &meta, LISA_DTYPE_F32);
    g.tap = tap;
    g.tap_ctx = tap_ctx;
    fn(&g, ctx);
    if (g.status == LISA_OK && act.peak != act_bytes)
        fprintf(stderr, "note: counting pass %zu bytes, real run %zu\n", act_bytes, act.peak);
    lisa_arena_free(&act);
    lisa_arena_free(&meta);
    return g.status;
}
