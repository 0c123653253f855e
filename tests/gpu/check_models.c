/* tests/gpu/check_models.c — lisa-check's end-to-end sections (ck_cases_models_tiny: 1-3,
 * ck_cases_models_real: 4): whole LISA on the
 * CUDA backend against the CPU backend.
 *
 * 1. The committed tiny LISA (tests/data/tiny-lisa + tiny-clip) on the golden cases
 *    (tests/data/golden/lisa_*.safetensors: image, query, max_new_tokens in the metadata), through
 *    lisa_model_run on the CPU (the fp32 reference; its ids are also checked against the golden
 *    ids), on CUDA with F32 activations and F32 weights (the exact path) and on CUDA with BF16
 *    activations and weights (the production path). Per case: greedy tokens identical; every mask's
 *    IoU >= 0.99 (F32) or >= 0.97 (BF16, see below); the max |difference| of the prefill logits and
 *    of the final mask logits reported (and bounded: 1e-3 of the logit range for F32, 0.1 for BF16,
 *    which only a wrong kernel or graph exceeds).
 * 2. lisa_bf16_rocket_portrait (an emulated bf16 reference, tests/golden/README.md): the CUDA BF16
 *    run must produce its ids, and masks at IoU >= 0.95 with its masks (two bf16 pipelines that
 *    round differently, each at 0.978 from fp32).
 * 3. The engine on CUDA BF16: the golden cases submitted together (one prefill batch, batched
 *    decode steps) against each case run alone: same tokens, IoU >= 0.99; then the same three again
 *    on that engine, from its image cache and KV prefixes (issue #17): the same again.
 * 4. Real LISA-7B dimensions with synthetic weights (make-tiny `synthetic`, drawn on each backend):
 *    SAM ViT-H dims with 2 blocks (one windowed, one global) at 1024 px, CLIP-L/14 dims with 2 of 3
 *    layers run, LLaMA-7B dims (4096 wide, 32 heads, 11008, vocab 32004) with 2 layers, the
 *    projector and text_hidden_fcs at full size; the model is steered (lisa_tiny_steer) to answer
 *    "Sure, [SEG]." so that the mask stage runs; a long query makes the prompt 330+ positions, so
 *    prefill runs over 21+ KV pages and the decode steps read a paged cache past 330 tokens. CPU vs
 *    CUDA F32 vs CUDA BF16 as in 1, plus the SAM image embedding's relative error.
 *    --full instead builds the whole LISA-7B (32 LLaMA layers, 32 SAM blocks with global attention
 *    in 7/15/23/31, 24 CLIP layers) and compares CUDA BF16 against CUDA F32 only (a CPU run at that
 *    size takes minutes).
 * 5. The SAM mask decoder alone (on the tiny model and at the real decoder dims of 4), on random
 *    image embeddings and prompts: the fused decoder (TWOWAY_* ops) and the generic one (one op per
 *    term) against the CPU's, the fused one no less accurate than the generic one; the kernels of one
 *    captured step of each (CUDA graph nodes) reported; and the batched mask stage
 *    (lisa_mask_decoder: steps captured on their second run, replayed after) against itself run
 *    eagerly, bit for bit, over two rounds of three requests (1, 3 and 6 prompts: a step of 8 and a
 *    step of 2, one request split across them).
 *
 * Why 0.97 for BF16 on the tiny models: the bf16 reference itself (emulated in PyTorch, metadata
 * mask_iou_vs_fp32 of lisa_bf16_rocket_portrait) agrees with the fp32 masks at IoU 0.978; tiny
 * random-weight models have soft mask boundaries (86 pixels within 1e-3 of 0 in rocket_portrait),
 * so bf16 rounding flips more boundary pixels than a trained model would. docs/architecture.md's 0.99 is held
 * by the F32 path (every kernel and graph at fp32) and by the engine-vs-alone comparison.
 */
#include "check_util.h"

#include "loader/checkpoint.h"
#include "loader/image.h"
#include "models/lisa_model.h"
#include "models/tiny.h"
#include "runtime/engine.h"
#include "core/error.h"

#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IOU_F32            0.99
#define IOU_BF16           0.97
#define IOU_VS_BF16_GOLDEN 0.95
#define IOU_ENGINE         0.99
#define LOGIT_RTOL_F32     1e-3
#define LOGIT_RTOL_BF16    0.1

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- host copies of backend tensors (taps) ----------------------------------------------------- */

