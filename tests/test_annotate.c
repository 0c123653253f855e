/* tests/test_annotate.c — `lisa annotate` (issue #8): manifest and folder input (malformed lines),
 * the record file (keys, torn last line, lock), shard helpers, and the real `lisa` binary on the
 * tiny model: bad items become error records while the run goes on, masks as COCO RLE that
 * decode to the PNG masks, shards + --merge (disjoint, complete, validated), resume after a torn
 * line, batching invariance (max batch 1 vs 3: identical records), and SIGKILL at random points
 * with restarts until done: no record lost or duplicated. */
#include "golden.h"
#include "jobs/annotate_input.h"
#include "loader/image.h"
#include "jobs/records.h"
#include "jobs/annotate.h"
#include "core/keyset.h"
#include "core/rle.h"
#include "core/shard.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------------ */

#define TOOL_ARGS "--model '" TINY_LISA_DIR "' --vision-tower '" TINY_CLIP_DIR "' --max-new-tokens 6 --threads 2"

typedef struct run_out {
    int status;
    char *out, *err;
} run_out;

static void run_free(run_out *r) {
    free(r->out);
    free(r->err);
}

/* Runs `lisa <args>` with stdout/stderr captured under dir. */
static run_out run(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static run_out run(const char *dir, const char *fmt, ...) {
    char args[8192], cmd[16384], o[1024], e[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/stdout.txt", dir);
    snprintf(e, sizeof e, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 '%s' %s > '%s' 2> '%s'", LISA_TOOL_PATH, args, o, e);
    const int rc = system(cmd);
    run_out r = {.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1};
    size_t n;
    r.out = tu_read_file(o, &n);
    r.err = tu_read_file(e, &n);
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    if (strstr(r.err, "Sanitizer") || strstr(r.err, "runtime error:")) {
        fputs(r.err, stderr);
        cr_expect(false, "sanitizer report from: lisa %s", args);
    }
    return r;
}

static void write_text(const char *path, const char *text) {
    cr_assert(tu_write_file(path, text, strlen(text)), "cannot write %s", path);
}

/* A record file read back: the header and every record line; every line must be a complete JSON
 * object (a final torn line fails the test). */
typedef struct recs {
    cJSON *header;
    cJSON **r;
    int n;
} recs;

static recs read_records(const char *path) {
    size_t len;
    char *txt = tu_read_file(path, &len);
    cr_assert(txt, "cannot read %s", path);
    cr_assert(len > 0 && txt[len - 1] == '\n', "%s does not end in a complete line", path);
    recs R = {0};
    R.r = calloc(len / 2 + 1, sizeof *R.r);
    int line = 0;
    for (char *p = txt, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        cJSON *j = cJSON_Parse(p);
        cr_assert(j && cJSON_IsObject(j), "%s line %d is not a JSON object: %.200s", path, line + 1, p);
        if (line++ == 0)
            R.header = j;
        else
            R.r[R.n++] = j;
    }
    free(txt);
    cr_assert(R.header && cJSON_GetObjectItemCaseSensitive(R.header, "lisa_annotate"), "%s: no header", path);
    return R;
}

static void recs_free(recs *R) {
    cJSON_Delete(R->header);
    for (int i = 0; i < R->n; i++)
        cJSON_Delete(R->r[i]);
    free(R->r);
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The record of (id, query_index), failing unless there is exactly one. */
static const cJSON *find(const recs *R, const char *id, int qi) {
    const cJSON *hit = NULL;
    int n = 0;
    for (int i = 0; i < R->n; i++) {
        const char *rid = str(R->r[i], "id");
        if (rid && !strcmp(rid, id) && num(R->r[i], "query_index") == qi) {
            hit = R->r[i];
            n++;
        }
    }
    cr_assert_eq(n, 1, "record (%s, %d) appears %d times", id, qi, n);
    return hit;
}

/* every key at most once */
static void expect_unique_keys(const recs *R) {
    lisa_keyset ks = {0};
    for (int i = 0; i < R->n; i++) {
        char key[LISA_RECORDS_KEY_MAX];
        const size_t kl = lisa_annotate_records.key(key, sizeof key, R->r[i]);
        cr_assert(kl > 0 && kl < sizeof key, "record %d has no key", i);
        bool added;
        cr_assert_eq(lisa_keyset_add(&ks, key, kl, &added), LISA_OK);
        cr_expect(added, "duplicate record: %.*s", (int)kl, key);
    }
    lisa_keyset_free(&ks);
}

/* Records equal apart from timings and file names (the engine is batch-invariant). */
static bool same_result(const cJSON *a, const cJSON *b) {
    cJSON *x = cJSON_Duplicate(a, 1), *y = cJSON_Duplicate(b, 1);
    cJSON *both[2] = {x, y};
    for (int k = 0; k < 2; k++) {
        cJSON_DeleteItemFromObjectCaseSensitive(both[k], "timings");
        cJSON_DeleteItemFromObjectCaseSensitive(both[k], "id");
        cJSON_DeleteItemFromObjectCaseSensitive(both[k], "line");
        cJSON *m, *masks = cJSON_GetObjectItemCaseSensitive(both[k], "masks");
        cJSON_ArrayForEach(m, masks) {
            cJSON_DeleteItemFromObjectCaseSensitive(m, "file");
            cJSON_DeleteItemFromObjectCaseSensitive(m, "overlay");
        }
    }
    const bool eq = cJSON_Compare(x, y, true);
    if (!eq) {
        char *p = cJSON_PrintUnformatted(x), *q = cJSON_PrintUnformatted(y);
        fprintf(stderr, "records differ:\n  %.400s\n  %.400s\n", p, q);
        free(p);
        free(q);
    }
    cJSON_Delete(x);
    cJSON_Delete(y);
    return eq;
}

/* ---- input -------------------------------------------------------------------------------------- */

Test(annotate, manifest_lines_and_malformed_ones) {
    char *dir = tu_make_tmpdir("lisa-ann-man");
    char path[1024];
    snprintf(path, sizeof path, "%s/m.jsonl", dir);
    write_text(path, "{\"id\": \"a\", \"image\": \"img/a.png\", \"queries\": [\"q0\", \"q1\"]}\n"
                     "\n"
                     "   \n"
                     "{\"id\": 17, \"image\": \"/abs/b.jpg\", \"query\": \"only\"}\r\n"
                     "not json at all\n"
                     "{\"image\": \"x.png\", \"query\": \"q\"}\n"
                     "{\"id\": \"c\", \"queries\": [\"q\"]}\n"
                     "{\"id\": \"d\", \"image\": \"d.png\", \"queries\": []}\n"
                     "{\"id\": \"e\", \"image\": \"e.png\", \"queries\": [\"ok\", 3]}\n"
                     "{\"id\": \"f\", \"image\": \"f.png\", \"query\": \"x\", \"queries\": [\"y\"]}\n"
                     "[1, 2]\n"
                     "{\"id\": \"g\", \"image\": \"g.png\", \"queries\": [\"\"]}"); /* no final newline */
    lisa_ann_source s;
    cr_assert_eq(lisa_ann_source_open_manifest(&s, path), LISA_OK, "%s", lisa_last_error());
    lisa_ann_item it = {0};
    bool end = false;
    struct {
        long line;
        const char *id;
        lisa_status st;
        const char *msg;
        int nq;
    } want[] = {{1, "a", LISA_OK, NULL, 2},
                {4, "17", LISA_OK, NULL, 1},
                {5, NULL, LISA_ERR_FORMAT, "not valid JSON", 0},
                {6, NULL, LISA_ERR_FORMAT, "no \"id\"", 0},
                {7, "c", LISA_ERR_FORMAT, "no \"image\"", 0},
                {8, "d", LISA_ERR_FORMAT, "empty", 0},
                {9, "e", LISA_ERR_FORMAT, "queries[1]", 0},
                {10, "f", LISA_ERR_FORMAT, "not both", 0},
                {11, NULL, LISA_ERR_FORMAT, "not a JSON object", 0},
                {12, "g", LISA_OK, NULL, 1}};
    for (int i = 0; i < (int)(sizeof want / sizeof want[0]); i++) {
        cr_assert_eq(lisa_ann_source_next(&s, &it, &end), LISA_OK);
        cr_assert(!end, "ended early at item %d", i);
        cr_expect_eq(it.index, i);
        cr_expect_eq(it.line, want[i].line, "item %d: line %lld", i, (long long)it.line);
        cr_expect_eq(it.status, want[i].st, "line %ld: %s", want[i].line, it.error);
        if (want[i].id)
            cr_expect(it.id && !strcmp(it.id, want[i].id), "line %ld: id %s", want[i].line, it.id);
        else
            cr_expect_null(it.id);
        cr_expect_eq(it.n_queries, want[i].nq, "line %ld", want[i].line);
        if (want[i].msg) {
            cr_expect(strstr(it.error, want[i].msg) != NULL, "line %ld: %s", want[i].line, it.error);
            char where[64];
            snprintf(where, sizeof where, "line %ld", want[i].line);
            cr_expect(strstr(it.error, where) && strstr(it.error, "m.jsonl"), "%s", it.error);
        }
    }
    cr_assert_eq(lisa_ann_source_next(&s, &it, &end), LISA_OK);
    cr_expect(end);
    /* paths: relative to the manifest's folder, absolute kept; the record keeps the field as written */
    cr_assert_eq(lisa_ann_source_rewind(&s), LISA_OK);
    cr_assert_eq(lisa_ann_source_next(&s, &it, &end), LISA_OK);
    char expect[1200];
    snprintf(expect, sizeof expect, "%s/img/a.png", dir);
    cr_expect_str_eq(it.image, expect);
    cr_expect_str_eq(it.image_field, "img/a.png");
    cr_expect_str_eq(it.queries[1], "q1");
    cr_assert_eq(lisa_ann_source_next(&s, &it, &end), LISA_OK);
    cr_expect_str_eq(it.image, "/abs/b.jpg");
    cr_expect_str_eq(it.queries[0], "only");
    lisa_ann_item_free(&it);
    lisa_ann_source_close(&s);
    cr_expect_eq(lisa_ann_source_open_manifest(&s, "/no/such/manifest.jsonl"), LISA_ERR_IO);
    cr_expect(strstr(lisa_last_error(), "/no/such/manifest.jsonl") != NULL);
    tu_remove_tree(dir);
    free(dir);
}

/* issue 18: "\u0000" (or a raw NUL) in a string would cut a query short or name another id or
 * image: the line is an error item; "image": 5 says what is wrong with it */
Test(annotate, manifest_nul_and_wrong_types) {
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        lisa_status st;
        const char *msg, *id;
    } lines[] = {
        {"{\"id\": \"n\", \"image\": \"n.png\", \"query\": \"Segment\\u0000 the cat.\"}", 0, LISA_ERR_FORMAT,
         "NUL character", NULL},
        {"{\"id\": \"n2\", \"image\": \"n.png\", \"queries\": [\"a\", \"b\\u0000c\"]}", 0, LISA_ERR_FORMAT, "NUL", NULL},
        {"{\"id\": \"n\\u00003\", \"image\": \"n.png\", \"query\": \"q\"}", 0, LISA_ERR_FORMAT, "NUL", NULL},
        {"{\"id\": \"r\", \"image\": \"n.png\", \"query\": \"a\0b\"}", 45, LISA_ERR_FORMAT, "NUL", NULL},
        {"{\"id\": \"i\", \"image\": 5, \"query\": \"q\"}", 0, LISA_ERR_FORMAT, "\"image\" must be a string", "i"},
        /* an escaped backslash before u0000 is text, not a NUL */
        {"{\"id\": \"t\", \"image\": \"t.png\", \"query\": \"a\\\\u0000\"}", 0, LISA_OK, NULL, "t"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        lisa_ann_item it = {0};
        const size_t len = lines[i].len ? lines[i].len : strlen(lines[i].text);
        cr_assert_eq(lisa_ann_parse_line(&it, lines[i].text, len, "", "m.jsonl", 3), LISA_OK);
        cr_expect_eq(it.status, lines[i].st, "line %zu: %s", i, it.error);
        if (lines[i].msg) cr_expect(strstr(it.error, lines[i].msg), "line %zu: %s", i, it.error);
        if (lines[i].id) cr_expect(it.id && !strcmp(it.id, lines[i].id), "line %zu: id %s", i, it.id);
        else cr_expect_null(it.id, "line %zu: id %s", i, it.id);
        if (lines[i].st == LISA_OK) cr_expect_str_eq(it.queries[0], "a\\u0000");
        else cr_expect_eq(it.n_queries, 0);
        lisa_ann_item_free(&it);
    }
}

Test(annotate, folder_input) {
    char *dir = tu_make_tmpdir("lisa-ann-dir");
    char p[1200];
    const char *files[] = {"b.JPG", "a.png", "c.txt", "d.jpeg", ".png"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        write_text(p, "x");
    }
    snprintf(p, sizeof p, "%s/sub.png", dir);
    cr_assert_eq(mkdir(p, 0755), 0); /* a folder named like an image is not one */
    lisa_ann_source s;
    cr_assert_eq(lisa_ann_source_open_dir(&s, dir, "the thing"), LISA_OK, "%s", lisa_last_error());
    const char *want[] = {"a.png", "b.JPG", "d.jpeg"};
    lisa_ann_item it = {0};
    bool end;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(lisa_ann_source_next(&s, &it, &end), LISA_OK);
        cr_assert(!end);
        cr_expect_str_eq(it.id, want[i]);
        cr_expect_eq(it.index, i);
        cr_expect_eq(it.n_queries, 1);
        cr_expect_str_eq(it.queries[0], "the thing");
        snprintf(p, sizeof p, "%s/%s", dir, want[i]);
        cr_expect_str_eq(it.image, p);
    }
    cr_assert_eq(lisa_ann_source_next(&s, &it, &end), LISA_OK);
    cr_expect(end);
    lisa_ann_item_free(&it);
    lisa_ann_source_close(&s);
    char *empty = tu_make_tmpdir("lisa-ann-empty");
    cr_expect_eq(lisa_ann_source_open_dir(&s, empty, "q"), LISA_ERR_NOT_FOUND);
    tu_remove_tree(empty);
    free(empty);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- records, keys, shards ---------------------------------------------------------------------- */

static bool has_key(const lisa_records *r, const char *id, int qi) {
    char k[LISA_RECORDS_KEY_MAX];
    return lisa_records_has(r, k, lisa_annotate_key(k, sizeof k, id, qi));
}

Test(annotate, records_keys_torn_line_and_lock) {
    char *dir = tu_make_tmpdir("lisa-ann-rec");
    char path[1024];
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    cJSON *h = cJSON_Parse("{\"lisa_annotate\":1,\"manifest\":\"/m.jsonl\",\"shard\":\"0/1\"}");
    lisa_records r;
    cr_assert_eq(lisa_records_open(&r, path, &lisa_annotate_records, h, true), LISA_OK, "%s", lisa_last_error());
    /* a second writer is refused while the first holds the file */
    lisa_records r2;
    cr_expect_eq(lisa_records_open(&r2, path, &lisa_annotate_records, h, true), LISA_ERR_BUSY);
    cr_expect(strstr(lisa_last_error(), "another process") != NULL, "%s", lisa_last_error());
    const char l1[] = "{\"id\":\"a\",\"query_index\":0,\"answer\":\"x\"}\n"
                      "{\"id\":\"a\",\"query_index\":1,\"error\":{\"code\":\"LISA_ERR_IO\",\"message\":\"m\"}}\n"
                      "{\"id\":null,\"line\":7,\"error\":{\"code\":\"LISA_ERR_FORMAT\",\"message\":\"m\"}}\n";
    cr_assert_eq(lisa_records_append(&r, l1, sizeof l1 - 1), LISA_OK);
    cr_expect(has_key(&r, "a", 0) && has_key(&r, "a", 1) && !has_key(&r, "a", 2) && !has_key(&r, "b", 0));
    char k[64];
    cr_expect(lisa_records_has(&r, k, (size_t)snprintf(k, sizeof k, "l7")));
    /* ids are not confused with each other's prefixes */
    cr_expect(!has_key(&r,
                       "a\x1f"
                       "0",
                       0));
    lisa_records_close(&r);
    /* killed mid-write: a torn last line, without and then with a newline */
    for (int pass = 0; pass < 2; pass++) {
        FILE *f = fopen(path, "a");
        fputs(pass == 0 ? "{\"id\":\"b\",\"query_ind" : "{\"id\":\"b\",\"qu\n", f);
        fclose(f);
        cr_assert_eq(lisa_records_open(&r, path, &lisa_annotate_records, h, true), LISA_OK, "%s", lisa_last_error());
        cr_expect_gt(r.torn_bytes, 0);
        cr_expect_eq(r.n, 3);
        cr_expect(!has_key(&r, "b", 0));
        lisa_records_close(&r);
    }
    size_t n;
    char *txt = tu_read_file(path, &n);
    cr_expect(n > 0 && txt[n - 1] == '\n' && strstr(txt, "\"b\"") == NULL, "the torn bytes are cut: %s", txt);
    free(txt);
    /* another run's file is refused, naming the key that differs */
    cJSON *h2 = cJSON_Parse("{\"lisa_annotate\":1,\"manifest\":\"/m.jsonl\",\"shard\":\"1/2\"}");
    cr_expect_eq(lisa_records_open(&r, path, &lisa_annotate_records, h2, true), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "shard") != NULL, "%s", lisa_last_error());
    /* a corrupt line before the last is an error, not skipped */
    FILE *f = fopen(path, "a");
    fputs("garbage\n{\"id\":\"c\",\"query_index\":0}\n", f);
    fclose(f);
    cr_expect_eq(lisa_records_open(&r, path, &lisa_annotate_records, h, true), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "line 5") != NULL, "%s", lisa_last_error());
    /* not a record file of annotate */
    snprintf(path, sizeof path, "%s/other.jsonl", dir);
    write_text(path, "{\"lisa_eval_records\":1}\n");
    cr_expect_eq(lisa_records_open(&r, path, &lisa_annotate_records, h, true), LISA_ERR_FORMAT);
    cJSON_Delete(h);
    cJSON_Delete(h2);
    tu_remove_tree(dir);
    free(dir);
}

Test(annotate, shard_helpers) {
    int32_t k = -1, n = -1;
    cr_expect(lisa_shard_parse("0/1", &k, &n) && k == 0 && n == 1);
    cr_expect(lisa_shard_parse("3/4", &k, &n) && k == 3 && n == 4);
    const char *bad[] = {"4/4", "1/0", "-1/2", "1", "1/2x", "a/b", "/2", "1/", "", "1/2/3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!lisa_shard_parse(bad[i], &k, &n), "accepted '%s'", bad[i]);
    char p[256];
    cr_expect(lisa_shard_path(p, sizeof p, "out/ann.jsonl", 2, 8) && !strcmp(p, "out/ann.shard-2-of-8.jsonl"), "%s", p);
    cr_expect(lisa_shard_path(p, sizeof p, "out.d/ann", 0, 2) && !strcmp(p, "out.d/ann.shard-0-of-2"), "%s", p);
    cr_expect(lisa_shard_path(p, sizeof p, "a.b.json", 1, 3) && !strcmp(p, "a.b.shard-1-of-3.json"), "%s", p);
    cr_expect(lisa_shard_path(p, sizeof p, ".jsonl", 1, 3) && !strcmp(p, ".jsonl.shard-1-of-3"), "%s", p);
    cr_expect(lisa_shard_path(p, sizeof p, "x.jsonl", 0, 1) && !strcmp(p, "x.jsonl"), "%s", p);
    cr_expect(!lisa_shard_path(p, 8, "a-long-name.jsonl", 1, 2) && p[0] == '\0');
    /* launchers: Slurm first, then Open MPI, then PMI; one task is no sharding */
    unsetenv("SLURM_PROCID");
    unsetenv("OMPI_COMM_WORLD_RANK");
    unsetenv("PMI_RANK");
    cr_expect(!lisa_shard_from_env(&k, &n, NULL));
    setenv("PMI_RANK", "1", 1);
    setenv("PMI_SIZE", "3", 1);
    const char *src = NULL;
    cr_expect(lisa_shard_from_env(&k, &n, &src) && k == 1 && n == 3 && !strcmp(src, "PMI_RANK"));
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    cr_expect(lisa_shard_from_env(&k, &n, &src) && k == 2 && n == 4 && !strcmp(src, "OMPI_COMM_WORLD_RANK"));
    setenv("SLURM_PROCID", "0", 1);
    setenv("SLURM_NTASKS", "1", 1); /* one task: not a split; falls through to Open MPI */
    cr_expect(lisa_shard_from_env(&k, &n, &src) && !strcmp(src, "OMPI_COMM_WORLD_RANK"));
    setenv("SLURM_NTASKS", "2", 1);
    cr_expect(lisa_shard_from_env(&k, &n, &src) && k == 0 && n == 2 && !strcmp(src, "SLURM_PROCID"));
    /* the split is disjoint and complete */
    int owners[100] = {0};
    for (int32_t kk = 0; kk < 7; kk++)
        for (int64_t i = 0; i < 100; i++)
            owners[i] += lisa_shard_owns(i, kk, 7);
    for (int i = 0; i < 100; i++)
        cr_expect_eq(owners[i], 1, "item %d has %d owners", i, owners[i]);
}

Test(annotate, plan_counts_shards_and_done) {
    char *dir = tu_make_tmpdir("lisa-ann-plan");
    char path[1024], out[1024];
    snprintf(path, sizeof path, "%s/m.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    /* 9 items: 7 good (1 to 3 queries), one malformed, one duplicate id */
    write_text(path, "{\"id\":\"i0\",\"image\":\"a.png\",\"queries\":[\"a\",\"b\"]}\n"
                     "{\"id\":\"i1\",\"image\":\"a.png\",\"query\":\"a\"}\n"
                     "{bad\n"
                     "{\"id\":\"i3\",\"image\":\"a.png\",\"queries\":[\"a\",\"b\",\"c\"]}\n"
                     "{\"id\":\"i4\",\"image\":\"a.png\",\"query\":\"a\"}\n"
                     "{\"id\":\"i5\",\"image\":\"a.png\",\"query\":\"a\"}\n"
                     "{\"id\":\"i6\",\"image\":\"a.png\",\"query\":\"a\"}\n"
                     "{\"id\":\"i7\",\"image\":\"a.png\",\"query\":\"a\"}\n"
                     "{\"id\":\"i1\",\"image\":\"b.png\",\"query\":\"dup\"}\n");
    lisa_ann_source s;
    cr_assert_eq(lisa_ann_source_open_manifest(&s, path), LISA_OK);
    lisa_annotate_plan all, p;
    cr_assert_eq(lisa_annotate_plan_run(&all, &s, NULL, 0, 1, 0), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(all.items, 9);
    cr_expect_eq(all.records, 2 + 1 + 1 + 3 + 4); /* the malformed line makes one record */
    cr_expect_eq(all.malformed, 1);
    cr_expect_eq(all.duplicates, 1);
    int64_t items = 0;
    for (int32_t k = 0; k < 3; k++) { /* items 0,3,6 / 1,4,7 / 2,5,8: no duplicate within a shard */
        cr_assert_eq(lisa_annotate_plan_run(&p, &s, NULL, k, 3, 0), LISA_OK);
        cr_expect_eq(p.items, 3);
        items += p.items;
    }
    cr_expect_eq(items, all.items);
    cr_assert_eq(lisa_annotate_plan_run(&p, &s, NULL, 1, 3, 2), LISA_OK); /* --limit 2: items 1, 4 */
    cr_expect_eq(p.items, 2);
    cr_expect_eq(p.records, 2);
    /* done: what the record file holds */
    cJSON *h = cJSON_Parse("{\"lisa_annotate\":1}");
    lisa_records r;
    cr_assert_eq(lisa_records_open(&r, out, &lisa_annotate_records, h, true), LISA_OK);
    const char l[] = "{\"id\":\"i3\",\"query_index\":2}\n{\"id\":null,\"line\":3}\n{\"id\":\"zz\",\"query_index\":0}\n";
    cr_assert_eq(lisa_records_append(&r, l, sizeof l - 1), LISA_OK);
    cr_assert_eq(lisa_annotate_plan_run(&p, &s, &r, 0, 1, 0), LISA_OK);
    cr_expect_eq(p.done, 2);
    lisa_records_close(&r);
    cJSON_Delete(h);
    lisa_ann_source_close(&s);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- the tool on the tiny model ------------------------------------------------------------------ */

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *b = tu_read_file(from, &n);
    cr_assert(b, "cannot read %s", from);
    cr_assert(tu_write_file(to, b, n));
    free(b);
}

/* A record's masks: RLE decodes to the PNG written next to it; area and bbox recomputed naively. */
static int check_masks(const cJSON *rec, int h, int w, bool overlays) {
    const cJSON *masks = cJSON_GetObjectItemCaseSensitive(rec, "masks"), *m;
    cr_assert(cJSON_IsArray(masks));
    int n = 0;
    cJSON_ArrayForEach(m, masks) {
        const cJSON *rle = cJSON_GetObjectItemCaseSensitive(m, "rle");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(rle, "size");
        cr_assert(cJSON_GetArraySize(size) == 2 && cJSON_GetArrayItem(size, 0)->valueint == h &&
                      cJSON_GetArrayItem(size, 1)->valueint == w,
                  "rle size");
        lisa_rle r;
        cr_assert_eq(lisa_rle_from_string(&r, str(rle, "counts"), h, w), LISA_OK, "%s", lisa_last_error());
        uint8_t *dec = malloc((size_t)h * w);
        lisa_rle_decode(dec, &r);
        lisa_rle_free(&r);
        int64_t area = 0;
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (dec[(size_t)y * w + x]) {
                    area++;
                    x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                }
        cr_expect_eq((int64_t)num(m, "area"), area);
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(m, "bbox");
        const double want[4] = {area ? x0 : 0, area ? y0 : 0, area ? x1 - x0 + 1 : 0, area ? y1 - y0 + 1 : 0};
        for (int k = 0; k < 4; k++)
            cr_expect_eq(cJSON_GetArrayItem(bb, k)->valuedouble, want[k], "bbox[%d]", k);
        cr_expect(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m, "score")));
        const char *file = str(m, "file");
        cr_assert(file, "mask %d has no file", n);
        lisa_bitmap png;
        cr_assert_eq(lisa_image_load(&png, file, NULL), LISA_OK, "%s", lisa_last_error());
        cr_expect(png.h == h && png.w == w);
        int diff = 0;
        for (size_t i = 0; i < (size_t)h * w; i++)
            diff += (png.data[i * png.c] != 0) != (dec[i] != 0);
        cr_expect_eq(diff, 0, "%s differs from the RLE in %d pixels", file, diff);
        lisa_bitmap_free(&png);
        free(dec);
        if (overlays) {
            const char *ov = str(m, "overlay");
            cr_assert(ov, "mask %d has no overlay", n);
            lisa_bitmap img;
            cr_assert_eq(lisa_image_load(&img, ov, NULL), LISA_OK, "%s", lisa_last_error());
            cr_expect(img.h == h && img.w == w && img.c == 3);
            lisa_bitmap_free(&img);
        }
        n++;
    }
    return n;
}

static const char *error_code(const cJSON *rec) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(rec, "error");
    return e ? str(e, "code") : NULL;
}

Test(annotate, bad_items_are_error_records_and_the_run_goes_on, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-ann-bad");
    char p[1200], q[1200];
    snprintf(p, sizeof p, "%s/imgs", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/chelsea_tiny.png", IMAGES_DIR);
    snprintf(q, sizeof q, "%s/imgs/cat.png", dir);
    copy_file(p, q);
    snprintf(p, sizeof p, "%s/m.jsonl", dir);
    char man[4096];
    snprintf(man, sizeof man,
             "{\"id\": \"good\", \"image\": \"imgs/cat.png\", \"queries\": [\"What is the cat doing?\", \"\"]}\n"
             "{\"id\": \"missing\", \"image\": \"imgs/none.png\", \"query\": \"x\"}\n"
             "{oops\n"
             "{\"id\": \"corrupt\", \"image\": \"%s/bad/truncated.png\", \"query\": \"x\"}\n",
             IMAGES_DIR);
    write_text(p, man);
    run_out r = run(dir,
                    "annotate " TOOL_ARGS " --manifest '%s/m.jsonl' --out '%s/out.jsonl' --masks-dir '%s/masks' "
                    "--overlays --max-batch 2",
                    dir, dir, dir);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    snprintf(p, sizeof p, "%s/out.jsonl", dir);
    recs R = read_records(p);
    cr_expect_eq(R.n, 5);
    expect_unique_keys(&R);
    const cJSON *good = find(&R, "good", 0);
    cr_expect_null(error_code(good), "%s", error_code(good));
    cr_expect_str_eq(str(good, "image"), "imgs/cat.png");
    cr_expect_str_eq(str(good, "query"), "What is the cat doing?");
    cr_expect_eq(num(good, "line"), 1);
    cr_expect(str(good, "answer") && strstr(str(good, "answer"), "[SEG]"), "answer: %s", str(good, "answer"));
    cr_expect_gt(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(good, "tokens")), 0);
    cr_expect_gt(num(cJSON_GetObjectItemCaseSensitive(good, "timings"), "total_ms"), 0);
    cr_expect_gt(check_masks(good, 30, 45, true), 0, "the shaped tiny model answers with [SEG]");
    cr_expect_str_eq(error_code(find(&R, "good", 1)), "LISA_ERR_INVALID_ARG");
    cr_expect_str_eq(error_code(find(&R, "missing", 0)), "LISA_ERR_IO");
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(find(&R, "missing", 0), "error");
    cr_expect(strstr(str(mi, "message"), "none.png") != NULL, "%s", str(mi, "message"));
    cr_expect_str_eq(error_code(find(&R, "corrupt", 0)), "LISA_ERR_FORMAT");
    int n_line = 0;
    for (int i = 0; i < R.n; i++)
        if (num(R.r[i], "line") == 3 && !cJSON_GetObjectItemCaseSensitive(R.r[i], "query_index")) {
            n_line++;
            cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(R.r[i], "id")));
            cr_expect_str_eq(error_code(R.r[i]), "LISA_ERR_FORMAT");
        }
    cr_expect_eq(n_line, 1, "one error record for the malformed line 3");
    cr_expect(strstr(r.out, "(4 errors)") != NULL, "%s", r.out);
    cr_expect(strstr(r.err, "line 3") && strstr(r.err, "none.png"), "%s", r.err);
    recs_free(&R);
    run_free(&r);
    /* usage errors: exit 2 */
    r = run(dir, "annotate " TOOL_ARGS " --out '%s/x.jsonl'", dir);
    cr_expect_eq(r.status, 2);
    run_free(&r);
    r = run(dir, "annotate " TOOL_ARGS " --images '%s' --out '%s/x.jsonl'", dir, dir);
    cr_expect_eq(r.status, 2, "--images needs --query");
    run_free(&r);
    r = run(dir, "annotate " TOOL_ARGS " --manifest '%s/m.jsonl' --out '%s/x.jsonl' --shard 2/2", dir, dir);
    cr_expect_eq(r.status, 2);
    run_free(&r);
    /* the output of another run is refused (exit 1), and nothing is appended */
    r = run(dir, "annotate " TOOL_ARGS " --images '%s/imgs' --query q --out '%s/out.jsonl'", dir, dir);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "another run") != NULL, "%s", r.err);
    run_free(&r);
    R = read_records(p);
    cr_expect_eq(R.n, 5);
    recs_free(&R);
    tu_remove_tree(dir);
    free(dir);
}

