/* tests/test_eval_data.c — `lisa eval` without a model (issue #11):
 *   - the dataset readers against the reference's ValDataset: every query of the tiny dataset
 *     (ReasonSeg JSON; refCOCO instances.json + refs pickles in protocols 2, 0 and 4) has the text
 *     and GT mask the reference builds (tests/data/eval/gt_masks.txt, tests/golden/gen_eval.py);
 *   - the metric arithmetic, to the last digit, with an oracle "model" whose masks are chosen so
 *     that every intersection and union is computed by hand below (ignore regions, a prediction
 *     only inside an ignore region, empty GT vs empty prediction, overlapping refCOCO parts
 *     summing to 2, several queries per image, short/long);
 *   - bad items (corrupt JSON, undecodable image, cp1252 JSON) and the pickle reader's refusals. */
#include "jobs/dataset.h"
#include "jobs/records.h"
#include "loader/pickle_plain.h"
#include "core/error.h"
#include "jobs/eval.h"
#include "jobs/eval_metrics.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define EVAL_DIR LISA_TESTDATA_DIR "/eval"

static void load(lisa_dataset *ds, const char *dataset, const char *split) {
    lisa_status s;
    if (!strcmp(dataset, "reasonseg")) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/reason_seg/ReasonSeg/%s", EVAL_DIR, split);
        s = lisa_dataset_load_reasonseg(ds, dir);
    } else {
        s = lisa_dataset_load_refer(ds, EVAL_DIR "/refer_seg", dataset, !strcmp(dataset, "refcocog") ? "umd" : "unc",
                                    split);
    }
    cr_assert_eq(s, LISA_OK, "%s/%s: %s", dataset, split, lisa_last_error());
}

/* ---- the readers vs ValDataset -------------------------------------------------------------- */

Test(eval_data, queries_and_gt_masks_match_valdataset) {
    size_t len;
    char *text = tu_read_file(EVAL_DIR "/gt_masks.txt", &len);
    cr_assert(text);
    char cur_key[128] = "";
    lisa_dataset ds = {0};
    int32_t img_i = 0, q_i = -1, n_checked = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "query ", 6) != 0) continue;
        char dataset[32], split[32], image[512];
        int h, w, off = 0;
        cr_assert_eq(sscanf(line, "query %31s %31s %511s %d %d %n", dataset, split, image, &h, &w, &off), 5);
        const char *want_text = line + off;
        char key[128];
        snprintf(key, sizeof key, "%s/%s", dataset, split);
        if (strcmp(key, cur_key)) { /* next split: the dataset's queries in order */
            lisa_dataset_free(&ds);
            load(&ds, dataset, split);
            snprintf(cur_key, sizeof cur_key, "%s", key);
            img_i = 0;
            q_i = -1;
        }
        /* advance to the next query of the dataset (images and queries in order) */
        q_i++;
        while (img_i < ds.n_images && q_i >= ds.images[img_i].n_queries)
            img_i++, q_i = 0;
        cr_assert_lt(img_i, ds.n_images, "%s: more golden queries than loaded", key);
        const lisa_ds_image *im = &ds.images[img_i];
        cr_assert_null(im->error, "%s", im->error);
        cr_expect(strstr(image, im->id) != NULL, "%s: image %s, loaded %s", key, image, im->id);
        cr_expect_str_eq(im->queries[q_i].text, want_text);
        cr_assert_null(im->queries[q_i].error, "%s", im->queries[q_i].error);
        uint8_t *want = malloc((size_t)h * w), *got = malloc((size_t)h * w);
        for (int y = 0; y < h; y++) {
            char *row = strtok(NULL, "\n");
            cr_assert(row && (int)strlen(row) == w);
            for (int x = 0; x < w; x++)
                want[y * w + x] = row[x] == '.' ? 0 : row[x] == '1' ? 1 : row[x] == 'X' ? 255 : (uint8_t)(row[x] - '0');
        }
        cr_assert_eq(lisa_eval_gt_mask(got, ds.kind, im, q_i, h, w, NULL), LISA_OK, "%s", lisa_last_error());
        int bad = 0;
        for (int i = 0; i < h * w; i++)
            bad += got[i] != want[i];
        cr_expect_eq(bad, 0, "%s %s '%s': %d pixels differ", key, image, want_text, bad);
        n_checked++;
        free(want);
        free(got);
    }
    lisa_dataset_free(&ds);
    free(text);
    cr_expect_eq(n_checked, 21);
}