/* A host F32 copy of a tensor on backend `be` (any float dtype, any strides). Caller frees. */
static float *host_f32(lisa_backend *be, const lisa_tensor *t, int64_t *n_out) {
    const int64_t n = lisa_tensor_numel(t);
    int64_t span = n ? 1 : 0;
    for (int i = 0; n && i < t->n_dims; i++)
        span += (t->shape[i] - 1) * t->stride[i];
    const size_t es = lisa_dtype_size(t->dtype);
    unsigned char *stage = malloc((size_t)span * es + 16);
    float *out = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!stage || !out || (span && be->download(be, stage, t->data, (size_t)span * es) != LISA_OK)) {
        free(stage), free(out);
        return NULL;
    }
    lisa_tensor v = *t;
    v.data = stage, v.device = LISA_DEVICE_CPU, v.owner = false;
    int64_t idx[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        out[i] = (float)lisa_tensor_get(&v, idx);
        for (int d = t->n_dims - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
    free(stage);
    *n_out = n;
    return out;
}

#define MAX_TAPS 6
/* Owns v (malloc) until run_free. */
typedef struct tap_rec {
    const char *name;
    float *v; /* the last tensor tapped under this name (host F32), owned */
    int64_t n;
} tap_rec;

/* One model run: owns its result and tap copies until run_free; borrows the backend. */
typedef struct run_out {
    lisa_backend *be;
    tap_rec taps[MAX_TAPS];
    int n_taps;
    lisa_result *r;
    lisa_status s;
    char err[400]; /* the failure's message (lisa_last_error right after it) */
    double ms;
} run_out;

static const char *const tap_names[] = {"prefill_logits_last", "sam_img_emb", "lowres_logits", "pred_emb"};

static void tap_cb(void *ctx, const char *name, const lisa_tensor *t) {
    run_out *o = ctx;
    for (size_t k = 0; k < sizeof tap_names / sizeof *tap_names; k++) {
        if (strcmp(name, tap_names[k]) != 0) continue;
        tap_rec *rec = NULL;
        for (int i = 0; i < o->n_taps && !rec; i++)
            if (!strcmp(o->taps[i].name, name)) rec = &o->taps[i];
        if (!rec && o->n_taps < MAX_TAPS) {
            rec = &o->taps[o->n_taps++];
            rec->name = tap_names[k];
        }
        if (!rec) return;
        free(rec->v);
        rec->v = host_f32(o->be, t, &rec->n);
    }
}

static const tap_rec *find_tap(const run_out *o, const char *name) {
    for (int i = 0; i < o->n_taps; i++)
        if (!strcmp(o->taps[i].name, name) && o->taps[i].v) return &o->taps[i];
    return NULL;
}

static void run_free(run_out *o) {
    for (int i = 0; i < o->n_taps; i++)
        free(o->taps[i].v);
    lisa_result_free(o->r);
    memset(o, 0, sizeof *o);
}

/* One request through lisa_model_run, with taps (the engine then runs every step eagerly) or without
 * (on CUDA its decode steps are then captured into CUDA graphs and replayed, runtime/engine.c). */
static void run_model_ex(run_out *o, lisa_model *m, const lisa_bitmap *img, const char *query, int32_t max_new,
                         bool taps) {
    memset(o, 0, sizeof *o);
    o->be = m->be;
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = max_new;
    sp.keep_logits = true;
    lisa_run_hooks hooks = {.tap = tap_cb, .ctx = o};
    const double t0 = now_ms();
    lisa_clear_error();
    o->s = lisa_model_run(m, img->data, img->h, img->w, query, &sp, taps ? &hooks : NULL, &o->r);
    if (o->s == LISA_OK && m->be->synchronize) o->s = m->be->synchronize(m->be);
    if (o->s != LISA_OK) snprintf(o->err, sizeof o->err, "%s: %s", lisa_status_name(o->s), lisa_last_error());
    o->ms = now_ms() - t0;
}

static void run_model(run_out *o, lisa_model *m, const lisa_bitmap *img, const char *query, int32_t max_new) {
    run_model_ex(o, m, img, query, max_new, true);
}

/* ---- comparisons ---------------------------------------------------------------------------------- */

static double iou(const uint8_t *a, const uint8_t *b, size_t n) {
    size_t inter = 0, uni = 0;
    for (size_t i = 0; i < n; i++) {
        inter += a[i] && b[i];
        uni += a[i] || b[i];
    }
    return uni ? (double)inter / (double)uni : 1.0;
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *max_ref) {
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = isfinite(a[i]) ? fabs((double)a[i] - b[i]) : INFINITY;
        if (e > d || isnan(e)) d = isnan(e) ? INFINITY : e;
        if (fabs(b[i]) > r) r = fabs(b[i]);
    }
    *max_ref = r;
    return d;
}

static bool same_tokens(const lisa_result *a, const lisa_result *b, char *why, size_t cap) {
    const int32_t na = lisa_result_n_tokens(a), nb = lisa_result_n_tokens(b);
    for (int32_t i = 0; i < na && i < nb; i++)
        if (lisa_result_tokens(a)[i] != lisa_result_tokens(b)[i]) {
            snprintf(why, cap, "token %d: %d vs %d (reference)", i, lisa_result_tokens(a)[i], lisa_result_tokens(b)[i]);
            return false;
        }
    if (na != nb) {
        snprintf(why, cap, "%d tokens vs %d (reference)", na, nb);
        return false;
    }
    snprintf(why, cap, "%d tokens", na);
    return true;
}

/* Records the comparison of `got` against the reference run `ref`: tokens, masks (IoU >= iou_min
 * per mask), prefill logits and final mask logits (max |diff| <= rtol·max|ref|), and the relative
 * error of the SAM embedding and of the prompt embeddings when tapped (<= emb_rtol; < 0: report). */