/* remove the first line of `path` that contains `needle` (returns it, malloc'd) */
static char *cut_line(const char *path, const char *needle) {
    size_t n;
    char *t = tu_read_file(path, &n);
    cr_assert(t);
    char *hit = strstr(t, needle);
    cr_assert(hit, "%s not in %s", needle, path);
    char *a = hit, *b = strchr(hit, '\n');
    while (a > t && a[-1] != '\n')
        a--;
    char *line = strndup(a, (size_t)(b - a + 1));
    memmove(a, b + 1, strlen(b + 1) + 1);
    cr_assert(tu_write_file(path, t, strlen(t)));
    free(t);
    return line;
}

static void append_text(const char *path, const char *text) {
    FILE *f = fopen(path, "a");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

Test(annotate, shards_are_disjoint_complete_and_merge, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-ann-shard");
    char p[1200], man[4096];
    snprintf(man, sizeof man,
             "{\"id\": \"s0\", \"image\": \"%s/chelsea_tiny.png\", \"query\": \"the cat\"}\n"
             "{\"id\": \"s1\", \"image\": \"%s/rocket_portrait.jpg\", \"query\": \"the rocket\"}\n"
             "{\"id\": \"s2\", \"image\": \"%s/chelsea_tiny.png\", \"query\": \"the ears\"}\n"
             "{\"id\": \"s3\", \"image\": \"%s/coffee.png\", \"query\": \"the cup\"}\n"
             "not json\n",
             IMAGES_DIR, IMAGES_DIR, IMAGES_DIR, IMAGES_DIR);
    snprintf(p, sizeof p, "%s/m.jsonl", dir);
    write_text(p, man);
    for (int k = 0; k < 2; k++) {
        run_out r = run(dir,
                        "annotate " TOOL_ARGS " --manifest '%s/m.jsonl' --out '%s/out.jsonl' --shard %d/2 "
                        "--max-batch 2",
                        dir, dir, k);
        cr_assert_eq(r.status, 0, "shard %d: exit %d: %s", k, r.status, r.err);
        run_free(&r);
    }
    char s0[1200], s1[1200], merged[1200];
    snprintf(s0, sizeof s0, "%s/out.shard-0-of-2.jsonl", dir);
    snprintf(s1, sizeof s1, "%s/out.shard-1-of-2.jsonl", dir);
    snprintf(merged, sizeof merged, "%s/out.jsonl", dir);
    recs A = read_records(s0), B = read_records(s1);
    /* shard 0: items 0, 2, 4 (the malformed line); shard 1: items 1, 3 */
    cr_expect_eq(A.n, 3);
    cr_expect_eq(B.n, 2);
    cr_expect_str_eq(str(A.header, "shard"), "0/2");
    cr_expect_str_eq(str(B.header, "shard"), "1/2");
    find(&A, "s0", 0);
    find(&A, "s2", 0);
    find(&B, "s1", 0);
    find(&B, "s3", 0);
    recs_free(&A);
    recs_free(&B);
    run_out r = run(dir, "annotate --merge '%s' --shards 2", merged);
    cr_assert_eq(r.status, 0, "merge: %s", r.err);
    run_free(&r);
    recs M = read_records(merged);
    cr_expect_eq(M.n, 5);
    expect_unique_keys(&M);
    cr_expect_str_eq(str(M.header, "shard"), "merged");
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i);
        cr_expect_null(error_code(find(&M, id, 0)));
    }
    recs_free(&M);
    /* a record in two shards is refused; so is a missing one; so is a missing shard file */
    char *line = cut_line(s1, "\"s3\"");
    r = run(dir, "annotate --merge '%s' --shards 2", merged);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "in no shard") != NULL, "%s", r.err);
    run_free(&r);
    append_text(s0, line);
    append_text(s1, line);
    r = run(dir, "annotate --merge '%s' --shards 2", merged);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "already") != NULL, "%s", r.err);
    run_free(&r);
    free(line);
    r = run(dir, "annotate --merge '%s' --shards 3", merged);
    cr_expect_eq(r.status, 1);
    run_free(&r);
    /* a torn shard was interrupted: not mergeable */
    free(cut_line(s0, "\"s3\""));
    append_text(s1, "{\"id\":\"s9\",\"qu");
    r = run(dir, "annotate --merge '%s' --shards 2", merged);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "torn") != NULL, "%s", r.err);
    run_free(&r);
    M = read_records(merged); /* the earlier good merge is untouched by the failed ones */
    cr_expect_eq(M.n, 5);
    recs_free(&M);
    tu_remove_tree(dir);
    free(dir);
}

