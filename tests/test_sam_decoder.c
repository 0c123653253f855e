/* tests/test_sam_decoder.c — SAM's mask decoder on the fused ops (TWOWAY_ATTENTION, TWOWAY_MLP and
 * the broadcast setup, models/sam_decoder.c) against the same decoder as the generic ops, on the
 * CPU backend:
 *   - bit for bit (memcmp) on the tiny LISA's SAM (dim 32) and on a SAM decoder at the real dims
 *     (dim 256, 8 heads, MLP 2048, cross attention at 128): decoder_hs, the low-res logits and the
 *     IoU, for 1 and 3 prompts, one image embedding for all prompts or one per prompt;
 *   - the number of ops one decoder step issues (a counting ops table around the CPU backend's:
 *     the graph layer's calls, not the ops a fused op composes), fused vs generic, printed and
 *     bounded: the fused step must not grow with the prompt count and must stay far below the
 *     generic one (issue 15: ~100 generic launches). */
#include "loader/checkpoint.h"
#include "models/sam.h"
#include "models/lisa_model.h"
#include "models/tiny.h"
#include "ops_testutil.h"

#include <math.h>
#include <stdio.h>

/* ---- a counting ops table ------------------------------------------------------------------------ */

static const lisa_ops *g_inner;
static int g_depth;
static int g_counts[LISA_OP_COUNT];

#define LISA_OP(E, n, params, args)                                                                \
    static lisa_status count_##n(lisa_backend *be, LISA_UNPAREN params) {                          \
        if (g_depth == 0) g_counts[LISA_OP_##E]++;                                                 \
        g_depth++;                                                                                 \
        lisa_status s_ = g_inner->n(be, LISA_UNPAREN args);                                        \
        g_depth--;                                                                                 \
        return s_;                                                                                 \
    }
#include "kernels/ops.def"
#undef LISA_OP

static const lisa_ops counting_ops = {
#define LISA_OP(E, n, params, args) .n = count_##n,
#include "kernels/ops.def"
#undef LISA_OP
};

static int total_ops(void) {
    int t = 0;
    for (int i = 0; i < LISA_OP_COUNT; i++) t += g_counts[i];
    return t;
}

/* ---- running one decoder step -------------------------------------------------------------------- */

typedef struct dec_case {
    const lisa_sam *sam;
    lisa_tensor emb, sparse;            /* host F32 [B, C, G, G], [N, 1, C] */
    lisa_tensor hs, lowres, iou;        /* host F32 results */
    lisa_sam_decode_opts opts;
} dec_case;

static void tap(void *ctx, const char *name, const lisa_tensor *t) {
    dec_case *c = ctx;
    if (strcmp(name, "decoder_hs") == 0) {
        lisa_tensor_free(&c->hs);
        cr_assert(lisa_tensor_alloc(&c->hs, LISA_DTYPE_F32, t->n_dims, t->shape) == LISA_OK);
        memcpy(c->hs.data, t->data, lisa_tensor_nbytes(t));
    }
}

static void dec_graph(lisa_graph *g, void *ctx) {
    dec_case *c = ctx;
    T *low, *iou;
    lisa_sam_decode_ex(g, c->sam, lisa_g_wrap(g, &c->emb), lisa_g_wrap(g, &c->sparse), &low, &iou, &c->opts);
    if (!g_ok(g) || g_measuring(g)) return;
    lisa_tensor_free(&c->lowres);
    lisa_tensor_free(&c->iou);
    cr_assert(lisa_tensor_alloc(&c->lowres, LISA_DTYPE_F32, low->n_dims, low->shape) == LISA_OK);
    cr_assert(lisa_tensor_alloc(&c->iou, LISA_DTYPE_F32, iou->n_dims, iou->shape) == LISA_OK);
    memcpy(c->lowres.data, low->data, lisa_tensor_nbytes(low));
    memcpy(c->iou.data, iou->data, lisa_tensor_nbytes(iou));
}