static void compare_runs(ck_ctx *c, const char *name, const char *dtype, const run_out *got, const run_out *ref,
                         double iou_min, double logit_rtol, double emb_rtol) {
    char nm[112], why[160];
    if (got->s != LISA_OK || ref->s != LISA_OK) {
        snprintf(nm, sizeof nm, "%s", name);
        ck_record(c, "e2e", nm, dtype, 1, NAN, 0, -1, "%s failed: %s", got->s != LISA_OK ? "this run" : "the reference",
                  got->s != LISA_OK ? got->err : ref->err);
        return;
    }
    snprintf(nm, sizeof nm, "%s: tokens", name);
    bool ok = same_tokens(got->r, ref->r, why, sizeof why);
    ck_record(c, "e2e", nm, dtype, ok ? 0 : 1, ok ? 0 : 1, 0, -1, "%s; %.0f ms (reference %.0f ms)", why, got->ms,
              ref->ms);
    /* masks */
    const int32_t nm_g = lisa_result_n_masks(got->r), nm_r = lisa_result_n_masks(ref->r);
    snprintf(nm, sizeof nm, "%s: masks", name);
    if (nm_g != nm_r) {
        ck_record(c, "e2e", nm, dtype, 1, NAN, 1 - iou_min, -1, "%d masks vs %d (reference)", nm_g, nm_r);
    } else if (nm_r > 0) {
        int32_t h, w;
        lisa_result_mask(ref->r, 0, &h, &w);
        double min_iou = 1, dl = 0, rl = 0;
        for (int32_t i = 0; i < nm_r; i++) {
            const double v =
                iou(lisa_result_mask(got->r, i, NULL, NULL), lisa_result_mask(ref->r, i, NULL, NULL), (size_t)h * w);
            if (v < min_iou) min_iou = v;
            double r;
            const double d = max_abs_diff(lisa_result_mask_logits(got->r, i), lisa_result_mask_logits(ref->r, i),
                                          (int64_t)h * w, &r);
            if (d > dl) dl = d;
            if (r > rl) rl = r;
        }
        ok = min_iou >= iou_min && dl <= logit_rtol * rl;
        ck_record(c, "e2e", nm, dtype, ok ? 0 : 1, 1 - min_iou, 1 - iou_min, -1,
                  "IoU min %.5f over %d mask%s (need >= %.2f); mask logits max|diff| %.3g of max %.3g", min_iou, nm_r,
                  nm_r == 1 ? "" : "s", iou_min, dl, rl);
    } else {
        ck_record(c, "e2e", nm, dtype, 0, 0, 0, -1, "no [SEG], no mask (as the reference)");
    }
    /* prefill logits (the first generated token's) */
    const tap_rec *a = find_tap(got, "prefill_logits_last"), *b = find_tap(ref, "prefill_logits_last");
    if (a && b && a->n == b->n) {
        double r, d = max_abs_diff(a->v, b->v, a->n, &r);
        snprintf(nm, sizeof nm, "%s: prefill logits", name);
        ck_record(c, "e2e", nm, dtype, d <= logit_rtol * r ? 0 : 1, d, logit_rtol * r, -1, "max|logit| %.3g over %lld",
                  r, (long long)a->n);
    }
    const char *rel[2] = {"sam_img_emb", "pred_emb"};
    for (int k = 0; k < 2 && emb_rtol != 0; k++) {
        a = find_tap(got, rel[k]), b = find_tap(ref, rel[k]);
        if (!a || !b || a->n != b->n) continue;
        double r, d = max_abs_diff(a->v, b->v, a->n, &r);
        snprintf(nm, sizeof nm, "%s: %s", name, rel[k]);
        const double relerr = r > 0 ? d / r : d;
        ck_record(c, "e2e", nm, dtype, emb_rtol < 0 || relerr <= emb_rtol ? 0 : 1, relerr,
                  emb_rtol < 0 ? NAN : emb_rtol, -1, "max|diff| / max|ref| (max|ref| %.3g)", r);
    }
}

/* ---- models ------------------------------------------------------------------------------------- */

static lisa_model *load_model(ck_ctx *c, lisa_backend *be, const char *dir, const char *clip, lisa_dtype act,
                              const char *what) {
    lisa_model_params mp = lisa_model_default_params();
    mp.vision_tower = clip;
    lisa_model *m = NULL;
    const double t0 = now_ms();
    lisa_clear_error();
    lisa_status s = lisa_model_load_precision(dir, &mp, be, act, &m);
    if (s != LISA_OK) {
        ck_record(c, "e2e", what, lisa_dtype_name(act), 1, NAN, 0, -1, "load %s: %s %s", dir, lisa_status_name(s),
                  lisa_last_error());
        return NULL;
    }
    printf("      loaded %s (%s activations) on %s in %.1f s\n", what, lisa_dtype_name(act), be->name,
           (now_ms() - t0) / 1e3);
    return m;
}

static bool load_image(ck_ctx *c, lisa_bitmap *img, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/images/%s", c->data_dir, name);
    if (lisa_image_load(img, path, NULL) != LISA_OK) {
        ck_record(c, "e2e", name, "-", 1, NAN, 0, -1, "image: %s", lisa_last_error());
        return false;
    }
    return true;
}

static void mask_decoder_checks(ck_ctx *c, lisa_model *mc, lisa_model *mg, const char *label);

/* ---- 1-3: the tiny LISA on the golden cases ------------------------------------------------------ */

static const char *const golden_cases[3] = {"lisa_chelsea_tiny", "lisa_rocket_portrait", "lisa_chelsea"};

/* Owns the golden file, the image and the three runs until the end of tiny_models. */
typedef struct golden_case {
    lisa_checkpoint *g;
    lisa_bitmap img;
    const char *query;
    int32_t max_new;
    run_out cpu, f32, bf16;
} golden_case;

