/* tests/test_api.c — the parts of include/lisa.h that the server and the tools use instead of
 * internal headers: version macros, lisa_fail, the log callback (silent by default, the model's
 * INFO line when set), model introspection (dims against config.json and the loaded networks, the
 * size contract of lisa_model_info), token counts (against the tokenizer and against the prompt
 * length a real request reports), query checks, lisa_rgb_load_file, the mask/overlay writers and
 * LISA_JSON_ID. All on the tiny checkpoint, CPU backend. */
#include "golden.h"
#include "core/mask.h"
#include "loader/image.h"
#include "models/lisa_model.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE LISA_TESTDATA_DIR "/images/chelsea_tiny.png"
#define QUERY "Where is the cat? Please output segmentation mask."

static lisa_model *load_tiny(void) {
    lisa_model_params mp = lisa_model_default_params();
    mp.backend = LISA_BACKEND_CPU;
    mp.vision_tower = TINY_CLIP_DIR;
    mp.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &mp, &m), LISA_OK, "%s", lisa_last_error());
    return m;
}

Test(api, version_and_errors) {
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", LISA_VERSION_MAJOR, LISA_VERSION_MINOR, LISA_VERSION_PATCH);
    cr_expect_str_eq(v, LISA_VERSION_STRING);
    cr_expect_str_eq(lisa_version(), LISA_VERSION_STRING);
    cr_expect_eq(lisa_fail(LISA_ERR_LIMIT, "field '%s' = %d", "x", 7), LISA_ERR_LIMIT);
    cr_expect_str_eq(lisa_last_error(), "field 'x' = 7");
    lisa_clear_error();
    cr_expect_str_eq(lisa_last_error(), "");
}

/* The log callback's record of what it was told. */
typedef struct log_rec {
    int n;
    lisa_log_level level;
    char last[512];
} log_rec;

static void record(void *user, lisa_log_level level, const char *msg) {
    log_rec *r = user;
    r->n++;
    r->level = level;
    snprintf(r->last, sizeof r->last, "%s", msg);
}

Test(api, log_callback) {
    cr_expect_str_eq(lisa_log_level_name(LISA_LOG_WARN), "warning");
    log_rec r = {0};
    lisa_log_set(record, &r);
    lisa_model *m = load_tiny();
    cr_expect_eq(r.n, 1, "one line per model load");
    cr_expect_eq(r.level, LISA_LOG_INFO);
    cr_expect(strstr(r.last, "backend cpu") && strstr(r.last, "activations f32"), "%s", r.last);
    lisa_model_free(m);
    lisa_log_set(NULL, NULL); /* silent again */
    m = load_tiny();
    cr_expect_eq(r.n, 1);
    lisa_model_free(m);
}

