/* models/sam_predict.c — SAM alone with text-embedding prompts (see sam_predict.h).
 * ref: LISA model/LISA.py evaluate (prompt_encoder(text_embeds=...), mask_decoder(multimask_output=
 *      False), postprocess_masks), segment_anything/predictor.py (SamPredictor's set_image/predict). */
#include "models/sam_predict.h"

#include "loader/checkpoint.h"
#include "core/clock.h"
#include "core/error.h"
#include "models/preprocess.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DECODER_CHUNK 8 /* prompts decoded together (bounds activation memory), as models/lisa_model.c */

struct lisa_sam_predictor {
    lisa_backend *be;
    lisa_checkpoint *ck;
    lisa_sam *sam;
    lisa_sam_preprocess_params pp;
    lisa_tensor emb; /* backend F32 [1, dim, G, G] (emb_mem) */
    void *emb_mem;
    bool has_image;
    int32_t h0, w0, h_r, w_r;
    /* per call */
    lisa_tensor px;      /* host F32 [1, 3, S, S] during set_image */
    lisa_tensor prompts; /* host F32 [n, 1, dim] view */
    int32_t chunk0, chunk_n;
    lisa_tensor logits, iou; /* host F32 [chunk, H0, W0], [chunk, 1] */
};

lisa_status lisa_sam_predictor_load(lisa_sam_predictor **out, const char *path, int32_t n_threads) {
    *out = NULL;
    lisa_sam_predictor *p = calloc(1, sizeof *p);
    if (!p) return lisa_fail(LISA_ERR_OOM, "out of memory");
    lisa_status s = lisa_backend_cpu_create(&p->be, 0, n_threads);
    if (s == LISA_OK) s = lisa_checkpoint_open(&p->ck, path);
    if (s == LISA_OK) s = lisa_sam_load(&p->sam, p->be, p->ck);
    if (s == LISA_OK) {
        const int64_t G = p->sam->enc.grid;
        p->pp = lisa_sam_preprocess_default_params();
        p->pp.target_size = p->sam->enc.img_size;
        p->emb = lisa_tensor_view(NULL, LISA_DTYPE_F32, 4, (int64_t[]){1, p->sam->dec.dim, G, G});
        s = p->be->mem_alloc(p->be, lisa_tensor_nbytes(&p->emb), &p->emb_mem);
        p->emb.data = p->emb_mem;
        p->emb.device = p->be->device;
        p->emb.device_id = p->be->device_id;
    }
    if (s != LISA_OK) {
        lisa_sam_predictor_free(p);
        return s;
    }
    *out = p;
    return LISA_OK;
}

void lisa_sam_predictor_free(lisa_sam_predictor *p) {
    if (!p) return;
    if (p->emb_mem) p->be->mem_free(p->be, p->emb_mem);
    lisa_sam_free(p->sam);
    lisa_checkpoint_close(p->ck);
    if (p->be) lisa_backend_free(p->be);
    free(p);
}

const lisa_sam *lisa_sam_predictor_model(const lisa_sam_predictor *p) { return p->sam; }

static void encode_graph(lisa_graph *g, void *ctx) {
    lisa_sam_predictor *p = ctx;
    lisa_g_copy_to(g, &p->emb, lisa_sam_encode(g, p->sam, lisa_g_upload(g, &p->px)));
}

lisa_status lisa_sam_predictor_set_image(lisa_sam_predictor *p, const uint8_t *rgb, int32_t h, int32_t w,
                                         lisa_sam_timings *t) {
    if (!rgb || h < 1 || w < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "image: no pixels (%d x %d)", w, h);
    p->has_image = false;
    const int32_t S = p->pp.target_size;
    const double t0 = lisa_clock_ms();
    LISA_TRY(lisa_tensor_alloc(&p->px, LISA_DTYPE_F32, 4, (int64_t[]){1, 3, S, S}));
    const size_t ws_n = lisa_sam_preprocess_workspace_size(&p->pp, h, w);
    void *ws = malloc(ws_n ? ws_n : 1);
    lisa_status s = ws ? lisa_sam_preprocess(&p->px, &p->h_r, &p->w_r, rgb, h, w, &p->pp, ws, ws_n)
                       : lisa_fail(LISA_ERR_OOM, "out of memory");
    free(ws);
    const double t1 = lisa_clock_ms();
    if (s == LISA_OK) s = lisa_graph_run_once(p->be, LISA_DTYPE_F32, encode_graph, p, NULL, NULL);
    if (s == LISA_OK) s = p->be->synchronize ? p->be->synchronize(p->be) : LISA_OK;
    lisa_tensor_free(&p->px);
    if (t) {
        t->preprocess_ms = t1 - t0;
        t->encoder_ms = lisa_clock_ms() - t1;
    }
    if (s != LISA_OK) return s;
    p->h0 = h;
    p->w0 = w;
    p->has_image = true;
    return LISA_OK;
}