static void tiny_models(ck_ctx *c) {
    char dir[4200], clip[4200];
    snprintf(dir, sizeof dir, "%s/tiny-lisa", c->data_dir);
    snprintf(clip, sizeof clip, "%s/tiny-clip", c->data_dir);
    if (!ck_selected(c, "e2e", "tiny")) return;
    lisa_model *mc = load_model(c, c->cpu, dir, clip, LISA_DTYPE_F32, "tiny LISA (cpu)");
    lisa_model *m32 = load_model(c, c->gpu, dir, clip, LISA_DTYPE_F32, "tiny LISA (gpu F32)");
    lisa_model *m16 = c->self_test ? NULL : load_model(c, c->gpu, dir, clip, LISA_DTYPE_BF16, "tiny LISA (gpu BF16)");
    if (!mc || !m32 || (!m16 && !c->self_test)) goto done;
    golden_case gc[3];
    memset(gc, 0, sizeof gc);
    for (int k = 0; k < 3; k++) {
        golden_case *g = &gc[k];
        char path[4300];
        snprintf(path, sizeof path, "%s/golden/%s.safetensors", c->data_dir, golden_cases[k]);
        if (lisa_checkpoint_open(&g->g, path) != LISA_OK) {
            ck_record(c, "e2e", golden_cases[k], "-", 1, NAN, 0, -1, "golden: %s", lisa_last_error());
            continue;
        }
        const char *image = lisa_checkpoint_metadata(g->g, "image"),
                   *mx = lisa_checkpoint_metadata(g->g, "max_new_tokens");
        g->query = lisa_checkpoint_metadata(g->g, "query");
        g->max_new = mx ? atoi(mx) : 16;
        if (!image || !g->query || !load_image(c, &g->img, image)) continue;
        char nm[112];
        run_model(&g->cpu, mc, &g->img, g->query, g->max_new);
        /* the CPU reference against the PyTorch ids (as tests/test_lisa_parity.c, which CI runs) */
        lisa_tensor ids;
        bool ok = g->cpu.s == LISA_OK && lisa_checkpoint_get(g->g, "gen_ids", &ids) == LISA_OK &&
                  ids.shape[0] == lisa_result_n_tokens(g->cpu.r);
        for (int64_t i = 0; ok && i < ids.shape[0]; i++)
            ok = ((const int64_t *)ids.data)[i] == lisa_result_tokens(g->cpu.r)[i];
        snprintf(nm, sizeof nm, "%s: cpu ids = golden ids", golden_cases[k]);
        ck_record(c, "e2e", nm, "F32", ok ? 0 : 1, 0, 0, -1, "%s %.0f ms", g->cpu.err, g->cpu.ms);
        run_model(&g->f32, m32, &g->img, g->query, g->max_new);
        snprintf(nm, sizeof nm, "tiny %s gpu F32 vs cpu", golden_cases[k] + 5);
        compare_runs(c, nm, "F32", &g->f32, &g->cpu, IOU_F32, LOGIT_RTOL_F32, 1e-3);
        if (!m16) continue;
        run_model(&g->bf16, m16, &g->img, g->query, g->max_new);
        snprintf(nm, sizeof nm, "tiny %s gpu BF16 vs cpu", golden_cases[k] + 5);
        compare_runs(c, nm, "BF16", &g->bf16, &g->cpu, IOU_BF16, LOGIT_RTOL_BF16, 0.05);
    }
    /* 2: the emulated bf16 reference of rocket_portrait */
    if (m16 && gc[1].bf16.s == LISA_OK && gc[1].bf16.r) {
        char path[4300];
        snprintf(path, sizeof path, "%s/golden/lisa_bf16_rocket_portrait.safetensors", c->data_dir);
        lisa_checkpoint *gb = NULL;
        lisa_tensor ids, mask;
        if (lisa_checkpoint_open(&gb, path) != LISA_OK || lisa_checkpoint_get(gb, "gen_ids", &ids) != LISA_OK ||
            lisa_checkpoint_get(gb, "mask", &mask) != LISA_OK) {
            ck_record(c, "e2e", "bf16 golden", "BF16", 1, NAN, 0, -1, "%s", lisa_last_error());
        } else {
            const lisa_result *r = gc[1].bf16.r;
            bool ok = ids.shape[0] == lisa_result_n_tokens(r);
            for (int64_t i = 0; ok && i < ids.shape[0]; i++)
                ok = ((const int64_t *)ids.data)[i] == lisa_result_tokens(r)[i];
            ck_record(c, "e2e", "tiny rocket_portrait gpu BF16 vs bf16 golden: ids", "BF16", ok ? 0 : 1, 0, 0, -1,
                      "emulated bf16 reference (%s)", lisa_checkpoint_metadata(gb, "precision"));
            const int32_t n = lisa_result_n_masks(r);
            ok = mask.n_dims == 3 && mask.shape[0] == n;
            double min_iou = ok ? 1 : 0;
            int32_t h = 0, w = 0;
            if (n > 0) lisa_result_mask(r, 0, &h, &w);
            ok = ok && (n == 0 || (mask.shape[1] == h && mask.shape[2] == w));
            for (int32_t i = 0; ok && i < n; i++) {
                const double v = iou(lisa_result_mask(r, i, NULL, NULL), (const uint8_t *)mask.data + (size_t)i * h * w,
                                     (size_t)h * w);
                if (v < min_iou) min_iou = v;
            }
            ck_record(c, "e2e", "tiny rocket_portrait gpu BF16 vs bf16 golden: masks", "BF16",
                      ok && min_iou >= IOU_VS_BF16_GOLDEN ? 0 : 1, 1 - min_iou, 1 - IOU_VS_BF16_GOLDEN, -1,
                      "IoU min %.5f (the golden's own IoU vs fp32: %s)", min_iou,
                      lisa_checkpoint_metadata(gb, "mask_iou_vs_fp32"));
        }
        lisa_checkpoint_close(gb);
    }
    /* 5: the mask decoder alone */
    mask_decoder_checks(c, mc, m16 ? m16 : m32, "tiny decoder (dim 32)");
    /* 3: the engine on the GPU, the three cases together vs alone */
    lisa_model *me = m16 ? m16 : m32;
    run_out *alone[3];
    for (int k = 0; k < 3; k++)
        alone[k] = m16 ? &gc[k].bf16 : &gc[k].f32;
    if (ck_selected(c, "e2e", "engine")) {
        lisa_engine_params ep = lisa_engine_default_params();
        ep.max_batch = 4, ep.max_images = 4, ep.background = false, ep.n_workers = 3;
        lisa_engine *e = NULL;
        uint64_t id[3] = {0, 0, 0};
        const char *dt = lisa_dtype_name(me->act_dtype);
        lisa_status s = lisa_engine_create(me, &ep, &e);
        for (int k = 0; s == LISA_OK && k < 3; k++) {
            lisa_request rq = lisa_request_default();
            rq.rgb = gc[k].img.data, rq.height = gc[k].img.h, rq.width = gc[k].img.w, rq.query = gc[k].query;
            rq.params.max_new_tokens = gc[k].max_new, rq.params.keep_logits = true;
            if (!rq.rgb || !rq.query)
                s = lisa_fail(LISA_ERR_INVALID_ARG, "golden case %d missing", k);
            else
                s = lisa_engine_submit(e, &rq, &id[k]);
        }
        /* let the workers prepare all three, so that one step admits them together */
        for (int spin = 0; s == LISA_OK && spin < 2000; spin++) {
            lisa_engine_stats st = lisa_engine_get_stats(e);
            if (st.ready >= 3) break;
            usleep(5000);
        }
        int max_batch = 0;
        for (int k = 0; s == LISA_OK && k < 3; k++) {
            run_out got;
            memset(&got, 0, sizeof got);
            s = lisa_engine_wait(e, id[k], &got.r);
            if (s != LISA_OK) break;
            got.s = lisa_result_status(got.r);
            snprintf(got.err, sizeof got.err, "%s", lisa_result_error(got.r));
            lisa_engine_stats st = lisa_engine_get_stats(e);
            if (st.last_batch > max_batch) max_batch = st.last_batch;
            char nm[112];
            snprintf(nm, sizeof nm, "engine batched vs alone, %s", golden_cases[k] + 5);
            compare_runs(c, nm, dt, &got, alone[k], IOU_ENGINE, c->self_test ? 0 : LOGIT_RTOL_BF16, 0);
            run_free(&got);
        }
        if (s != LISA_OK)
            ck_record(c, "e2e", "engine batched vs alone", dt, 1, NAN, 0, -1, "%s", lisa_last_error());
        else
            printf("      engine: the three requests shared decode steps (largest decode batch seen %d)\n", max_batch);
        /* 3b: the three again on the same engine: their images' cached embeddings and KV prefixes
         * through the image (a copy-on-write page each), only the query tokens prefilled (issue #17) */
        const lisa_engine_stats st0 = lisa_engine_get_stats(e);
        for (int k = 0; s == LISA_OK && k < 3; k++) {
            lisa_request rq = lisa_request_default();
            rq.rgb = gc[k].img.data, rq.height = gc[k].img.h, rq.width = gc[k].img.w, rq.query = gc[k].query;
            rq.params.max_new_tokens = gc[k].max_new, rq.params.keep_logits = true;
            s = lisa_engine_submit(e, &rq, &id[k]);
        }
        for (int k = 0; s == LISA_OK && k < 3; k++) {
            run_out got;
            memset(&got, 0, sizeof got);
            s = lisa_engine_wait(e, id[k], &got.r);
            if (s != LISA_OK) break;
            got.s = lisa_result_status(got.r);
            snprintf(got.err, sizeof got.err, "%s", lisa_result_error(got.r));
            char nm[112];
            snprintf(nm, sizeof nm, "engine reusing its caches vs alone, %s", golden_cases[k] + 5);
            compare_runs(c, nm, dt, &got, alone[k], IOU_ENGINE, c->self_test ? 0 : LOGIT_RTOL_BF16, 0);
            run_free(&got);
        }
        if (s == LISA_OK) {
            const lisa_engine_stats st1 = lisa_engine_get_stats(e);
            const int64_t hits = st1.image_cache_hits - st0.image_cache_hits,
                          kv = st1.kv_prefix_hits - st0.kv_prefix_hits;
            ck_record(c, "e2e", "engine reuse: cache hits", dt, hits == 3 && kv == 3 ? 0 : 1, (double)(3 - kv), 0, -1,
                      "%lld image-cache hits, %lld KV-prefix hits of 3 (need 3 and 3)", (long long)hits, (long long)kv);
        } else {
            ck_record(c, "e2e", "engine reusing its caches vs alone", dt, 1, NAN, 0, -1, "%s", lisa_last_error());
        }
        lisa_engine_free(e);
    }
    for (int k = 0; k < 3; k++) {
        run_free(&gc[k].cpu), run_free(&gc[k].f32), run_free(&gc[k].bf16);
        lisa_bitmap_free(&gc[k].img);
        lisa_checkpoint_close(gc[k].g);
    }
done:
    lisa_model_free(m16);
    lisa_model_free(m32);
    lisa_model_free(mc);
}

