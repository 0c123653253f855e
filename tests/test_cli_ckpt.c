/* tests/test_cli_ckpt.c — `lisa inspect` and `lisa convert` as a user runs them. The parameter
 * counts printed for the real 7B/13B configs must equal the counts taken on the reference modules
 * (tests/data/configs/expected_counts.json, from tests/golden/gen_bin.py). */
#include "loader/checkpoint.h"
#include "loader/json.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define BIN_DIR LISA_TESTDATA_DIR "/bin"
#define CFG_DIR LISA_TESTDATA_DIR "/configs"

/* Runs `lisa <args>` (stderr joined to stdout); returns the exit code, output in *out (malloc'd). */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", LISA_TOOL_PATH, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The integer after `key` at the start of a line, or -1. */
static long long field(const char *text, const char *key) {
    size_t k = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, k) == 0 && (l[k] == ' ')) {
            long long v;
            if (sscanf(l + k, " %lld", &v) == 1) return v;
        }
    }
    return -1;
}

Test(cli_ckpt, inspect_config_only_real_models) {
    cJSON *counts;
    cr_assert_eq(lisa_json_load_file(CFG_DIR "/expected_counts.json", 0, &counts), LISA_OK);
    struct {
        const char *name;
        long long seg, layers;
    } models[] = {{"lisa-7b-v1", 32003, 32}, {"lisa-13b-llama2-v1", 32000, 40}};
    for (int k = 0; k < 2; k++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, models[k].name);
        char *out;
        int rc = run(&out, "inspect --config-only '%s/%s' --batch 2 --context 512", CFG_DIR, models[k].name);
        cr_expect_eq(rc, 0, "%s", out);
#define COUNT(key) ((long long)cJSON_GetObjectItemCaseSensitive(c, key)->valuedouble)
        cr_expect_eq(field(out, "params.llm"), COUNT("llm_params"), "%s", out);
        cr_expect_eq(field(out, "params.projector"), COUNT("projector_params"), "%s", out);
        cr_expect_eq(field(out, "params.text_hidden_fcs"), COUNT("text_hidden_fcs_params"), "%s", out);
        cr_expect_eq(field(out, "params.sam"), COUNT("sam_params"), "%s", out);
        cr_expect_eq(field(out, "kv_cache"), COUNT("kv_bytes_per_token_bf16"), "%s", out);
        cr_expect_eq(field(out, "params.total"),
                     COUNT("llm_params") + COUNT("projector_params") + COUNT("text_hidden_fcs_params") +
                         COUNT("sam_params"));
        /* embed, norm, lm_head + 10 per layer (incl. inv_freq) + projector 2 + fcs 4 + SAM */
        cr_expect_eq(field(out, "tensors"), 3 + 10 * models[k].layers + 2 + 4 + COUNT("sam_tensors"), "%s", out);
#undef COUNT
        cr_expect_eq(field(out, "seg_token_id"), models[k].seg, "%s", out);
        cr_expect(strstr(out, k == 0 ? "(6.74 B)" : "(13.02 B)"), "%s", out);
        cr_expect(strstr(out, "(641.09 M)"), "SAM 0.64 B: %s", out);
        cr_expect(strstr(out, "batch 2, context 512"), "%s", out);
        free(out);
    }
    cJSON_Delete(counts);
}

Test(cli_ckpt, inspect_checkpoint) {
    char *out;
    cr_expect_eq(run(&out, "inspect '%s/tiny-lisa'", BIN_DIR), 0, "%s", out);
    cr_expect(strstr(out, "tensors                203 in 2 files (PyTorch .bin)"), "%s", out);
    cr_expect(strstr(out, "check                  all 180 expected tensors present"), "%s", out);
    cr_expect_eq(field(out, "seg_token_id"), 39);
    free(out);
    cr_expect_eq(run(&out, "inspect '%s/clip'", BIN_DIR), 0, "%s", out);
    cr_expect(strstr(out, "CLIP vision tower"), "%s", out);
    free(out);
    /* a directory without weights: the error names what is missing and suggests --config-only */
    cr_expect_eq(run(&out, "inspect '%s/lisa-7b-v1'", CFG_DIR), 1);
    cr_expect(strstr(out, "pytorch_model.bin") && strstr(out, "--config-only"), "%s", out);
    free(out);
    cr_expect_eq(run(&out, "inspect"), 2);
    free(out);
    cr_expect_eq(run(&out, "inspect x --batch zero"), 2);
    free(out);
}

