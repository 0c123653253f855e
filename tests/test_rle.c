/* tests/test_rle.c — core/mask.c against pycocotools 2.0.7 (COCO RLE counts string, toBbox,
 * area, decode) and numpy (chat.py's red overlay). Golden data: tests/data/rle/rle_cases.json,
 * written by tests/golden/gen_rle.py; the real SAM/LISA masks it refers to are read from
 * tests/data/golden. */
#include "golden.h"
#include "core/mask.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *load_cases(void) {
    size_t len = 0;
    char *txt = tu_read_file(LISA_TESTDATA_DIR "/rle/rle_cases.json", &len);
    cr_assert(txt, "cannot read rle_cases.json");
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    cr_assert(j, "rle_cases.json is not JSON");
    return j;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsString(v), "missing string %s", k);
    return v->valuestring;
}

static int jint(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "missing number %s", k);
    return (int)v->valuedouble;
}

/* The case's mask: inline '0'/'1' string, or a U8 [N, H, W] golden tensor. Caller frees. */
static uint8_t *case_mask(const cJSON *c, int h, int w) {
    uint8_t *m = malloc((size_t)h * w + 1);
    cr_assert(m);
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(c, "source");
    if (src) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", LISA_TESTDATA_DIR, jstr(src, "file"));
        lisa_checkpoint *ck = NULL;
        cr_assert_eq(lisa_checkpoint_open(&ck, path), LISA_OK, "%s", lisa_last_error());
        const lisa_ckpt_tensor *t = lisa_checkpoint_find(ck, jstr(src, "tensor"));
        cr_assert(t && t->dtype == LISA_DTYPE_U8 && t->n_dims == 3 && t->shape[1] == h && t->shape[2] == w);
        memcpy(m, (const uint8_t *)t->data + (size_t)jint(src, "index") * h * w, (size_t)h * w);
        lisa_checkpoint_close(ck);
    } else {
        const char *s = jstr(c, "mask");
        cr_assert_eq(strlen(s), (size_t)h * w);
        for (size_t i = 0; i < (size_t)h * w; i++)
            m[i] = s[i] == '1';
    }
    return m;
}

Test(rle, matches_pycocotools) {
    cJSON *j = load_cases();
    const cJSON *c;
    int n = 0, n_real = 0, n_empty = 0, n_full = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        const char *name = jstr(c, "name");
        const int h = jint(c, "h"), w = jint(c, "w");
        uint8_t *m = case_mask(c, h, w);
        lisa_rle r;
        cr_assert_eq(lisa_rle_encode(&r, m, h, w), LISA_OK, "%s", name);
        char *s = lisa_rle_to_string(&r);
        cr_assert(s);
        cr_expect_str_eq(s, jstr(c, "counts"), "%s: counts string", name);
        cr_expect_eq(lisa_rle_area(&r), (uint64_t)jint(c, "area"), "%s: area", name);
        double bb[4];
        lisa_rle_bbox(bb, &r);
        const cJSON *jb = cJSON_GetObjectItemCaseSensitive(c, "bbox");
        for (int k = 0; k < 4; k++)
            cr_expect_eq(bb[k], cJSON_GetArrayItem(jb, k)->valuedouble, "%s: bbox[%d] %g", name, k, bb[k]);
        /* decode(encode(m)) == m, and the string parses back to the same counts */
        uint8_t *back = malloc((size_t)h * w + 1);
        memset(back, 0xA5, (size_t)h * w + 1);
        lisa_rle_decode(back, &r);
        cr_expect(memcmp(back, m, (size_t)h * w) == 0, "%s: decode(encode(m)) != m", name);
        cr_expect_eq(back[(size_t)h * w], 0xA5, "%s: decode wrote past the mask", name);
        lisa_rle r2;
        cr_assert_eq(lisa_rle_from_string(&r2, jstr(c, "counts"), h, w), LISA_OK, "%s: %s", name, lisa_last_error());
        cr_expect_eq(r2.n, r.n, "%s", name);
        cr_expect(r2.n == r.n && memcmp(r2.counts, r.counts, (size_t)r.n * sizeof *r.counts) == 0, "%s", name);
        n_real += cJSON_GetObjectItemCaseSensitive(c, "source") != NULL;
        n_empty += lisa_rle_area(&r) == 0;
        n_full += lisa_rle_area(&r) == (uint64_t)h * w;
        lisa_rle_free(&r2);
        lisa_rle_free(&r);
        free(back);
        free(s);
        free(m);
        n++;
    }
    cr_expect_geq(n, 40);
    cr_expect_geq(n_real, 8);
    cr_expect_geq(n_empty, 3);
    cr_expect_geq(n_full, 3);
    cJSON_Delete(j);
}

