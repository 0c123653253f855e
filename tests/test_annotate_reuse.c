/* tests/test_annotate_reuse.c — `lisa annotate`'s multi-query items with reuse (issue #17), through
 * the jobs API: each item's picture is decoded once (a lisa_image) and encoded once by the engine;
 * the records equal, key for key and byte for byte (timings aside), those of a run without reuse
 * (image_cache_bytes = 0); a bad picture is one error record per query; a resumed run with some of
 * an item's queries done runs only the others. */
#include "golden.h"
#include "jobs/annotate.h"
#include "jobs/annotate_input.h"
#include "jobs/records.h"
#include "core/error.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_RECORDS 15 /* 4 + 4 + 2 + 4 + 1 */

static void write_manifest(const char *path) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fprintf(f,
            "{\"id\": \"cat\", \"image\": \"%s/chelsea.png\", \"queries\": [\"What is the cat in this image? Please "
            "output segmentation mask.\", \"Segment the cat.\", \"cat\", \"What is the cat lying on?\"]}\n"
            "{\"id\": \"rocket\", \"image\": \"%s/rocket.jpg\", \"queries\": [\"the smoke\", \"Segment the rocket.\", "
            "\"What is flying? Please output segmentation mask.\", \"the tower\"]}\n"
            "{\"id\": \"gone\", \"image\": \"%s/no-such-image.png\", \"queries\": [\"a\", \"b\"]}\n"
            "{\"id\": \"cup\", \"image\": \"%s/coffee.png\", \"queries\": [\"the cup\", \"Where would I put the milk? "
            "Please respond with segmentation mask and explain why.\", \"the table\", \"the handle\"]}\n"
            "{\"id\": \"one\", \"image\": \"%s/chelsea_tiny.png\", \"query\": \"the cat\"}\n",
            IMAGES_DIR, IMAGES_DIR, IMAGES_DIR, IMAGES_DIR, IMAGES_DIR);
    fclose(f);
}

static lisa_model *load_tiny(void) {
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = TINY_CLIP_DIR;
    p.backend = LISA_BACKEND_CPU;
    p.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &p, &m), LISA_OK, "%s", lisa_last_error());
    return m;
}

typedef struct outcome {
    lisa_annotate_stats st;
    lisa_engine_stats es;
} outcome;

static outcome annotate(lisa_model *m, const char *manifest, const char *out_path, int64_t image_cache_bytes) {
    lisa_engine_params ep = lisa_engine_default_params();
    ep.max_batch = 4;
    ep.image_cache_bytes = image_cache_bytes;
    lisa_engine *e = NULL;
    cr_assert_eq(lisa_engine_create(m, &ep, &e), LISA_OK, "%s", lisa_last_error());
    lisa_ann_source src;
    cr_assert_eq(lisa_ann_source_open_manifest(&src, manifest), LISA_OK, "%s", lisa_last_error());
    cJSON *header = cJSON_CreateObject();
    cJSON_AddNumberToObject(header, "lisa_annotate", 1);
    cJSON_AddStringToObject(header, "input", "test_annotate_reuse");
    lisa_records out;
    cr_assert_eq(lisa_records_open(&out, out_path, &lisa_annotate_records, header, true), LISA_OK, "%s",
                 lisa_last_error());
    lisa_annotate_params p = {.engine = e,
                              .src = &src,
                              .out = &out,
                              .shard_k = 0,
                              .shard_n = 1,
                              .max_in_flight = 8,
                              .seg = lisa_segment_default_params()};
    p.seg.max_new_tokens = 6;
    outcome o;
    cr_assert_eq(lisa_annotate_run(&p, &o.st), LISA_OK, "%s", lisa_last_error());
    o.es = lisa_engine_get_stats(e);
    lisa_records_close(&out);
    cJSON_Delete(header);
    lisa_ann_source_close(&src);
    lisa_engine_free(e);
    return o;
}

/* every record of a file, timings removed, as "key\t<json>" lines sorted by key */
typedef struct collected {
    char *lines[64];
    int n;
} collected;

