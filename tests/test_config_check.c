/* tests/test_config_check.c — one validation of config.json for every command (issue 18): a
 * config with a field out of range is refused by lisa_model_load (what segment, eval, annotate,
 * serve and bench use), by the manifest (what inspect uses) and by the `lisa segment` and
 * `lisa inspect` commands alike, quickly, with a message naming the file and the key. Before,
 * segment took num_hidden_layers 1000000 and listed 9M missing tensors (1 GB), and
 * max_position_embeddings 10^12 wrapped into a negative prefill budget naming nothing.
 * Also the messages and choices around a model directory: an empty tokenizer.model says "empty
 * file", and `lisa inspect` sizes the CLIP tower the engine would load (the one inside the model
 * directory), not ViT-L/14's defaults. */
#include "golden.h"
#include "httpc.h"
#include "models/manifest.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* a copy of tiny-lisa (its files linked) whose config.json has key = value (raw JSON) */
static char *model_with(const char *key, const char *value) {
    char *dir = tu_make_tmpdir("lisa-cfg");
    DIR *d = opendir(TINY_LISA_DIR);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "config.json")) continue;
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", TINY_LISA_DIR, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", dir, e->d_name);
        cr_assert_eq(symlink(src, dst), 0, "%s", dst);
    }
    closedir(d);
    size_t n;
    char *text = tu_read_file(TINY_LISA_DIR "/config.json", &n);
    cJSON *cfg = cJSON_Parse(text);
    cr_assert(cfg);
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, key);
    cJSON_AddItemToObject(cfg, key, cJSON_Parse(value));
    char *out = cJSON_Print(cfg), path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cr_assert(tu_write_file(path, out, strlen(out)));
    free(out);
    free(text);
    cJSON_Delete(cfg);
    return dir;
}

static char *run_tool(const char *dir, const char *args, int *status) {
    char cmd[8192], err[1024];
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 '%s' %s > '%s/stdout.txt' 2> '%s'", LISA_TOOL_PATH, args, dir, err);
    const int rc = system(cmd);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    size_t n;
    char *text = tu_read_file(err, &n);
    return text ? text : strdup("");
}

static const struct {
    const char *key, *value;
} BAD[] = {
    {"num_hidden_layers", "1000000"},
    {"max_position_embeddings", "1000000000000"},
    {"hidden_size", "0"},
    {"intermediate_size", "-4"},
    {"num_attention_heads", "100000"},
    {"vocab_size", "1073741824"},
    {"eos_token_id", "32004"},
    {"mm_hidden_size", "2000000000"},
    {"out_dim", "0"},
    {"mm_vision_select_layer", "100000"},
    {"rms_norm_eps", "0"},
};

Test(config_check, every_command_refuses_naming_file_and_key, .timeout = 600) {
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        char *dir = model_with(BAD[i].key, BAD[i].value);
        char want[64];
        snprintf(want, sizeof want, "'%s'", BAD[i].key);
        /* the library */
        lisa_model_params p = lisa_model_default_params();
        p.vision_tower = TINY_CLIP_DIR;
        p.backend = LISA_BACKEND_CPU;
        p.n_threads = 1;
        lisa_model *m = NULL;
        const double t0 = tu_now();
        cr_expect_eq(lisa_model_load(dir, &p, &m), LISA_ERR_FORMAT, "%s = %s: loaded", BAD[i].key, BAD[i].value);
        cr_expect(tu_now() - t0 < 10, "%s = %s: refusing took %.1f s", BAD[i].key, BAD[i].value, tu_now() - t0);
        const char *msg = lisa_last_error();
        cr_expect(strstr(msg, "config.json") && strstr(msg, want), "%s = %s: %s", BAD[i].key, BAD[i].value, msg);
        lisa_model_free(m);
        /* the manifest (inspect), when the key is one it reads */
        if (strcmp(BAD[i].key, "max_position_embeddings") && strcmp(BAD[i].key, "mm_vision_select_layer") &&
            strcmp(BAD[i].key, "rms_norm_eps") && strcmp(BAD[i].key, "eos_token_id")) {
            lisa_manifest mf;
            cr_expect_eq(lisa_manifest_from_dir(&mf, dir, NULL), LISA_ERR_FORMAT, "manifest: %s", BAD[i].key);
            cr_expect(strstr(lisa_last_error(), want), "manifest: %s", lisa_last_error());
        }
        tu_remove_tree(dir);
        free(dir);
    }
}