/* Runs one decoder step (counting pass, then for real) and returns the ops it issued. */
static int run_decoder(lisa_backend *be, dec_case *c, bool unfused) {
    c->opts.unfused = unfused;
    size_t act_bytes = 0, meta_bytes = 0;
    OT_OK(lisa_graph_measure(be, LISA_DTYPE_F32, dec_graph, c, &act_bytes, &meta_bytes));
    lisa_arena act, meta;
    OT_OK(lisa_arena_init(&act, "act", act_bytes ? act_bytes : 1));
    OT_OK(lisa_arena_init(&meta, "meta", meta_bytes));
    lisa_graph g;
    lisa_graph_init(&g, be, &act, &meta, LISA_DTYPE_F32);
    g.tap = tap;
    g.tap_ctx = c;
    const lisa_ops *real = be->ops;
    g_inner = real;
    memset(g_counts, 0, sizeof g_counts);
    be->ops = &counting_ops;
    dec_graph(&g, c);
    be->ops = real;
    cr_assert_eq(g.status, LISA_OK, "decoder (%s): %s", unfused ? "generic" : "fused", lisa_last_error());
    lisa_arena_free(&act);
    lisa_arena_free(&meta);
    return total_ops();
}

static bool same_bits(const lisa_tensor *a, const lisa_tensor *b) {
    return lisa_tensor_same_shape(a, b) && memcmp(a->data, b->data, lisa_tensor_nbytes(a)) == 0;
}

static lisa_tensor take(lisa_tensor *t) {
    lisa_tensor r = *t;
    memset(t, 0, sizeof *t);
    return r;
}

/* The decoder fused and generic on n prompts with b image embeddings: equal bits; returns the op
 * counts through *fused_ops / *generic_ops. */
static void compare(lisa_backend *be, const lisa_sam *sam, int64_t n, int64_t b, uint64_t seed, int *fused_ops,
                    int *generic_ops) {
    const int64_t C = sam->dec.dim, G = sam->enc.grid;
    tu_rng r = tu_rng_seed(seed);
    dec_case c = {.sam = sam};
    c.emb = ot_rand(&r, LISA_DTYPE_F32, 4, b, C, G, G, -1, 1);
    c.sparse = ot_rand(&r, LISA_DTYPE_F32, 3, n, 1, C, 0, -1, 1);
    *generic_ops = run_decoder(be, &c, true);
    lisa_tensor hs = take(&c.hs), low = take(&c.lowres), iou = take(&c.iou);
    *fused_ops = run_decoder(be, &c, false);
    cr_expect(hs.data && same_bits(&c.hs, &hs), "dim %lld, %lld prompts, %lld embeddings: decoder_hs differs", (long long)C,
              (long long)n, (long long)b);
    cr_expect(same_bits(&c.lowres, &low), "dim %lld, %lld prompts, %lld embeddings: low-res logits differ", (long long)C,
              (long long)n, (long long)b);
    cr_expect(same_bits(&c.iou, &iou), "dim %lld, %lld prompts, %lld embeddings: IoU differs", (long long)C, (long long)n,
              (long long)b);
    /* the logits are not degenerate (a test on zeros proves nothing) */
    double mx = 0;
    for (int64_t i = 0; i < lisa_tensor_numel(&low); i++) mx = fmax(mx, fabs(((float *)low.data)[i]));
    cr_expect(mx > 1e-3, "low-res logits are all ~0 (max %g)", mx);
    lisa_tensor_free(&hs), lisa_tensor_free(&low), lisa_tensor_free(&iou);
    lisa_tensor_free(&c.hs), lisa_tensor_free(&c.lowres), lisa_tensor_free(&c.iou);
    lisa_tensor_free(&c.emb), lisa_tensor_free(&c.sparse);
}

static void print_counts(const char *what, int fused, int generic) {
    printf("SAM decoder step, %s: %d ops fused, %d ops generic\n", what, fused, generic);
}

Test(sam_decoder, tiny_lisa_fused_equals_generic_bitwise, .timeout = 600) {
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *ck = NULL;
    OT_OK(lisa_checkpoint_open(&ck, LISA_TESTDATA_DIR "/tiny-lisa"));
    lisa_sam *sam = NULL;
    OT_OK(lisa_sam_load(&sam, be, ck));
    int f1, g1, f3, g3, f3b, g3b;
    compare(be, sam, 1, 1, 11, &f1, &g1);
    compare(be, sam, 3, 1, 12, &f3, &g3);
    compare(be, sam, 3, 3, 13, &f3b, &g3b);
    print_counts("1 prompt", f1, g1);
    print_counts("3 prompts", f3, g3);
    print_counts("3 prompts on 3 images", f3b, g3b);
    /* the fused step does not grow with the prompts (broadcast setup); the generic one does */
    cr_expect_eq(f1, f3, "fused op count %d (1 prompt) vs %d (3 prompts)", f1, f3);
    cr_expect(g3 > g1, "generic op count %d (3 prompts) vs %d (1 prompt)", g3, g1);
    cr_expect(f1 <= 23 && 3 * f1 < g1, "fused step issues %d ops (generic %d)", f1, g1);
    lisa_sam_free(sam);
    lisa_checkpoint_close(ck);
    lisa_backend_free(be);
}