Test(eval_data, reasonseg_fields) {
    lisa_dataset ds;
    load(&ds, "reasonseg", "val");
    cr_assert_eq(ds.n_images, 2);
    const lisa_ds_image *a = &ds.images[0];
    cr_expect_str_eq(a->id, "vis_a.jpg");
    cr_expect_eq(a->n_queries, 1); /* only the first instruction */
    cr_expect_str_eq(a->queries[0].text, "the red box");
    cr_expect_not(a->queries[0].is_sentence);
    cr_expect_eq(a->n_shapes, 2); /* "flag" dropped */
    cr_expect_eq(a->shapes[0].value, 1);
    cr_expect_eq(a->shapes[1].value, 255);
    cr_expect(ds.images[1].queries[0].is_sentence);
    lisa_dataset_free(&ds);
    load(&ds, "reasonseg", "test");
    cr_expect_str_eq(ds.images[0].queries[0].text, "Which part keeps the rain out?"); /* stripped */
    lisa_dataset_free(&ds);
}

Test(eval_data, refer_splits) {
    lisa_dataset ds;
    struct {
        const char *ds, *split;
        int images, queries;
    } cases[] = {{"refcoco", "val", 2, 5},   {"refcoco", "testA", 1, 2},  {"refcoco", "testB", 1, 1},
                 {"refcoco", "test", 2, 3},  {"refcoco", "train", 1, 1},  {"refcoco+", "val", 2, 5},
                 {"refcocog", "test", 2, 3}, {"refcocog", "testAB", 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load(&ds, cases[i].ds, cases[i].split);
        int nq = 0;
        for (int k = 0; k < ds.n_images; k++)
            nq += ds.images[k].n_queries;
        cr_expect_eq(ds.n_images, cases[i].images, "%s/%s", cases[i].ds, cases[i].split);
        cr_expect_eq(nq, cases[i].queries, "%s/%s", cases[i].ds, cases[i].split);
        lisa_dataset_free(&ds);
    }
    cr_expect_eq(lisa_dataset_load_refer(&ds, EVAL_DIR "/refer_seg", "refcoco", "unc", "bogus"), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_dataset_load_refer(&ds, EVAL_DIR "/refer_seg", "refcoco", "google", "val"), LISA_ERR_NOT_FOUND);
    cr_expect(strstr(lisa_last_error(), "refs(google).p") != NULL, "%s", lisa_last_error());
}

/* ---- metric arithmetic with an oracle model --------------------------------------------------- */

typedef struct box {
    const char *key;    /* a substring of the query text */
    int x0, y0, x1, y1; /* inclusive; x0 < 0: empty prediction */
} box;

static const box kOracle[] = {
    {"the red box", 4, 2, 9, 5},     {"sit on here", 0, 0, 1, 1},         {"rain out", -1, 0, 0, 0},
    {"the lamp", 0, 6, 5, 11},       {"door handle", 0, 0, 15, 11},       {"the left box", 2, 2, 7, 5},
    {"box on the left", 0, 0, 3, 3}, {"blob at the bottom", -1, 0, 0, 0}, {"nothing at all", -1, 0, 0, 0},
    {"two parts", 1, 1, 9, 7},       {"top right", 10, 0, 15, 4},         {"corner", -1, 0, 0, 0},
    {"top left", 0, 0, 3, 2},
};

static lisa_status oracle(void *ctx, const uint8_t *rgb, int32_t h, int32_t w, int32_t n, const char *const *queries,
                          lisa_eval_pred *preds) {
    (void)ctx, (void)rgb;
    for (int32_t i = 0; i < n; i++) {
        const box *b = NULL;
        for (size_t k = 0; k < sizeof kOracle / sizeof kOracle[0]; k++)
            if (strstr(queries[i], kOracle[k].key)) b = &kOracle[k];
        cr_assert(b, "no oracle box for '%s'", queries[i]);
        cr_assert(strstr(queries[i], "Please output segmentation mask."));
        preds[i].n_seg = 1;
        snprintf(preds[i].answer, sizeof preds[i].answer, "[SEG].");
        if (b->x0 < 0) continue;
        for (int y = b->y0; y <= b->y1; y++)
            for (int x = b->x0; x <= b->x1; x++)
                preds[i].mask[y * w + x] = 1;
    }
    (void)h;
    return LISA_OK;
}

typedef struct collected {
    lisa_eval_acc all, by_len[2];
    int64_t I[16], U[16];
    int n, n_err;
    char errors[8][512];
} collected;

static lisa_status collect(void *ctx, const lisa_eval_result *r) {
    collected *c = ctx;
    if (!r->ok) {
        if (c->n_err < 8) snprintf(c->errors[c->n_err], sizeof c->errors[0], "%s: %s", r->id, r->error);
        c->n_err++;
        return LISA_OK;
    }
    c->I[c->n] = r->inter;
    c->U[c->n] = r->uni;
    c->n++;
    lisa_eval_acc_add(&c->all, r->inter, r->uni);
    lisa_eval_acc_add(&c->by_len[r->is_sentence], r->inter, r->uni);
    cr_expect_eq(r->iou, lisa_eval_query_iou(r->inter, r->uni));
    return LISA_OK;
}

static collected run_oracle(const char *dataset, const char *split) {
    lisa_dataset ds;
    load(&ds, dataset, split);
    collected c = {0};
    lisa_eval_params p = {.ds = &ds, .shard_n = 1, .predict = oracle, .sink = collect, .ctx = &c};
    cr_assert_eq(lisa_eval_run(&p), LISA_OK, "%s", lisa_last_error());
    lisa_dataset_free(&ds);
    return c;
}

static void expect_iu(const collected *c, int n, const int64_t *I, const int64_t *U) {
    cr_assert_eq(c->n, n);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(c->I[i], I[i], "query %d: intersection %lld, by hand %lld", i, (long long)c->I[i],
                     (long long)I[i]);
        cr_expect_eq(c->U[i], U[i], "query %d: union %lld, by hand %lld", i, (long long)c->U[i], (long long)U[i]);
    }
}

