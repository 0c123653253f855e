/* tests/test_sam_parity.c — SAM on the CPU backend against the PyTorch reference (issue #4):
 * preprocessing of real photographs, every encoder block, the neck, the dense PE, the mask
 * decoder's tokens, IoU, low-res logits, postprocessed logits and binary masks, for a landscape,
 * a portrait and a tiny (upsampled) image; LISA and stock segment-anything weight names.
 * Golden data: tests/golden/gen_golden.py (torch 1.13.1 + segment-anything 1.0, fp32). */
#include "golden.h"
#include "loader/image.h"
#include "models/sam.h"
#include "core/error.h"
#include "models/preprocess.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fp32 vs fp32 with different summation orders: 1e-4 relative (issue #4), plus an absolute floor
 * of 1e-5 x the tensor's max magnitude for elements near zero. */
#define RTOL 1e-4
#define ATOL_REL 1e-5

typedef struct sam_case {
    lisa_sam *sam;
    lisa_tensor px, text;
    int32_t h_r, w_r, H0, W0;
    lisa_tensor emb, lowres, iou, logits; /* host owners, filled by the graph */
} sam_case;

static void sam_graph(lisa_graph *g, void *ctx) {
    sam_case *c = ctx;
    T *emb = lisa_sam_encode(g, c->sam, lisa_g_wrap(g, &c->px));
    T *low, *iou;
    lisa_sam_decode(g, c->sam, emb, lisa_g_wrap(g, &c->text), &low, &iou);
    T *ml = lisa_sam_postprocess(g, c->sam, low, c->h_r, c->w_r, c->H0, c->W0);
    lisa_g_copy_to(g, &c->emb, emb);
    lisa_g_copy_to(g, &c->lowres, low);
    lisa_g_copy_to(g, &c->iou, iou);
    lisa_g_copy_to(g, &c->logits, ml);
}

static lisa_checkpoint *open_tiny_lisa(void) {
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, TINY_LISA_DIR), LISA_OK, "%s", lisa_last_error());
    return ck;
}

