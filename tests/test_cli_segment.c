/* tests/test_cli_segment.c — the `lisa` binary end to end: make-tiny (exit codes, same bytes twice),
 * segment (answer, PNG masks, overlays, --json with COCO RLE that decodes to the PNG mask, several
 * [SEG]s against the PyTorch golden masks, no [SEG], error cases: exit codes, messages, no output
 * file) and sam (masks against the golden SAM run). */
#include "golden.h"
#include "loader/checkpoint.h"
#include "loader/image.h"
#include "core/mask.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

typedef struct run_out {
    int status;
    char *out, *err;
} run_out;

static void run_free(run_out *r) {
    free(r->out);
    free(r->err);
}

/* Runs `lisa <args>` with stdout/stderr captured in files under dir. */
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
    /* a sanitizer report of the tool lands in its captured stderr: repeat it where CTest looks, and
     * fail (an ASan error would otherwise hide behind an expected exit status 1) */
    if (strstr(r.err, "Sanitizer") || strstr(r.err, "runtime error:")) {
        fputs(r.err, stderr);
        cr_expect(false, "sanitizer report from: lisa %s", args);
    }
    return r;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int count_files(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static int compare_trees(const char *a, const char *b) {
    int n = 0;
    DIR *d = opendir(a);
    cr_assert(d, "cannot open %s", a);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char pa[4096], pb[4096];
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        struct stat st;
        cr_assert_eq(stat(pa, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            n += compare_trees(pa, pb);
            continue;
        }
        size_t la = 0, lb = 0;
        char *x = tu_read_file(pa, &la), *y = tu_read_file(pb, &lb);
        cr_expect(x && y && la == lb && memcmp(x, y, la) == 0, "%s and %s differ", pa, pb);
        free(x);
        free(y);
        n++;
    }
    closedir(d);
    return n;
}

/* A mask PNG written by the tool: 0/255 gray, decoded (RGB replicated) to 0/1 [h, w]. */
static uint8_t *read_mask_png(const char *path, int32_t *h, int32_t *w) {
    lisa_bitmap img;
    cr_assert_eq(lisa_image_load(&img, path, NULL), LISA_OK, "%s: %s", path, lisa_last_error());
    uint8_t *m = malloc((size_t)img.h * img.w);
    for (size_t i = 0; i < (size_t)img.h * img.w; i++) {
        const uint8_t v = img.data[3 * i];
        cr_assert(v == 0 || v == 255, "%s: pixel %zu is %d", path, i, v);
        cr_assert(img.data[3 * i + 1] == v && img.data[3 * i + 2] == v);
        m[i] = v != 0;
    }
    *h = img.h;
    *w = img.w;
    lisa_bitmap_free(&img);
    return m;
}

/* The golden masks [N, H, W] of a tap file; returns mismatching pixels of mask i. */
static long golden_mask_diff(const char *golden, int i, const uint8_t *m, int32_t h, int32_t w) {
    lisa_checkpoint *g = golden_open(golden);
    lisa_tensor t = golden_get(g, "mask");
    cr_assert(t.n_dims == 3 && t.shape[1] == h && t.shape[2] == w, "%s mask shape", golden);
    const uint8_t *ref = (const uint8_t *)t.data + (size_t)i * h * w;
    long bad = 0;
    for (size_t k = 0; k < (size_t)h * w; k++)
        bad += ref[k] != m[k];
    lisa_checkpoint_close(g);
    return bad;
}

static cJSON *parse_json(const char *s) {
    cJSON *j = cJSON_Parse(s);
    cr_assert(j, "stdout is not JSON: %.300s", s);
    return j;
}

Test(cli, make_tiny_exit_codes_and_same_bytes, .timeout = 300) {
    char *tmp = tu_make_tmpdir("lisa-cli");
    run_out r = run(tmp, "make-tiny --out '%s/a' --seed 3", tmp);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "greedy answer shaped to \"Sure, [SEG].\""), "%s", r.out);
    run_free(&r);
    r = run(tmp, "make-tiny --seed 3 --out '%s/b'", tmp);
    cr_expect_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    cr_expect_eq(compare_trees(a, b), 12);
    r = run(tmp, "make-tiny --out '%s/a'", tmp); /* exists */
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "already exists"), "%s", r.err);
    run_free(&r);
    r = run(tmp, "make-tiny --seed 1");
    cr_expect_eq(r.status, 2);
    run_free(&r);
    r = run(tmp, "--help"); /* commands are listed with dashes */
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "make-tiny") && strstr(r.out, "segment") && strstr(r.out, "sam"), "%s", r.out);
    run_free(&r);
    r = run(tmp, "make-tiny --help");
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "--sam-global"), "%s", r.out);
    run_free(&r);
    r = run(tmp, "make-tiny --out '%s/c' --llm-heads four", tmp);
    cr_expect_eq(r.status, 2);
    run_free(&r);
    r = run(tmp, "make-tiny --out '%s/c' --llm-heads 5", tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "llm_heads = 5 does not divide llm_hidden = 32"), "%s", r.err);
    run_free(&r);
    snprintf(a, sizeof a, "%s/c", tmp);
    cr_expect(!exists(a));
    cr_expect_eq(count_files(tmp), 4); /* a, b, stdout.txt, stderr.txt */
    tu_remove_tree(tmp);
    free(tmp);
}