Test(eval_data, metrics_by_hand_reasonseg) {
    /* val. vis_a: target x2..7 y2..5 (24 px) minus the ignore square x6..9 y4..7 drawn over it
     * (smaller area: drawn later) -> 20 target px. Prediction x4..9 y2..5 (24 px), of which x6..9
     * y4..5 (8 px) are ignored -> 16 counted; I = x4..7 y2..3 (8) + x4..5 y4..5 (4) = 12;
     * U = 16 + 20 - 12 = 24.
     * vis_b: GT only an ignore square x0..3 y0..3; the prediction x0..1 y0..1 lies inside it:
     * I = U = 0 -> IoU 0/(0+1e-5) + 1 = 1 (empty vs empty). */
    collected v = run_oracle("reasonseg", "val");
    expect_iu(&v, 2, (int64_t[]){12, 0}, (int64_t[]){24, 0});
    cr_expect_eq(v.n_err, 0);
    const double giou_val = (12 / (24 + 1e-5) + (0 / (0 + 1e-5) + 1)) / (2 + 1e-5);
    cr_expect_eq(lisa_eval_giou(&v.all), giou_val, "%.17g vs %.17g", lisa_eval_giou(&v.all), giou_val);
    cr_expect_eq(lisa_eval_ciou(&v.all), 12 / (24 + 1e-10));
    /* test. tst_c (long): target x4..11 y1..6 = 48, empty prediction: I 0, U 48.
     * tst_d (short): rectangle x0..5 y6..11 (36) + triangle (10,2),(15,2),(15,9) (28 px as cv2
     * draws it, see gt_masks.txt); prediction = the rectangle: I 36, U 64.
     * tst_e (long): target x12..14 y8..10 (9), prediction the whole 16x12 image: I 9, U 192. */
    collected t = run_oracle("reasonseg", "test");
    expect_iu(&t, 3, (int64_t[]){0, 36, 9}, (int64_t[]){48, 64, 192});
    const double iou_c = 0 / (48 + 1e-5), iou_d = 36 / (64 + 1e-5), iou_e = 9 / (192 + 1e-5);
    cr_expect_eq(lisa_eval_giou(&t.all), ((iou_c + iou_d) + iou_e) / (3 + 1e-5));
    cr_expect_eq(lisa_eval_ciou(&t.all), 45 / (304 + 1e-10));
    cr_expect_eq(lisa_eval_giou(&t.by_len[0]), iou_d / (1 + 1e-5)); /* short */
    cr_expect_eq(lisa_eval_ciou(&t.by_len[0]), 36 / (64 + 1e-10));
    cr_expect_eq(lisa_eval_giou(&t.by_len[1]), (iou_c + iou_e) / (2 + 1e-5)); /* long */
    cr_expect_eq(lisa_eval_ciou(&t.by_len[1]), 9 / (240 + 1e-10));
}