Test(rle, large_counts_round_trip) {
    /* values that need 6-7 characters, positive and negative deltas; h*w = 4294901760 < 2^32 */
    const uint32_t sets[][4] = {{0, 2147483648u, 2147418112u, 0}, {5, 4294901750u, 3, 2}, {4294901759u, 1, 0, 0}};
    const int64_t ns[] = {3, 4, 2};
    for (int k = 0; k < 3; k++) {
        lisa_rle r = {.h = 65536, .w = 65535, .n = ns[k], .counts = (uint32_t *)sets[k]};
        char *s = lisa_rle_to_string(&r);
        cr_assert(s);
        lisa_rle b;
        cr_assert_eq(lisa_rle_from_string(&b, s, 65536, 65535), LISA_OK, "%s: %s", s, lisa_last_error());
        cr_expect_eq(b.n, ns[k]);
        for (int64_t i = 0; i < b.n && i < ns[k]; i++)
            cr_expect_eq(b.counts[i], sets[k][i], "set %d run %lld", k, (long long)i);
        lisa_rle_free(&b);
        free(s);
    }
}

Test(rle, malformed_strings_are_format_errors) {
    lisa_rle r;
    const struct {
        const char *s;
        int h, w;
        const char *msg;
    } bad[] = {
        {"0P", 3, 4, "truncated"},  /* 'P' = 32: continuation bit set, then the end */
        {"0 1", 3, 4, "outside"},   /* a space */
        {"0\x7f", 3, 4, "outside"}, /* above 'o' */
        {"P", 1, 1, "truncated"},
        {"3", 3, 4, "cover"},                /* 3 of 12 pixels */
        {"L", 3, 4, "outside 0.."},          /* 'L' = 28: sign bit -> 28 - 32 = -4 */
        {"<<", 3, 4, "outside 0.."},         /* 12 + 12 > 12 */
        {"ooooooo0", 3, 4, "longer than 7"}, /* eight characters for one value */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(lisa_rle_from_string(&r, bad[i].s, bad[i].h, bad[i].w), LISA_ERR_FORMAT, "case %zu", i);
        cr_expect(strstr(lisa_last_error(), bad[i].msg), "case %zu: message '%s' lacks '%s'", i, lisa_last_error(),
                  bad[i].msg);
        cr_expect_null(r.counts);
    }
    cr_expect_eq(lisa_rle_from_string(&r, "<", 3, 4), LISA_OK, "%s", lisa_last_error()); /* 12 zeros */
    cr_expect_eq(r.n, 1);
    lisa_rle_free(&r);
    uint8_t px = 1;
    cr_expect_eq(lisa_rle_encode(&r, &px, 65536, 65537), LISA_ERR_LIMIT); /* checked before reading */
    cr_expect_eq(lisa_rle_encode(&r, &px, 0, 5), LISA_OK);
    char *s = lisa_rle_to_string(&r);
    cr_expect_str_eq(s, "0"); /* pycocotools: one zero-length 0-run */
    free(s);
    lisa_rle_free(&r);
}

static uint8_t *from_hex(const char *hex, size_t n) {
    cr_assert_eq(strlen(hex), 2 * n);
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        b[i] = (uint8_t)v;
    }
    return b;
}

Test(rle, overlay_matches_chat_py) {
    cJSON *j = load_cases();
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "overlays")) {
        const int h = jint(c, "h"), w = jint(c, "w");
        const size_t np = (size_t)h * w;
        uint8_t *rgb = from_hex(jstr(c, "rgb"), 3 * np), *want = from_hex(jstr(c, "overlay"), 3 * np);
        uint8_t *m = case_mask(c, h, w), *got = malloc(3 * np), *gray = malloc(np);
        lisa_mask_overlay_red(got, rgb, m, h, w);
        size_t bad = 0;
        for (size_t i = 0; i < 3 * np; i++)
            bad += got[i] != want[i];
        cr_expect_eq(bad, 0, "%s: %zu bytes differ from numpy", jstr(c, "name"), bad);
        lisa_mask_overlay_red(rgb, rgb, m, h, w); /* in place */
        cr_expect(memcmp(rgb, want, 3 * np) == 0, "%s: in-place overlay differs", jstr(c, "name"));
        lisa_mask_to_gray(gray, m, h, w, 255);
        for (size_t i = 0; i < np; i++)
            cr_expect_eq(gray[i], m[i] ? 255 : 0);
        free(rgb), free(want), free(m), free(got), free(gray);
        n++;
    }
    cr_expect_eq(n, 2);
    cJSON_Delete(j);
}