/* the commands: segment and inspect give the same message (exit 1), segment at once */
Test(config_check, segment_and_inspect_commands, .timeout = 600) {
    static const char *const keys[][2] = {{"num_hidden_layers", "1000000"}, {"max_position_embeddings", "1000000000000"}};
    for (int i = 0; i < 2; i++) {
        char *dir = model_with(keys[i][0], keys[i][1]), args[4096], want[64];
        snprintf(want, sizeof want, "'%s'", keys[i][0]);
        snprintf(args, sizeof args, "segment --backend cpu --threads 1 --model '%s' --vision-tower '%s' --image '%s' "
                 "--query 'Segment the cat.' --out '%s/m.png'", dir, TINY_CLIP_DIR, IMAGES_DIR "/chelsea_tiny.png", dir);
        int st;
        char *err = run_tool(dir, args, &st);
        cr_expect_eq(st, 1, "segment with %s = %s: exit %d: %s", keys[i][0], keys[i][1], st, err);
        cr_expect(strstr(err, "config.json") && strstr(err, want), "segment: %s", err);
        free(err);
        snprintf(args, sizeof args, "inspect '%s' --config-only", dir);
        err = run_tool(dir, args, &st);
        cr_expect_eq(st, 1, "inspect with %s = %s: exit %d: %s", keys[i][0], keys[i][1], st, err);
        cr_expect(strstr(err, "config.json") && strstr(err, want), "inspect: %s", err);
        free(err);
        tu_remove_tree(dir);
        free(dir);
    }
}

/* a copy of tiny-lisa with `name` replaced by `target` (a symlink) or by an empty file (NULL) */
static char *model_with_file(const char *name, const char *target) {
    char *dir = model_with("vocab_size", "32004");
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
    if (target) cr_assert_eq(symlink(target, p), 0);
    else cr_assert(tu_write_file(p, "", 0));
    return dir;
}

Test(config_check, empty_tokenizer_model_says_so, .timeout = 300) {
    char *dir = model_with_file("tokenizer.model", NULL);
    lisa_model_params p = lisa_model_default_params();
    p.vision_tower = TINY_CLIP_DIR;
    p.backend = LISA_BACKEND_CPU;
    lisa_model *m = NULL;
    cr_expect_neq(lisa_model_load(dir, &p, &m), LISA_OK);
    cr_expect(strstr(lisa_last_error(), "tokenizer.model") && strstr(lisa_last_error(), "empty file"), "%s",
              lisa_last_error());
    lisa_model_free(m);
    tu_remove_tree(dir);
    free(dir);
}

Test(config_check, inspect_sizes_the_clip_tower_the_engine_loads, .timeout = 300) {
    char *dir = model_with_file("clip-vit-large-patch14", TINY_CLIP_DIR);
    char args[2048];
    snprintf(args, sizeof args, "inspect '%s'", dir);
    int st;
    char *err = run_tool(dir, args, &st);
    cr_expect_eq(st, 0, "%s", err);
    free(err);
    char p[1200];
    snprintf(p, sizeof p, "%s/stdout.txt", dir);
    size_t n;
    char *out = tu_read_file(p, &n);
    cr_assert(out);
    cr_expect(strstr(out, "clip-vit-large-patch14, 2 of 3 layers run"), "inspect did not use the tiny tower:\n%s", out);
    cr_expect(!strstr(out, "303.18 M"), "inspect sized ViT-L/14 instead of the tiny tower:\n%s", out);
    free(out);
    tu_remove_tree(dir);
    free(dir);
}