Test(eval_data, metrics_by_hand_refcoco) {
    /* val, image 11 (four queries, three refs):
     *   "the left box": polygon (2,2)-(8,6) covers x2..7 y2..5 (24); same prediction: I 24, U 24;
     *   "box on the left" (same ref): prediction x0..3 y0..3 (16): I = x2..3 y2..3 = 4, U 36;
     *   "blob at the bottom": RLE x9..14 y6..9 (24), empty prediction: I 0, U 24;
     *   "nothing at all": segmentation [] -> empty GT, empty prediction: U 0 -> IoU 1.
     * image 12, "two parts": polygons x1..5 y1..4 (20) and x4..9 y3..7 (30) overlap on
     *   x4..5 y3..4 (4 px), where the parts SUM to 2: those are neither background nor target, but
     *   a prediction there still counts. GT==1: 42 px. Prediction x1..9 y1..7 (63): I 42,
     *   U = 63 + 42 - 42 = 63. */
    collected v = run_oracle("refcoco", "val");
    expect_iu(&v, 5, (int64_t[]){24, 4, 0, 0, 42}, (int64_t[]){24, 36, 24, 0, 63});
    const double g =
        ((((24 / (24 + 1e-5) + 4 / (36 + 1e-5)) + 0 / (24 + 1e-5)) + (0 / (0 + 1e-5) + 1)) + 42 / (63 + 1e-5)) /
        (5 + 1e-5);
    cr_expect_eq(lisa_eval_giou(&v.all), g, "%.17g vs %.17g", lisa_eval_giou(&v.all), g);
    cr_expect_eq(lisa_eval_ciou(&v.all), 70 / (147 + 1e-10));
    /* refCOCO+ (protocol-0 pickle) has the same refs: the same numbers */
    collected vp = run_oracle("refcoco+", "val");
    cr_expect_eq(lisa_eval_giou(&vp.all), g);
    /* testA: ref 4 (x10..15 y0..4, 30 px), two sentences: exact prediction, then none */
    collected a = run_oracle("refcoco", "testA");
    expect_iu(&a, 2, (int64_t[]){30, 0}, (int64_t[]){30, 30});
    cr_expect_eq(lisa_eval_giou(&a.all), (30 / (30 + 1e-5) + 0 / (30 + 1e-5)) / (2 + 1e-5));
    cr_expect_eq(lisa_eval_ciou(&a.all), 30 / (60 + 1e-10));
    /* refCOCOg (protocol-4 pickle, umd) "test" = every split containing "test": testA + testB */
    collected gt = run_oracle("refcocog", "test");
    expect_iu(&gt, 3, (int64_t[]){30, 0, 12}, (int64_t[]){30, 30, 12});
    cr_expect_eq(lisa_eval_ciou(&gt.all), 42 / (72 + 1e-10));
}