Test(cli, segment_masks_overlay_json, .timeout = 600) {
    char *tmp = tu_make_tmpdir("lisa-cli");
    run_out r = run(tmp, "make-tiny --out '%s/model'", tmp);
    cr_assert_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    char outdir[1024], mask_path[1200], ov_path[1200];
    snprintf(outdir, sizeof outdir, "%s/out", tmp);
    cr_assert_eq(mkdir(outdir, 0755), 0);
    snprintf(mask_path, sizeof mask_path, "%s/chelsea_mask.png", outdir);
    snprintf(ov_path, sizeof ov_path, "%s/chelsea_overlay.png", outdir);
    r = run(tmp,
            "segment --model '%s/model' --image '%s/chelsea.png' --query 'Can you segment the cat in this image?' "
            "--out '%s' --overlay '%s' --json --threads 2",
            tmp, IMAGES_DIR, mask_path, ov_path);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *j = parse_json(r.out);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "answer")->valuestring, "Sure, [SEG] .");
    cr_expect(strstr(cJSON_GetObjectItem(j, "text_output")->valuestring, "ASSISTANT: Sure, [SEG] .</s>"));
    const cJSON *toks = cJSON_GetObjectItem(j, "tokens");
    const int want[] = {18585, 29892, 32003, 869, 2};
    cr_assert_eq(cJSON_GetArraySize(toks), 5);
    for (int i = 0; i < 5; i++)
        cr_expect_eq((int)cJSON_GetArrayItem(toks, i)->valuedouble, want[i]);
    cr_expect_eq((int)cJSON_GetObjectItem(j, "seg_token_id")->valuedouble, 32003);
    const cJSON *masks = cJSON_GetObjectItem(j, "masks");
    cr_assert_eq(cJSON_GetArraySize(masks), 1);
    const cJSON *m0 = cJSON_GetArrayItem(masks, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(m0, "file")->valuestring, mask_path);
    cr_expect_str_eq(cJSON_GetObjectItem(m0, "overlay")->valuestring, ov_path);
    cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(m0, "score")));
    cr_expect(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "timings"), "total_ms")->valuedouble > 0);

    /* the PNG mask, the RLE in the JSON, its area and bbox all describe the same mask */
    int32_t h, w;
    uint8_t *png = read_mask_png(mask_path, &h, &w);
    cr_expect_eq(h, 300);
    cr_expect_eq(w, 451);
    const cJSON *rle = cJSON_GetObjectItem(m0, "rle"), *size = cJSON_GetObjectItem(rle, "size");
    cr_expect_eq((int)cJSON_GetArrayItem(size, 0)->valuedouble, 300);
    cr_expect_eq((int)cJSON_GetArrayItem(size, 1)->valuedouble, 451);
    lisa_rle dec;
    cr_assert_eq(lisa_rle_from_string(&dec, cJSON_GetObjectItem(rle, "counts")->valuestring, h, w), LISA_OK, "%s",
                 lisa_last_error());
    uint8_t *from_rle = malloc((size_t)h * w);
    lisa_rle_decode(from_rle, &dec);
    cr_expect(memcmp(from_rle, png, (size_t)h * w) == 0, "the JSON RLE does not decode to the PNG mask");
    size_t area = 0;
    for (size_t k = 0; k < (size_t)h * w; k++)
        area += png[k];
    cr_expect(area > 0 && area < (size_t)h * w);
    cr_expect_eq((size_t)cJSON_GetObjectItem(m0, "area")->valuedouble, area);
    double bb[4];
    lisa_rle_bbox(bb, &dec);
    for (int k = 0; k < 4; k++)
        cr_expect_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(m0, "bbox"), k)->valuedouble, bb[k]);
    /* the overlay is chat.py's red tint of the decoded photo on that mask */
    lisa_bitmap photo, ov;
    cr_assert_eq(lisa_image_load(&photo, IMAGES_DIR "/chelsea.png", NULL), LISA_OK);
    cr_assert_eq(lisa_image_load(&ov, ov_path, NULL), LISA_OK, "%s", lisa_last_error());
    cr_assert(ov.h == h && ov.w == w);
    uint8_t *want_ov = malloc((size_t)3 * h * w);
    lisa_mask_overlay_red(want_ov, photo.data, png, h, w);
    cr_expect(memcmp(want_ov, ov.data, (size_t)3 * h * w) == 0, "overlay differs from chat.py's");
    cr_expect_eq(count_files(outdir), 2);
    free(want_ov);
    lisa_bitmap_free(&photo);
    lisa_bitmap_free(&ov);
    free(from_rle);
    lisa_rle_free(&dec);
    free(png);
    cJSON_Delete(j);
    run_free(&r);
    tu_remove_tree(tmp);
    free(tmp);
}