Test(api, model_info) {
    lisa_model *m = load_tiny();
    lisa_model_info info;
    memset(&info, 0x5a, sizeof info); /* poison: every field must be written */
    info.size = 0;
    cr_expect_eq(lisa_model_get_info(m, &info), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "size"), "%s", lisa_last_error());
    info.size = sizeof info;
    cr_assert_eq(lisa_model_get_info(m, &info), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(info.size, sizeof info);
    /* against config.json of tests/data/tiny-lisa and the loaded networks */
    cr_expect_eq(info.llm_hidden, m->cfg.llm.hidden);
    cr_expect_eq(info.llm_hidden, 32);
    cr_expect_eq(info.llm_layers, 2);
    cr_expect_eq(info.llm_heads, 4);
    cr_expect_eq(info.llm_kv_heads, 4);
    cr_expect_eq(info.llm_head_dim, 8);
    cr_expect_eq(info.llm_intermediate, 64);
    cr_expect_eq(info.vocab_size, 32004);
    cr_expect_eq(info.max_position, m->cfg.llm.max_pos);
    cr_expect_eq(info.clip_hidden, m->clip->cfg.hidden);
    cr_expect_eq(info.clip_layers, m->clip->cfg.n_layers);
    cr_expect_eq(info.clip_layers_run, m->clip->cfg.n_layers - 1);
    cr_expect_eq(info.clip_image_size, m->clip->cfg.image_size);
    cr_expect_eq(info.n_patches, m->n_patches);
    cr_expect_eq(info.n_patches, (info.clip_image_size / info.clip_patch_size) * (info.clip_image_size / info.clip_patch_size));
    cr_expect_eq(info.sam_embed_dim, m->sam->enc.embed);
    cr_expect_eq(info.sam_depth, m->sam->enc.depth);
    cr_expect_eq(info.sam_image_size, m->sam->enc.img_size);
    cr_expect_eq(info.sam_prompt_dim, 32);
    cr_expect_eq(info.seg_token_id, lisa_model_seg_token_id(m));
    cr_expect_eq(info.backend, LISA_BACKEND_CPU);
    cr_expect_str_eq(info.backend_name, "cpu");
    cr_expect(info.device_name[0] && strlen(info.device_name) < sizeof info.device_name);
    cr_expect_str_eq(info.activation_dtype, "f32");
    cr_expect_eq(info.n_threads, 2);
    cr_expect_eq(info.device_memory_bytes, 0);
    /* the tiny checkpoint's weights are a few MB, all of them bound (views of the mapping) */
    cr_expect(info.weight_bytes > 100000 && info.weight_bytes <= info.checkpoint_bytes, "%lld of %lld",
              (long long)info.weight_bytes, (long long)info.checkpoint_bytes);
    cr_expect_gt(info.scratch_bytes, 0);
    cr_expect(info.tp_rank == 0 && info.tp_size == 1 && info.tp_group == 0 && info.tp_groups == 1);
    /* the CPU backend runs every fused op as its composition (kernels/ops.h lisa_backend_fuses) */
    cr_expect(info.fused_ops >= 7 && info.fused_ops_native == 0, "fused ops %d, native %d", info.fused_ops,
              info.fused_ops_native);
    /* an older caller's smaller struct: only its bytes are written */
    unsigned char buf[sizeof(lisa_model_info) + 16];
    memset(buf, 0xee, sizeof buf);
    lisa_model_info *old = (lisa_model_info *)buf;
    old->size = (uint32_t)offsetof(lisa_model_info, clip_hidden);
    cr_assert_eq(lisa_model_get_info(m, old), LISA_OK);
    cr_expect_eq(old->size, offsetof(lisa_model_info, clip_hidden));
    cr_expect_eq(old->max_position, info.max_position);
    for (size_t i = offsetof(lisa_model_info, clip_hidden); i < sizeof buf; i++)
        cr_assert_eq(buf[i], 0xee, "byte %zu written past the caller's size", i);
    /* a newer caller's larger struct: the tail is zeroed */
    memset(buf, 0xee, sizeof buf);
    old->size = (uint32_t)sizeof buf;
    cr_assert_eq(lisa_model_get_info(m, old), LISA_OK);
    cr_expect_eq(old->size, sizeof info);
    for (size_t i = sizeof info; i < sizeof buf; i++)
        cr_assert_eq(buf[i], 0, "byte %zu", i);
    lisa_model_free(m);
}

Test(api, token_counts) {
    lisa_model *m = load_tiny();
    static const char *texts[] = {"Segment the cat.", "What would keep me dry in the rain?", "ü ñ 猫 🐈", " "};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t n = -1, ref = -1, n_bos = -1;
        cr_assert_eq(lisa_model_count_tokens(m, texts[i], strlen(texts[i]), false, &n), LISA_OK, "%s", lisa_last_error());
        cr_assert_eq(lisa_model_count_tokens(m, texts[i], strlen(texts[i]), true, &n_bos), LISA_OK);
        const lisa_status s = lisa_tokenizer_encode(m->tok, texts[i], strlen(texts[i]), false, NULL, 0, &ref);
        cr_assert(s == LISA_OK || s == LISA_ERR_LIMIT);
        cr_expect_eq(n, ref, "'%s'", texts[i]);
        cr_expect_eq(n_bos, n + 1, "'%s'", texts[i]);
        cr_expect(i == 3 || n > 0);
    }
    /* the expanded prompt length is what the engine reports for a real request */
    int32_t L0 = 0;
    cr_assert_eq(lisa_model_prompt_tokens(m, QUERY, &L0), LISA_OK, "%s", lisa_last_error());
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = 4;
    lisa_result *r = NULL;
    cr_assert_eq(lisa_segment_file(m, IMAGE, QUERY, &sp, &r), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(L0, lisa_result_timings(r).n_prompt_tokens);
    cr_expect_gt(L0, m->n_patches);
    lisa_result_free(r);
    cr_expect_eq(lisa_model_prompt_tokens(m, "  ", &L0), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_model_prompt_tokens(m, "look at <image>", &L0), LISA_ERR_INVALID_ARG);
    lisa_model_free(m);
}

Test(api, query_checks) {
    cr_expect_eq(lisa_check_query("Segment the cat.", NULL), LISA_OK);
    cr_expect_eq(lisa_check_query(NULL, NULL), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_check_query(" \t\n", NULL), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_check_query("a <image> b", NULL), LISA_ERR_INVALID_ARG);
    lisa_segment_params p = lisa_segment_default_params();
    p.max_query_bytes = 5;
    cr_expect_eq(lisa_check_query("123456", &p), LISA_ERR_LIMIT);
    cr_expect(strstr(lisa_last_error(), "6 bytes") && strstr(lisa_last_error(), "5 bytes"), "%s", lisa_last_error());
    cr_expect_eq(lisa_check_query("12345", &p), LISA_OK);
}