/* ---- bad items ----------------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *b = tu_read_file(from, &n);
    cr_assert(b, "%s", from);
    cr_assert(tu_write_file(to, b, n));
    free(b);
}

Test(eval_data, bad_items_are_errors_and_the_run_goes_on) {
    char *dir = tu_make_tmpdir("lisa-eval-bad");
    char p[1024], q[1024];
    /* a good item, a corrupt JSON, a garbage image, a cp1252 JSON, a JSON without points */
    snprintf(p, sizeof p, "%s/a_good.jpg", dir);
    copy_file(EVAL_DIR "/reason_seg/ReasonSeg/val/vis_a.jpg", p);
    snprintf(p, sizeof p, "%s/a_good.json", dir);
    copy_file(EVAL_DIR "/reason_seg/ReasonSeg/val/vis_a.json", p);
    snprintf(p, sizeof p, "%s/b_corrupt.jpg", dir);
    copy_file(EVAL_DIR "/reason_seg/ReasonSeg/val/vis_a.jpg", p);
    snprintf(q, sizeof q, "%s/b_corrupt.json", dir);
    cr_assert(tu_write_file(q, "{\"text\": [\"x\"], \"is_sentence\": tru", 34));
    snprintf(p, sizeof p, "%s/c_garbage.jpg", dir);
    cr_assert(tu_write_file(p, "not an image", 12));
    snprintf(q, sizeof q, "%s/c_garbage.json", dir);
    copy_file(EVAL_DIR "/reason_seg/ReasonSeg/val/vis_a.json", q);
    snprintf(p, sizeof p, "%s/d_cp1252.jpg", dir);
    copy_file(EVAL_DIR "/reason_seg/ReasonSeg/val/vis_a.jpg", p);
    snprintf(q, sizeof q, "%s/d_cp1252.json", dir);
    /* 0x92 is U+2019 in cp1252 and invalid UTF-8: get_mask_from_json's fallback */
    const char cp[] = "{\"text\": [\"the lamp\x92s shade\"], \"is_sentence\": false, \"shapes\": "
                      "[{\"label\": \"target\", \"points\": [[1, 1], [4, 1], [4, 3]]}]}";
    cr_assert(tu_write_file(q, cp, sizeof cp - 1));
    snprintf(p, sizeof p, "%s/e_nopoints.jpg", dir);
    copy_file(EVAL_DIR "/reason_seg/ReasonSeg/val/vis_a.jpg", p);
    snprintf(q, sizeof q, "%s/e_nopoints.json", dir);
    const char np[] =
        "{\"text\": [\"x\"], \"is_sentence\": false, \"shapes\": [{\"label\": \"target\", \"points\": []}]}";
    cr_assert(tu_write_file(q, np, sizeof np - 1));

    lisa_dataset ds;
    cr_assert_eq(lisa_dataset_load_reasonseg(&ds, dir), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(ds.n_images, 5);
    cr_expect_null(ds.images[0].error);
    cr_expect(ds.images[1].error && strstr(ds.images[1].error, "b_corrupt.json"), "%s", ds.images[1].error);
    cr_expect_null(ds.images[2].error); /* the JSON is fine; the image fails at run time */
    cr_expect_null(ds.images[3].error);
    cr_expect_str_eq(ds.images[3].queries[0].text, "the lamp\xe2\x80\x99s shade");
    cr_expect(ds.images[4].error && strstr(ds.images[4].error, "no points"), "%s", ds.images[4].error);

    collected c = {0};
    lisa_eval_params ep = {.ds = &ds, .shard_n = 1, .predict = oracle, .sink = collect, .ctx = &c};
    cr_assert_eq(lisa_eval_run(&ep), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(c.n, 2, "good + cp1252 items evaluated");
    cr_expect_eq(c.n_err, 3, "corrupt JSON, garbage image, no points");
    int saw_image = 0;
    for (int i = 0; i < c.n_err && i < 8; i++)
        saw_image += strstr(c.errors[i], "c_garbage.jpg#0: ") && strstr(c.errors[i], "/c_garbage.jpg:");
    cr_expect_eq(saw_image, 1, "the garbage image's error names it: %s | %s | %s", c.errors[0], c.errors[1],
                 c.errors[2]);
    lisa_dataset_free(&ds);
    tu_remove_tree(dir);
    free(dir);
}

Test(eval_data, shards_partition_the_images) {
    lisa_dataset ds;
    load(&ds, "refcoco", "val");
    collected c0 = {0}, c1 = {0};
    lisa_eval_params p = {.ds = &ds, .shard_k = 0, .shard_n = 2, .predict = oracle, .sink = collect, .ctx = &c0};
    cr_assert_eq(lisa_eval_run(&p), LISA_OK);
    p.shard_k = 1;
    p.ctx = &c1;
    cr_assert_eq(lisa_eval_run(&p), LISA_OK);
    cr_expect_eq(c0.n, 4); /* image 11 */
    cr_expect_eq(c1.n, 1); /* image 12 */
    cr_expect_eq(c0.all.sum_i + c1.all.sum_i, 70);
    p.shard_k = 2;
    cr_expect_eq(lisa_eval_run(&p), LISA_ERR_INVALID_ARG);
    lisa_dataset_free(&ds);
}

/* ---- pickle reader -------------------------------------------------------------------------- */

Test(eval_data, pickle_plain_data_only) {
    cJSON *j = NULL;
    /* protocol 0 as Python 2 writes it: STRING with escapes, INT, True, FLOAT, LONG, unicode */
    const char p0[] = "(lp0\n(dp1\nS'sent'\np2\nS'it\\'s \\x41'\np3\nsS'n'\np4\nI42\nsS'ok'\np5\nI01\n"
                      "sS'f'\nF0.5\nsS'big'\nL12345678901L\nsS'u'\nVcaf\\u00e9\np6\nsag3\na.";
    cr_assert_eq(lisa_pickle_plain_parse(&j, p0, sizeof p0 - 1, "p0"), LISA_OK, "%s", lisa_last_error());
    cr_assert(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 2);
    const cJSON *d = cJSON_GetArrayItem(j, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(d, "sent")->valuestring, "it's A");
    cr_expect_eq(cJSON_GetObjectItem(d, "n")->valuedouble, 42);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(d, "ok")));
    cr_expect_eq(cJSON_GetObjectItem(d, "f")->valuedouble, 0.5);
    cr_expect_eq(cJSON_GetObjectItem(d, "big")->valuedouble, 12345678901.0);
    cr_expect_str_eq(cJSON_GetObjectItem(d, "u")->valuestring, "caf\xc3\xa9");
    cr_expect_str_eq(cJSON_GetArrayItem(j, 1)->valuestring, "it's A"); /* memo GET: a copy */
    cJSON_Delete(j);
    /* code is refused: GLOBAL os.system + REDUCE */
    const char evil[] = "\x80\x02"
                        "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
    cr_expect_eq(lisa_pickle_plain_parse(&j, evil, sizeof evil - 1, "evil"), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "evil") && strstr(lisa_last_error(), "not plain data"), "%s",
              lisa_last_error());
    cr_expect_null(j);
    /* truncated and empty */
    cr_expect_eq(lisa_pickle_plain_parse(&j, p0, 20, "t"), LISA_ERR_FORMAT);
    cr_expect_eq(lisa_pickle_plain_parse(&j, "", 0, "e"), LISA_ERR_FORMAT);
    cr_expect_eq(lisa_pickle_plain_parse(&j, "a.", 2, "u"), LISA_ERR_FORMAT); /* APPEND on an empty stack */
}