static void run_case(const char *golden_name, const char *image, const lisa_checkpoint *weights) {
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *gold = golden_open(golden_name);
    sam_case c = {0};
    cr_assert_eq(lisa_sam_load(&c.sam, be, weights), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(c.sam->enc.embed, 16);
    cr_expect_eq(c.sam->enc.depth, 4);
    cr_expect_eq(c.sam->enc.heads, 2);
    cr_expect_eq(c.sam->blocks[1].window, 0);
    cr_expect_eq(c.sam->blocks[0].window, 14);

    /* preprocessing of the real photograph (bit-exactness is covered by test_preprocess_*; here
     * the sample must match exactly as a guard that the pipeline is the same) */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", IMAGES_DIR, image);
    lisa_bitmap img;
    cr_assert_eq(lisa_image_load(&img, path, NULL), LISA_OK, "%s", lisa_last_error());
    c.H0 = img.h;
    c.W0 = img.w;
    const int32_t S = c.sam->enc.img_size;
    c.px = tu_tensor(LISA_DTYPE_F32, 4, 1, 3, S, S);
    lisa_sam_preprocess_params pp = lisa_sam_preprocess_default_params();
    pp.target_size = S;
    size_t ws_n = lisa_sam_preprocess_workspace_size(&pp, img.h, img.w);
    void *ws = malloc(ws_n);
    cr_assert_eq(lisa_sam_preprocess(&c.px, &c.h_r, &c.w_r, img.data, img.h, img.w, &pp, ws, ws_n), LISA_OK, "%s",
                 lisa_last_error());
    free(ws);
    lisa_tensor rhw = golden_get(gold, "resize_hw");
    cr_expect_eq(c.h_r, ((int32_t *)rhw.data)[0]);
    cr_expect_eq(c.w_r, ((int32_t *)rhw.data)[1]);
    lisa_tensor sample = golden_get(gold, "sam_px_sample");
    const int64_t n = sample.shape[1];
    lisa_tensor mine = tu_tensor(LISA_DTYPE_F32, 3, 3, n, n, 0);
    for (int64_t ch = 0; ch < 3; ch++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                ((float *)mine.data)[(ch * n + i) * n + j] = ((float *)c.px.data)[(ch * S + i * 16) * S + j * 16];
    cr_expect(golden_check(gold, "sam_px_sample", &mine, 0, 0), "SAM input differs from the reference");
    lisa_tensor_free(&mine);

    c.text = golden_get(gold, "text_embeds");
    const int64_t N = c.text.shape[0], C = c.sam->dec.dim, G = c.sam->enc.grid;
    c.emb = tu_tensor(LISA_DTYPE_F32, 4, 1, C, G, G);
    c.lowres = tu_tensor(LISA_DTYPE_F32, 4, N, 1, 4 * G, 4 * G);
    c.iou = tu_tensor(LISA_DTYPE_F32, 2, N, 1, 0, 0);
    c.logits = tu_tensor(LISA_DTYPE_F32, 3, N, c.H0, c.W0, 0);
    tu_poison(&c.emb);
    tu_poison(&c.logits);

    golden_taps taps = {.g = gold, .rtol = RTOL, .atol_rel = ATOL_REL};
    cr_assert_eq(golden_run_graph(be, sam_graph, &c, golden_tap_cb, &taps), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(taps.n_failed, 0, "%d of %d taps out of tolerance", taps.n_failed, taps.n_checked);
    /* decoder_hs + lowres_logits always; the per-block encoder taps where the file has them */
    cr_expect_eq(taps.n_checked, golden_has(gold, "enc.block.0") ? 2 + 1 + c.sam->enc.depth : 2);

    cr_expect(golden_check(gold, "sam_img_emb", &c.emb, RTOL, ATOL_REL));
    cr_expect(golden_check(gold, "lowres_logits", &c.lowres, RTOL, ATOL_REL));
    cr_expect(golden_check(gold, "iou_pred", &c.iou, RTOL, ATOL_REL));
    if (golden_has(gold, "mask_logits")) {
        cr_expect(golden_check(gold, "mask_logits", &c.logits, RTOL, ATOL_REL));
    } else {
        lisa_tensor sub = golden_subsample(&c.logits, 3);
        cr_expect(golden_check(gold, "mask_logits_s3", &sub, RTOL, ATOL_REL));
        lisa_tensor_free(&sub);
    }
    cr_expect_eq(golden_mask_mismatches(gold, &c.logits, 1e-4), 0);
    if (golden_has(gold, "dense_pe")) cr_expect(golden_check(gold, "dense_pe", &c.sam->dense_pe, RTOL, ATOL_REL));

    lisa_tensor_free(&c.px);
    lisa_tensor_free(&c.emb);
    lisa_tensor_free(&c.lowres);
    lisa_tensor_free(&c.iou);
    lisa_tensor_free(&c.logits);
    lisa_bitmap_free(&img);
    lisa_sam_free(c.sam);
    lisa_checkpoint_close(gold);
    lisa_backend_free(be);
}

Test(sam_parity, tiny_image_every_encoder_block, .timeout = 600) {
    lisa_checkpoint *ck = open_tiny_lisa();
    run_case("sam_chelsea_tiny", "chelsea_tiny.png", ck);
    lisa_checkpoint_close(ck);
}

Test(sam_parity, landscape, .timeout = 600) {
    lisa_checkpoint *ck = open_tiny_lisa();
    run_case("sam_chelsea", "chelsea.png", ck);
    lisa_checkpoint_close(ck);
}

Test(sam_parity, portrait_and_dense_pe, .timeout = 600) {
    lisa_checkpoint *ck = open_tiny_lisa();
    run_case("sam_rocket_portrait", "rocket_portrait.jpg", ck);
    lisa_checkpoint_close(ck);
}

Test(sam_parity, stock_segment_anything_names, .timeout = 600) {
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, GOLDEN_DIR "/sam_stock_names.safetensors"), LISA_OK, "%s", lisa_last_error());
    run_case("sam_chelsea_tiny", "chelsea_tiny.png", ck);
    lisa_checkpoint_close(ck);
}

Test(sam_parity, reports_every_bad_tensor_at_once) {
    /* A checkpoint whose SAM lacks two tensors and has one wrong shape: one error lists all three. */
    lisa_checkpoint *src = open_tiny_lisa();
    const int64_t n = lisa_checkpoint_count(src);
    lisa_st_write_item *items = calloc((size_t)n, sizeof *items);
    int64_t k = 0;
    float bad[7] = {0};
    for (int64_t i = 0; i < n; i++) {
        const lisa_ckpt_tensor *e = lisa_checkpoint_at(src, i);
        if (strcmp(e->name, "model.visual_model.image_encoder.blocks.2.mlp.lin1.bias") == 0) continue;
        if (strcmp(e->name, "model.visual_model.mask_decoder.iou_token.weight") == 0) continue;
        items[k].name = e->name;
        items[k].tensor = lisa_ckpt_tensor_view(e);
        if (strcmp(e->name, "model.visual_model.image_encoder.neck.1.bias") == 0)
            items[k].tensor = lisa_tensor_view4(bad, LISA_DTYPE_F32, 1, 7, 0, 0, 0);
        k++;
    }
    char *dir = tu_make_tmpdir("lisa-sam-bad");
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(lisa_safetensors_write(path, items, k, NULL, 0), LISA_OK, "%s", lisa_last_error());
    free(items);
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, path), LISA_OK, "%s", lisa_last_error());
    lisa_backend *be = tu_cpu_backend();
    lisa_sam *sam = NULL;
    lisa_status s = lisa_sam_load(&sam, be, ck);
    cr_expect_neq(s, LISA_OK);
    cr_expect_null(sam);
    const char *msg = lisa_last_error();
    cr_expect(strstr(msg, "3 problems") != NULL, "message: %s", msg);
    cr_expect(strstr(msg, "blocks.2.mlp.lin1.bias") != NULL, "message: %s", msg);
    cr_expect(strstr(msg, "iou_token.weight") != NULL, "message: %s", msg);
    cr_expect(strstr(msg, "neck.1.bias': expected shape [32], found [7]") != NULL, "message: %s", msg);
    lisa_checkpoint_close(ck);
    lisa_checkpoint_close(src);
    lisa_backend_free(be);
    tu_remove_tree(dir);
    free(dir);
}