/* ---- 5: the SAM mask decoder alone ------------------------------------------------------------------ */

/* A device tensor of dtype dt holding host F32 h's values (converted by the COPY op). The caller
 * frees t->data with be->mem_free. */
static lisa_status dev_copy(lisa_backend *be, const lisa_tensor *h, lisa_dtype dt, lisa_tensor *t) {
    *t = lisa_tensor_view(NULL, dt, h->n_dims, h->shape);
    void *stage = NULL;
    LISA_TRY(be->mem_alloc(be, lisa_tensor_nbytes(h), &stage));
    lisa_status s = be->upload(be, stage, h->data, lisa_tensor_nbytes(h));
    if (s == LISA_OK) s = be->mem_alloc(be, lisa_tensor_nbytes(t), &t->data);
    lisa_tensor src = lisa_tensor_view(stage, LISA_DTYPE_F32, h->n_dims, h->shape);
    src.device = t->device = be->device, src.device_id = t->device_id = be->device_id;
    if (s == LISA_OK) s = lisa_op_copy(be, t, &src);
    if (s == LISA_OK) s = be->synchronize(be);
    be->mem_free(be, stage);
    return s;
}

/* One decoder step on device inputs; low (host F32 [n, 1, 4G, 4G]) downloaded unless its data is NULL. */
typedef struct dec_job {
    lisa_model *m;
    lisa_tensor emb, sparse; /* device, the model's activation dtype */
    lisa_tensor low;
    bool unfused;
} dec_job;

static void dec_graph(lisa_graph *g, void *ctx) {
    dec_job *j = ctx;
    T *low, *iou;
    const lisa_sam_decode_opts o = {.unfused = j->unfused};
    lisa_sam_decode_ex(g, j->m->sam, lisa_g_wrap(g, &j->emb), lisa_g_wrap(g, &j->sparse), &low, &iou, &o);
    if (j->low.data) lisa_g_download(g, &j->low, low);
}

/* Runs fn in an arena of the measured size; with `nodes`, captures the run instead and returns its
 * CUDA graph's node count there (the step's launches). */