/* peak resident set of this process, MiB */
static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* DUP / memo GET copies are bounded by the input's size: doubling pickles ("billion laughs", a list
 * appended to itself, and the same with a 2 KB string inside) fail fast with LISA_ERR_LIMIT without
 * taking gigabytes (a 1172-byte fuzz input reached 1.9 GB under the old flat 2^24-node bound), while
 * a legitimately shared pickle (one memoized string GET 100000 times) still parses. */
Test(eval_data, pickle_plain_copy_budget) {
    cJSON *j = NULL;
    char *buf = malloc(1 << 20);
    cr_assert(buf);
    /* legitimate sharing: [s, s, ..., s] with s memoized once */
    size_t n = (size_t)snprintf(buf, 64, "(lp0\nVhello\np1\na");
    for (int i = 0; i < 100000; i++) {
        memcpy(buf + n, "g1\na", 4);
        n += 4;
    }
    buf[n++] = '.';
    cr_assert_eq(lisa_pickle_plain_parse(&j, buf, n, "shared"), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(cJSON_GetArraySize(j), 100001);
    cJSON_Delete(j);
    j = NULL;
    const double rss0 = peak_rss_mib();
    for (int with_string = 0; with_string < 2; with_string++) {
        n = (size_t)snprintf(buf, 64, "(lp0\n");
        if (with_string) {
            buf[n++] = 'V';
            memset(buf + n, 'x', 2048);
            n += 2048;
            memcpy(buf + n, "\na", 2);
            n += 2;
        }
        for (int i = 0; i < 48; i++) { /* DUP, APPEND: the list now holds a copy of itself */
            memcpy(buf + n, "2a", 2);
            n += 2;
        }
        buf[n++] = '.';
        cr_expect_eq(lisa_pickle_plain_parse(&j, buf, n, "laughs"), LISA_ERR_LIMIT, "with_string %d", with_string);
        cr_expect(strstr(lisa_last_error(), "laughs") && strstr(lisa_last_error(), "copy budget"), "%s",
                  lisa_last_error());
        cr_expect_null(j);
    }
    cr_expect_lt(peak_rss_mib() - rss0, 512.0, "the doubling pickles raised the peak RSS from %.0f to %.0f MiB", rss0,
                 peak_rss_mib());
    free(buf);
}

/* ---- record files ----------------------------------------------------------------------------- */

static size_t id_key(char *buf, size_t cap, const cJSON *rec) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (!cJSON_IsString(id)) return 0;
    const size_t n = strlen(id->valuestring);
    if (n < cap) memcpy(buf, id->valuestring, n);
    return n;
}
static const lisa_records_kind KIND = {.magic = "lisa_eval_records", .key = id_key, .keep = true};
#define HAS(r, k) lisa_records_has(r, k, strlen(k))