Test(api, rgb_masks_overlays_and_json_id) {
    char *dir = tu_make_tmpdir("lisa-api");
    uint8_t *rgb = NULL;
    int32_t h = 0, w = 0;
    cr_assert_eq(lisa_rgb_load_file(IMAGE, 0, &rgb, &h, &w), LISA_OK, "%s", lisa_last_error());
    lisa_bitmap ref;
    cr_assert_eq(lisa_image_load(&ref, IMAGE, NULL), LISA_OK);
    cr_assert(h == ref.h && w == ref.w && memcmp(rgb, ref.data, (size_t)h * w * 3) == 0, "decoded as the engine does");
    uint8_t *none = NULL;
    cr_expect_eq(lisa_rgb_load_file(IMAGE, 10, &none, &h, &w), LISA_ERR_LIMIT);
    cr_expect(!none);
    cr_expect_eq(lisa_rgb_load_file(LISA_TESTDATA_DIR "/no-such.png", 0, &none, &h, &w), LISA_ERR_IO);
    h = ref.h;
    w = ref.w;

    lisa_model *m = load_tiny();
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = 8;
    lisa_result *r = NULL;
    cr_assert_eq(lisa_segment(m, rgb, h, w, QUERY, &sp, &r), LISA_OK, "%s", lisa_last_error());
    cr_assert_geq(lisa_result_n_masks(r), 1, "the tiny model answers with [SEG]");
    int32_t mh, mw;
    const uint8_t *mask = lisa_result_mask(r, 0, &mh, &mw);
    cr_assert(mh == h && mw == w);
    char path[1200];
    snprintf(path, sizeof path, "%s/m.png", dir);
    cr_assert_eq(lisa_result_write_mask_png(r, 0, path), LISA_OK, "%s", lisa_last_error());
    lisa_bitmap got;
    cr_assert_eq(lisa_image_load(&got, path, NULL), LISA_OK); /* gray PNG decodes to 3 equal channels */
    size_t on = 0;
    for (size_t i = 0; i < (size_t)h * w; i++) {
        cr_assert_eq(got.data[3 * i], mask[i] ? 255 : 0, "pixel %zu", i);
        on += mask[i] != 0;
    }
    cr_expect(on > 0 && on < (size_t)h * w, "a mask that is neither empty nor full: %zu", on);
    lisa_bitmap_free(&got);
    snprintf(path, sizeof path, "%s/o.png", dir);
    cr_assert_eq(lisa_result_write_overlay_png(r, 0, rgb, path), LISA_OK, "%s", lisa_last_error());
    uint8_t *want = malloc((size_t)h * w * 3);
    lisa_mask_overlay_red(want, rgb, mask, h, w);
    cr_assert_eq(lisa_image_load(&got, path, NULL), LISA_OK);
    cr_expect(memcmp(got.data, want, (size_t)h * w * 3) == 0, "chat.py's overlay");
    lisa_bitmap_free(&got);
    free(want);
    cr_expect_eq(lisa_result_write_mask_png(r, lisa_result_n_masks(r), path), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_result_write_overlay_png(r, 0, NULL, path), LISA_ERR_INVALID_ARG);
    snprintf(path, sizeof path, "%s/no/dir/m.png", dir);
    cr_expect_eq(lisa_result_write_mask_png(r, 0, path), LISA_ERR_IO);
    /* "id" is the last member with LISA_JSON_ID, absent without */
    char *a = NULL, *b = NULL;
    cr_assert_eq(lisa_result_to_json(r, LISA_JSON_TIMINGS | LISA_JSON_ID, &a), LISA_OK);
    cr_assert_eq(lisa_result_to_json(r, LISA_JSON_TIMINGS, &b), LISA_OK);
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    cr_assert(ja && jb);
    const cJSON *last = ja->child;
    while (last && last->next)
        last = last->next;
    cr_expect(last && !strcmp(last->string, "id") && last->valuedouble == (double)lisa_result_id(r));
    cr_expect(!cJSON_GetObjectItemCaseSensitive(jb, "id"));
    cJSON_DeleteItemFromObjectCaseSensitive(ja, "id");
    cr_expect(cJSON_Compare(ja, jb, true), "the rest is unchanged");
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    lisa_free(a);
    lisa_free(b);
    lisa_result_free(r);
    lisa_model_free(m);
    lisa_bitmap_free(&ref);
    lisa_free(rgb);
    tu_remove_tree(dir);
    free(dir);
}
