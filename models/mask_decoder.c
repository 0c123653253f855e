/* models/mask_decoder.c — the mask stage of several finished requests at once, as one SAM mask
 * decoder step per up to LISA_MASK_BATCH prompts, captured and replayed on backends that can
 * (lisa_model.h, lisa_mask_decoder).
 *
 * One step (step_graph): the prompts' [SEG] states (pinned host rows) -> text_hidden_fcs -> SAM's
 * prompt encoder + mask decoder against each prompt's image embedding (copied into emb_in, one
 * [C, G, G] slot per prompt, before the step) -> low-res logits into `lowres` (device) and IoU into
 * pinned host memory. Its arenas and buffers are allocated once, sized for LISA_MASK_BATCH prompts
 * by a counting pass, and reset to the same marks before every step, so its device addresses are
 * the same at every run: a step of n prompts runs eagerly the first time (GEMM plans built, the
 * step validated), is captured the second time (backend graph_capture_begin/end) and replayed
 * after that, one graph per n (the engine's decode-graph scheme, runtime/engine.c). Then, per
 * request, postprocessing to its original size (image-size dependent, eager, its own arena).
 *
 * Prompts of different requests share a step; a request's results do not depend on the others'
 * values (the decoder's kernels are per prompt; GEMM algorithms may still depend on the batch size
 * on CUDA). The CPU backend keeps lisa_masks_run (per request, bit-identical to the reference).
 */
#include "models/lisa_model.h"

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Owns its arenas' memory, the emb_in / lowres device buffers, the pinned seg / iou buffers and the
 * captured graphs; borrows the model and the backend. */
struct lisa_mask_decoder {
    lisa_model *m;
    lisa_backend *be;
    bool capture;
    int32_t C, out, G;
    void *act_mem, *emb_mem, *low_mem;
    void *post_mem;  /* backend: the postprocess activations, grown to the largest image so far */
    size_t post_cap;
    lisa_arena act, meta;
    lisa_tensor emb_in;  /* backend [LISA_MASK_BATCH, out, G, G] */
    lisa_tensor lowres;  /* backend [LISA_MASK_BATCH, 1, 4G, 4G] */
    float *seg_host;     /* pinned (or malloc) [LISA_MASK_BATCH, C] */
    float *iou_host;     /* pinned (or malloc) [LISA_MASK_BATCH] */
    bool host_pinned;
    int32_t n;           /* prompts of the step being built */
    struct {
        lisa_backend_graph *graph;
        int32_t seen;
    } graphs[LISA_MASK_BATCH + 1];
    int64_t eager, captured, replayed;
};

static void step_graph(lisa_graph *g, void *ctx) {
    lisa_mask_decoder *d = ctx;
    const int32_t n = d->n;
    lisa_tensor seg = lisa_tensor_view4(d->seg_host, LISA_DTYPE_F32, 2, n, d->C, 0, 0);
    T *pred = lisa_graph_seg_embeddings(g, d->m, lisa_g_upload(g, &seg));
    T *sparse = lisa_g_reshape(g, pred, 3, n, 1, d->out, 0);
    T *low, *iou;
    lisa_sam_decode_ex(g, d->m->sam, lisa_g_narrow(g, lisa_g_wrap(g, &d->emb_in), 0, 0, n), sparse, &low, &iou, NULL);
    lisa_g_copy_to(g, lisa_g_narrow(g, lisa_g_wrap(g, &d->lowres), 0, 0, n), low);
    lisa_tensor iou_h = lisa_tensor_view4(d->iou_host, LISA_DTYPE_F32, 2, n, 1, 0, 0);
    lisa_g_download(g, &iou_h, iou);
}

/* Runs fn on the decoder's own arenas (reset first: the same addresses every time). */
static lisa_status run_local(lisa_mask_decoder *d, lisa_graph_fn fn, void *ctx) {
    lisa_arena_reset(&d->act, 0);
    lisa_arena_reset(&d->meta, 0);
    lisa_graph g;
    lisa_graph_init(&g, d->be, &d->act, &d->meta, d->m->act_dtype);
    fn(&g, ctx);
    return g.status;
}

static lisa_status run_step_graph(lisa_mask_decoder *d) { return run_local(d, step_graph, d); }

/* One step of d->n prompts (seg_host and emb_in filled): eager, captured or replayed. */
static lisa_status run_step(lisa_mask_decoder *d) {
    lisa_backend *be = d->be;
    if (!d->capture) {
        d->eager++;
        return run_step_graph(d);
    }
    if (!d->graphs[d->n].graph) {
        if (d->graphs[d->n].seen++ == 0) {
            d->eager++;
            return run_step_graph(d);
        }
        lisa_status s = be->graph_capture_begin(be, 0);
        if (s == LISA_OK) s = run_step_graph(d);
        lisa_backend_graph *gr = NULL;
        if (s == LISA_OK) s = be->graph_capture_end(be, &gr);
        else be->graph_capture_abort(be);
        if (s != LISA_OK) { /* not capturable after all: eager from now on */
            lisa_log(LISA_LOG_WARN, "mask decoder: graph capture failed (%s); its steps run eagerly", lisa_last_error());
            d->capture = false;
            d->eager++;
            return run_step_graph(d);
        }
        d->graphs[d->n].graph = gr;
        d->captured++;
    } else {
        d->replayed++;
    }
    return be->graph_launch(be, d->graphs[d->n].graph); /* the captured run did not execute either */
}