Test(annotate, resume_after_torn_line_and_batch_invariance, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-ann-resume");
    char p[1200], man[4096];
    snprintf(man, sizeof man,
             "{\"id\": \"A\", \"image\": \"%s/chelsea_tiny.png\", \"queries\": [\"the cat\", \"Where is the cat's "
             "nose? Please output segmentation mask.\"]}\n"
             "{\"id\": \"B\", \"image\": \"%s/rocket_portrait.jpg\", \"query\": \"the rocket\"}\n"
             "{\"id\": \"C\", \"image\": \"%s/coffee.png\", \"query\": \"the cup\"}\n",
             IMAGES_DIR, IMAGES_DIR, IMAGES_DIR);
    snprintf(p, sizeof p, "%s/m.jsonl", dir);
    write_text(p, man);
    char out[1200], ref[1200];
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(ref, sizeof ref, "%s/ref.jsonl", dir);
    run_out r = run(dir, "annotate " TOOL_ARGS " --manifest '%s' --out '%s' --max-batch 3 --limit 1", p, out);
    cr_assert_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    recs R = read_records(out);
    cr_expect_eq(R.n, 2);
    recs_free(&R);
    append_text(out, "{\"id\":\"B\",\"query_index\":0,\"line\":2,\"query\":\"the roc"); /* killed mid-write */
    r = run(dir, "annotate " TOOL_ARGS " --manifest '%s' --out '%s' --max-batch 3", p, out);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "torn") != NULL, "%s", r.err);
    cr_expect(strstr(r.out, "2 records written by this run") && strstr(r.out, "2 done before"), "%s", r.out);
    run_free(&r);
    /* done: a third run has nothing to do (and does not load the model) */
    r = run(dir, "annotate " TOOL_ARGS " --manifest '%s' --out '%s' --max-batch 3", p, out);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "0 records written by this run") && strstr(r.out, "4 done before"), "%s", r.out);
    run_free(&r);
    /* the same records as one uninterrupted run at max batch 1 (the engine is batch-invariant) */
    r = run(dir, "annotate " TOOL_ARGS " --manifest '%s' --out '%s' --max-batch 1", p, ref);
    cr_assert_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    R = read_records(out);
    recs S = read_records(ref);
    cr_assert_eq(R.n, 4);
    cr_assert_eq(S.n, 4);
    expect_unique_keys(&R);
    const char *ids[] = {"A", "A", "B", "C"};
    const int qis[] = {0, 1, 0, 0};
    for (int i = 0; i < 4; i++) {
        const cJSON *a = find(&R, ids[i], qis[i]), *b = find(&S, ids[i], qis[i]);
        cr_expect_null(error_code(a));
        cr_expect(same_result(a, b), "(%s, %d) differs between the resumed batched run and the batch-1 run", ids[i],
                  qis[i]);
    }
    recs_free(&R);
    recs_free(&S);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- SIGKILL at random points ---------------------------------------------------------------------- */