static lisa_status collect(void *ctx, const char *line, size_t len, const cJSON *rec, int64_t line_no) {
    (void)line, (void)len, (void)line_no;
    collected *c = ctx;
    cr_assert_lt(c->n, 64);
    cJSON *copy = cJSON_Duplicate(rec, true);
    cJSON_DeleteItemFromObject(copy, "timings");
    char key[LISA_RECORDS_KEY_MAX];
    const size_t kn = lisa_annotate_records.key(key, sizeof key, copy);
    cr_assert(kn > 0 && kn < sizeof key);
    char *txt = cJSON_PrintUnformatted(copy);
    const size_t n = kn + 1 + strlen(txt) + 1;
    c->lines[c->n] = malloc(n);
    snprintf(c->lines[c->n++], n, "%s\t%s", key, txt);
    free(txt);
    cJSON_Delete(copy);
    return LISA_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static collected read_all(const char *path) {
    collected c = {.n = 0};
    cr_assert_eq(lisa_records_scan(path, "lisa_annotate", NULL, collect, &c, NULL), LISA_OK, "%s", lisa_last_error());
    qsort(c.lines, (size_t)c.n, sizeof *c.lines, cmp_str);
    return c;
}

static void collected_free(collected *c) {
    for (int i = 0; i < c->n; i++)
        free(c->lines[i]);
}

static void expect_same_records(const char *a_path, const char *b_path) {
    collected a = read_all(a_path), b = read_all(b_path);
    cr_assert_eq(a.n, N_RECORDS);
    cr_assert_eq(b.n, N_RECORDS);
    int n_masks = 0;
    for (int i = 0; i < a.n; i++) {
        cr_expect_str_eq(a.lines[i], b.lines[i], "record %d differs", i);
        n_masks += strstr(a.lines[i], "\"rle\"") != NULL;
    }
    cr_expect_gt(n_masks, 8, "the shaped tiny model answers with masks");
    collected_free(&a);
    collected_free(&b);
}

Test(annotate_reuse, records_equal_without_reuse_and_resume, .timeout = 1200) {
    char dir[] = "/tmp/lisa_annreuse_XXXXXX";
    cr_assert(mkdtemp(dir));
    char manifest[256], with[256], without[256], resumed[256];
    snprintf(manifest, sizeof manifest, "%s/m.jsonl", dir);
    snprintf(with, sizeof with, "%s/with.jsonl", dir);
    snprintf(without, sizeof without, "%s/without.jsonl", dir);
    snprintf(resumed, sizeof resumed, "%s/resumed.jsonl", dir);
    write_manifest(manifest);
    lisa_model *m = load_tiny();

    outcome no = annotate(m, manifest, without, 0);
    cr_expect_eq(no.st.written, N_RECORDS);
    cr_expect_eq(no.st.errors, 2, "the missing picture: one error record per query");
    cr_expect_eq(no.es.image_cache_hits, 0);
    cr_expect_eq(no.es.image_cache_misses, N_RECORDS - 2, "without reuse every query encodes its picture");

    outcome yes = annotate(m, manifest, with, 256 << 20);
    cr_expect_eq(yes.st.written, N_RECORDS);
    cr_expect_eq(yes.st.errors, 2);
    cr_expect_eq(yes.es.image_cache_misses, 4, "each picture encoded once (got %lld)",
                 (long long)yes.es.image_cache_misses);
    cr_expect_eq(yes.es.image_cache_hits, N_RECORDS - 2 - 4);
    cr_expect_eq(yes.es.kv_prefix_hits, N_RECORDS - 2 - 4, "the other queries prefill only their own tokens");
    expect_same_records(with, without);

    /* resume: a file already holding cat #0, cat #2 and all of rocket runs the rest only */
    collected ref = read_all(without);
    FILE *f = fopen(resumed, "w");
    cr_assert(f);
    fprintf(f, "{\"lisa_annotate\":1,\"input\":\"test_annotate_reuse\"}\n");
    for (int i = 0; i < ref.n; i++) {
        const char *tab = strchr(ref.lines[i], '\t');
        if (!strncmp(ref.lines[i],
                     "icat\x1f"
                     "0\t",
                     7) ||
            !strncmp(ref.lines[i],
                     "icat\x1f"
                     "2\t",
                     7) ||
            !strncmp(ref.lines[i], "irocket\x1f", 8))
            fprintf(f, "%s\n", tab + 1);
    }
    fclose(f);
    collected_free(&ref);
    outcome res = annotate(m, manifest, resumed, 256 << 20);
    cr_expect_eq(res.st.skipped, 6);
    cr_expect_eq(res.st.written, N_RECORDS - 6);
    cr_expect_eq(res.es.image_cache_misses, 3, "cat, cup, one (rocket is done)");
    cr_expect_eq(res.es.image_cache_hits, 1 + 3);
    expect_same_records(resumed, without);

    lisa_model_free(m);
    unlink(manifest), unlink(with), unlink(without), unlink(resumed);
    rmdir(dir);
}

/* the same through the `lisa annotate` command: --image-cache-mib 0 turns reuse off, the records
 * stay the same */
Test(annotate_reuse, cli_image_cache_off_same_records, .timeout = 1200) {
    char dir[] = "/tmp/lisa_annreuse_XXXXXX";
    cr_assert(mkdtemp(dir));
    char manifest[256], with[256], without[256], cmd[2048];
    snprintf(manifest, sizeof manifest, "%s/m.jsonl", dir);
    snprintf(with, sizeof with, "%s/with.jsonl", dir);
    snprintf(without, sizeof without, "%s/without.jsonl", dir);
    write_manifest(manifest);
    const char *fmt = "OPENBLAS_NUM_THREADS=1 '%s' annotate --model %s --vision-tower %s --backend cpu --threads 2 "
                      "--manifest %s --out %s --max-new-tokens 6 --max-batch 4 %s > %s/log.txt 2>&1";
    snprintf(cmd, sizeof cmd, fmt, LISA_TOOL_PATH, TINY_LISA_DIR, TINY_CLIP_DIR, manifest, without,
             "--image-cache-mib 0", dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, fmt, LISA_TOOL_PATH, TINY_LISA_DIR, TINY_CLIP_DIR, manifest, with, "", dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    expect_same_records(with, without);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