Test(cli_ckpt, convert_and_inspect_mismatch) {
    char *dir = tu_make_tmpdir("lisa-cli");
    char *out;
    /* .bin shards -> safetensors shards (20 kB each), then .bin bf16 */
    cr_expect_eq(run(&out, "convert '%s/tiny-lisa' '%s/st' --shard-size 20KB", BIN_DIR, dir), 0, "%s", out);
    cr_expect(strstr(out, "verified"), "%s", out);
    free(out);
    char path[1024];
    struct stat st;
    const char *want[] = {"config.json", "added_tokens.json", "model.safetensors.index.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/st/%s", dir, want[i]);
        cr_expect_eq(stat(path, &st), 0, "%s missing", path);
    }
    lisa_checkpoint *a, *b;
    cr_assert_eq(lisa_checkpoint_open(&a, BIN_DIR "/tiny-lisa"), LISA_OK);
    snprintf(path, sizeof path, "%s/st", dir);
    cr_assert_eq(lisa_checkpoint_open(&b, path), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_checkpoint_compare(a, b, LISA_DTYPE_COUNT), LISA_OK, "%s", lisa_last_error());
    int n_shards = lisa_checkpoint_file_count(b);
    cr_expect_geq(n_shards, 4, "84 kB in 20 kB shards");
    lisa_checkpoint_close(b);
    cr_expect_eq(run(&out, "convert '%s/st' '%s/bf16' --dtype bf16 --format bin --shard-size 0", dir, dir), 0, "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/bf16/pytorch_model.bin", dir);
    cr_assert_eq(lisa_checkpoint_open(&b, path), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_checkpoint_compare(a, b, LISA_DTYPE_BF16), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_checkpoint_find(b, "model.visual_model.image_encoder.pos_embed")->dtype, LISA_DTYPE_BF16);
    lisa_checkpoint_close(b);
    lisa_checkpoint_close(a);
    cr_expect_eq(run(&out, "inspect '%s/bf16'", dir), 0, "%s", out); /* config copied: a model directory */
    free(out);
    /* refusals */
    cr_expect_eq(run(&out, "convert '%s/tiny-lisa' '%s/st'", BIN_DIR, dir), 1);
    cr_expect(strstr(out, "not empty"), "%s", out);
    free(out);
    cr_expect_eq(run(&out, "convert '%s/tiny-lisa' '%s/x' --shard-size 5 GB", BIN_DIR, dir), 2);
    free(out);
    cr_expect_eq(run(&out, "convert '%s/tiny-lisa' '%s/x' --dtype f64", BIN_DIR, dir), 2);
    free(out);
    cr_expect_eq(run(&out, "convert '%s/bad/os_system.bin' '%s/y'", BIN_DIR, dir), 1);
    cr_expect(strstr(out, "os.system"), "%s", out);
    free(out);
    /* a model directory whose tensors disagree with config.json: inspect lists every problem */
    snprintf(path, sizeof path, "%s/mm", dir);
    mkdir(path, 0755);
    size_t len;
    char *cfg = tu_read_file(BIN_DIR "/tiny-lisa/config.json", &len);
    char *hack = strstr(cfg, "\"intermediate_size\": 40");
    cr_assert_not_null(hack, "%s", cfg);
    memcpy(hack, "\"intermediate_size\": 44", 23);
    snprintf(path, sizeof path, "%s/mm/config.json", dir);
    cr_assert(tu_write_file(path, cfg, len));
    free(cfg);
    snprintf(path, sizeof path, "%s/mm/model.safetensors.index.json", dir);
    char src[1024];
    snprintf(src, sizeof src, "%s/st/model.safetensors.index.json", dir);
    cfg = tu_read_file(src, &len);
    cr_assert(tu_write_file(path, cfg, len));
    free(cfg);
    for (int s = 1; s <= n_shards; s++) {
        snprintf(src, sizeof src, "%s/st/model-%05d-of-%05d.safetensors", dir, s, n_shards);
        snprintf(path, sizeof path, "%s/mm/model-%05d-of-%05d.safetensors", dir, s, n_shards);
        cfg = tu_read_file(src, &len);
        cr_assert_not_null(cfg, "%s", src);
        cr_assert(tu_write_file(path, cfg, len));
        free(cfg);
    }
    cr_expect_eq(run(&out, "inspect '%s/mm'", dir), 1);
    cr_expect(strstr(out, "0 missing, 6 wrong shape, 0 wrong dtype, 0 unexpected"), "%s", out);
    cr_expect(strstr(out, "model.layers.1.mlp.down_proj.weight  expected [16, 44]  found [16, 40] BF16"), "%s", out);
    free(out);
    tu_remove_tree(dir);
    free(dir);
}