lisa_status lisa_mask_decoder_create(lisa_mask_decoder **out, lisa_model *m, lisa_backend *be, bool capture) {
    *out = NULL;
    if (capture && !lisa_backend_can_capture(be))
        return lisa_fail(LISA_ERR_INVALID_ARG, "mask decoder: the %s backend cannot capture steps", be->name);
    lisa_mask_decoder *d = calloc(1, sizeof *d);
    if (!d) return lisa_fail(LISA_ERR_OOM, "mask decoder: out of memory");
    d->m = m, d->be = be, d->capture = capture;
    d->C = m->cfg.llm.hidden, d->out = m->cfg.out_dim, d->G = m->sam->enc.grid;
    const int64_t B = LISA_MASK_BATCH, G = d->G;
    d->emb_in = lisa_tensor_view4(NULL, m->act_dtype, 4, B, d->out, G, G);
    d->lowres = lisa_tensor_view4(NULL, m->act_dtype, 4, B, 1, 4 * G, 4 * G);
    const size_t seg_bytes = (size_t)B * d->C * sizeof(float), iou_bytes = (size_t)B * sizeof(float);
    lisa_status s = LISA_OK;
    d->host_pinned = be->host_alloc != NULL && be->host_free != NULL;
    if (d->host_pinned) {
        s = be->host_alloc(be, seg_bytes, (void **)&d->seg_host);
        if (s == LISA_OK) s = be->host_alloc(be, iou_bytes, (void **)&d->iou_host);
    } else {
        d->seg_host = calloc(1, seg_bytes), d->iou_host = calloc(1, iou_bytes);
        if (!d->seg_host || !d->iou_host) s = lisa_fail(LISA_ERR_OOM, "mask decoder: out of memory");
    }
    if (s == LISA_OK) s = be->mem_alloc(be, lisa_tensor_nbytes(&d->emb_in), &d->emb_mem);
    if (s == LISA_OK) s = be->mem_alloc(be, lisa_tensor_nbytes(&d->lowres), &d->low_mem);
    if (s == LISA_OK) {
        d->emb_in.data = d->emb_mem, d->lowres.data = d->low_mem;
        d->emb_in.device = d->lowres.device = be->device;
        d->emb_in.device_id = d->lowres.device_id = be->device_id;
        memset(d->seg_host, 0, seg_bytes);
        /* the arenas: a counting pass of the largest step */
        size_t act_bytes = 0, meta_bytes = 0;
        d->n = LISA_MASK_BATCH;
        s = lisa_graph_measure(be, m->act_dtype, step_graph, d, &act_bytes, &meta_bytes);
        if (s == LISA_OK) s = be->mem_alloc(be, act_bytes ? act_bytes : 1, &d->act_mem);
        if (s == LISA_OK) {
            lisa_arena_init_external(&d->act, "mask decoder activations", d->act_mem, act_bytes);
            s = lisa_arena_init(&d->meta, "mask decoder descriptors", meta_bytes);
        }
    }
    if (s != LISA_OK) {
        lisa_mask_decoder_free(d);
        return s;
    }
    *out = d;
    return LISA_OK;
}

void lisa_mask_decoder_free(lisa_mask_decoder *d) {
    if (!d) return;
    lisa_backend *be = d->be;
    for (int32_t i = 0; i <= LISA_MASK_BATCH; i++)
        if (d->graphs[i].graph) be->graph_free(be, d->graphs[i].graph);
    if (d->act_mem) be->mem_free(be, d->act_mem);
    if (d->emb_mem) be->mem_free(be, d->emb_mem);
    if (d->low_mem) be->mem_free(be, d->low_mem);
    if (d->post_mem) be->mem_free(be, d->post_mem);
    lisa_arena_free(&d->meta);
    if (d->host_pinned) {
        if (d->seg_host) be->host_free(be, d->seg_host);
        if (d->iou_host) be->host_free(be, d->iou_host);
    } else {
        free(d->seg_host);
        free(d->iou_host);
    }
    free(d);
}

void lisa_mask_decoder_stats(const lisa_mask_decoder *d, int64_t *eager, int64_t *captured, int64_t *replayed) {
    if (eager) *eager = d->eager;
    if (captured) *captured = d->captured;
    if (replayed) *replayed = d->replayed;
}

