/* tests/test_eval_raster.c — GT masks against the reference stack (issue #11):
 *   - OpenCV 4.8 fillPoly / polylines and LISA's get_mask_from_json (area sort via numpy argsort,
 *     ties included, int32 truncation of float points, labels) on random and adversarial polygons:
 *     tests/data/eval/raster.txt, from tests/golden/gen_eval.py (cv2 4.8.0.74, numpy 1.24.2);
 *   - pycocotools masks as ValDataset builds them (frPyObjects polygons, compressed and
 *     uncompressed RLE, parts summed into uint8): tests/data/eval/coco.txt;
 *   - numpy's argsort algorithm on inputs with many ties, against a stable-sort reference where
 *     numpy is stable (n <= 16), and as a permutation otherwise. */
#include "jobs/eval_raster.h"
#include "core/rle.h"
#include "jobs/dataset.h"
#include "core/error.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_DIR LISA_TESTDATA_DIR "/eval"

static uint8_t row_char_value(char c) { return c == '.' ? 0 : c == '1' ? 1 : c == 'X' ? 255 : (uint8_t)(c - '0'); }

/* Reads `h` mask rows from the cursor into want[h*w]. */
static void read_rows(char **cur, uint8_t *want, int h, int w, const char *name) {
    for (int y = 0; y < h; y++) {
        char *nl = strchr(*cur, '\n');
        cr_assert(nl, "%s: missing mask row %d", name, y);
        cr_assert_eq(nl - *cur, w, "%s: row %d has %d chars", name, y, (int)(nl - *cur));
        for (int x = 0; x < w; x++)
            want[y * w + x] = row_char_value((*cur)[x]);
        *cur = nl + 1;
    }
}

static char *next_line(char **cur) {
    char *nl = strchr(*cur, '\n');
    if (!nl) return NULL;
    *nl = '\0';
    char *l = *cur;
    *cur = nl + 1;
    return l;
}

static int compare_masks(const char *name, const uint8_t *got, const uint8_t *want, int h, int w) {
    int bad = 0;
    for (int i = 0; i < h * w; i++) {
        if (got[i] != want[i]) {
            if (bad < 3) cr_log_error("%s: pixel (x=%d, y=%d) = %d, reference %d", name, i % w, i / w, got[i], want[i]);
            bad++;
        }
    }
    return bad;
}

Test(eval_raster, opencv_fillpoly_polylines_and_get_mask_from_json) {
    size_t len;
    char *text = tu_read_file(EVAL_DIR "/raster.txt", &len);
    cr_assert(text);
    char *cur = text, *l;
    int n_cases = 0, n_bad = 0, n_fill = 0, n_lines = 0, n_json = 0;
    while ((l = next_line(&cur))) {
        if (l[0] == '#') continue;
        char name[64], kind[16];
        int h, w, ns;
        cr_assert_eq(sscanf(l, "case %63s %d %d %15s %d", name, &h, &w, kind, &ns), 5, "bad line: %s", l);
        lisa_rs_shape shapes[64];
        lisa_pt pts[64][64];
        int n_kept = 0;
        for (int s = 0; s < ns; s++) {
            char *sl = next_line(&cur), label[64];
            int np, off = 0;
            cr_assert(sl && sscanf(sl, "shape %63s %d%n", label, &np, &off) == 2);
            cr_assert(np <= 64);
            char *p = sl + off;
            for (int k = 0; k < np; k++) {
                double x = strtod(p, &p), y = strtod(p, &p);
                /* np.array(points, dtype=np.int32) */
                cr_assert(lisa_ds_to_int32(x, &pts[n_kept][k].x) && lisa_ds_to_int32(y, &pts[n_kept][k].y));
            }
            /* labels as get_mask_from_json reads them: "flag" (lower) skipped, "ignore" in lower -> 255 */
            char low[64];
            for (int c = 0; c <= (int)strlen(label); c++)
                low[c] = (char)((label[c] >= 'A' && label[c] <= 'Z') ? label[c] + 32 : label[c]);
            if (!strcmp(kind, "json") && !strcmp(low, "flag")) continue;
            shapes[n_kept] = (lisa_rs_shape){.value = strstr(low, "ignore") ? 255 : 1, .n = np, .pts = pts[n_kept]};
            n_kept++;
        }
        uint8_t *want = malloc((size_t)h * w), *got = calloc((size_t)h * w, 1);
        read_rows(&cur, want, h, w, name);
        if (!strcmp(kind, "fill")) {
            cr_assert_eq(lisa_cv_fill_poly(got, h, w, shapes[0].pts, shapes[0].n, 1), LISA_OK);
            n_fill++;
        } else if (!strcmp(kind, "lines")) {
            lisa_cv_polylines_closed(got, h, w, shapes[0].pts, shapes[0].n, 1);
            n_lines++;
        } else {
            cr_assert_eq(lisa_reasonseg_mask(got, h, w, shapes, n_kept, NULL), LISA_OK);
            n_json++;
        }
        n_bad += compare_masks(name, got, want, h, w) > 0;
        n_cases++;
        free(want);
        free(got);
    }
    free(text);
    cr_expect_eq(n_bad, 0, "%d of %d cases differ from OpenCV/numpy", n_bad, n_cases);
    cr_expect_geq(n_fill, 40);
    cr_expect_geq(n_lines, 25);
    cr_expect_geq(n_json, 18);
}

