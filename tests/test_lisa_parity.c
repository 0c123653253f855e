/* tests/test_lisa_parity.c — LISA end to end on the CPU backend against the PyTorch reference
 * (issue #5): every tap of spec §8 (CLIP layer -2, projector, prefill logits, [SEG] hidden states,
 * text_hidden_fcs, SAM embedding, low-res and final mask logits), the generated ids, chat.py's
 * text and the binary masks, for answers with one, two and no [SEG]. Golden data:
 * tests/golden/gen_golden.py, cross-checked there against the real dvlab-research/LISA code. */
#include "golden.h"
#include "loader/image.h"
#include "models/lisa_model.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-4
#define ATOL_REL 1e-5

typedef struct lisa_taps {
    golden_taps lisa, sam; /* the lisa_* file, and sam_<image> for the SAM embedding */
} lisa_taps;

static void tap_cb(void *ctx, const char *name, const lisa_tensor *t) {
    lisa_taps *lt = ctx;
    if (strcmp(name, "sam_img_emb") == 0) golden_tap_cb(&lt->sam, name, t);
    else golden_tap_cb(&lt->lisa, name, t);
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

static void run_case(const char *name, const char *sam_name, int expect_taps) {
    lisa_model *m = load_tiny();
    cr_expect_eq(lisa_model_seg_token_id(m), 32003);
    lisa_checkpoint *gold = golden_open(name), *sam_gold = golden_open(sam_name);
    const char *image = lisa_checkpoint_metadata(gold, "image"), *query = lisa_checkpoint_metadata(gold, "query");
    cr_assert(image && query);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", IMAGES_DIR, image);
    lisa_bitmap img;
    cr_assert_eq(lisa_image_load(&img, path, NULL), LISA_OK, "%s", lisa_last_error());

    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = (int32_t)golden_meta_int(gold, "max_new_tokens");
    sp.keep_logits = true;
    lisa_taps taps = {.lisa = {.g = gold, .rtol = RTOL, .atol_rel = ATOL_REL},
                      .sam = {.g = sam_gold, .rtol = RTOL, .atol_rel = ATOL_REL}};
    lisa_run_hooks hooks = {.tap = tap_cb, .ctx = &taps};
    lisa_result *r = NULL;
    cr_assert_eq(lisa_model_run(m, img.data, img.h, img.w, query, &sp, &hooks, &r), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(taps.lisa.n_failed + taps.sam.n_failed, 0, "%d taps out of tolerance",
                 taps.lisa.n_failed + taps.sam.n_failed);
    cr_expect_eq(taps.lisa.n_checked + taps.sam.n_checked, expect_taps, "checked %d taps",
                 taps.lisa.n_checked + taps.sam.n_checked);

    /* generated ids: identical */
    lisa_tensor gen = golden_get(gold, "gen_ids");
    cr_assert_eq(lisa_result_n_tokens(r), gen.shape[0], "generated %d tokens, reference %lld", lisa_result_n_tokens(r),
                 (long long)gen.shape[0]);
    for (int64_t i = 0; i < gen.shape[0]; i++)
        cr_expect_eq(lisa_result_tokens(r)[i], ((int64_t *)gen.data)[i], "token %lld", (long long)i);

    /* chat.py's text, and the answer without the final </s> */
    cr_expect_str_eq(lisa_result_text_output(r), lisa_checkpoint_metadata(gold, "text_output"));
    char want[512];
    snprintf(want, sizeof want, "%s", lisa_checkpoint_metadata(gold, "answer"));
    size_t wl = strlen(want);
    if (wl >= 4 && strcmp(want + wl - 4, "</s>") == 0) want[wl - 4] = '\0';
    cr_expect_str_eq(lisa_result_answer(r), want);

    /* one mask per [SEG], at the original size */
    const int n_seg = (int)golden_meta_int(gold, "n_seg");
    cr_assert_eq(lisa_result_n_masks(r), n_seg);
    if (n_seg > 0) {
        int32_t h, w;
        lisa_result_mask(r, 0, &h, &w);
        cr_expect_eq(h, img.h);
        cr_expect_eq(w, img.w);
        lisa_tensor logits = lisa_tensor_view4((void *)lisa_result_mask_logits(r, 0), LISA_DTYPE_F32, 3, n_seg, h, w, 0);
        if (golden_has(gold, "mask_logits")) {
            cr_expect(golden_check(gold, "mask_logits", &logits, RTOL, ATOL_REL));
        } else {
            lisa_tensor sub = golden_subsample(&logits, 3);
            cr_expect(golden_check(gold, "mask_logits_s3", &sub, RTOL, ATOL_REL));
            lisa_tensor_free(&sub);
        }
        cr_expect_eq(golden_mask_mismatches(gold, &logits, 1e-4), 0);
        /* the binary masks returned are the logits thresholded at 0 */
        for (int i = 0; i < n_seg; i++) {
            const uint8_t *mk = lisa_result_mask(r, i, NULL, NULL);
            const float *lg = lisa_result_mask_logits(r, i);
            long bad = 0;
            for (int64_t k = 0; k < (int64_t)h * w; k++) bad += mk[k] != (lg[k] > 0.0f);
            cr_expect_eq(bad, 0);
        }
    }
    lisa_timings t = lisa_result_timings(r);
    cr_expect_eq(t.n_generated, gen.shape[0]);
    cr_expect_gt(t.total_ms, 0);
    lisa_result_free(r);
    lisa_bitmap_free(&img);
    lisa_checkpoint_close(gold);
    lisa_checkpoint_close(sam_gold);
    lisa_model_free(m);
}

/* taps: clip_l23, mm_proj, prefill_logits_last, sam_img_emb (the engine encodes every admitted image,
 * as the reference does) + seg_hidden, pred_emb, lowres_logits when there is a [SEG] */
Test(lisa_parity, one_seg_then_eos_tiny_image, .timeout = 600) { run_case("lisa_chelsea_tiny", "sam_chelsea_tiny", 7); }
Test(lisa_parity, two_segs_portrait, .timeout = 600) { run_case("lisa_rocket_portrait", "sam_rocket_portrait", 7); }
Test(lisa_parity, no_seg_no_mask_landscape, .timeout = 600) { run_case("lisa_chelsea", "sam_chelsea", 4); }

Test(lisa_parity, bad_requests_are_clear_errors, .timeout = 300) {
    lisa_model *m = load_tiny();
    uint8_t px[3 * 4 * 4] = {0};
    lisa_result *r = (lisa_result *)0x1;
    lisa_segment_params sp = lisa_segment_default_params();
    cr_expect_eq(lisa_segment(m, px, 4, 4, "   ", &sp, &r), LISA_ERR_INVALID_ARG);
    cr_expect_null(r);
    cr_expect(strstr(lisa_last_error(), "empty") != NULL, "%s", lisa_last_error());
    cr_expect_eq(lisa_segment(m, px, 4, 4, "a <image> b", &sp, &r), LISA_ERR_INVALID_ARG);
    char *longq = malloc(10000);
    memset(longq, 'a', 9999);
    longq[9999] = '\0';
    cr_expect_eq(lisa_segment(m, px, 4, 4, longq, &sp, &r), LISA_ERR_LIMIT);
    cr_expect(strstr(lisa_last_error(), "9999 bytes") != NULL, "%s", lisa_last_error());
    free(longq);
    cr_expect_eq(lisa_segment(m, px, 0, 4, "what?", &sp, &r), LISA_ERR_INVALID_ARG);
    sp.max_image_pixels = 10;
    cr_expect_eq(lisa_segment(m, px, 4, 4, "what?", &sp, &r), LISA_ERR_LIMIT);
    cr_expect_eq(lisa_segment_file(m, IMAGES_DIR "/no-such.png", "what?", NULL, &r), LISA_ERR_IO);
    cr_expect(strstr(lisa_last_error(), "no-such.png") != NULL, "%s", lisa_last_error());
    lisa_model_free(m);
}

Test(lisa_parity, missing_vision_tower_names_it) {
    lisa_model_params p = lisa_model_default_params();
    p.backend = LISA_BACKEND_CPU;
    char *home = tu_make_tmpdir("lisa-home");
    setenv("HOME", home, 1);
    unsetenv("HF_HOME");
    lisa_model *m = (lisa_model *)0x1;
    cr_expect_eq(lisa_model_load(TINY_LISA_DIR, &p, &m), LISA_ERR_NOT_FOUND);
    cr_expect_null(m);
    cr_expect(strstr(lisa_last_error(), "openai/clip-vit-large-patch14") != NULL, "%s", lisa_last_error());
    cr_expect(strstr(lisa_last_error(), "--vision-tower") != NULL, "%s", lisa_last_error());
    tu_remove_tree(home);
    free(home);
}