static lisa_status run_sized(lisa_model *m, lisa_graph_fn fn, void *ctx, int64_t *nodes) {
    lisa_backend *be = m->be;
    size_t a = 0, mb = 0;
    LISA_TRY(lisa_graph_measure(be, m->act_dtype, fn, ctx, &a, &mb));
    void *mem = NULL;
    LISA_TRY(be->mem_alloc(be, a ? a : 1, &mem));
    lisa_arena act, meta;
    lisa_arena_init_external(&act, "check decoder", mem, a);
    lisa_status s = lisa_arena_init(&meta, "check decoder descriptors", mb);
    if (s == LISA_OK) {
        lisa_graph g;
        lisa_graph_init(&g, be, &act, &meta, m->act_dtype);
        if (nodes) s = be->graph_capture_begin(be, 0);
        if (s == LISA_OK) fn(&g, ctx);
        if (s == LISA_OK) s = g.status;
        if (nodes) {
            lisa_backend_graph *gr = NULL;
            if (s == LISA_OK) s = be->graph_capture_end(be, &gr);
            else be->graph_capture_abort(be);
            *nodes = s == LISA_OK ? lisa_cuda_graph_nodes(gr) : -1;
            if (gr) be->graph_free(be, gr);
        }
        if (s == LISA_OK) s = be->synchronize(be);
        lisa_arena_free(&meta);
    }
    be->mem_free(be, mem);
    return s;
}

/* max |a − ref| / max |ref| and the IoU of the masks (> 0) */
static void logit_errors(const lisa_tensor *a, const lisa_tensor *ref, double *rel, double *iou_out) {
    const float *x = a->data, *r = ref->data;
    double mref = 0;
    const double d = max_abs_diff(x, r, lisa_tensor_numel(a), &mref);
    size_t inter = 0, uni = 0;
    for (int64_t i = 0; i < lisa_tensor_numel(a); i++) {
        inter += x[i] > 0 && r[i] > 0;
        uni += x[i] > 0 || r[i] > 0;
    }
    *rel = mref > 0 ? d / mref : d;
    *iou_out = uni ? (double)inter / (double)uni : 1.0;
}

static void mask_decoder_checks(ck_ctx *c, lisa_model *mc, lisa_model *mg, const char *label) {
    if (!mg || !ck_selected(c, "mask_decoder", label)) return;
    const int64_t out = mg->cfg.out_dim, G = mg->sam->enc.grid, N = 3;
    const char *dt = lisa_dtype_name(mg->act_dtype);
    char nm[112];
    lisa_tensor emb_h = ck_host(LISA_DTYPE_F32, 4, (int64_t[]){1, out, G, G});
    lisa_tensor sp_h = ck_host(LISA_DTYPE_F32, 3, (int64_t[]){N, 1, out});
    ck_fill(c, &emb_h, -1, 1, false);
    ck_fill(c, &sp_h, -1, 1, false);
    dec_job j[3]; /* cpu reference, gpu fused, gpu generic */
    memset(j, 0, sizeof j);
    lisa_model *ms[3] = {mc, mg, mg};
    lisa_status s = LISA_OK;
    for (int k = 0; k < 3 && s == LISA_OK; k++) {
        if (!ms[k]) continue;
        j[k].m = ms[k], j[k].unfused = k == 2;
        s = dev_copy(ms[k]->be, &emb_h, ms[k]->act_dtype, &j[k].emb);
        if (s == LISA_OK) s = dev_copy(ms[k]->be, &sp_h, ms[k]->act_dtype, &j[k].sparse);
        j[k].low = ck_host(LISA_DTYPE_F32, 4, (int64_t[]){N, 1, 4 * G, 4 * G});
        if (s == LISA_OK) s = run_sized(ms[k], dec_graph, &j[k], NULL);
    }
    if (s != LISA_OK) {
        ck_record(c, "mask_decoder", label, dt, 1, NAN, 0, -1, "%s", lisa_last_error());
    } else if (mc) {
        double rel_f, iou_f, rel_g, iou_g;
        logit_errors(&j[1].low, &j[0].low, &rel_f, &iou_f);
        logit_errors(&j[2].low, &j[0].low, &rel_g, &iou_g);
        const double bound = fmax(1.25 * rel_g, mg->act_dtype == LISA_DTYPE_F32 ? 1e-3 : 5e-3);
        snprintf(nm, sizeof nm, "%s: fused vs cpu, no worse than generic", label);
        ck_record(c, "mask_decoder", nm, dt, rel_f <= bound && iou_f >= IOU_BF16 ? 0 : 1, rel_f, bound, rel_g,
                  "low-res logits: fused max|err| %.2e of the range (mask IoU %.4f), generic %.2e (IoU %.4f)", rel_f,
                  iou_f, rel_g, iou_g);
    }
    /* launches of one step: the nodes of its CUDA graph */
    if (s == LISA_OK && lisa_backend_can_capture(mg->be)) {
        int64_t nf = -1, ng = -1;
        for (int k = 1; k < 3; k++) {
            lisa_tensor keep = j[k].low;
            j[k].low.data = NULL; /* no download in the captured step */
            s = run_sized(mg, dec_graph, &j[k], k == 1 ? &nf : &ng);
            j[k].low = keep;
            if (s != LISA_OK) break;
        }
        snprintf(nm, sizeof nm, "%s: kernels per step (%lld prompts)", label, (long long)N);
        ck_record(c, "mask_decoder", nm, dt, s == LISA_OK ? 0 : 1, (double)nf, (double)ng, -1,
                  "captured step: %lld nodes fused, %lld generic%s%s", (long long)nf, (long long)ng,
                  s == LISA_OK ? "" : ": ", s == LISA_OK ? "" : lisa_last_error());
    }
    for (int k = 0; k < 3; k++) {
        if (j[k].emb.data) ms[k]->be->mem_free(ms[k]->be, j[k].emb.data);
        if (j[k].sparse.data) ms[k]->be->mem_free(ms[k]->be, j[k].sparse.data);
        lisa_tensor_free(&j[k].low);
    }
    lisa_tensor_free(&emb_h);
    lisa_tensor_free(&sp_h);

    /* the batched mask stage, captured vs eager: three requests of 1, 3 and 6 prompts */
    const bool capture = lisa_backend_can_capture(mg->be);
    lisa_mask_decoder *dcap = NULL, *deag = NULL;
    s = lisa_mask_decoder_create(&dcap, mg, mg->be, capture);
    if (s == LISA_OK) s = lisa_mask_decoder_create(&deag, mg, mg->be, false);
    const int32_t n_seg[3] = {1, 3, 6};
    const int64_t C = mg->cfg.llm.hidden;
    lisa_prepared pr[3];
    lisa_tensor embs[3], seg[3];
    memset(pr, 0, sizeof pr), memset(embs, 0, sizeof embs), memset(seg, 0, sizeof seg);
    for (int i = 0; i < 3 && s == LISA_OK; i++) {
        pr[i].H0 = 300 + 50 * i, pr[i].W0 = 400 - 30 * i, pr[i].keep_logits = true;
        const int32_t big = pr[i].H0 > pr[i].W0 ? pr[i].H0 : pr[i].W0;
        pr[i].h_r = (int32_t)(1024.0 * pr[i].H0 / big + 0.5), pr[i].w_r = (int32_t)(1024.0 * pr[i].W0 / big + 0.5);
        lisa_tensor eh = ck_host(LISA_DTYPE_F32, 4, (int64_t[]){1, out, G, G});
        ck_fill(c, &eh, -1, 1, false);
        s = dev_copy(mg->be, &eh, mg->act_dtype, &embs[i]);
        lisa_tensor_free(&eh);
        seg[i] = ck_host(LISA_DTYPE_F32, 2, (int64_t[]){n_seg[i], C});
        ck_fill(c, &seg[i], -2, 2, false);
    }
    lisa_result *ref[3] = {NULL, NULL, NULL};
    bool same = s == LISA_OK;
    int64_t rounds = 0;
    for (int round = 0; round < 4 && s == LISA_OK; round++) { /* eager, captured, replayed, replayed */
        lisa_mask_item items[3];
        for (int i = 0; i < 3; i++)
            items[i] = (lisa_mask_item){.pr = &pr[i], .emb = &embs[i], .seg_hidden = seg[i].data, .n_seg = n_seg[i],
                                        .res = lisa_result_new()};
        s = lisa_mask_decoder_run(round == 0 ? deag : dcap, items, 3);
        for (int i = 0; i < 3; i++) {
            if (s == LISA_OK && items[i].status != LISA_OK) s = items[i].status;
            if (s != LISA_OK) {
                lisa_result_free(items[i].res);
                continue;
            }
            if (round == 0) {
                ref[i] = items[i].res;
                continue;
            }
            const size_t n = (size_t)n_seg[i] * pr[i].H0 * pr[i].W0;
            same = same && memcmp(items[i].res->logits, ref[i]->logits, n * sizeof(float)) == 0 &&
                   memcmp(items[i].res->scores, ref[i]->scores, (size_t)n_seg[i] * sizeof(float)) == 0;
            lisa_result_free(items[i].res);
        }
        rounds += s == LISA_OK;
    }
    int64_t eager = 0, captured = 0, replayed = 0;
    if (dcap) lisa_mask_decoder_stats(dcap, &eager, &captured, &replayed);
    snprintf(nm, sizeof nm, "%s: batched mask stage %s vs eager, bitwise", label, capture ? "captured" : "(no capture)");
    ck_record(c, "mask_decoder", nm, dt, s == LISA_OK && same && rounds == 4 && (!capture || captured == 2) ? 0 : 1, same ? 0 : 1,
              0, -1, "%s; steps: %lld eager, %lld captured, %lld replayed%s%s", same ? "identical" : "DIFFERENT",
              (long long)eager, (long long)captured, (long long)replayed, s == LISA_OK ? "" : "; ",
              s == LISA_OK ? "" : lisa_last_error());
    for (int i = 0; i < 3; i++) {
        lisa_result_free(ref[i]);
        if (embs[i].data) mg->be->mem_free(mg->be, embs[i].data);
        lisa_tensor_free(&seg[i]);
    }
    lisa_mask_decoder_free(dcap);
    lisa_mask_decoder_free(deag);
}