static lisa_status coco_mask(uint8_t *m, const cJSON *seg, int h, int w, bool uncompressed) {
    memset(m, 0, (size_t)h * w);
    if (uncompressed) { /* {"size", "counts": [..]} */
        const cJSON *cnt = cJSON_GetObjectItem(seg, "counts");
        int64_t c[64];
        int n = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cnt) c[n++] = (int64_t)v->valuedouble;
        lisa_rle r;
        LISA_TRY(lisa_rle_from_counts(&r, c, n, h, w, "test"));
        lisa_status s = lisa_rle_decode_add(m, &r, "test");
        lisa_rle_free(&r);
        return s;
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, seg) {
        lisa_rle r;
        if (cJSON_IsArray(part)) {
            double xy[256];
            int n = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, part) xy[n++] = v->valuedouble;
            LISA_TRY(lisa_rle_from_poly(&r, xy, n / 2, h, w, "test"));
        } else {
            LISA_TRY(lisa_rle_from_string(&r, cJSON_GetObjectItem(part, "counts")->valuestring, h, w));
        }
        lisa_status s = lisa_rle_decode_add(m, &r, "test");
        lisa_rle_free(&r);
        LISA_TRY(s);
    }
    return LISA_OK;
}

Test(eval_raster, pycocotools_polygons_and_rle) {
    size_t len;
    char *text = tu_read_file(EVAL_DIR "/coco.txt", &len);
    cr_assert(text);
    char *cur = text, *l;
    int n_cases = 0, n_bad = 0;
    while ((l = next_line(&cur))) {
        if (l[0] == '#') continue;
        char name[64], kind[32];
        int h, w;
        cr_assert_eq(sscanf(l, "case %63s %d %d %31s", name, &h, &w, kind), 4, "bad line: %s", l);
        char *jl = next_line(&cur);
        cr_assert(jl && !strncmp(jl, "json ", 5));
        cJSON *seg = cJSON_Parse(jl + 5);
        cr_assert(seg);
        uint8_t *want = malloc((size_t)h * w), *got = malloc((size_t)h * w);
        read_rows(&cur, want, h, w, name);
        cr_assert_eq(coco_mask(got, seg, h, w, !strcmp(kind, "uncompressed")), LISA_OK, "%s: %s", name,
                     lisa_last_error());
        n_bad += compare_masks(name, got, want, h, w) > 0;
        n_cases++;
        cJSON_Delete(seg);
        free(want);
        free(got);
    }
    free(text);
    cr_expect_eq(n_bad, 0, "%d of %d cases differ from pycocotools", n_bad, n_cases);
    cr_expect_geq(n_cases, 25);
}

Test(eval_raster, rle_rejects_garbage) {
    lisa_rle r;
    cr_expect_eq(lisa_rle_from_string(&r, "ab\x01", 4, 4), LISA_ERR_FORMAT);
    cr_expect_eq(lisa_rle_from_string(&r, "o", 4, 4), LISA_ERR_FORMAT); /* continuation bit, then end */
    cr_assert_eq(lisa_rle_from_counts(&r, (int64_t[]){3, 10, 5}, 3, 4, 4, "x"), LISA_OK);
    uint8_t m[16] = {0};
    cr_expect_eq(lisa_rle_decode_add(m, &r, "x"), LISA_ERR_FORMAT); /* 18 > 16 pixels */
    lisa_rle_free(&r);
    double bad[6] = {0, 0, 1e300, 2, 3, 4};
    cr_expect_eq(lisa_rle_from_poly(&r, bad, 3, 4, 4, "x"), LISA_ERR_FORMAT);
    /* an empty polygon (k = 0) is an empty mask, as maskApi.c gives */
    cr_assert_eq(lisa_rle_from_poly(&r, bad, 0, 4, 4, "x"), LISA_OK);
    memset(m, 7, sizeof m);
    cr_assert_eq(lisa_rle_decode_add(m, &r, "x"), LISA_OK);
    for (int i = 0; i < 16; i++)
        cr_expect_eq(m[i], 7);
    lisa_rle_free(&r);
}

/* numpy argsort with the default kind: stable for n <= 16 (insertion sort only) */
Test(eval_raster, numpy_argsort) {
    tu_rng rng = tu_rng_seed(5);
    for (int n = 1; n <= 16; n++) {
        uint64_t keys[17];
        int64_t idx[17];
        for (int i = 0; i < n; i++)
            keys[i] = tu_next_u64(&rng) % 4;
        lisa_np_argsort_u64(idx, keys, n);
        for (int i = 1; i < n; i++) {
            cr_assert(keys[idx[i - 1]] <= keys[idx[i]]);
            if (keys[idx[i - 1]] == keys[idx[i]]) cr_assert(idx[i - 1] < idx[i], "not stable at n=%d", n);
        }
    }
    /* larger: a sorted permutation (the tie order is checked against numpy through raster.txt) */
    for (int n = 17; n < 3000; n = n * 3 / 2) {
        uint64_t *keys = malloc((size_t)n * sizeof *keys);
        int64_t *idx = malloc((size_t)n * sizeof *idx);
        char *seen = calloc((size_t)n, 1);
        for (int i = 0; i < n; i++)
            keys[i] = tu_next_u64(&rng) % 7;
        lisa_np_argsort_u64(idx, keys, n);
        for (int i = 0; i < n; i++) {
            cr_assert(idx[i] >= 0 && idx[i] < n && !seen[idx[i]]);
            seen[idx[i]] = 1;
            if (i) cr_assert(keys[idx[i - 1]] <= keys[idx[i]]);
        }
        free(keys);
        free(idx);
        free(seen);
    }
}