static pid_t spawn(const char *dir, char *const argv[]) {
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char o[1200];
        snprintf(o, sizeof o, "%s/log.txt", dir);
        const int fd = open(o, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv(LISA_TOOL_PATH, argv);
        _exit(127);
    }
    return pid;
}

/* The file is a header and complete records, possibly followed by one torn line. */
static int valid_prefix(const char *path) {
    size_t n;
    char *t = tu_read_file(path, &n);
    if (!t) return 0; /* killed before the file was created */
    int lines = 0;
    char *p = t;
    for (char *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        cJSON *j = cJSON_Parse(p);
        cr_expect(j != NULL, "%s line %d is not JSON after a kill: %.100s", path, lines + 1, p);
        cJSON_Delete(j);
        lines++;
    }
    free(t);
    return lines > 0 ? lines - 1 : 0;
}

Test(annotate, sigkill_at_random_points_loses_and_duplicates_nothing, .timeout = 900) {
    char *dir = tu_make_tmpdir("lisa-ann-kill");
    char man[1200], out[1200];
    snprintf(man, sizeof man, "%s/m.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    /* 12 items over 3 (image, query) pairs, so that every copy of a pair can be compared */
    const char *pairs[3][2] = {{"chelsea_tiny.png", "the cat"},
                               {"rocket_portrait.jpg", "What is flying? Please output segmentation mask."},
                               {"coffee.png", "the cup"}};
    enum { N_ITEMS = 12 };
    FILE *f = fopen(man, "w");
    for (int i = 0; i < N_ITEMS; i++)
        fprintf(f, "{\"id\": \"item-%02d\", \"image\": \"%s/%s\", \"query\": \"%s\"}\n", i, IMAGES_DIR, pairs[i % 3][0],
                pairs[i % 3][1]);
    fclose(f);
    char *argv[] = {
        "lisa",  "annotate", "--model",          TINY_LISA_DIR, "--vision-tower", TINY_CLIP_DIR, "--manifest", man,
        "--out", out,        "--max-new-tokens", "6",           "--max-batch",    "2",           "--threads",  "2",
        NULL};
    /* Kill points are fractions of one whole run timed here first: a fixed delay lands after the
     * end on a fast machine (the 12 items share 3 photos and prompts, so reuse makes them quick)
     * and during the load on a slow one. */
    char timing_out[1200];
    snprintf(timing_out, sizeof timing_out, "%s/timing.jsonl", dir);
    argv[9] = timing_out;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const pid_t timing_pid = spawn(dir, argv);
    int timing_status = 0;
    cr_assert_eq(waitpid(timing_pid, &timing_status, 0), timing_pid);
    cr_assert(WIFEXITED(timing_status) && WEXITSTATUS(timing_status) == 0, "the timing run failed (see %s/log.txt)",
              dir);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double full_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    argv[9] = out;
    tu_rng rng = tu_rng_seed(20240808);
    int kills_landed = 0, prev = 0, attempts = 0;
    for (;; attempts++) {
        cr_assert_lt(attempts, 40, "no progress after %d restarts", attempts);
        const pid_t pid = spawn(dir, argv);
        int status = 0;
        if (attempts < 6) { /* kill at a random point: during load, between records, mid-batch */
            const double delay = full_s * tu_uniform(&rng, 0.05, 0.6);
            struct timespec ts = {(time_t)delay, (long)((delay - (time_t)delay) * 1e9)};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
            cr_assert_eq(waitpid(pid, &status, 0), pid);
            if (WIFSIGNALED(status)) kills_landed++;
            const int have = valid_prefix(out);
            cr_expect_geq(have, prev, "records were lost after a kill (%d -> %d)", prev, have);
            prev = have;
            if (WIFEXITED(status)) {
                cr_assert_eq(WEXITSTATUS(status), 0);
                break;
            }
        } else {
            cr_assert_eq(waitpid(pid, &status, 0), pid);
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the final run failed (see %s/log.txt)", dir);
            break;
        }
    }
    cr_expect_geq(kills_landed, 2, "only %d kills hit a running process", kills_landed);
    recs R = read_records(out);
    cr_expect_eq(R.n, N_ITEMS);
    expect_unique_keys(&R);
    const cJSON *first[3] = {NULL, NULL, NULL};
    for (int i = 0; i < N_ITEMS; i++) {
        char id[16];
        snprintf(id, sizeof id, "item-%02d", i);
        const cJSON *rec = find(&R, id, 0);
        cr_expect_null(error_code(rec), "%s", id);
        if (!first[i % 3])
            first[i % 3] = rec;
        else
            cr_expect(same_result(first[i % 3], rec), "%s differs from the first copy of its pair", id);
    }
    fprintf(stderr, "sigkill test: a whole run %.2f s; %d runs, %d kills landed, %d records\n", full_s, attempts + 1,
            kills_landed, R.n);
    recs_free(&R);
    tu_remove_tree(dir);
    free(dir);
}

/* issue 18: with --images, masks drop the image extension (x.png -> x_q0.png; x.png and x.jpg keep
 * theirs apart), the files not read are listed, records name the mask files relative to the
 * record file's folder (not the working directory), and a killed run's temporary files are
 * removed on restart (a live writer's are kept) */
static pid_t dead_pid(void) {
    for (pid_t p = 4194000; p > 300000; p -= 7)
        if (kill(p, 0) != 0 && errno == ESRCH) return p;
    return 0;
}

Test(annotate, folder_mask_names_record_paths_and_stale_tmp, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-ann-names");
    char p[1200], q[1200];
    static const char *const dirs[] = {"imgs", "out", "out/masks"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, dirs[i]);
        cr_assert_eq(mkdir(p, 0755), 0);
    }
    static const char *const files[][2] = {{"chelsea_tiny.png", "a.png"}, {"rocket_portrait.jpg", "b.jpg"},
                                           {"chelsea_tiny.png", "c.png"}, {"rocket_portrait.jpg", "c.jpg"}};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", IMAGES_DIR, files[i][0]);
        snprintf(q, sizeof q, "%s/imgs/%s", dir, files[i][1]);
        copy_file(p, q);
    }
    snprintf(q, sizeof q, "%s/imgs/notes.txt", dir);
    write_text(q, "not an image");
    snprintf(q, sizeof q, "%s/imgs/d.webp", dir);
    write_text(q, "RIFF....WEBP");
    const pid_t dead = dead_pid();
    cr_assert(dead > 0);
    char stale[1300], live[1300];
    snprintf(stale, sizeof stale, "%s/out/masks/a_q0.png.tmp.%d", dir, (int)dead);
    snprintf(live, sizeof live, "%s/out/masks/other.png.tmp.%d", dir, (int)getpid());
    write_text(stale, "half a png");
    write_text(live, "another writer's");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && OPENBLAS_NUM_THREADS=1 '%s' annotate " TOOL_ARGS " --images imgs --query 'Segment it.' "
             "--out out/ann.jsonl --masks-dir out/masks > stdout.txt 2> stderr.txt",
             dir, LISA_TOOL_PATH);
    const int rc = system(cmd);
    snprintf(p, sizeof p, "%s/stderr.txt", dir);
    size_t n;
    char *err = tu_read_file(p, &n);
    cr_assert(err);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "exit %d: %s", rc, err);
    cr_expect(strstr(err, "skipped 2 files") && strstr(err, "d.webp") && strstr(err, "notes.txt"), "%s", err);
    cr_expect(strstr(err, "removed 1 temporary files"), "%s", err);
    free(err);
    struct stat st;
    cr_expect(stat(stale, &st) != 0, "a killed run's %s is still there", stale);
    cr_expect(stat(live, &st) == 0, "a live writer's %s was removed", live);
    snprintf(p, sizeof p, "%s/out/ann.jsonl", dir);
    recs R = read_records(p);
    cr_expect_eq(R.n, 4);
    static const struct {
        const char *id, *file;
    } want[] = {{"a.png", "masks/a_q0.png"}, {"b.jpg", "masks/b_q0.png"}, {"c.png", "masks/c.png_q0.png"},
                {"c.jpg", "masks/c.jpg_q0.png"}};
    for (int k = 0; k < 4; k++) {
        const cJSON *rec = NULL;
        for (int i = 0; i < R.n; i++)
            if (str(R.r[i], "id") && !strcmp(str(R.r[i], "id"), want[k].id)) rec = R.r[i];
        cr_assert(rec, "no record for %s", want[k].id);
        const cJSON *m0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rec, "masks"), 0);
        const char *file = str(m0, "file");
        cr_expect(file && !strcmp(file, want[k].file), "%s: file %s, want %s (relative to out/)", want[k].id, file,
                  want[k].file);
        snprintf(q, sizeof q, "%s/out/%s", dir, want[k].file);
        cr_expect(stat(q, &st) == 0, "%s does not exist", q);
    }
    recs_free(&R);
    tu_remove_tree(dir);
    free(dir);
}