/* ---- 4: real LISA-7B dimensions, synthetic weights ------------------------------------------------ */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* The long query: with the llava_v1 template and 256 image positions the prompt is 330+ positions. */
static const char *const long_query =
    "Please look very carefully at every part of this photograph, from the upper left corner to the lower right "
    "corner, and then segment the single object that a person standing in the room would most likely pick up first "
    "if they wanted to clean the table quickly before their guests arrive for dinner this evening.";

static void synthetic_image(lisa_bitmap *img, int32_t h, int32_t w) {
    img->h = h, img->w = w, img->c = 3;
    img->data = malloc((size_t)h * w * 3);
    uint64_t s = 12345;
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                const int v = (k == 0   ? x * 255 / w
                               : k == 1 ? y * 255 / h
                                        : ((x / 40 + y / 40) % 2) * 180) +
                              (int)((s >> 59) & 15) - 8;
                img->data[((size_t)y * w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static void real_dims(ck_ctx *c, bool full) {
    const char *label = full ? "LISA-7B (full depth)" : "LISA-7B dims (2 layers)";
    if (!ck_selected(c, "e2e", full ? "full" : "real dims")) return;
    const char *tmp = getenv("TMPDIR");
    char dir[4200], model[4300], clip[4400], sp[4300];
    snprintf(dir, sizeof dir, "%s/lisa-check-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        ck_record(c, "e2e", label, "-", 1, NAN, 0, -1, "mkdtemp %s failed", dir);
        return;
    }
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(clip, sizeof clip, "%s/clip-vit-large-patch14", model);
    snprintf(sp, sizeof sp, "%s/tokenizer/llama-spm.model", c->data_dir);
    lisa_tiny_params p = lisa_tiny_default_params();
    p.seed = 11, p.synthetic = true, p.sp_model = sp, p.answer = "";
    p.llm_hidden = 4096, p.llm_heads = 32, p.llm_kv_heads = 32, p.llm_inter = 11008, p.llm_max_pos = 2048;
    p.llm_layers = full ? 32 : 2;
    p.clip_hidden = 1024, p.clip_heads = 16, p.clip_mlp = 4096, p.clip_layers = full ? 24 : 3;
    p.sam_embed = 1280, p.sam_heads = 16, p.sam_window = 14, p.sam_depth = full ? 32 : 2, p.out_dim = 256;
    if (full) {
        const int32_t gl[4] = {7, 15, 23, 31};
        memcpy(p.sam_global, gl, sizeof gl);
        p.n_sam_global = 4;
    } else {
        p.sam_global[0] = 1, p.n_sam_global = 1;
    }
    lisa_tiny_report rep;
    lisa_status s = lisa_make_tiny(&p, model, &rep);
    if (s != LISA_OK) {
        ck_record(c, "e2e", label, "-", 1, NAN, 0, -1, "make-tiny: %s", lisa_last_error());
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return;
    }
    printf("      %s: synthetic checkpoint of %.2f GB (a hole) in %s\n", label, (double)rep.total_bytes / 1e9, dir);
    const bool with_cpu = !full;
    lisa_model *mc = with_cpu ? load_model(c, c->cpu, model, clip, LISA_DTYPE_F32, label) : NULL;
    lisa_model *m32 = load_model(c, c->gpu, model, clip, LISA_DTYPE_F32, label);
    lisa_model *m16 = c->self_test ? NULL : load_model(c, c->gpu, model, clip, LISA_DTYPE_BF16, label);
    lisa_model *ms[3] = {mc, m32, m16};
    const char *who[3] = {"cpu", "gpu F32", "gpu BF16"};
    run_out runs[3];
    memset(runs, 0, sizeof runs);
    lisa_bitmap img;
    synthetic_image(&img, 480, 640);
    for (int k = 0; k < 3; k++) {
        if (!ms[k]) continue;
        float margin = 0;
        int32_t ids[LISA_TINY_MAX_ANSWER + 1], n_ids = 0;
        s = lisa_tiny_steer(ms[k], "Sure, [SEG].", &margin, ids, &n_ids);
        if (s != LISA_OK) {
            ck_record(c, "e2e", label, who[k], 1, NAN, 0, -1, "steer: %s", lisa_last_error());
            continue;
        }
        run_model(&runs[k], ms[k], &img, long_query, 8);
        const int32_t L0 = runs[k].r ? lisa_result_timings(runs[k].r).n_prompt_tokens : 0;
        printf("      %s on %s: %.0f ms, prompt %d positions, %d tokens, %d masks (steering margin %.1f)\n", label,
               who[k], runs[k].ms, L0, runs[k].r ? lisa_result_n_tokens(runs[k].r) : -1,
               runs[k].r ? lisa_result_n_masks(runs[k].r) : -1, margin);
        if (runs[k].s != LISA_OK) printf("      (%s)\n", runs[k].err);
        char nm[112];
        snprintf(nm, sizeof nm, "%s %s: steered answer", full ? "7B" : "7B dims", who[k]);
        bool ok = runs[k].s == LISA_OK && lisa_result_n_tokens(runs[k].r) == n_ids && L0 >= 330;
        for (int32_t i = 0; ok && i < n_ids; i++)
            ok = lisa_result_tokens(runs[k].r)[i] == ids[i];
        ck_record(c, "e2e", nm, k == 2 ? "BF16" : "F32", ok ? 0 : 1, 0, 0, -1,
                  "%d of %d planned tokens, prompt %d positions", runs[k].r ? lisa_result_n_tokens(runs[k].r) : 0,
                  n_ids, L0);
    }
    const run_out *ref = with_cpu ? &runs[0] : &runs[1];
    char nm[112];
    if (with_cpu && m32) {
        snprintf(nm, sizeof nm, "7B dims gpu F32 vs cpu");
        compare_runs(c, nm, "F32", &runs[1], ref, IOU_F32, LOGIT_RTOL_F32, 1e-3);
    }
    if (m16) {
        snprintf(nm, sizeof nm, "%s gpu BF16 vs %s", full ? "7B" : "7B dims", with_cpu ? "cpu" : "gpu F32");
        compare_runs(c, nm, "BF16", &runs[2], ref, IOU_BF16, LOGIT_RTOL_BF16, full ? 0.15 : 0.05);
        /* the same request without taps: decode steps replayed from CUDA graphs (bit-identical
         * kernels and split points, so the expected difference is 0) */
        run_out plain;
        run_model_ex(&plain, m16, &img, long_query, 8, false);
        snprintf(nm, sizeof nm, "%s gpu BF16 CUDA-graph decode vs eager", full ? "7B" : "7B dims");
        compare_runs(c, nm, "BF16", &plain, &runs[2], IOU_ENGINE, 1e-3, 0);
        run_free(&plain);
    }
    if (!full) mask_decoder_checks(c, mc, m16 ? m16 : m32, "decoder at LISA dims (256)");
    for (int k = 0; k < 3; k++)
        run_free(&runs[k]);
    lisa_bitmap_free(&img);
    lisa_model_free(m16);
    lisa_model_free(m32);
    lisa_model_free(mc);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* True when the test data is there (else a FAIL naming the directory). */
static bool have_data(ck_ctx *c) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/tiny-lisa/config.json", c->data_dir);
    struct stat st;
    if (stat(probe, &st) != 0) {
        ck_record(c, "e2e", "models", "-", 1, NAN, 0, -1, "no test data at %s (pass --data DIR)", c->data_dir);
        return false;
    }
    return true;
}

void ck_cases_models_tiny(ck_ctx *c) {
    if (have_data(c)) tiny_models(c);
}

void ck_cases_models_real(ck_ctx *c) {
    if (!have_data(c)) return;
    if (!c->self_test || c->real_dims) real_dims(c, false);
    if (c->full) real_dims(c, true);
}