/* ---- staging and postprocessing ---------------------------------------------------------------- */

typedef struct seg_copy {
    lisa_mask_decoder *d;
    const T *emb;
    int32_t k0, len;
} seg_copy;

/* emb_in[k0 .. k0 + len) = the request's embedding (one COPY from a broadcast view). */
static void emb_copy_graph(lisa_graph *g, void *ctx) {
    seg_copy *c = ctx;
    T *src = lisa_g_wrap(g, c->emb);
    if (!g_ok(g)) return;
    src->shape[0] = c->len, src->stride[0] = 0;
    lisa_g_copy_to(g, lisa_g_narrow(g, lisa_g_wrap(g, &c->d->emb_in), 0, c->k0, c->len), src);
}

typedef struct post_job {
    lisa_mask_decoder *d;
    const lisa_prepared *pr;
    int32_t k0, len;
    lisa_tensor logits; /* host F32 [len, H0, W0] */
} post_job;

static void post_graph(lisa_graph *g, void *ctx) {
    post_job *j = ctx;
    T *low = lisa_g_narrow(g, lisa_g_wrap(g, &j->d->lowres), 0, j->k0, j->len);
    lisa_g_download(g, &j->logits, lisa_sam_postprocess(g, j->d->m->sam, low, j->pr->h_r, j->pr->w_r, j->pr->H0, j->pr->W0));
}

/* Sets up an item's result arrays (as lisa_masks_run). */
/* The n prompts staged for a step: (item, first prompt, count) runs. */
typedef struct step_run {
    int32_t item, p0, len;
} step_run;

static void fail_runs(lisa_mask_item *items, const step_run *runs, int32_t n_runs, lisa_status s) {
    for (int32_t r = 0; r < n_runs; r++)
        if (items[runs[r].item].status == LISA_OK) items[runs[r].item].status = s;
}

/* Runs one staged step and postprocesses its prompts into their results. */
static void flush(lisa_mask_decoder *d, lisa_mask_item *items, const step_run *runs, int32_t n_runs, int32_t n) {
    if (n == 0) return;
    lisa_backend *be = d->be;
    d->n = n;
    lisa_status s = LISA_OK;
    for (int32_t r = 0, k0 = 0; s == LISA_OK && r < n_runs; k0 += runs[r].len, r++) {
        seg_copy c = {.d = d, .emb = items[runs[r].item].emb, .k0 = k0, .len = runs[r].len};
        s = run_local(d, emb_copy_graph, &c);
    }
    if (s == LISA_OK) s = run_step(d);
    if (s == LISA_OK) s = be->synchronize(be); /* iou_host is written by the step */
    if (s != LISA_OK) {
        fail_runs(items, runs, n_runs, s);
        return;
    }
    for (int32_t r = 0, k0 = 0; r < n_runs; k0 += runs[r].len, r++) {
        lisa_mask_item *it = &items[runs[r].item];
        if (it->status != LISA_OK) continue;
        post_job j = {.d = d, .pr = it->pr, .k0 = k0, .len = runs[r].len};
        lisa_status ps = lisa_tensor_alloc(&j.logits, LISA_DTYPE_F32, 3, (int64_t[]){runs[r].len, it->pr->H0, it->pr->W0});
        /* measured per request (its sizes follow the image), in a buffer that only grows */
        if (ps == LISA_OK)
            ps = lisa_graph_run_in(d->be, d->m->act_dtype, post_graph, &j, NULL, NULL, &d->post_mem, &d->post_cap);
        if (ps == LISA_OK) lisa_masks_store(it->res, runs[r].p0, runs[r].len, j.logits.data, d->iou_host + k0);
        else it->status = ps;
        lisa_tensor_free(&j.logits);
    }
}

lisa_status lisa_mask_decoder_run(lisa_mask_decoder *d, lisa_mask_item *items, int32_t n_items) {
    step_run runs[LISA_MASK_BATCH];
    int32_t n_runs = 0, n = 0;
    for (int32_t i = 0; i < n_items; i++) {
        items[i].status = lisa_masks_alloc(items[i].res, items[i].pr, items[i].n_seg);
        if (items[i].status != LISA_OK) continue;
        for (int32_t p0 = 0; p0 < items[i].n_seg;) {
            if (n == LISA_MASK_BATCH) {
                flush(d, items, runs, n_runs, n);
                n_runs = n = 0;
            }
            const int32_t len = items[i].n_seg - p0 < LISA_MASK_BATCH - n ? items[i].n_seg - p0 : LISA_MASK_BATCH - n;
            memcpy(d->seg_host + (size_t)n * d->C, items[i].seg_hidden + (size_t)p0 * d->C, (size_t)len * d->C * sizeof(float));
            runs[n_runs++] = (step_run){.item = i, .p0 = p0, .len = len};
            n += len, p0 += len;
        }
    }
    flush(d, items, runs, n_runs, n);
    return LISA_OK;
}