/* issue 18: an item whose id repeats an earlier one gets an error record (keyed by its line), once */
Test(annotate, repeated_id_is_an_error_record, .timeout = 600) {
    char *dir = tu_make_tmpdir("lisa-ann-dup");
    char p[1200];
    snprintf(p, sizeof p, "%s/m.jsonl", dir);
    write_text(p, "{\"id\": \"i1\", \"image\": \"none-a.png\", \"query\": \"q\"}\n"
                  "{\"id\": \"i2\", \"image\": \"none-b.png\", \"query\": \"q\"}\n"
                  "{\"id\": \"i1\", \"image\": \"none-c.png\", \"query\": \"again\"}\n");
    for (int pass = 0; pass < 2; pass++) { /* the second pass resumes: nothing is written twice */
        run_out r = run(dir, "annotate " TOOL_ARGS " --manifest '%s/m.jsonl' --out '%s/out.jsonl'", dir, dir);
        cr_expect_eq(r.status, 0, "%s", r.err);
        run_free(&r);
    }
    snprintf(p, sizeof p, "%s/out.jsonl", dir);
    recs R = read_records(p);
    cr_expect_eq(R.n, 3, "two items' records and the repeat's");
    int dup = 0;
    for (int i = 0; i < R.n; i++) {
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(R.r[i], "line");
        if (cJSON_IsNumber(line) && line->valueint == 3) {
            dup++;
            cr_expect_str_eq(str(R.r[i], "id"), "i1");
            cr_expect_str_eq(error_code(R.r[i]), "LISA_ERR_INVALID_ARG");
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(R.r[i], "error");
            cr_expect(strstr(str(e, "message"), "repeats"), "%s", str(e, "message"));
            cr_expect_null(cJSON_GetObjectItemCaseSensitive(R.r[i], "query_index"));
        }
    }
    cr_expect_eq(dup, 1);
    recs_free(&R);
    tu_remove_tree(dir);
    free(dir);
}