static void decode_graph(lisa_graph *g, void *ctx) {
    lisa_sam_predictor *p = ctx;
    T *all = lisa_g_upload(g, &p->prompts);
    T *sparse = lisa_g_contiguous(g, lisa_g_narrow(g, all, 0, p->chunk0, p->chunk_n)); /* [chunk, 1, dim] */
    T *low, *iou;
    lisa_sam_decode(g, p->sam, &p->emb, sparse, &low, &iou);
    lisa_g_download(g, &p->logits, lisa_sam_postprocess(g, p->sam, low, p->h_r, p->w_r, p->h0, p->w0));
    lisa_g_download(g, &p->iou, iou);
}

void lisa_sam_masks_free(lisa_sam_masks *m) {
    if (!m) return;
    free(m->masks);
    free(m->scores);
    free(m->logits);
    memset(m, 0, sizeof *m);
}

lisa_status lisa_sam_predictor_predict(lisa_sam_masks *out, lisa_sam_predictor *p, const float *prompts, int32_t n,
                                       bool keep_logits) {
    memset(out, 0, sizeof *out);
    if (!p->has_image) return lisa_fail(LISA_ERR_INVALID_ARG, "SAM predict: no image set (call set_image first)");
    if (n < 1 || !prompts) return lisa_fail(LISA_ERR_INVALID_ARG, "SAM predict: no prompts (n = %d)", n);
    const int32_t D = p->sam->dec.dim;
    const size_t plane = (size_t)p->h0 * p->w0;
    out->n = n;
    out->h = p->h0;
    out->w = p->w0;
    out->masks = malloc((size_t)n * plane);
    out->scores = malloc((size_t)n * sizeof(float));
    if (keep_logits) out->logits = malloc((size_t)n * plane * sizeof(float));
    lisa_status s = LISA_OK;
    if (!out->masks || !out->scores || (keep_logits && !out->logits)) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    p->prompts = lisa_tensor_view((void *)prompts, LISA_DTYPE_F32, 3, (int64_t[]){n, 1, D});
    for (p->chunk0 = 0; s == LISA_OK && p->chunk0 < n; p->chunk0 += p->chunk_n) {
        p->chunk_n = n - p->chunk0 < DECODER_CHUNK ? n - p->chunk0 : DECODER_CHUNK;
        s = lisa_tensor_alloc(&p->logits, LISA_DTYPE_F32, 3, (int64_t[]){p->chunk_n, p->h0, p->w0});
        if (s == LISA_OK) s = lisa_tensor_alloc(&p->iou, LISA_DTYPE_F32, 2, (int64_t[]){p->chunk_n, 1});
        if (s == LISA_OK) s = lisa_graph_run_once(p->be, LISA_DTYPE_F32, decode_graph, p, NULL, NULL);
        if (s == LISA_OK) {
            const float *lg = p->logits.data;
            for (size_t i = 0; i < (size_t)p->chunk_n * plane; i++)
                out->masks[p->chunk0 * plane + i] = lg[i] > 0.0f;
            if (out->logits) memcpy(out->logits + p->chunk0 * plane, lg, (size_t)p->chunk_n * plane * sizeof(float));
            memcpy(out->scores + p->chunk0, p->iou.data, (size_t)p->chunk_n * sizeof(float));
        }
        lisa_tensor_free(&p->logits);
        lisa_tensor_free(&p->iou);
    }
    if (s != LISA_OK) lisa_sam_masks_free(out);
    return s;
}
