/* jobs/sam.c — see jobs/sam.h. */
#include "jobs/sam.h"

#include "core/clock.h"
#include "core/error.h"
#include "loader/checkpoint.h"
#include "models/result.h"
#include "models/sam_predict.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Copies text_embeds out of the file into a malloc'd F32 [n, dim] array. */
static lisa_status read_embeds(const char *path, int32_t dim, float **out, int32_t *n) {
    lisa_checkpoint *ck = NULL;
    LISA_TRY(lisa_checkpoint_open(&ck, path));
    const lisa_ckpt_tensor *t = lisa_checkpoint_find(ck, "text_embeds");
    lisa_status s = LISA_OK;
    if (!t) {
        s = lisa_fail(LISA_ERR_NOT_FOUND, "%s: no tensor 'text_embeds'", path);
    } else if (t->dtype != LISA_DTYPE_F32) {
        s = lisa_fail(LISA_ERR_FORMAT, "%s: text_embeds is %s, F32 expected", path, lisa_dtype_name(t->dtype));
    } else if (!((t->n_dims == 3 && t->shape[1] == 1 && t->shape[2] == dim) ||
                 (t->n_dims == 2 && t->shape[1] == dim)) ||
               t->shape[0] < 1 || t->shape[0] > 4096) {
        lisa_tensor v = lisa_ckpt_tensor_view(t);
        char buf[96];
        s = lisa_fail(LISA_ERR_SHAPE, "%s: text_embeds is %s; [N, 1, %d] or [N, %d] with 1 <= N <= 4096 expected", path,
                      lisa_tensor_shape_str(&v, buf, sizeof buf), dim, dim);
    } else {
        *n = (int32_t)t->shape[0];
        if (!(*out = malloc(t->nbytes)))
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
        else
            memcpy(*out, t->data, t->nbytes);
    }
    lisa_checkpoint_close(ck);
    return s;
}

lisa_status lisa_sam_job_run(const lisa_sam_job *job, lisa_result **out) {
    *out = NULL;
    if (job->backend == LISA_BACKEND_CUDA)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "lisa sam runs on the CPU backend only (the SAM-alone predictor has "
                                               "no CUDA path yet; the engine runs SAM on CUDA)");
    const double t0 = lisa_clock_ms();
    lisa_sam_predictor *p = NULL;
    LISA_TRY(lisa_sam_predictor_load(&p, job->model, job->n_threads));
    float *emb = NULL;
    int32_t n = 0;
    lisa_status s = read_embeds(job->text_embedding, lisa_sam_predictor_model(p)->dec.dim, &emb, &n);
    lisa_sam_timings t = {0};
    lisa_sam_masks mk = {0};
    if (s == LISA_OK) s = lisa_sam_predictor_set_image(p, job->rgb, job->height, job->width, &t);
    const double t2 = lisa_clock_ms();
    if (s == LISA_OK) s = lisa_sam_predictor_predict(&mk, p, emb, n, false);
    const double t3 = lisa_clock_ms();
    lisa_result *r = NULL;
    if (s == LISA_OK && !(r = lisa_result_new())) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK) { /* the masks move into the result */
        r->n_masks = mk.n;
        r->h = mk.h;
        r->w = mk.w;
        r->masks = mk.masks;
        r->scores = mk.scores;
        mk.masks = NULL;
        mk.scores = NULL;
        r->t.preprocess_ms = t.preprocess_ms;
        r->t.sam_encoder_ms = t.encoder_ms;
        r->t.sam_decoder_ms = t3 - t2;
        r->t.total_ms = t3 - t0;
        if (!(r->answer = calloc(1, 1)) || !(r->text_output = calloc(1, 1)))
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    lisa_sam_masks_free(&mk);
    free(emb);
    lisa_sam_predictor_free(p);
    if (s != LISA_OK) {
        lisa_result_free(r);
        return s;
    }
    *out = r;
    return LISA_OK;
}
