/* tests/test_eval_cli.c — `lisa eval` end to end on the tiny LISA (issue #11):
 *   - teacher-forced mode against the REFERENCE evaluation of the same tiny model on the tiny
 *     dataset (tests/data/eval/teacher_forced.json, tests/golden/gen_eval.py: ValDataset prompts
 *     with "[SEG].</s>", one forward, model_forward's [SEG] gather, SAM, validate()'s metric):
 *     per-query intersection and union, gIoU and cIoU; ReasonSeg test run as two shards + --merge;
 *   - resume after a simulated interruption (a lost record and a torn last line);
 *   - generate mode's plumbing, --dump-masks, usage errors. */
#include "golden.h"
#include "loader/image.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define EVAL_DIR LISA_TESTDATA_DIR "/eval"

static int run_eval(const char *args, const char *log) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 '%s' eval --model '%s' --vision-tower '%s' --data '%s' --threads 2 %s > '%s' 2>&1",
             LISA_TOOL_PATH, TINY_LISA_DIR, TINY_CLIP_DIR, EVAL_DIR, args, log);
    const int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static cJSON *read_json(const char *path) {
    size_t n;
    char *t = tu_read_file(path, &n);
    cr_assert(t, "cannot read %s", path);
    cJSON *j = cJSON_Parse(t);
    free(t);
    cr_assert(j, "not JSON: %s", path);
    return j;
}

/* the query records (header skipped) as a JSON array */
static cJSON *read_records(const char *path, cJSON **header) {
    size_t n;
    char *t = tu_read_file(path, &n);
    cr_assert(t, "cannot read %s", path);
    cJSON *arr = cJSON_CreateArray();
    int line_no = 0;
    for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n"), line_no++) {
        cJSON *j = cJSON_Parse(l);
        cr_assert(j, "%s: line %d is not JSON", path, line_no + 1);
        if (line_no == 0) {
            if (header)
                *header = j;
            else
                cJSON_Delete(j);
        } else {
            cJSON_AddItemToArray(arr, j);
        }
    }
    free(t);
    return arr;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\"", k);
    return v->valuedouble;
}

/* Compares the records of a split with the reference's queries (by text, in order). Returns true
 * if every intersection/union is identical (then the metrics must be too). A pixel whose
 * reference logit is within 1e-3 of 0 may flip (fp32 vs fp32, different op order). */