/* The golden tiny model answers "Sure, [SEG] and [SEG]" here (tests/golden/README.md): two masks. */
Test(cli, segment_two_masks_match_the_reference, .timeout = 600) {
    char *tmp = tu_make_tmpdir("lisa-cli");
    run_out r = run(tmp,
                    "segment --model '%s' --vision-tower '%s' --image '%s/rocket_portrait.jpg' --query 'Please segment "
                    "the rocket and the smoke in this image.' --max-new-tokens 5 --out '%s/m.png' --threads 2",
                    TINY_LISA_DIR, TINY_CLIP_DIR, IMAGES_DIR, tmp);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *line2 = strchr(r.out, '\n');
    cr_assert(line2);
    *line2++ = '\0';
    cr_expect_str_eq(r.out, "Sure, [SEG] and [SEG]");
    cr_expect(!strncmp(line2, "mask 0: ", 8), "%s", line2);
    cr_expect(strstr(line2, "\nmask 1: "), "%s", line2);
    lisa_checkpoint *g = golden_open("lisa_rocket_portrait");
    const long allowed = golden_meta_int(g, "mask_logits_abs_lt_1e-3");
    lisa_checkpoint_close(g);
    for (int i = 0; i < 2; i++) {
        char p[1200];
        snprintf(p, sizeof p, i ? "%s/m_%d.png" : "%s/m.png", tmp, i);
        int32_t h, w;
        uint8_t *m = read_mask_png(p, &h, &w);
        const long bad = golden_mask_diff("lisa_rocket_portrait", i, m, h, w);
        cr_expect_leq(bad, allowed, "mask %d: %ld pixels differ from PyTorch (%ld logits are within 1e-3 of 0)", i, bad,
                      allowed);
        free(m);
    }
    run_free(&r);
    tu_remove_tree(tmp);
    free(tmp);
}

Test(cli, segment_without_seg_writes_nothing, .timeout = 300) {
    char *tmp = tu_make_tmpdir("lisa-cli");
    run_out r =
        run(tmp,
            "segment --model '%s' --vision-tower '%s' --image '%s/chelsea.png' --query 'What is the animal in "
            "this image? Please output segmentation mask.' --max-new-tokens 2 --out '%s/m.png' --overlay '%s/o.png'",
            TINY_LISA_DIR, TINY_CLIP_DIR, IMAGES_DIR, tmp, tmp);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "Sure,\n");
    cr_expect(strstr(r.err, "no mask was produced"), "%s", r.err);
    cr_expect_eq(count_files(tmp), 2); /* stdout.txt, stderr.txt */
    run_free(&r);
    tu_remove_tree(tmp);
    free(tmp);
}

Test(cli, segment_errors, .timeout = 300) {
    char *tmp = tu_make_tmpdir("lisa-cli");
    char model[1200];
    snprintf(model, sizeof model, "--model '%s' --vision-tower '%s'", TINY_LISA_DIR, TINY_CLIP_DIR);
    run_out r =
        run(tmp, "segment %s --image '%s/no-such.png' --query 'what?' --out '%s/m.png'", model, IMAGES_DIR, tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "LISA_ERR_IO") && strstr(r.err, "no-such.png"), "%s", r.err);
    run_free(&r);
    r = run(tmp, "segment %s --image '%s/bad/truncated.png' --query 'what?'", model, IMAGES_DIR);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "truncated.png"), "%s", r.err);
    run_free(&r);
    r = run(tmp, "segment --model '%s/nothing' --image '%s/chelsea.png' --query 'what?' --out '%s/m.png'", tmp,
            IMAGES_DIR, tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "nothing/config.json"), "%s", r.err);
    run_free(&r);
    r = run(tmp, "segment %s --image '%s/chelsea_tiny.png' --query '   ' --out '%s/m.png'", model, IMAGES_DIR, tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "LISA_ERR_INVALID_ARG: query is empty"), "%s", r.err);
    run_free(&r);
    char *longq = malloc(5001);
    memset(longq, 'a', 5000);
    longq[5000] = '\0';
    r = run(tmp, "segment %s --image '%s/chelsea_tiny.png' --query '%s' --out '%s/m.png'", model, IMAGES_DIR, longq,
            tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "LISA_ERR_LIMIT: query of 5000 bytes exceeds the limit of 4096 bytes"), "%s", r.err);
    run_free(&r);
    free(longq);
    r = run(tmp, "segment %s --image '%s/chelsea_tiny.png' --query 'what?' --out '%s/no/dir/m.png'", model, IMAGES_DIR,
            tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "does not exist"), "%s", r.err);
    run_free(&r);
    /* usage errors */
    r = run(tmp, "segment %s --image '%s/chelsea_tiny.png'", model, IMAGES_DIR);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--query"), "%s", r.err);
    run_free(&r);
    r = run(tmp, "segment %s --image x --query y --bogus", model);
    cr_expect_eq(r.status, 2);
    run_free(&r);
    r = run(tmp, "segment %s --image x --query y --max-new-tokens 0", model);
    cr_expect_eq(r.status, 2);
    run_free(&r);
    r = run(tmp, "segment --help");
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "usage: lisa segment"));
    run_free(&r);
    cr_expect_eq(count_files(tmp), 2, "an error left an output file in %s", tmp);
    tu_remove_tree(tmp);
    free(tmp);
}