/* A prompt decoded among others on its own image gives the bits it gets alone on that image. */
Test(sam_decoder, per_prompt_embeddings_match_single_runs, .timeout = 600) {
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *ck = NULL;
    OT_OK(lisa_checkpoint_open(&ck, LISA_TESTDATA_DIR "/tiny-lisa"));
    lisa_sam *sam = NULL;
    OT_OK(lisa_sam_load(&sam, be, ck));
    const int64_t C = sam->dec.dim, G = sam->enc.grid, N = 2;
    tu_rng r = tu_rng_seed(21);
    dec_case all = {.sam = sam};
    all.emb = ot_rand(&r, LISA_DTYPE_F32, 4, N, C, G, G, -1, 1);
    all.sparse = ot_rand(&r, LISA_DTYPE_F32, 3, N, 1, C, 0, -1, 1);
    run_decoder(be, &all, false);
    const int64_t plane = 16 * G * G;
    for (int64_t i = 0; i < N; i++) {
        dec_case one = {.sam = sam};
        one.emb = lisa_tensor_view4((float *)all.emb.data + i * C * G * G, LISA_DTYPE_F32, 4, 1, C, G, G);
        one.sparse = lisa_tensor_view4((float *)all.sparse.data + i * C, LISA_DTYPE_F32, 3, 1, 1, C, 0);
        run_decoder(be, &one, false);
        /* N = 1 vs 2 rows in the GEMMs: OpenBLAS may round differently, so compare closely, and the
         * masks' signs exactly */
        const float *a = (const float *)all.lowres.data + i * plane, *b = one.lowres.data;
        int64_t sign_diff = 0;
        double max_err = 0;
        for (int64_t k = 0; k < plane; k++) {
            max_err = fmax(max_err, fabs(a[k] - b[k]));
            sign_diff += (a[k] > 0) != (b[k] > 0) && fabs(b[k]) > 1e-3;
        }
        cr_expect(max_err < 1e-3 && sign_diff == 0, "prompt %lld: max |diff| %g, %lld mask pixels flipped", (long long)i,
                  max_err, (long long)sign_diff);
        lisa_tensor_free(&one.hs), lisa_tensor_free(&one.lowres), lisa_tensor_free(&one.iou);
    }
    lisa_tensor_free(&all.hs), lisa_tensor_free(&all.lowres), lisa_tensor_free(&all.iou);
    lisa_tensor_free(&all.emb), lisa_tensor_free(&all.sparse);
    lisa_sam_free(sam);
    lisa_checkpoint_close(ck);
    lisa_backend_free(be);
}

Test(sam_decoder, real_dims_fused_equals_generic_bitwise, .timeout = 900) {
    char *tmp = tu_make_tmpdir("lisa-samdec");
    char path[4096];
    snprintf(path, sizeof path, "%s/sam.safetensors", tmp);
    lisa_tiny_params p = lisa_tiny_default_params();
    p.out_dim = 256; /* SAM's decoder dims: 256, MLP 2048, cross attention at 128, 8 heads */
    p.sam_depth = 1;
    p.n_sam_global = 0;
    OT_OK(lisa_tiny_write_sam(&p, path));
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *ck = NULL;
    OT_OK(lisa_checkpoint_open(&ck, path));
    lisa_sam *sam = NULL;
    OT_OK(lisa_sam_load(&sam, be, ck));
    cr_assert_eq(sam->dec.dim, 256);
    cr_assert_eq(sam->dec.layers[0].t2i.internal_dim, 128);
    int f, g;
    compare(be, sam, 2, 1, 31, &f, &g);
    print_counts("real dims, 2 prompts", f, g);
    lisa_sam_free(sam);
    lisa_checkpoint_close(ck);
    lisa_backend_free(be);
    tu_remove_tree(tmp);
    free(tmp);
}

/* ---- the batched mask stage (models/mask_decoder.c) ----------------------------------------------- */

/* Prompts of three requests (2, 7 and 1 [SEG] states, different image sizes, logits kept or not)
 * through lisa_mask_decoder_run in steps of 8 (a request split across two steps) give each
 * request what lisa_masks_run gives it alone: logits within GEMM rounding, the same masks (bar
 * pixels within 1e-3 of 0), the same scores. On the CPU backend the stage runs eagerly (no capture). */