Test(eval_data, records_resume_and_torn_lines) {
    char *dir = tu_make_tmpdir("lisa-eval-rec");
    char path[1024];
    snprintf(path, sizeof path, "%s/r.jsonl", dir);
    cJSON *h = cJSON_Parse("{\"lisa_eval_records\":1,\"dataset\":\"reasonseg\",\"split\":\"val\"}");
    lisa_records r;
    cr_assert_eq(lisa_records_open(&r, path, &KIND, h, false), LISA_OK, "%s", lisa_last_error());
    const char l1[] = "{\"id\":\"a#0\",\"status\":\"ok\"}\n{\"id\":\"b#0\",\"status\":\"ok\"}\n";
    cr_assert_eq(lisa_records_append(&r, l1, sizeof l1 - 1), LISA_OK);
    cr_expect(HAS(&r, "a#0") && HAS(&r, "b#0") &&
              !HAS(&r, "c#0"));
    lisa_records_close(&r);
    /* a torn line at the end (killed mid-write) */
    FILE *f = fopen(path, "a");
    fputs("{\"id\":\"c#0\",\"sta", f);
    fclose(f);
    cr_expect_eq(lisa_records_open(&r, path, &KIND, h, false), LISA_ERR_INVALID_ARG); /* needs --resume */
    cr_expect(strstr(lisa_last_error(), "--resume") != NULL);
    cr_assert_eq(lisa_records_open(&r, path, &KIND, h, true), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(r.n, 2);
    cr_expect_gt(r.torn_bytes, 0);
    cr_expect(!HAS(&r, "c#0"));
    const char l2[] = "{\"id\":\"c#0\",\"status\":\"ok\"}\n";
    cr_assert_eq(lisa_records_append(&r, l2, sizeof l2 - 1), LISA_OK);
    lisa_records_close(&r);
    size_t n;
    char *txt = tu_read_file(path, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += txt[i] == '\n';
    cr_expect_eq(lines, 4); /* header + a, b, c: the torn bytes are gone */
    cr_expect(strstr(txt, "\"sta{") == NULL);
    free(txt);
    /* another run's file is refused */
    cJSON *h2 = cJSON_Parse("{\"lisa_eval_records\":1,\"dataset\":\"reasonseg\",\"split\":\"test\"}");
    cr_expect_eq(lisa_records_open(&r, path, &KIND, h2, true), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "split") != NULL, "%s", lisa_last_error());
    /* a corrupt line in the middle is an error, not silently skipped */
    f = fopen(path, "a");
    fputs("garbage\n{\"id\":\"d#0\",\"status\":\"ok\"}\n", f);
    fclose(f);
    cr_expect_eq(lisa_records_open(&r, path, &KIND, h, true), LISA_ERR_FORMAT);
    cJSON_Delete(h);
    cJSON_Delete(h2);
    tu_remove_tree(dir);
    free(dir);
}