Test(cli, sam_matches_the_reference, .timeout = 300) {
    char *tmp = tu_make_tmpdir("lisa-cli");
    run_out r = run(tmp,
                    "sam --model '%s' --image '%s/chelsea_tiny.png' --text-embedding '%s/sam_chelsea_tiny.safetensors' "
                    "--out '%s/s.png' --overlay '%s/o.png' --json --threads 2",
                    TINY_LISA_DIR, IMAGES_DIR, GOLDEN_DIR, tmp, tmp);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *j = parse_json(r.out);
    const cJSON *masks = cJSON_GetObjectItem(j, "masks");
    cr_assert_eq(cJSON_GetArraySize(masks), 2);
    lisa_checkpoint *g = golden_open("sam_chelsea_tiny");
    const long allowed = golden_meta_int(g, "mask_logits_abs_lt_1e-3");
    lisa_checkpoint_close(g);
    for (int i = 0; i < 2; i++) {
        char p[1200];
        snprintf(p, sizeof p, i ? "%s/s_%d.png" : "%s/s.png", tmp, i);
        int32_t h, w;
        uint8_t *m = read_mask_png(p, &h, &w);
        cr_expect_leq(golden_mask_diff("sam_chelsea_tiny", i, m, h, w), allowed, "mask %d", i);
        lisa_rle dec;
        const cJSON *rle = cJSON_GetObjectItem(cJSON_GetArrayItem(masks, i), "rle");
        cr_assert_eq(lisa_rle_from_string(&dec, cJSON_GetObjectItem(rle, "counts")->valuestring, h, w), LISA_OK);
        uint8_t *back = malloc((size_t)h * w);
        lisa_rle_decode(back, &dec);
        cr_expect(memcmp(back, m, (size_t)h * w) == 0, "mask %d: RLE != PNG", i);
        snprintf(p, sizeof p, i ? "%s/o_%d.png" : "%s/o.png", tmp, i);
        cr_expect(exists(p), "%s", p);
        free(back);
        lisa_rle_free(&dec);
        free(m);
    }
    cJSON_Delete(j);
    run_free(&r);
    /* errors: a file without text_embeds, a wrong prompt width */
    r = run(tmp,
            "sam --model '%s' --image '%s/chelsea_tiny.png' --text-embedding '%s/lisa_chelsea.safetensors' --out "
            "'%s/x.png'",
            TINY_LISA_DIR, IMAGES_DIR, GOLDEN_DIR, tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "no tensor 'text_embeds'"), "%s", r.err);
    run_free(&r);
    char emb[1200];
    snprintf(emb, sizeof emb, "%s/e16.safetensors", tmp);
    float v[2 * 16] = {0};
    lisa_st_write_item it = {.name = "text_embeds", .tensor = lisa_tensor_view4(v, LISA_DTYPE_F32, 2, 2, 16, 0, 0)};
    cr_assert_eq(lisa_safetensors_write(emb, &it, 1, NULL, 0), LISA_OK);
    r = run(tmp, "sam --model '%s' --image '%s/chelsea_tiny.png' --text-embedding '%s' --out '%s/x.png'", TINY_LISA_DIR,
            IMAGES_DIR, emb, tmp);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "LISA_ERR_SHAPE") && strstr(r.err, "[2, 16]"), "%s", r.err);
    run_free(&r);
    snprintf(emb, sizeof emb, "%s/x.png", tmp);
    cr_expect(!exists(emb));
    r = run(tmp, "sam --model '%s' --image x", TINY_LISA_DIR);
    cr_expect_eq(r.status, 2);
    run_free(&r);
    tu_remove_tree(tmp);
    free(tmp);
}