Test(sam_decoder, batched_mask_stage_matches_per_request, .timeout = 900) {
    lisa_model_params mp = lisa_model_default_params();
    mp.backend = LISA_BACKEND_CPU;
    mp.vision_tower = LISA_TESTDATA_DIR "/tiny-clip";
    mp.n_threads = 2;
    lisa_model *m = NULL;
    OT_OK(lisa_model_load(LISA_TESTDATA_DIR "/tiny-lisa", &mp, &m));
    const int64_t out = m->cfg.out_dim, G = m->sam->enc.grid, C = m->cfg.llm.hidden;
    const int32_t n_seg[3] = {2, 7, 1}, H0[3] = {37, 64, 20}, W0[3] = {50, 41, 20};
    tu_rng r = tu_rng_seed(41);
    lisa_prepared pr[3];
    lisa_tensor emb[3], seg[3];
    lisa_mask_item items[3];
    lisa_result *ref[3];
    memset(pr, 0, sizeof pr);
    for (int i = 0; i < 3; i++) {
        pr[i].H0 = H0[i], pr[i].W0 = W0[i], pr[i].keep_logits = i != 2;
        const int32_t big = H0[i] > W0[i] ? H0[i] : W0[i];
        pr[i].h_r = (int32_t)(1024.0 * H0[i] / big + 0.5), pr[i].w_r = (int32_t)(1024.0 * W0[i] / big + 0.5);
        emb[i] = ot_rand(&r, LISA_DTYPE_F32, 4, 1, out, G, G, -1, 1);
        seg[i] = ot_rand(&r, LISA_DTYPE_F32, 2, n_seg[i], C, 0, 0, -2, 2);
        ref[i] = lisa_result_new();
        lisa_prepared keep = pr[i];
        keep.keep_logits = true; /* the reference keeps logits to compare with */
        OT_OK(lisa_masks_run(m, &keep, &emb[i], seg[i].data, n_seg[i], ref[i], NULL));
        items[i] = (lisa_mask_item){.pr = &pr[i], .emb = &emb[i], .seg_hidden = seg[i].data, .n_seg = n_seg[i],
                                    .res = lisa_result_new()};
    }
    lisa_mask_decoder *d = NULL;
    OT_OK(lisa_mask_decoder_create(&d, m, m->be, false));
    lisa_mask_decoder *d2 = NULL;
    OT_FAILS(lisa_mask_decoder_create(&d2, m, m->be, true), LISA_ERR_INVALID_ARG, "cannot capture");
    OT_OK(lisa_mask_decoder_run(d, items, 3));
    int64_t eager, captured, replayed;
    lisa_mask_decoder_stats(d, &eager, &captured, &replayed);
    cr_expect(eager == 2 && captured == 0 && replayed == 0, "10 prompts: %lld eager steps (want 2), %lld captured",
              (long long)eager, (long long)captured);
    for (int i = 0; i < 3; i++) {
        const lisa_result *a = items[i].res, *b = ref[i];
        cr_assert_eq(items[i].status, LISA_OK, "item %d: %s", i, lisa_last_error());
        cr_assert(a->n_masks == b->n_masks && a->h == b->h && a->w == b->w, "item %d: %d masks %dx%d", i, a->n_masks, a->h,
                  a->w);
        cr_expect_eq(a->logits != NULL, i != 2, "item %d: logits kept %d", i, a->logits != NULL);
        const int64_t n = (int64_t)a->n_masks * a->h * a->w;
        int64_t flips = 0;
        double max_err = 0, max_ref = 0;
        for (int64_t k = 0; k < n; k++) {
            if (a->logits) max_err = fmax(max_err, fabs(a->logits[k] - b->logits[k]));
            max_ref = fmax(max_ref, fabs(b->logits[k]));
            flips += a->masks[k] != b->masks[k] && fabs(b->logits[k]) > 1e-3;
        }
        cr_expect(max_err <= 1e-4 * (1 + max_ref) && flips == 0 && max_ref > 1e-2,
                  "item %d: max |logit diff| %g (max %g), %lld mask pixels differ", i, max_err, max_ref, (long long)flips);
        for (int k = 0; k < a->n_masks; k++)
            cr_expect(fabs(a->scores[k] - b->scores[k]) <= 1e-4 * (1 + fabs(b->scores[k])), "item %d mask %d: score %g vs %g",
                      i, k, a->scores[k], b->scores[k]);
        lisa_result_free(items[i].res);
        lisa_result_free(ref[i]);
        lisa_tensor_free(&emb[i]), lisa_tensor_free(&seg[i]);
    }
    lisa_mask_decoder_free(d);
    lisa_model_free(m);
}