static bool check_against_reference(const cJSON *recs, const char *split_key, const cJSON *out_json) {
    cJSON *gold = read_json(EVAL_DIR "/teacher_forced.json");
    const cJSON *sp = cJSON_GetObjectItem(cJSON_GetObjectItem(gold, "splits"), split_key);
    cr_assert(sp, "no reference for %s", split_key);
    const cJSON *gq = cJSON_GetObjectItem(sp, "queries");
    cr_assert_eq(cJSON_GetArraySize(recs), cJSON_GetArraySize(gq), "%s: %d records, reference %d queries", split_key,
                 cJSON_GetArraySize(recs), cJSON_GetArraySize(gq));
    bool exact = true;
    for (int i = 0; i < cJSON_GetArraySize(gq); i++) {
        const cJSON *g = cJSON_GetArrayItem(gq, i), *r = NULL, *x;
        cJSON_ArrayForEach(x, recs) if (!strcmp(cJSON_GetObjectItem(x, "text")->valuestring,
                                                cJSON_GetObjectItem(g, "text")->valuestring)) r = x;
        cr_assert(r, "%s: no record for '%s'", split_key, cJSON_GetObjectItem(g, "text")->valuestring);
        cr_expect_str_eq(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
        cr_expect_eq(num(r, "n_seg"), 1);
        cr_expect_str_eq(cJSON_GetObjectItem(r, "answer")->valuestring, "[SEG].");
        const double di = fabs(num(r, "intersection") - num(g, "intersection"));
        const double du = fabs(num(r, "union") - num(g, "union"));
        const double near = num(g, "near_zero_logits");
        cr_expect(di <= near && du <= near, "%s '%s': I/U %g/%g, reference %g/%g (%g near-zero logits)", split_key,
                  cJSON_GetObjectItem(g, "text")->valuestring, num(r, "intersection"), num(r, "union"),
                  num(g, "intersection"), num(g, "union"), near);
        exact = exact && di == 0 && du == 0;
    }
    if (exact && out_json) {
        cr_expect(fabs(num(out_json, "giou") - num(sp, "giou")) < 1e-12, "%s gIoU %.17g, reference %.17g", split_key,
                  num(out_json, "giou"), num(sp, "giou"));
        cr_expect(fabs(num(out_json, "ciou") - num(sp, "ciou")) < 1e-12, "%s cIoU %.17g, reference %.17g", split_key,
                  num(out_json, "ciou"), num(sp, "ciou"));
    }
    cJSON_Delete(gold);
    return exact;
}

Test(eval_cli, teacher_forced_reasonseg_shards_and_merge, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-eval-cli");
    char args[4096], log[1024], r0[1024], r1[1024], out[1024];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(r0, sizeof r0, "%s/s0.jsonl", dir);
    snprintf(r1, sizeof r1, "%s/s1.jsonl", dir);
    snprintf(out, sizeof out, "%s/merged.json", dir);
    snprintf(args, sizeof args, "--dataset reasonseg --split test --shard 0/2 --records '%s'", r0);
    cr_assert_eq(run_eval(args, log), 0, "%s", tu_read_file(log, NULL));
    snprintf(args, sizeof args, "--dataset reasonseg --split test --shard 1/2 --records '%s'", r1);
    cr_assert_eq(run_eval(args, log), 0, "%s", tu_read_file(log, NULL));
    cJSON *a = read_records(r0, NULL), *b = read_records(r1, NULL);
    cr_expect_eq(cJSON_GetArraySize(a), 2); /* images 0 and 2 */
    cr_expect_eq(cJSON_GetArraySize(b), 1);
    /* merge */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' eval --merge '%s' '%s' --out '%s' > '%s' 2>&1", LISA_TOOL_PATH, r0, r1, out, log);
    cr_assert_eq(system(cmd), 0, "%s", tu_read_file(log, NULL));
    char *table = tu_read_file(log, NULL);
    cr_expect(strstr(table, "reasonseg/test") && strstr(table, "short") && strstr(table, "long"), "%s", table);
    free(table);
    cJSON *all = cJSON_CreateArray(), *x;
    cJSON_ArrayForEach(x, a) cJSON_AddItemToArray(all, cJSON_Duplicate(x, 1));
    cJSON_ArrayForEach(x, b) cJSON_AddItemToArray(all, cJSON_Duplicate(x, 1));
    cJSON *mj = read_json(out);
    cr_expect_eq(num(mj, "queries"), 3);
    cr_expect_eq(num(mj, "errors"), 0);
    cr_expect_str_eq(cJSON_GetObjectItem(mj, "mode")->valuestring, "teacher-forced");
    cr_expect(cJSON_GetObjectItem(mj, "short") && cJSON_GetObjectItem(mj, "long"));
    cr_expect_eq(num(cJSON_GetObjectItem(mj, "short"), "queries"), 1);
    cr_expect_eq(num(cJSON_GetObjectItem(mj, "long"), "queries"), 2);
    check_against_reference(all, "reasonseg/test", mj);
    /* merging a shard twice would count its queries twice: refused */
    snprintf(cmd, sizeof cmd, "'%s' eval --merge '%s' '%s' > '%s' 2>&1", LISA_TOOL_PATH, r0, r0, log);
    cr_expect_neq(system(cmd), 0);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(all);
    cJSON_Delete(mj);
    tu_remove_tree(dir);
    free(dir);
}

Test(eval_cli, teacher_forced_refcoco_resume_and_dump, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-eval-cli");
    char args[4096], log[1024], out[1024], rec[1200], dump[1024];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(out, sizeof out, "%s/val.json", dir);
    snprintf(rec, sizeof rec, "%s.records.jsonl", out);
    snprintf(dump, sizeof dump, "%s/masks", dir);
    snprintf(args, sizeof args, "--dataset refcoco --split val --out '%s' --dump-masks '%s'", out, dump);
    cr_assert_eq(run_eval(args, log), 0, "%s", tu_read_file(log, NULL));
    cJSON *first = read_json(out), *hdr = NULL;
    cJSON *recs = read_records(rec, &hdr);
    cr_expect_str_eq(cJSON_GetObjectItem(hdr, "dataset")->valuestring, "refcoco");
    cr_expect_str_eq(cJSON_GetObjectItem(hdr, "split_by")->valuestring, "unc");
    cr_expect_eq(num(first, "images"), 2);
    cr_expect_eq(num(first, "queries"), 5); /* every sentence of every ref */
    check_against_reference(recs, "refcoco/val", first);
    /* the dumped masks hold the predictions the metrics used */
    const cJSON *r;
    cJSON_ArrayForEach(r, recs) {
        char png[2048], name[512];
        snprintf(name, sizeof name, "%s", cJSON_GetObjectItem(r, "id")->valuestring);
        char *hash = strchr(name, '#');
        cr_assert(hash);
        *hash = '\0';
        snprintf(png, sizeof png, "%s/%s_q%s.png", dump, name, hash + 1);
        lisa_bitmap img;
        cr_assert_eq(lisa_image_load(&img, png, NULL), LISA_OK, "%s", png);
        cr_expect_eq(img.h, 12);
        cr_expect_eq(img.w, 16);
        long on = 0;
        for (int i = 0; i < img.h * img.w; i++)
            on += img.data[3 * i] == 255;
        cr_expect_eq(on, (long)num(r, "pred_pixels"), "%s", png); /* no ignore pixels in refCOCO */
        lisa_bitmap_free(&img);
    }

    /* the existing record file is not overwritten without --resume */
    cr_expect_eq(run_eval(args, log), 1);
    char *msg = tu_read_file(log, NULL);
    cr_expect(strstr(msg, "--resume") != NULL, "%s", msg);
    free(msg);

    /* interruption: the last record was never written and the one before is torn mid-line */
    size_t n;
    char *txt = tu_read_file(rec, &n);
    char *last_nl = txt + n - 1; /* the final '\n' */
    char *prev = last_nl - 1;
    while (*prev != '\n')
        prev--; /* end of the 2nd-to-last record */
    char *prev2 = prev - 1;
    while (*prev2 != '\n')
        prev2--; /* end of the 3rd-to-last */
    const size_t keep = (size_t)(prev2 - txt) + 1 + (size_t)(prev - prev2) / 2;
    cr_assert(tu_write_file(rec, txt, keep));
    free(txt);
    snprintf(args, sizeof args, "--dataset refcoco --split val --out '%s' --resume", out);
    cr_assert_eq(run_eval(args, log), 0, "%s", tu_read_file(log, NULL));
    msg = tu_read_file(log, NULL);
    cr_expect(strstr(msg, "torn") != NULL, "%s", msg);
    free(msg);
    cJSON *second = read_json(out);
    cJSON *recs2 = read_records(rec, NULL);
    cr_expect_eq(cJSON_GetArraySize(recs2), 5, "no query lost or duplicated");
    cr_expect_eq(num(second, "queries"), 5);
    cr_expect_eq(num(second, "giou"), num(first, "giou"));
    cr_expect_eq(num(second, "ciou"), num(first, "ciou"));
    check_against_reference(recs2, "refcoco/val", second);
    /* a finished run resumed does nothing */
    cr_assert_eq(run_eval(args, log), 0, "%s", tu_read_file(log, NULL));
    cJSON *recs3 = read_records(rec, NULL);
    cr_expect_eq(cJSON_GetArraySize(recs3), 5);

    cJSON_Delete(first);
    cJSON_Delete(second);
    cJSON_Delete(recs);
    cJSON_Delete(recs2);
    cJSON_Delete(recs3);
    cJSON_Delete(hdr);
    tu_remove_tree(dir);
    free(dir);
}

Test(eval_cli, generate_mode_plumbing, .timeout = 300) {
    char *dir = tu_make_tmpdir("lisa-eval-cli");
    char args[4096], log[1024], out[1024], rec[1200];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(out, sizeof out, "%s/gen.json", dir);
    snprintf(rec, sizeof rec, "%s.records.jsonl", out);
    /* refCOCO+ (protocol-0 pickle) testB: one image, one query; 4 new tokens keep it short */
    snprintf(args, sizeof args, "--dataset refcoco+ --split testB --mode generate --max-new-tokens 4 --out '%s'", out);
    cr_assert_eq(run_eval(args, log), 0, "%s", tu_read_file(log, NULL));
    cJSON *j = read_json(out), *hdr = NULL;
    cJSON *recs = read_records(rec, &hdr);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "mode")->valuestring, "generate");
    cr_expect_eq(num(hdr, "max_new_tokens"), 4);
    cr_assert_eq(cJSON_GetArraySize(recs), 1);
    const cJSON *r = cJSON_GetArrayItem(recs, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
    cr_expect_str_eq(cJSON_GetObjectItem(r, "text")->valuestring, "top left");
    cr_expect(cJSON_IsString(cJSON_GetObjectItem(r, "answer")));
    cr_expect_eq(num(r, "gt_pixels"), 12);
    const double I = num(r, "intersection"), U = num(r, "union");
    cr_expect_eq(num(r, "iou"), I / (U + 1e-5) + (U == 0 ? 1 : 0));
    cr_expect_eq(num(j, "ciou"), I / (U + 1e-10));
    cr_expect_eq(num(j, "no_seg"), num(r, "n_seg") == 0 ? 1 : 0);
    cJSON_Delete(j);
    cJSON_Delete(recs);
    cJSON_Delete(hdr);
    tu_remove_tree(dir);
    free(dir);
}

Test(eval_cli, usage_errors) {
    char *dir = tu_make_tmpdir("lisa-eval-cli");
    char log[1024];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    cr_expect_eq(run_eval("--dataset nope --split val", log), 2);
    cr_expect_eq(run_eval("--dataset reasonseg --split val --mode sample", log), 2);
    cr_expect_eq(run_eval("--dataset reasonseg --split val --shard 2/2", log), 2);
    cr_expect_eq(run_eval("--dataset reasonseg --split nosuch", log), 1);
    char *msg = tu_read_file(log, NULL);
    cr_expect(strstr(msg, "nosuch") != NULL, "%s", msg);
    free(msg);
    tu_remove_tree(dir);
    free(dir);
}
