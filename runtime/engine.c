/* runtime/engine.c — the batching engine behind include/lisa.h.
 *
 * A request moves through:  submitted -> (worker pool) prepared -> (scheduler) admitted ->
 * vision (CLIP + projector, SAM encoder; batched over the images admitted in a step) -> prefill
 * (packed varlen over the admitted prompts, paged KV) -> decode steps (batched over every running
 * sequence) -> masks (text_hidden_fcs + SAM decoder + postprocess; on backends that capture, the
 * [SEG] prompts of all requests finished in a step decoded together, lisa_mask_decoder; on the CPU
 * per request, bit-identical to running it alone) -> result.
 *
 * Scheduling (one step):
 *   1. admission, FIFO: a ready request is admitted when a sequence slot is free, the step's image
 *      and prefill-row budgets allow it, and the KV pool can reserve its whole context (prompt +
 *      max_new_tokens), after dropping kept prefixes nobody reads if need be. A request that does
 *      not fit waits; nothing is dropped or failed for lack of memory, and later requests never
 *      overtake it. The one exception: a request whose image is being encoded, or whose prompt
 *      through the image is being prefilled, by a request admitted in the same step is passed over
 *      for this step (next step it reuses both instead of computing them again: no thundering herd).
 *   2. vision (CLIP + projector, SAM encoder) of the admitted images not in the image cache, then
 *      the prefill of the admitted requests from the end of their longest kept prefix; each gets
 *      its first token from the prefill.
 *   3. one decode step for every running sequence.
 *   4. requests that hit EOS or max_new_tokens get their masks and are published.
 *
 * Reuse (issue #17). Images: runtime/image_cache.h; the workers hash each image's pixels and skip
 * the pixel preprocessing when the cache holds it (if it is evicted before admission, the request
 * goes back to a worker for its pixels). Prompts: runtime/prefix_tree.h; the system-prompt prefix
 * (its full pages before the image placeholder) is prefilled once at creation and pinned; a
 * request's prompt through its image becomes a kept prefix after its prefill. Each request's
 * prefill is planned as one batch sequence per segment (prefix_tree.h), whether or not a prefix is
 * reused, so reuse changes no bit (CPU).
 *
 * Batch invariance: every per-sequence computation (attention, norms, the row groups that GEMMs
 * are split into on the CPU, see lisa_graph.row_indptr) depends only on that sequence, so a
 * request gives bit-identical results alone or in any batch on the CPU backend.
 *
 * Memory: the KV pool, the SAM-embedding slots, the projector buffer and the step arena are
 * allocated once at creation (the arena sized by counting passes over the worst-case step shapes);
 * nothing is allocated in the decode loop. The mask decoder's step memory is allocated once too
 * (lisa_mask_decoder, sized for LISA_MASK_BATCH prompts); postprocessing (and the whole mask stage
 * of lisa_masks_run) sizes its arena per finished request (its outputs scale with the image size). Device-side buffers hold the model's
 * activation dtype (lisa_model.act_dtype: F32 on the CPU, BF16 on CUDA); host staging is F32.
 *
 * CUDA graphs: on a backend with graph hooks (CUDA; without taps, unless LISA_CUDA_GRAPHS=0) a
 * decode step of nb sequences runs eagerly the first time, is captured the second time and replayed
 * after that (graph_capture_begin: split-KV planned for max_position_embeddings keys, so the graph stays
 * valid as sequences grow; the page tables uploaded at their capacity; the plan arrays and the
 * token/hidden-state outputs live in pinned host memory that every replay reads and writes). One
 * graph per batch size, at most GRAPH_CACHE of them; any capture failure turns graphs off and the
 * step runs eagerly. The mask decoder's steps are captured the same way, one graph per prompt
 * count (models/mask_decoder.c).
 *
 * Threads: submit/poll/wait may be called from any thread (one mutex guards the queues); the
 * workers prepare requests; exactly one thread steps the scheduler (the engine thread in background
 * mode, else callers of lisa_engine_step/lisa_engine_wait, serialized by step_mu).
 *
 * Tensor parallelism (runtime/engine_tp.h): on a TP leader every LLM graph is preceded by a
 * broadcast of its plan (run_graph); a follower engine (lisa_engine_tp_follower_create) has no
 * requests, threads, CLIP/SAM buffers: it receives plans and runs the same graph functions.
 *
 * Ownership: a lisa_engine borrows the model (and its TP communicator); it owns its threads, pool,
 * buffers, queued requests and unclaimed results, all released by lisa_engine_free. A result
 * handed out belongs to the caller (lisa_result_free).
 */
#include "runtime/engine.h"

#include "loader/image.h"
#include "runtime/engine_tp.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "runtime/image_cache.h"
#include "runtime/image_handle.h"
#include "runtime/kv_cache.h"
#include "runtime/prefix_tree.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct eng_req {
    struct eng_req *next;      /* queue link (prep or ready) */
    struct eng_req *all_next;  /* list of unfinished requests */
    uint64_t id;
    lisa_segment_params params;
    /* owned input copies */
    void *image_data;
    size_t image_size;
    char *image_path;
    uint8_t *rgb;              /* also: the decoded image kept while its pixels are not preprocessed */
    int32_t h, w;
    lisa_image *himg;          /* a lisa_image handle (one reference held) */
    char *query;
    /* prepared by a worker */
    lisa_prepared prep;
    lisa_image_key key;        /* the image's cache key (image cache on) */
    bool has_pixels;           /* prep holds the preprocessed pixels (else the image was cached) */
    bool need_pixels;          /* sent back to a worker: its image left the cache before admission */
    lisa_result *res;          /* created at submit; handed out when done */
    /* running (scheduler thread only) */
    int32_t slot;              /* image-cache entry (pinned while running) */
    lisa_prefix_node *node;    /* the kept prefix its KV continues from (a user of it), or NULL */
    lisa_kv_seq kv;
    int32_t start;             /* first position this request prefills (the end of its prefix) */
    int32_t cow_src, cow_dst;  /* the copy-on-write of its first page, or -1 */
    int32_t enc;               /* in the step: its index among the images encoded, or -1 */
    float *seg_hidden;         /* [max_new, C] host */
    int32_t n_seg;
    bool finished;
    double t_submit;
} eng_req;

struct lisa_engine {
    lisa_model *m;
    lisa_backend *be;          /* this engine's execution context: a fork of the model's backend
                                  (owned), or the model's own under TP (borrowed, see owns_be) */
    bool owns_be;
    lisa_engine_params p;
    lisa_run_hooks hooks;
    bool batch_invariant_gemm; /* split GEMMs per sequence/image (CPU: OpenBLAS) */
    lisa_dtype act_dtype;      /* the model's: step arena, KV pool, embedding slots, projector buffer */
    bool graphs;               /* decode steps replay CUDA graphs (see the file comment) */
    bool graphs_pinned;        /* the h_* arrays are pinned (the backend's host_alloc hook) */
    struct {
        int32_t nb, seen;      /* batch size; steps seen (captured on the second) */
        lisa_backend_graph *graph;
        uint64_t used;
    } gcache[16];
    int32_t n_gcache;
    uint64_t gclock;
    int32_t C, P, V;

    pthread_mutex_t mu;
    pthread_cond_t work_cv, sched_cv, done_cv;
    pthread_mutex_t step_mu;
    pthread_t *workers;
    int32_t n_workers;
    pthread_t sched;
    bool sched_started, stop;

    /* under mu */
    eng_req *prep_head, *prep_tail, *ready_head, *ready_tail, *all;
    int32_t n_prep, n_preparing, n_ready, n_unfinished;
    lisa_result **done;
    int32_t n_done, cap_done;
    uint64_t next_id;
    int64_t completed, failed, steps;
    int32_t last_batch, n_running_pub;
    int64_t decode_steps, decode_rows, decode_hist[LISA_ENGINE_BATCH_BUCKETS];

    /* scheduler state (stepping thread only) */
    eng_req **running;         /* [max_batch] */
    int32_t n_running;
    lisa_kv_pool pool;
    lisa_prefix_tree tree;     /* kept prefixes (leader / no TP) */
    int32_t n_prefix_pages;    /* pages of the pinned system-prompt prefix */
    lisa_image_cache ic;       /* image embeddings (leader / no TP); mutated under mu (workers peek) */
    uint64_t pp_id;            /* the model's preprocessing identity (image keys) */
    int64_t kv_hits, kv_reused; /* under mu */
    void *proj_mem;
    lisa_tensor proj_buf;      /* [max_images, P, C]: the image rows of a prefill (TP: broadcast) */
    /* the mask stage of a step's finished requests together (backends that can capture, no taps):
     * owned; NULL = per request (lisa_masks_run) */
    lisa_mask_decoder *masks;
    lisa_mask_item *mask_items; /* [max_batch] */
    eng_req **finished;         /* [max_batch] */
    void *act_mem;
    lisa_arena act, meta;
    /* host staging, sized at creation */
    lisa_tensor clip_host, sam_host;   /* [max_images, 3, S, S] */
    int32_t *h_qo, *h_pos, *h_slots, *h_kvp, *h_idx, *h_kvl, *h_ids, *h_rows, *h_next;
    float *h_hidden;           /* [max(max_batch, max_images), C] */
    int32_t cap_rows, cap_idx;
    /* the step in flight */
    eng_req **batch;           /* requests of the step */
    int32_t n_req;             /* requests in a prefill (its plan has n_batch >= n_req sequences) */
    int32_t n_batch, n_text;   /* plan sequences, text rows */
    int32_t *h_seq;  /* [nseq][4] per prefill sequence: first position, placeholder index, image index
                        in proj_buf (-1: no image rows), 1 if it ends its request (its logits) */
    int32_t *h_copy; /* [nseq][2] copy-on-write page pairs (src, dst) done before a prefill */
    int32_t n_copy;
    int32_t *enc_slot;         /* [max_images] image-cache entries the vision step fills */
    int32_t n_enc;
    int32_t *img_slot;         /* [max_images] image-cache entry of each proj_buf row block */
    /* tensor parallelism (NULL / false without) */
    lisa_comm *tp;             /* the model's TP group (borrowed) */
    bool follower, tp_created; /* a follower's engine; the leader told the followers it exists */
    lisa_tp_plan plan;         /* points at the h_* arrays; plan.buf owned */
};

/* ---- small helpers ---------------------------------------------------------------------------- */

/* A TP leader's followers serve one engine at a time (lisa_model_tp_follow): claim the model. */
static bool tp_engine_claim(lisa_model *m) {
    bool expected = false;
    return atomic_compare_exchange_strong(&m->tp_engine, &expected, true);
}

static void tp_engine_release(lisa_model *m) { atomic_store(&m->tp_engine, false); }

static void fail_result(lisa_result *res, lisa_status s, const char *msg) {
    res->status = s;
    snprintf(res->error, sizeof res->error, "%s", msg && *msg ? msg : lisa_status_name(s));
}

static void free_req(eng_req *r) {
    if (!r) return;
    free(r->image_data);
    free(r->image_path);
    free(r->rgb);
    lisa_image_free(r->himg);
    free(r->query);
    lisa_prepared_free(&r->prep);
    free(r->seg_hidden);
    lisa_result_free(r->res);
    free(r);
}

/* under mu */
static lisa_status push_done(lisa_engine *e, lisa_result *res) {
    if (e->n_done == e->cap_done) {
        int32_t cap = e->cap_done ? e->cap_done * 2 : 64;
        lisa_result **nd = realloc(e->done, (size_t)cap * sizeof *nd);
        if (!nd) return LISA_ERR_OOM;
        e->done = nd;
        e->cap_done = cap;
    }
    e->done[e->n_done++] = res;
    return LISA_OK;
}

/* under mu: the request is finished (its result published or failed); unlink and free it */
static void retire_locked(lisa_engine *e, eng_req *r) {
    lisa_result *res = r->res;
    r->res = NULL;
    if (res->status == LISA_OK) e->completed++;
    else e->failed++;
    if (push_done(e, res) != LISA_OK) lisa_result_free(res); /* out of memory: nothing better to do */
    for (eng_req **pp = &e->all; *pp; pp = &(*pp)->all_next)
        if (*pp == r) {
            *pp = r->all_next;
            break;
        }
    e->n_unfinished--;
    free_req(r);
    pthread_cond_broadcast(&e->done_cv);
}

/* ---- workers: decode + preprocess + tokenize -------------------------------------------------- */

/* The cache key of an image: its pixel hash mixed with the model's preprocessing identity. */
static lisa_image_key image_key(const lisa_engine *e, lisa_hash128 h, int32_t height, int32_t width) {
    lisa_image_key k = {.hash = {h.lo ^ e->pp_id, h.hi ^ (e->pp_id << 32 | e->pp_id >> 32)},
                        .height = height, .width = width};
    return k;
}

/* A request sent back by admission: its image left the cache, so it needs its pixels after all. */
static void prepare_pixels(lisa_engine *e, eng_req *r) {
    const uint8_t *rgb = r->himg ? r->himg->rgb : r->rgb;
    lisa_status s = lisa_prepare_pixels(e->m, rgb, &r->prep);
    if (s != LISA_OK) fail_result(r->res, s, lisa_last_error());
    r->has_pixels = s == LISA_OK;
    r->res->t.preprocess_ms = r->prep.preprocess_ms;
    free(r->rgb);
    r->rgb = NULL;
}

static void prepare_one(lisa_engine *e, eng_req *r) {
    if (r->need_pixels) {
        prepare_pixels(e, r);
        return;
    }
    lisa_bitmap img = {0};
    lisa_status s = LISA_OK;
    const uint8_t *rgb = r->rgb;
    int32_t h = r->h, w = r->w;
    lisa_image_limits lim = lisa_image_default_limits();
    if (r->params.max_image_pixels > 0) lim.max_pixels = r->params.max_image_pixels;
    if (r->image_path) s = lisa_image_load(&img, r->image_path, &lim);
    else if (r->image_data) s = lisa_image_decode(&img, r->image_data, r->image_size, "request image", &lim);
    if (s == LISA_OK && (r->image_path || r->image_data)) {
        rgb = img.data;
        h = img.h;
        w = img.w;
    } else if (r->himg) {
        rgb = r->himg->rgb;
        h = r->himg->h;
        w = r->himg->w;
    }
    /* image cache on: key the pixels, and skip their preprocessing when the cache has them (a peek:
     * admission decides; the decoded pixels are kept in case the entry goes before) */
    bool cached = false;
    if (s == LISA_OK && lisa_image_cache_enabled(&e->ic)) {
        r->key = image_key(e, r->himg ? r->himg->hash : lisa_image_hash_rgb(rgb, h, w), h, w);
        pthread_mutex_lock(&e->mu);
        cached = lisa_image_cache_find(&e->ic, &r->key) >= 0;
        pthread_mutex_unlock(&e->mu);
    }
    if (s == LISA_OK) s = lisa_prepare_ex(e->m, rgb, h, w, r->query, &r->params, !cached, &r->prep);
    r->has_pixels = s == LISA_OK && !cached;
    if (s == LISA_OK && r->prep.L0 > e->p.max_prefill_tokens)
        s = lisa_fail(LISA_ERR_LIMIT, "prompt of %d positions exceeds the engine's prefill budget of %d",
                      r->prep.L0, e->p.max_prefill_tokens);
    if (s == LISA_OK && lisa_kv_pages_for(&e->pool, r->prep.L0 + r->prep.max_new) > e->pool.n_pages - e->n_prefix_pages)
        s = lisa_fail(LISA_ERR_LIMIT, "request needs %d KV pages, the pool has %d", 
                      lisa_kv_pages_for(&e->pool, r->prep.L0 + r->prep.max_new), e->pool.n_pages - e->n_prefix_pages);
    if (s == LISA_OK && !(r->seg_hidden = malloc((size_t)r->prep.max_new * e->C * sizeof(float))))
        s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s == LISA_OK && !(r->res->tokens = malloc((size_t)r->prep.max_new * sizeof(int32_t))))
        s = lisa_fail(LISA_ERR_OOM, "out of memory");
    if (s != LISA_OK) fail_result(r->res, s, lisa_last_error());
    else r->res->t.preprocess_ms = r->prep.preprocess_ms;
    /* the inputs are no longer needed, except the pixels of a request that skipped preprocessing */
    free(r->image_data);
    r->image_data = NULL;
    if (s == LISA_OK && cached && !r->himg) {
        if (img.data) { /* decoded here: keep */
            free(r->rgb);
            r->rgb = img.data;
            img.data = NULL;
        }
    } else {
        free(r->rgb);
        r->rgb = NULL;
    }
    lisa_bitmap_free(&img);
}

static void *worker_main(void *arg) {
    lisa_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->prep_head) pthread_cond_wait(&e->work_cv, &e->mu);
        if (e->stop) break;
        eng_req *r = e->prep_head;
        e->prep_head = r->next;
        if (!e->prep_head) e->prep_tail = NULL;
        e->n_prep--;
        e->n_preparing++;
        pthread_mutex_unlock(&e->mu);
        prepare_one(e, r);
        pthread_mutex_lock(&e->mu);
        e->n_preparing--;
        if (r->res->status != LISA_OK) {
            retire_locked(e, r);
        } else if (r->need_pixels) { /* back to the head of the line it left */
            r->need_pixels = false;
            r->next = e->ready_head;
            e->ready_head = r;
            if (!e->ready_tail) e->ready_tail = r;
            e->n_ready++;
            pthread_cond_broadcast(&e->sched_cv);
        } else {
            r->next = NULL;
            if (e->ready_tail) e->ready_tail->next = r;
            else e->ready_head = r;
            e->ready_tail = r;
            e->n_ready++;
            pthread_cond_broadcast(&e->sched_cv);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- stage graphs ----------------------------------------------------------------------------- */

static void set_groups(lisa_graph *g, const lisa_engine *e, const int32_t *indptr, int32_t n, int32_t split) {
    if (!e->batch_invariant_gemm) return;
    g->row_indptr = indptr;
    g->n_row_groups = n;
    g->row_split = split;
}

/* vision, two graphs so that each is timed on its own (lisa_timings clip_ms, sam_encoder_ms), over
 * the step's images (staged in clip_host and sam_host), each image's outputs into its image-cache
 * entry: CLIP + projector, then the SAM encoder */
static void clip_graph(lisa_graph *g, void *ctx) {
    lisa_engine *e = ctx;
    const int64_t nb = e->n_enc, CS = e->clip_host.shape[2];
    set_groups(g, e, NULL, 0, (int32_t)nb);
    T *cpx = lisa_g_upload(g, lisa_g_reshape(g, lisa_g_narrow(g, &e->clip_host, 0, 0, nb), 4, nb, 3, CS, CS));
    T *proj = lisa_graph_vision(g, e->m, cpx);
    for (int64_t b = 0; b < nb; b++) lisa_g_copy_to(g, &e->ic.e[e->enc_slot[b]].proj, lisa_g_narrow(g, proj, 0, b, 1));
}

static void sam_encoder_graph(lisa_graph *g, void *ctx) {
    lisa_engine *e = ctx;
    const int64_t nb = e->n_enc, S = e->sam_host.shape[2];
    set_groups(g, e, NULL, 0, (int32_t)nb);
    T *spx = lisa_g_upload(g, lisa_g_reshape(g, lisa_g_narrow(g, &e->sam_host, 0, 0, nb), 4, nb, 3, S, S));
    T *emb = lisa_sam_encode(g, e->m->sam, spx);
    lisa_g_tap(g, emb, "sam_img_emb");
    for (int64_t b = 0; b < nb; b++) lisa_g_copy_to(g, &e->ic.e[e->enc_slot[b]].emb, lisa_g_narrow(g, emb, 0, b, 1));
}

/* rows [r0, r0+n) of x <- rows [s0, s0+n) of src */
static void copy_rows(lisa_graph *g, T *x, int64_t r0, const T *src, int64_t s0, int64_t n) {
    if (n > 0) lisa_g_copy_to(g, lisa_g_narrow(g, x, 0, r0, n), lisa_g_narrow(g, src, 0, s0, n));
}

/* The last rows of each sequence of h [R, C] -> logits -> argmax, downloaded with the rows. */
static void finish_rows(lisa_graph *g, lisa_engine *e, const T *h, int32_t nb, const int32_t *last_rows, bool prefill) {
    T *hl = lisa_g_new(g, g->act_dtype, 2, nb, e->C, 0, 0);
    for (int32_t b = 0; b < nb; b++) copy_rows(g, hl, b, h, last_rows[b], 1);
    set_groups(g, e, e->h_rows, nb, 0); /* one GEMM row per sequence */
    T *logits = lisa_llama_logits(g, e->m->llm, hl);
    if (prefill) lisa_g_tap(g, logits, "prefill_logits_last");
    lisa_tensor next = lisa_tensor_view(e->h_next, LISA_DTYPE_I32, 1, (int64_t[]){nb});
    lisa_tensor hid = lisa_tensor_view(e->h_hidden, LISA_DTYPE_F32, 2, (int64_t[]){nb, e->C});
    lisa_g_download(g, &next, lisa_g_argmax(g, logits));
    lisa_g_download(g, &hid, hl);
}

static lisa_llama_batch make_batch(lisa_engine *e, int32_t nb, int32_t rows) {
    lisa_llama_batch bt = {.n_seqs = nb, .n_rows = rows, .qo_indptr = e->h_qo, .positions = e->h_pos,
                           .slots = e->h_slots, .kv_indptr = e->h_kvp, .kv_indices = e->h_idx, .kv_len = e->h_kvl,
                           .page_size = e->pool.page_size, .k_pages = e->pool.k, .v_pages = e->pool.v};
    if (e->graphs) bt.n_indices_upload = e->cap_idx; /* one copy size for every step of a graph */
    return bt;
}

/* Prefill of the step's requests, one plan sequence per prompt segment (runtime/prefix_tree.h):
 * sequence s covers positions [p0, p0 + rows) of its request, whose rows are the text embeddings
 * of the ids before the placeholder k, the projected image (positions [k, k + P), from proj_buf),
 * and the text after. Copy-on-write pages are copied first. */
static void prefill_graph(lisa_graph *g, void *ctx) {
    lisa_engine *e = ctx;
    const int32_t ns = e->n_batch, R = e->h_qo[ns], P = e->P;
    /* every layer's K and V of each copy-on-write page (views on the stack: nothing allocated) */
    for (int32_t c = 0; c < e->n_copy; c++)
        for (int32_t l = 0; l < e->pool.n_layers; l++) {
            lisa_tensor src, dst;
            for (int kv = 0; kv < 2; kv++) {
                const lisa_tensor *pool = kv ? &e->pool.v[l] : &e->pool.k[l];
                if (lisa_tensor_narrow(&src, pool, 0, e->h_copy[2 * c], 1) != LISA_OK ||
                    lisa_tensor_narrow(&dst, pool, 0, e->h_copy[2 * c + 1], 1) != LISA_OK) {
                    lisa_g_fail(g, lisa_fail(LISA_ERR_INTERNAL, "engine: copy-on-write page %d -> %d",
                                             e->h_copy[2 * c], e->h_copy[2 * c + 1]));
                    return;
                }
                lisa_g_copy_to(g, &dst, &src);
            }
        }
    /* the image rows: the leader gathers them from the image cache; TP: to every rank (followers run
     * no CLIP), over the LLM's communicator (device memory with NCCL) */
    int32_t n_img = 0;
    for (int32_t q = 0; q < ns; q++)
        if (e->h_seq[4 * q + 2] >= 0) n_img++;
    if (!e->follower)
        for (int32_t j = 0; j < n_img; j++) lisa_g_copy_to(g, lisa_g_narrow(g, &e->proj_buf, 0, j, 1), &e->ic.e[e->img_slot[j]].proj);
    if (n_img > 0) lisa_tp_broadcast(g, e->m->llm->comm, lisa_g_narrow(g, &e->proj_buf, 0, 0, n_img), 0);
    T *emb = lisa_llama_embed(g, e->m->llm, e->h_ids, e->n_text); /* [n_text, C] */
    T *x = lisa_g_new(g, g->act_dtype, 2, R, e->C, 0, 0);
    int64_t t = 0;
    int32_t nl = 0, last[512];
    for (int32_t q = 0; q < ns; q++) {
        const int32_t p0 = e->h_seq[4 * q], k = e->h_seq[4 * q + 1], j = e->h_seq[4 * q + 2];
        const int32_t r0 = e->h_qo[q], p1 = p0 + e->h_qo[q + 1] - r0;
        const int32_t i0 = p0 > k ? p0 : k, i1 = p1 < k + P ? p1 : k + P;     /* image positions */
        const int32_t nbefore = (p1 < k ? p1 : k) - p0, a0 = p0 > k + P ? p0 : k + P; /* text */
        if (nbefore > 0) copy_rows(g, x, r0, emb, t, nbefore), t += nbefore;
        if (i1 > i0) {
            LISA_ASSERT(j >= 0);
            T *img = lisa_g_reshape(g, lisa_g_narrow(g, &e->proj_buf, 0, j, 1), 2, P, e->C, 0, 0);
            copy_rows(g, x, r0 + (i0 - p0), img, i0 - k, i1 - i0);
        }
        if (p1 > a0) copy_rows(g, x, r0 + (a0 - p0), emb, t, p1 - a0), t += p1 - a0;
        if (e->h_seq[4 * q + 3]) {
            LISA_ASSERT(nl < 512);
            last[nl++] = e->h_qo[q + 1] - 1;
        }
    }
    lisa_llama_batch bt = make_batch(e, ns, R);
    set_groups(g, e, e->h_qo, ns, 0); /* one GEMM per segment */
    T *h = lisa_llama_forward_batch(g, e->m->llm, &bt, x);
    for (int32_t b = 0; b <= nl; b++) e->h_rows[b] = b; /* identity groups for the logits */
    finish_rows(g, e, h, nl, last, true);
}

/* one decode step over nb sequences, one row each (the token fed is in h_ids) */
static void decode_graph(lisa_graph *g, void *ctx) {
    lisa_engine *e = ctx;
    const int32_t nb = e->n_batch;
    T *x = lisa_llama_embed(g, e->m->llm, e->h_ids, nb);
    lisa_llama_batch bt = make_batch(e, nb, nb);
    set_groups(g, e, e->h_qo, nb, 0);
    T *h = lisa_llama_forward_batch(g, e->m->llm, &bt, x);
    for (int32_t b = 0; b <= nb; b++) e->h_rows[b] = b;
    int32_t last[256];
    LISA_ASSERT(nb <= 256);
    for (int32_t b = 0; b < nb; b++) last[b] = b;
    finish_rows(g, e, h, nb, last, false);
}

/* the shared system-prompt prefix (build_prefix): its rows, no image */
static void prefix_graph(lisa_graph *g, void *ctx) {
    lisa_engine *e = ctx;
    const int32_t rows = e->h_qo[1];
    T *x = lisa_llama_embed(g, e->m->llm, e->h_ids, rows);
    lisa_llama_batch bt = make_batch(e, 1, rows);
    set_groups(g, e, e->h_qo, 1, 0);
    lisa_llama_forward_batch(g, e->m->llm, &bt, x);
}

static lisa_graph_fn graph_of(int32_t kind) {
    return kind == LISA_TP_PREFIX ? prefix_graph : kind == LISA_TP_PREFILL ? prefill_graph : decode_graph;
}

/* Runs a stage graph in the step arena (reset first). On a TP leader, an LLM graph's plan goes to
 * the followers first, who run the same graph (runtime/engine_tp.h). */
static lisa_status run_graph(lisa_engine *e, lisa_graph_fn fn) {
    if (e->tp && !e->follower && fn != clip_graph && fn != sam_encoder_graph) {
        e->plan.kind = fn == prefix_graph ? LISA_TP_PREFIX : fn == prefill_graph ? LISA_TP_PREFILL : LISA_TP_DECODE;
        e->plan.n_batch = e->n_batch;
        e->plan.n_rows = e->h_qo[e->n_batch];
        e->plan.n_text = e->n_text;
        e->plan.n_copy = fn == prefill_graph ? e->n_copy : 0;
        LISA_TRY(lisa_tp_plan_bcast(e->tp, &e->plan));
    }
    lisa_arena_reset(&e->act, 0);
    lisa_arena_reset(&e->meta, 0);
    lisa_graph g;
    lisa_graph_init(&g, e->be, &e->act, &e->meta, e->act_dtype);
    if (fn != prefix_graph) { /* the prefix is no request's: no taps */
        g.tap = e->hooks.tap;
        g.tap_ctx = e->hooks.ctx;
    }
    fn(&g, e);
    return g.status;
}

/* ---- step pieces ------------------------------------------------------------------------------ */

/* KV plan of a decode step: one row at kv.len per request. */
static void plan_decode(lisa_engine *e) {
    int32_t pages = 0;
    e->h_qo[0] = 0;
    e->h_kvp[0] = 0;
    for (int32_t b = 0; b < e->n_batch; b++) {
        eng_req *r = e->batch[b];
        e->h_pos[b] = r->kv.len;
        e->h_slots[b] = lisa_kv_seq_slot(&e->pool, &r->kv, r->kv.len);
        e->h_qo[b + 1] = b + 1;
        for (int32_t i = 0; i < r->kv.n_pages; i++) e->h_idx[pages++] = r->kv.pages[i];
        e->h_kvp[b + 1] = pages;
        e->h_kvl[b] = r->kv.len + 1;
    }
}

/* One plan sequence of a prefill: positions [p0, p1) of request r. */
static void plan_segment(lisa_engine *e, const eng_req *r, int32_t p0, int32_t p1, int32_t img_j, bool last,
                         int32_t *rows, int32_t *pages, int32_t *text) {
    const int32_t q = e->n_batch++, k = r->prep.placeholder;
    for (int32_t p = p0; p < p1; p++, (*rows)++) {
        e->h_pos[*rows] = p;
        e->h_slots[*rows] = lisa_kv_seq_slot(&e->pool, &r->kv, p);
        /* the text ids of the rows, in row order: before the image ids[p], after it ids[p - P + 1] */
        if (p < k) e->h_ids[(*text)++] = r->prep.ids[p];
        else if (p >= k + e->P) e->h_ids[(*text)++] = r->prep.ids[p - e->P + 1];
    }
    e->h_qo[q + 1] = *rows;
    for (int32_t i = 0; i < r->kv.n_pages; i++) e->h_idx[(*pages)++] = r->kv.pages[i];
    e->h_kvp[q + 1] = *pages;
    e->h_kvl[q] = p1;
    e->h_seq[4 * q] = p0;
    e->h_seq[4 * q + 1] = k;
    e->h_seq[4 * q + 2] = img_j;
    e->h_seq[4 * q + 3] = last;
}

/* The prefill plan of the step's n_req requests: from each one's start, the image segment (if its
 * prefix does not hold it) and the rest, each a plan sequence (runtime/prefix_tree.h); the image
 * rows' entries; the copy-on-write pairs. */
static void plan_prefill(lisa_engine *e) {
    int32_t rows = 0, pages = 0, text = 0, n_img = 0;
    e->n_batch = 0;
    e->n_copy = 0;
    e->h_qo[0] = 0;
    e->h_kvp[0] = 0;
    for (int32_t b = 0; b < e->n_req; b++) {
        const eng_req *r = e->batch[b];
        const int32_t img_end = r->prep.placeholder + e->P;
        if (r->cow_src >= 0) {
            e->h_copy[2 * e->n_copy] = r->cow_src;
            e->h_copy[2 * e->n_copy + 1] = r->cow_dst;
            e->n_copy++;
        }
        if (r->start < img_end) {
            e->img_slot[n_img] = r->slot;
            plan_segment(e, r, r->start, img_end, n_img++, false, &rows, &pages, &text);
        }
        plan_segment(e, r, img_end, r->prep.L0, -1, true, &rows, &pages, &text);
    }
    e->n_text = text;
}

/* Appends the step's token to each of its n requests; marks finished ones. */
static void take_tokens(lisa_engine *e, int32_t n) {
    const int32_t eos = lisa_tokenizer_eos_id(e->m->tok);
    for (int32_t b = 0; b < n; b++) {
        eng_req *r = e->batch[b];
        lisa_result *res = r->res;
        const int32_t tok = e->h_next[b];
        res->tokens[res->n_tokens++] = tok;
        /* §4.4: the state of the position that predicted [SEG] */
        if (tok == e->m->seg_id) memcpy(r->seg_hidden + (size_t)r->n_seg++ * e->C, e->h_hidden + (size_t)b * e->C,
                                        (size_t)e->C * sizeof(float));
        if (tok == eos || res->n_tokens >= r->prep.max_new) r->finished = true;
    }
}

static void fail_batch(lisa_engine *e, int32_t n, lisa_status s) {
    const char *msg = lisa_last_error();
    for (int32_t b = 0; b < n; b++) {
        fail_result(e->batch[b]->res, s, msg);
        e->batch[b]->finished = true;
    }
}

/* under mu: does a request admitted in this step (batch[0..nb)) prefill the image segment of `key`? */
static bool image_segment_in_step(const lisa_engine *e, int32_t nb, const lisa_image_key *key) {
    for (int32_t b = 0; b < nb; b++) {
        const eng_req *o = e->batch[b];
        if (o->start < o->prep.placeholder + e->P && lisa_image_key_eq(&o->key, key)) return true;
    }
    return false;
}

/* under mu: the KV of r from `node` on (copy-on-write of a partial last page), room for its whole
 * context; LISA_ERR_BUSY when the pool is short even after dropping unused kept prefixes */
static lisa_status reserve_kv(lisa_engine *e, eng_req *r, const lisa_prefix_node *node) {
    const int32_t need = r->prep.L0 + r->prep.max_new;
    for (int attempt = 0; attempt < 2; attempt++) {
        lisa_status s = lisa_prefix_tree_seq_init(&e->tree, node, &r->kv, &r->cow_src, &r->cow_dst);
        if (s == LISA_OK) {
            s = lisa_kv_seq_reserve(&e->pool, &r->kv, need);
            if (s == LISA_OK) return LISA_OK;
            lisa_kv_seq_release(&e->pool, &r->kv);
        }
        if (s != LISA_ERR_BUSY) return s;
        /* pages to find: the new ones of the context, and one for the copy-on-write */
        const int32_t shared = node ? node->pos1 / e->pool.page_size : 0;
        if (attempt == 1 || !lisa_prefix_tree_evict(&e->tree, lisa_kv_pages_for(&e->pool, need) - shared + 1, node))
            break;
    }
    r->cow_src = r->cow_dst = -1;
    return LISA_ERR_BUSY;
}

/* under mu: sends r (unlinked from the ready queue) back to the workers for its pixels */
static void requeue_for_pixels(lisa_engine *e, eng_req *r) {
    r->need_pixels = true;
    r->next = e->prep_head;
    e->prep_head = r;
    if (!e->prep_tail) e->prep_tail = r;
    e->n_prep++;
    pthread_cond_signal(&e->work_cv);
}

/* admission under mu (see the file comment); returns the number admitted into e->batch */
static int32_t admit_locked(lisa_engine *e) {
    int32_t nb = 0, rows = 0, n_img = 0;
    e->n_enc = 0;
    const bool cache = lisa_image_cache_enabled(&e->ic);
    eng_req *prev = NULL, *r = e->ready_head;
    while (r && e->n_running + nb < e->p.max_batch) {
        eng_req *next = r->next;
        int32_t ent = cache ? lisa_image_cache_find(&e->ic, &r->key) : -1;
        /* encoded, or prefilled through its image, by an earlier request of this step: next step */
        if ((ent >= 0 && e->ic.e[ent].state == LISA_IMAGE_ENTRY_ENCODING) ||
            (cache && e->p.share_prefix && image_segment_in_step(e, nb, &r->key))) {
            prev = r;
            r = next;
            continue;
        }
        if (ent < 0 && !r->has_pixels) { /* its image left the cache since a worker looked */
            if (prev) prev->next = next;
            else e->ready_head = next;
            if (e->ready_tail == r) e->ready_tail = prev;
            e->n_ready--;
            requeue_for_pixels(e, r);
            r = next;
            continue;
        }
        const bool hit = ent >= 0;
        lisa_prefix_node *node = e->p.share_prefix ? lisa_prefix_tree_match(&e->tree, r->prep.ids, r->prep.n_ids,
                                                                         hit ? &r->key : NULL, r->prep.L0)
                                                   : NULL;
        const int32_t img_end = r->prep.placeholder + e->P;
        int32_t start = 0;
        bool img_rows = true, admitted = false;
        /* from the longest kept prefix; if the pool is short even so (that prefix's partial page is
         * one more page held), from its parent, which lets it be dropped */
        for (int attempt = 0; attempt < 2 && !admitted; attempt++) {
            start = node ? node->pos1 : 0;
            LISA_ASSERT(start <= r->prep.placeholder || start == img_end);
            img_rows = start < img_end;
            if (nb > 0 && rows + (r->prep.L0 - start) > e->p.max_prefill_tokens) break;
            if ((img_rows && n_img == e->p.max_images) || (!hit && e->n_enc == e->p.max_images)) break;
            if (node) node->users++; /* kept while we make room */
            admitted = reserve_kv(e, r, node) == LISA_OK;
            if (node && !admitted) node->users--;
            if (!admitted && node && node->has_image) node = node->parent != &e->tree.root ? node->parent : NULL;
            else break;
        }
        if (!admitted) break; /* wait for pages: FIFO, nobody overtakes */
        /* admitted */
        r->node = node;
        r->start = start;
        r->enc = -1;
        if (hit) {
            lisa_image_cache_pin(&e->ic, ent);
            r->slot = ent;
            lisa_tensor_free(&r->prep.clip_px); /* prepared before its image was cached: not needed */
            lisa_tensor_free(&r->prep.sam_px);
        } else {
            r->slot = lisa_image_cache_acquire(&e->ic, &r->key);
            r->enc = e->n_enc;
            e->enc_slot[e->n_enc++] = r->slot;
        }
        if (node && node->pos1 >= img_end) e->kv_hits++;
        e->kv_reused += start;
        if (prev) prev->next = next;
        else e->ready_head = next;
        if (e->ready_tail == r) e->ready_tail = prev;
        e->n_ready--;
        e->batch[nb++] = r;
        rows += r->prep.L0 - start;
        n_img += img_rows;
        r = next;
    }
    return nb;
}

/* under mu: a request leaves the running set (its pages, its prefix, its image entry) */
static void release_running_locked(lisa_engine *e, eng_req *r) {
    lisa_kv_seq_release(&e->pool, &r->kv);
    if (r->node) r->node->users--;
    r->node = NULL;
    if (r->slot >= 0) lisa_image_cache_unpin(&e->ic, r->slot);
    r->slot = -1;
}

/* under mu: keeps the prompts through their image of the step's requests that prefilled them */
static void keep_prefixes_locked(lisa_engine *e) {
    if (!e->p.share_prefix || !lisa_image_cache_enabled(&e->ic)) return;
    for (int32_t b = 0; b < e->n_req; b++) {
        eng_req *r = e->batch[b];
        const int32_t k = r->prep.placeholder, img_end = k + e->P;
        if (r->res->status != LISA_OK || r->start >= img_end) continue;
        lisa_prefix_node *parent = r->node;
        const int32_t id0 = parent ? parent->id_end : 0;
        if (lisa_prefix_tree_child(&e->tree, parent, r->prep.ids + id0, k + 1 - id0, &r->key)) continue;
        /* out of memory: not kept, nothing else changes */
        lisa_prefix_tree_insert(&e->tree, parent, r->prep.ids + id0, k + 1 - id0, &r->key, img_end, r->kv.pages,
                                false);
    }
}

static void vision_and_prefill(lisa_engine *e, int32_t nb) {
    e->n_req = nb;
    double t0 = lisa_clock_ms(), t1 = t0;
    lisa_status s = LISA_OK;
    if (e->n_enc > 0) {
        const size_t clip_sz = lisa_tensor_nbytes(&e->clip_host) / (size_t)e->p.max_images;
        const size_t sam_sz = lisa_tensor_nbytes(&e->sam_host) / (size_t)e->p.max_images;
        for (int32_t b = 0; b < nb; b++) {
            const eng_req *r = e->batch[b];
            if (r->enc < 0) continue;
            memcpy((char *)e->clip_host.data + r->enc * clip_sz, r->prep.clip_px.data, clip_sz);
            memcpy((char *)e->sam_host.data + r->enc * sam_sz, r->prep.sam_px.data, sam_sz);
        }
        /* each stage timed to its end: the device finishes its work before the clock is read (the
         * backend's synchronize; a no-op on the CPU) */
        s = run_graph(e, clip_graph);
        if (s == LISA_OK) s = e->be->synchronize(e->be);
        const double tc = lisa_clock_ms();
        if (s == LISA_OK) s = run_graph(e, sam_encoder_graph);
        if (s == LISA_OK) s = e->be->synchronize(e->be);
        t1 = lisa_clock_ms();
        pthread_mutex_lock(&e->mu);
        for (int32_t b = 0; b < nb && s == LISA_OK; b++) {
            eng_req *r = e->batch[b];
            if (r->enc < 0) continue;
            lisa_image_cache_ready(&e->ic, r->slot, r->prep.H0, r->prep.W0, r->prep.h_r, r->prep.w_r);
            r->res->t.clip_ms = tc - t0;
            r->res->t.sam_encoder_ms = t1 - tc;
        }
        pthread_mutex_unlock(&e->mu);
        if (s != LISA_OK) {
            fail_batch(e, nb, s);
            return;
        }
    }
    /* requests on a cached image: the sizes the mask stage needs come with the embedding */
    for (int32_t b = 0; b < nb; b++) {
        eng_req *r = e->batch[b];
        const lisa_image_entry *en = &e->ic.e[r->slot];
        r->prep.h_r = en->h_r;
        r->prep.w_r = en->w_r;
    }
    plan_prefill(e);
    s = run_graph(e, prefill_graph);
    double t2 = lisa_clock_ms();
    if (s != LISA_OK) {
        fail_batch(e, nb, s);
        return;
    }
    for (int32_t b = 0; b < nb; b++) {
        e->batch[b]->kv.len = e->batch[b]->prep.L0;
        e->batch[b]->res->t.prefill_ms = t2 - t1;
        e->batch[b]->res->t.n_prompt_tokens = e->batch[b]->prep.L0;
        e->batch[b]->res->t.n_reused_tokens = e->batch[b]->start;
    }
    take_tokens(e, nb);
    pthread_mutex_lock(&e->mu);
    keep_prefixes_locked(e);
    pthread_mutex_unlock(&e->mu);
}

#define GRAPH_CACHE 16

static void graphs_off(lisa_engine *e) {
    for (int32_t i = 0; i < e->n_gcache; i++)
        if (e->gcache[i].graph) e->be->graph_free(e->be, e->gcache[i].graph);
    e->n_gcache = 0;
    e->graphs = false;
}

/* The decode step through the graph cache (see the file comment). */
static lisa_status run_decode_graphed(lisa_engine *e) {
    const int32_t nb = e->n_batch;
    int32_t k = 0;
    while (k < e->n_gcache && e->gcache[k].nb != nb) k++;
    if (k == e->n_gcache) { /* a new batch size: a slot (the least recently used when full) */
        if (e->n_gcache == GRAPH_CACHE) {
            k = 0;
            for (int32_t i = 1; i < e->n_gcache; i++)
                if (e->gcache[i].used < e->gcache[k].used) k = i;
            if (e->gcache[k].graph) e->be->graph_free(e->be, e->gcache[k].graph);
        } else {
            k = e->n_gcache++;
        }
        e->gcache[k].nb = nb, e->gcache[k].seen = 0, e->gcache[k].graph = NULL;
    }
    e->gcache[k].used = ++e->gclock;
    if (!e->gcache[k].graph && e->gcache[k].seen++ == 0)
        return run_graph(e, decode_graph); /* first time eager: GEMM plans built, the step validated */
    if (!e->gcache[k].graph) {
        lisa_status s = e->be->graph_capture_begin(e->be, e->m->cfg.llm.max_pos);
        if (s == LISA_OK) s = run_graph(e, decode_graph);
        lisa_backend_graph *g = NULL;
        if (s == LISA_OK) s = e->be->graph_capture_end(e->be, &g);
        else e->be->graph_capture_abort(e->be);
        if (s != LISA_OK) { /* not capturable after all: eager from now on */
            lisa_log(LISA_LOG_WARN, "engine: graph capture failed (%s); decode steps run eagerly", lisa_last_error());
            graphs_off(e);
            return run_graph(e, decode_graph);
        }
        e->gcache[k].graph = g;
    }
    LISA_TRY(e->be->graph_launch(e->be, e->gcache[k].graph));
    return e->be->synchronize(e->be); /* h_next and h_hidden are written by the replay */
}

/* returns the number of sequences decoded */
static int32_t decode_step(lisa_engine *e) {
    int32_t nb = 0;
    for (int32_t i = 0; i < e->n_running; i++)
        if (!e->running[i]->finished) e->batch[nb++] = e->running[i];
    if (nb == 0) return 0;
    e->n_batch = nb;
    for (int32_t b = 0; b < nb; b++) e->h_ids[b] = e->batch[b]->res->tokens[e->batch[b]->res->n_tokens - 1];
    plan_decode(e);
    double t0 = lisa_clock_ms();
    lisa_status s = e->graphs ? run_decode_graphed(e) : run_graph(e, decode_graph);
    double dt = lisa_clock_ms() - t0;
    int32_t bucket = 0; /* for lisa_engine_get_stats: 1, 2, 3-4, 5-8, ... */
    while (bucket < LISA_ENGINE_BATCH_BUCKETS - 1 && (1 << bucket) < nb) bucket++;
    pthread_mutex_lock(&e->mu);
    e->last_batch = nb;
    e->decode_steps++;
    e->decode_rows += nb;
    e->decode_hist[bucket]++;
    pthread_mutex_unlock(&e->mu);
    if (s != LISA_OK) {
        fail_batch(e, nb, s);
        return 0;
    }
    for (int32_t b = 0; b < nb; b++) {
        e->batch[b]->kv.len++;
        e->batch[b]->res->t.decode_ms += dt;
    }
    take_tokens(e, nb);
    return nb;
}

/* Text and timings of a request whose masks ran (s: their outcome), then publication. */
static void publish_request(lisa_engine *e, eng_req *r, lisa_status s, double mask_ms) {
    lisa_result *res = r->res;
    if (res->status == LISA_OK) {
        /* mask_ms < 0: lisa_masks_run timed its parts itself (sam_decoder_ms, postprocess_ms);
         * else the batched mask stage's time. Detokenizing and chat.py's cleanup are
         * postprocessing. */
        if (mask_ms >= 0) res->t.sam_decoder_ms = mask_ms;
        const double t0 = lisa_clock_ms();
        if (s == LISA_OK) s = lisa_result_set_text(e->m, res, &r->prep);
        res->t.postprocess_ms += lisa_clock_ms() - t0;
        if (s != LISA_OK) fail_result(res, s, lisa_last_error());
        res->t.n_generated = res->n_tokens;
    }
    res->t.total_ms = lisa_clock_ms() - r->t_submit;
    pthread_mutex_lock(&e->mu);
    release_running_locked(e, r);
    retire_locked(e, r);
    pthread_mutex_unlock(&e->mu);
}

/* The step's finished requests: their masks (all prompts decoded together through e->masks, else
 * one request at a time), then each is published, in order. sam_decoder_ms is the mask stage's
 * time, which a request shares with the others of its step. */
static void finish_requests(lisa_engine *e, eng_req **fin, int32_t n) {
    if (!e->masks) {
        for (int32_t i = 0; i < n; i++) {
            eng_req *r = fin[i];
            lisa_status s = LISA_OK;
            if (r->res->status == LISA_OK)
                s = lisa_masks_run(e->m, e->be, &r->prep, &e->ic.e[r->slot].emb, r->seg_hidden, r->n_seg, r->res,
                                   e->hooks.tap ? &e->hooks : NULL);
            publish_request(e, r, s, -1.0); /* lisa_masks_run set sam_decoder_ms and postprocess_ms */
        }
        return;
    }
    int32_t ni = 0;
    for (int32_t i = 0; i < n; i++)
        if (fin[i]->res->status == LISA_OK)
            e->mask_items[ni++] = (lisa_mask_item){.pr = &fin[i]->prep, .emb = &e->ic.e[fin[i]->slot].emb,
                                                   .seg_hidden = fin[i]->seg_hidden, .n_seg = fin[i]->n_seg,
                                                   .res = fin[i]->res};
    const double t0 = lisa_clock_ms();
    if (ni > 0) lisa_mask_decoder_run(e->masks, e->mask_items, ni);
    const double dt = lisa_clock_ms() - t0;
    for (int32_t i = 0, k = 0; i < n; i++)
        publish_request(e, fin[i], fin[i]->res->status == LISA_OK ? e->mask_items[k++].status : LISA_OK, dt);
}

static lisa_status step_impl(lisa_engine *e, bool *busy) {
    pthread_mutex_lock(&e->mu);
    int32_t nb = admit_locked(e);
    e->steps++;
    pthread_mutex_unlock(&e->mu);
    for (int32_t b = 0; b < nb; b++) e->running[e->n_running++] = e->batch[b];
    if (nb > 0) vision_and_prefill(e, nb);
    decode_step(e);
    /* publish finished requests (keeping the others in order) */
    int32_t kept = 0, n_fin = 0;
    for (int32_t i = 0; i < e->n_running; i++) {
        eng_req *r = e->running[i];
        if (r->finished) e->finished[n_fin++] = r;
        else e->running[kept++] = r;
    }
    e->n_running = kept;
    finish_requests(e, e->finished, n_fin);
    pthread_mutex_lock(&e->mu);
    e->n_running_pub = e->n_running;
    *busy = e->n_running > 0 || e->n_ready > 0 || e->n_prep > 0 || e->n_preparing > 0;
    pthread_mutex_unlock(&e->mu);
    return LISA_OK;
}

lisa_status lisa_engine_step(lisa_engine *e, bool *busy) {
    bool b = false;
    if (e->p.background) {
        /* the engine thread steps; report the state only */
        pthread_mutex_lock(&e->mu);
        b = e->n_unfinished > 0;
        pthread_mutex_unlock(&e->mu);
    } else {
        pthread_mutex_lock(&e->step_mu);
        lisa_status s = step_impl(e, &b);
        pthread_mutex_unlock(&e->step_mu);
        if (s != LISA_OK) return s;
    }
    if (busy) *busy = b;
    return LISA_OK;
}

static void *sched_main(void *arg) {
    lisa_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stop && !e->ready_head && e->n_running_pub == 0) pthread_cond_wait(&e->sched_cv, &e->mu);
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (stop) break;
        bool busy;
        pthread_mutex_lock(&e->step_mu);
        step_impl(e, &busy);
        pthread_mutex_unlock(&e->step_mu);
    }
    return NULL;
}

/* ---- creation ------------------------------------------------------------------------------- */

lisa_engine_params lisa_engine_default_params(void) {
    lisa_engine_params p = {.max_batch = 16, .max_prefill_tokens = 2048, .max_images = 8, .page_size = 16,
                            .kv_cache_bytes = 0, .max_queue = 1024, .n_workers = 0, .share_prefix = true,
                            .background = true, .image_cache_bytes = 256ll << 20};
    return p;
}

lisa_request lisa_request_default(void) {
    lisa_request r;
    memset(&r, 0, sizeof r);
    r.params = lisa_segment_default_params();
    return r;
}

/* Host plan/result arrays: pinned when decode steps are captured into CUDA graphs (their copies
 * are replayed), plain malloc otherwise. */
static void *host_buf(lisa_engine *e, size_t bytes) {
    if (e->graphs) {
        void *p = NULL;
        return e->be->host_alloc(e->be, bytes, &p) == LISA_OK ? p : NULL;
    }
    return malloc(bytes ? bytes : 1);
}

static void host_buf_free(const lisa_engine *e, void *p) {
    if (e->graphs_pinned) {
        e->be->host_free(e->be, p);
        return;
    }
    free(p);
}

/* A synthetic prefill sequence for the counting passes: positions [p0, p1), placeholder at 1. */
static void measure_seq(lisa_engine *e, int32_t p0, int32_t p1, int32_t img_j, bool last) {
    const int32_t q = e->n_batch++, k = 1;
    e->h_qo[q + 1] = e->h_qo[q] + (p1 - p0);
    e->h_kvp[q + 1] = 0;
    e->h_kvl[q] = p1;
    e->h_seq[4 * q] = p0, e->h_seq[4 * q + 1] = k, e->h_seq[4 * q + 2] = img_j, e->h_seq[4 * q + 3] = last;
    for (int32_t p = p0; p < p1; p++) {
        e->h_pos[e->h_qo[q] + p - p0] = e->h_slots[e->h_qo[q] + p - p0] = 0;
        if (p < k || p >= k + e->P) e->h_ids[e->n_text++] = 0;
    }
}

/* Counting passes over the worst-case shapes of every step graph; sizes the step arena. */
static lisa_status size_arena(lisa_engine *e, size_t *act_bytes, size_t *meta_bytes) {
    size_t a = 0, mb = 0, ta, tm;
    lisa_status s = LISA_OK;
    e->batch = NULL; /* counting mode: the graphs use synthetic per-sequence layouts */
    const int32_t R = e->p.max_prefill_tokens, P = e->P, MB = e->p.max_batch, MI = e->p.max_images;
    /* vision with max_images; prefill of R rows as one request, and as the most requests a step
     * admits (max_images with their image segment, the rest one row each); decode of max_batch rows
     * (host plan arrays hold any values: nothing executes) */
    /* pass -1 and 0: the two vision graphs (CLIP, SAM encoder) */
    for (int pass = e->follower ? 1 : -1; pass < 4 && s == LISA_OK; pass++) { /* followers: no vision */
        lisa_graph_fn fn = pass == -1 ? clip_graph : pass == 0 ? sam_encoder_graph : pass == 3 ? decode_graph
                                                                                                : prefill_graph;
        e->n_batch = e->n_text = e->n_copy = 0;
        e->h_qo[0] = e->h_kvp[0] = 0;
        if (pass <= 0) {
            e->n_enc = MI;
            for (int32_t b = 0; b < MI; b++) e->enc_slot[b] = 0;
        } else if (pass == 1) {
            measure_seq(e, 0, 1 + P, 0, false);
            measure_seq(e, 1 + P, R, -1, true);
        } else if (pass == 2) {
            const int32_t n_img = MI < R / (P + 2) ? MI : R / (P + 2);
            int32_t n_hit = MB - n_img, left = R - n_img * (P + 2);
            if (n_hit > left) n_hit = left;
            for (int32_t j = 0; j < n_img; j++) {
                measure_seq(e, 0, 1 + P, j, false);
                measure_seq(e, 1 + P, 2 + P, -1, true);
            }
            for (int32_t j = 0; j < n_hit; j++) measure_seq(e, 1 + P, 2 + P, -1, true);
        } else {
            e->n_batch = MB;
            for (int32_t b = 0; b < MB; b++) {
                e->h_qo[b + 1] = b + 1;
                e->h_kvp[b + 1] = 0;
                e->h_kvl[b] = 1;
                e->h_pos[b] = e->h_slots[b] = e->h_ids[b] = 0;
            }
            e->n_text = MB;
        }
        if (!e->follower)
            for (int32_t j = 0; j < MI; j++) e->img_slot[j] = 0;
        s = lisa_graph_measure(e->be, e->act_dtype, fn, e, &ta, &tm);
        if (ta > a) a = ta;
        if (tm > mb) mb = tm;
    }
    e->n_batch = e->n_text = e->n_enc = 0;
    *act_bytes = a;
    *meta_bytes = mb;
    return s;
}

static lisa_status create_vision_buffers(lisa_engine *e);
static lisa_status create_host_arrays(lisa_engine *e, int32_t n_pages);

static lisa_status create_buffers(lisa_engine *e) {
    const lisa_model *m = e->m;
    const int32_t MB = e->p.max_batch, MI = e->p.max_images;
    /* KV pool: this rank's KV heads (all without TP); a follower takes the leader's page count */
    const lisa_llama_config *lc = &m->cfg.llm;
    const int32_t n_kv = m->llm->local.n_kv_heads;
    const size_t page_bytes = lisa_kv_page_bytes(lc->n_layers, e->p.page_size, n_kv, lc->head_dim, e->act_dtype);
    int64_t budget = e->p.kv_cache_bytes;
    if (budget <= 0) budget = (int64_t)(MB * ((1024 + e->p.page_size - 1) / e->p.page_size) + 64) * (int64_t)page_bytes;
    int32_t n_pages = e->follower ? e->plan.args[4] : (int32_t)(budget / (int64_t)page_bytes);
    if (n_pages < 2) return lisa_fail(LISA_ERR_INVALID_ARG, "engine: kv_cache_bytes %lld holds %d pages of %zu bytes",
                                      (long long)budget, n_pages, page_bytes);
    if (e->tp && !e->follower) { /* the followers build the same buffers meanwhile */
        const int32_t args[6] = {MB, e->p.max_prefill_tokens, MI, e->p.page_size, n_pages, e->P};
        LISA_TRY(lisa_tp_send(e->tp, LISA_TP_CREATE, args));
        e->tp_created = true;
    }
    LISA_TRY(
        lisa_kv_pool_init(&e->pool, e->be, lc->n_layers, n_pages, e->p.page_size, n_kv, lc->head_dim, e->act_dtype));
    lisa_prefix_tree_init(&e->tree, &e->pool);
    /* the projector buffer (followers: the leader's rows arrive there) */
    e->proj_buf = lisa_tensor_view(NULL, e->act_dtype, 3, (int64_t[]){MI, e->P, e->C});
    LISA_TRY(e->be->mem_alloc(e->be, lisa_tensor_nbytes(&e->proj_buf), &e->proj_mem));
    e->proj_buf.data = e->proj_mem;
    e->proj_buf.device = e->be->device;
    if (!e->follower) LISA_TRY(create_vision_buffers(e));
    LISA_TRY(create_host_arrays(e, n_pages));
    /* the step arena: counting passes over the worst case */
    eng_req **saved = e->batch;
    size_t act_bytes = 0, meta_bytes = 0;
    lisa_status s = size_arena(e, &act_bytes, &meta_bytes);
    e->batch = saved;
    if (s != LISA_OK) return lisa_fail_context(s, "engine: sizing the step arena");
    LISA_TRY(e->be->mem_alloc(e->be, act_bytes ? act_bytes : 1, &e->act_mem));
    lisa_arena_init_external(&e->act, "engine activations", e->act_mem, act_bytes);
    LISA_TRY(lisa_arena_init(&e->meta, "engine descriptors", meta_bytes));
    return LISA_OK;
}

/* An image leaves the cache: so do the KV prefixes computed from it (runtime/prefix_tree.h). */
static void on_image_evicted(void *ctx, int32_t slot) {
    lisa_engine *e = ctx;
    lisa_prefix_tree_drop_image(&e->tree, &e->ic.e[slot].key);
}

/* The image cache and the image staging buffers (leader / no TP only). */
static lisa_status create_vision_buffers(lisa_engine *e) {
    const lisa_model *m = e->m;
    const int32_t S = m->sam_pp.target_size, CS = m->clip->cfg.image_size, G = m->sam->enc.grid, O = m->cfg.out_dim;
    const int32_t MB = e->p.max_batch, MI = e->p.max_images;
    if (e->p.image_cache_bytes < 0)
        return lisa_fail(LISA_ERR_INVALID_ARG, "engine params: image_cache_bytes %lld (0 = no reuse)",
                         (long long)e->p.image_cache_bytes);
    LISA_TRY(lisa_image_cache_init(&e->ic, e->be, e->act_dtype, e->P, e->C, O, G, MB, e->p.image_cache_bytes));
    e->ic.on_evict = on_image_evicted;
    e->ic.evict_ctx = e;
    e->pp_id = lisa_model_preprocess_id(m);
    e->enc_slot = calloc((size_t)MI, sizeof *e->enc_slot);
    e->img_slot = calloc((size_t)MI, sizeof *e->img_slot);
    if (!e->enc_slot || !e->img_slot) return lisa_fail(LISA_ERR_OOM, "engine: out of memory");
    if (!(e->finished = calloc((size_t)MB, sizeof *e->finished)) ||
        !(e->mask_items = calloc((size_t)MB, sizeof *e->mask_items)))
        return lisa_fail(LISA_ERR_OOM, "engine: out of memory");
    /* host staging */
    LISA_TRY(lisa_tensor_alloc(&e->clip_host, LISA_DTYPE_F32, 4, (int64_t[]){MI, 3, CS, CS}));
    return lisa_tensor_alloc(&e->sam_host, LISA_DTYPE_F32, 4, (int64_t[]){MI, 3, S, S});
}

/* Plan sequences a step may hold: decode, max_batch; prefill, one per request plus one per image
 * segment (max_images) (the same formula on TP followers). */
static int32_t max_plan_seqs(int32_t MB, int32_t MI) { return MB + MI; }

/* The step plan's host arrays (and the TP plan buffer over them). */
static lisa_status create_host_arrays(lisa_engine *e, int32_t n_pages) {
    const lisa_llama_config *lc = &e->m->cfg.llm;
    const int32_t MB = e->p.max_batch, MI = e->p.max_images;
    e->cap_rows = e->p.max_prefill_tokens > MB ? e->p.max_prefill_tokens : MB;
    const int32_t nseq = max_plan_seqs(MB, MI) + 1;
    /* concatenated page tables repeat a request's pages once per plan sequence */
    e->cap_idx = n_pages + nseq * (lisa_kv_pages_for(&e->pool, lc->max_pos) + 1);
    e->h_qo = host_buf(e, (size_t)nseq * sizeof(int32_t));
    e->h_kvp = host_buf(e, (size_t)nseq * sizeof(int32_t));
    e->h_kvl = host_buf(e, (size_t)nseq * sizeof(int32_t));
    e->h_rows = host_buf(e, (size_t)nseq * sizeof(int32_t));
    e->h_next = host_buf(e, (size_t)nseq * sizeof(int32_t));
    e->h_pos = host_buf(e, (size_t)e->cap_rows * sizeof(int32_t));
    e->h_slots = host_buf(e, (size_t)e->cap_rows * sizeof(int32_t));
    e->h_ids = host_buf(e, (size_t)e->cap_rows * sizeof(int32_t));
    e->h_idx = host_buf(e, (size_t)e->cap_idx * sizeof(int32_t));
    e->h_hidden = host_buf(e, (size_t)nseq * e->C * sizeof(float));
    if (e->h_idx) memset(e->h_idx, 0, (size_t)e->cap_idx * sizeof(int32_t)); /* uploaded at capacity */
    e->h_seq = calloc((size_t)nseq * 4, sizeof(int32_t));
    e->h_copy = calloc((size_t)nseq * 2, sizeof(int32_t));
    e->running = calloc((size_t)MB, sizeof *e->running);
    e->batch = calloc((size_t)nseq, sizeof *e->batch);
    if (!e->h_qo || !e->h_kvp || !e->h_kvl || !e->h_rows || !e->h_next || !e->h_pos || !e->h_slots || !e->h_ids ||
        !e->h_idx || !e->h_hidden || !e->h_seq || !e->h_copy || !e->running || !e->batch)
        return lisa_fail(LISA_ERR_OOM, "engine: out of memory");
    if (e->tp) {
        lisa_tp_plan *pl = &e->plan;
        pl->qo = e->h_qo, pl->pos = e->h_pos, pl->slots = e->h_slots, pl->kvp = e->h_kvp, pl->idx = e->h_idx;
        pl->kvl = e->h_kvl, pl->ids = e->h_ids, pl->seq = e->h_seq, pl->copies = e->h_copy;
        pl->cap_seqs = nseq - 1, pl->cap_rows = e->cap_rows, pl->cap_idx = e->cap_idx, pl->cap_copies = nseq;
        if (!(pl->buf = malloc(lisa_tp_plan_buf_len(nseq, e->cap_rows, e->cap_idx, nseq) * sizeof(int32_t))))
            return lisa_fail(LISA_ERR_OOM, "engine: out of memory");
    }
    return LISA_OK;
}

/* Prefills the system-prompt prefix once (the full pages before the image placeholder) and keeps
 * it as the tree's pinned first node (runtime/prefix_tree.h). */
static lisa_status build_prefix(lisa_engine *e) {
    lisa_segment_params sp = lisa_segment_default_params();
    uint8_t px[3] = {0, 0, 0};
    lisa_prepared pr;
    LISA_TRY(lisa_prepare_ex(e->m, px, 1, 1, "x", &sp, false, &pr));
    const int32_t k = pr.placeholder, full = k / e->pool.page_size, rows = full * e->pool.page_size;
    lisa_status s = LISA_OK;
    lisa_kv_seq seq = {0};
    if (full > 0) {
        s = lisa_kv_seq_init(&e->pool, &seq, NULL, 0);
        if (s == LISA_OK && lisa_kv_seq_reserve(&e->pool, &seq, rows) != LISA_OK)
            s = lisa_fail(LISA_ERR_OOM, "engine: the KV pool cannot hold the shared prefix");
        if (s == LISA_OK) {
            /* a decode-shaped pass per token would work too; one prefill over the prefix rows */
            e->n_batch = 1;
            e->h_qo[0] = 0;
            e->h_qo[1] = rows;
            e->h_kvp[0] = 0;
            e->h_kvp[1] = seq.n_pages;
            memcpy(e->h_idx, seq.pages, (size_t)seq.n_pages * sizeof(int32_t));
            e->h_kvl[0] = rows;
            for (int32_t p = 0; p < rows; p++) {
                e->h_pos[p] = p;
                e->h_slots[p] = lisa_kv_seq_slot(&e->pool, &seq, p);
                e->h_ids[p] = pr.ids[p];
            }
            e->n_text = rows;
            s = run_graph(e, prefix_graph);
        }
        if (s == LISA_OK && !lisa_prefix_tree_insert(&e->tree, NULL, pr.ids, rows, NULL, rows, seq.pages, true))
            s = lisa_fail(LISA_ERR_OOM, "engine: out of memory");
        if (s == LISA_OK) e->n_prefix_pages = full;
        if (seq.pages) lisa_kv_seq_release(&e->pool, &seq); /* the tree holds the pages now */
    }
    lisa_prepared_free(&pr);
    return s;
}

static lisa_status engine_init(lisa_engine *e) {
    lisa_status s = create_buffers(e);
    if (s == LISA_OK && e->p.share_prefix) s = build_prefix(e);
    /* masks of a step's requests together where steps can be captured (CUDA), unless taps want
     * each request's tensors; captured when decode steps are (LISA_CUDA_GRAPHS=0: eager). Not for
     * one-request engines (lisa_model_run): nothing to batch, and no step size recurs to replay. */
    if (s == LISA_OK && lisa_backend_can_capture(e->be) && !e->hooks.tap && e->p.max_batch > 1)
        s = lisa_mask_decoder_create(&e->masks, e->m, e->be, e->graphs);
    if (s != LISA_OK) return s;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->step_mu, NULL);
    pthread_cond_init(&e->work_cv, NULL);
    pthread_cond_init(&e->sched_cv, NULL);
    pthread_cond_init(&e->done_cv, NULL);
    int32_t nw = e->p.n_workers;
    if (nw <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nw = n > 0 ? (int32_t)n : 1;
    }
    e->workers = calloc((size_t)nw, sizeof *e->workers);
    if (!e->workers) return lisa_fail(LISA_ERR_OOM, "engine: out of memory");
    for (int32_t i = 0; i < nw; i++) {
        if (pthread_create(&e->workers[i], NULL, worker_main, e) != 0)
            return lisa_fail(LISA_ERR_INTERNAL, "engine: cannot start worker thread %d", i);
        e->n_workers++;
    }
    if (e->p.background) {
        if (pthread_create(&e->sched, NULL, sched_main, e) != 0)
            return lisa_fail(LISA_ERR_INTERNAL, "engine: cannot start the scheduler thread");
        e->sched_started = true;
    }
    return LISA_OK;
}

lisa_status lisa_engine_create_ex(lisa_model *m, const lisa_engine_params *pp, const lisa_run_hooks *hooks,
                                  lisa_engine **out) {
    *out = NULL;
    lisa_engine_params p = pp ? *pp : lisa_engine_default_params();
    if (p.max_batch < 1 || p.max_batch > 256 || p.max_images < 1 || p.max_images > 64 || p.page_size < 1 ||
        p.max_prefill_tokens < 1 || p.max_queue < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "engine params: max_batch %d (1..256), max_images %d (1..64), page_size %d, "
                         "max_prefill_tokens %d, max_queue %d",
                         p.max_batch, p.max_images, p.page_size, p.max_prefill_tokens, p.max_queue);
    if (p.max_images > p.max_batch) p.max_images = p.max_batch;
    if (m->tp_follower)
        return lisa_fail(LISA_ERR_INVALID_ARG, "engine: TP rank %d follows rank 0's engine: call lisa_model_tp_follow",
                         m->tp_comm->rank);
    lisa_engine *e = calloc(1, sizeof *e);
    if (!e) return lisa_fail(LISA_ERR_OOM, "engine: out of memory");
    e->m = m;
    e->p = p;
    /* Its own execution context (scratch, CUDA stream): engines and lisa_segment calls on one model
     * run at once (include/lisa.h "Threads"). Under TP the collectives are ordered on the model's
     * stream (lisa_comm_nccl_create) and the followers serve one engine at a time: the model's
     * backend, for one engine at a time (tp_engine_claim). */
    if (m->tp_comm) {
        if (!tp_engine_claim(m)) {
            free(e);
            return lisa_fail(LISA_ERR_BUSY, "engine: a TP model serves one engine at a time (free the other first)");
        }
        e->be = m->be;
        e->tp = m->tp_comm;
    } else {
        lisa_status fs = lisa_backend_fork(m->be, &e->be);
        if (fs != LISA_OK) {
            free(e);
            return fs;
        }
        e->owns_be = true;
    }
    if (hooks) e->hooks = *hooks;
    e->batch_invariant_gemm = e->be->device == LISA_DEVICE_CPU;
    e->act_dtype = m->act_dtype;
    const char *gv = getenv("LISA_CUDA_GRAPHS");
    e->graphs = lisa_backend_can_capture(e->be) && !(hooks && hooks->tap) && !(gv && !strcmp(gv, "0"));
    e->graphs_pinned = e->graphs;
    e->C = m->cfg.llm.hidden;
    e->P = m->n_patches;
    e->V = m->cfg.llm.vocab;
    e->next_id = 1;
    if (p.max_prefill_tokens < e->P + 2) {
        const int32_t need = e->P + 2;
        lisa_engine_free(e);
        return lisa_fail(LISA_ERR_INVALID_ARG, "engine params: max_prefill_tokens %d is below one image (%d tokens)",
                         p.max_prefill_tokens, need);
    }
    lisa_status s = engine_init(e);
    if (s != LISA_OK) {
        lisa_engine_free(e);
        return s;
    }
    *out = e;
    return LISA_OK;
}

lisa_status lisa_engine_create(lisa_model *m, const lisa_engine_params *p, lisa_engine **out) {
    return lisa_engine_create_ex(m, p, NULL, out);
}

void lisa_engine_free(lisa_engine *e) {
    if (!e) return;
    if (e->workers || e->sched_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_broadcast(&e->work_cv);
        pthread_cond_broadcast(&e->sched_cv);
        pthread_cond_broadcast(&e->done_cv);
        pthread_mutex_unlock(&e->mu);
        for (int32_t i = 0; i < e->n_workers; i++) pthread_join(e->workers[i], NULL);
        if (e->sched_started) pthread_join(e->sched, NULL);
    }
    /* the followers free theirs (nothing to do if the message cannot go: the job is failing) */
    if (e->tp_created) lisa_tp_send(e->tp, LISA_TP_FREE, NULL);
    /* drop unfinished requests and unclaimed results */
    for (int32_t i = 0; i < e->n_running; i++) lisa_kv_seq_release(&e->pool, &e->running[i]->kv);
    lisa_prefix_tree_free(&e->tree);
    while (e->all) {
        eng_req *r = e->all;
        e->all = r->all_next;
        free_req(r);
    }
    for (int32_t i = 0; i < e->n_done; i++) lisa_result_free(e->done[i]);
    free(e->done);
    if (e->pool.mem) lisa_kv_pool_free(&e->pool);
    lisa_image_cache_free(&e->ic);
    if (e->proj_mem) e->be->mem_free(e->be, e->proj_mem);
    if (e->act_mem) e->be->mem_free(e->be, e->act_mem);
    lisa_arena_free(&e->meta);
    lisa_tensor_free(&e->clip_host);
    lisa_tensor_free(&e->sam_host);
    lisa_mask_decoder_free(e->masks);
    free(e->mask_items);
    free(e->finished);
    graphs_off(e);
    host_buf_free(e, e->h_qo);
    host_buf_free(e, e->h_kvp);
    host_buf_free(e, e->h_kvl);
    host_buf_free(e, e->h_rows);
    host_buf_free(e, e->h_next);
    host_buf_free(e, e->h_pos);
    host_buf_free(e, e->h_slots);
    host_buf_free(e, e->h_ids);
    host_buf_free(e, e->h_idx);
    host_buf_free(e, e->h_hidden);
    free(e->h_seq);
    free(e->h_copy);
    free(e->enc_slot);
    free(e->img_slot);
    free(e->plan.buf);
    free(e->running);
    free(e->batch);
    free(e->workers);
    if (e->owns_be) lisa_backend_free(e->be); /* after everything allocated through it */
    else if (e->tp && !e->follower) tp_engine_release(e->m);
    if (e->n_workers || e->sched_started) {
        pthread_mutex_destroy(&e->mu);
        pthread_mutex_destroy(&e->step_mu);
        pthread_cond_destroy(&e->work_cv);
        pthread_cond_destroy(&e->sched_cv);
        pthread_cond_destroy(&e->done_cv);
    }
    free(e);
}

/* ---- tensor-parallel followers (runtime/engine_tp.h; the loop is lisa_model_tp_follow) -------- */

lisa_status lisa_engine_tp_follower_create(lisa_model *m, const int32_t args[6], lisa_engine **out) {
    *out = NULL;
    lisa_engine *e = calloc(1, sizeof *e);
    if (!e) return lisa_fail(LISA_ERR_OOM, "engine: out of memory");
    e->m = m;
    e->be = m->be;
    e->p = lisa_engine_default_params();
    e->p.max_batch = args[0];
    e->p.max_prefill_tokens = args[1];
    e->p.max_images = args[2];
    e->p.page_size = args[3];
    e->plan.args[4] = args[4]; /* n_pages */
    e->P = args[5];
    e->batch_invariant_gemm = m->be->device == LISA_DEVICE_CPU;
    e->C = m->cfg.llm.hidden;
    e->V = m->cfg.llm.vocab;
    e->tp = m->tp_comm;
    e->follower = true;
    lisa_status s = create_buffers(e);
    if (s != LISA_OK) {
        lisa_engine_free(e);
        return lisa_fail_context(s, "TP rank %d", m->tp_comm->rank);
    }
    *out = e;
    return LISA_OK;
}

lisa_tp_plan *lisa_engine_tp_plan(lisa_engine *e) { return &e->plan; }

lisa_status lisa_engine_tp_follower_step(lisa_engine *e) {
    e->n_batch = e->plan.n_batch;
    e->n_text = e->plan.n_text;
    e->n_copy = e->plan.n_copy;
    return run_graph(e, graph_of(e->plan.kind));
}

/* ---- submission and results ------------------------------------------------------------------- */

static void *dup_bytes(const void *src, size_t n) {
    void *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, src, n);
    return d;
}

lisa_status lisa_engine_submit(lisa_engine *e, const lisa_request *rq, uint64_t *id) {
    if (id) *id = 0;
    if (!rq || !rq->query) return lisa_fail(LISA_ERR_INVALID_ARG, "request: query is NULL");
    const int n_images = (rq->image_data != NULL) + (rq->image_path != NULL) + (rq->rgb != NULL) + (rq->image != NULL);
    if (n_images != 1)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "request: give exactly one of image_data, image_path, rgb, image (got %d)", n_images);
    if (rq->rgb && (rq->height < 1 || rq->width < 1))
        return lisa_fail(LISA_ERR_INVALID_ARG, "request: rgb image of %d x %d", rq->width, rq->height);
    if (rq->image_data && rq->image_size == 0) return lisa_fail(LISA_ERR_INVALID_ARG, "request: image_data is empty");
    eng_req *r = calloc(1, sizeof *r);
    if (!r || !(r->res = lisa_result_new())) {
        free(r);
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    r->params = rq->params;
    r->query = strdup(rq->query);
    bool ok = r->query != NULL;
    if (rq->image_data) ok = ok && (r->image_data = dup_bytes(rq->image_data, rq->image_size));
    r->image_size = rq->image_size;
    if (rq->image_path) ok = ok && (r->image_path = strdup(rq->image_path));
    if (rq->rgb) ok = ok && (r->rgb = dup_bytes(rq->rgb, (size_t)rq->height * rq->width * 3));
    r->h = rq->height;
    r->w = rq->width;
    if (rq->image) r->himg = lisa_image_ref(rq->image);
    r->slot = -1;
    r->cow_src = r->cow_dst = -1;
    r->res->user_data = rq->user_data;
    r->t_submit = lisa_clock_ms();
    if (!ok) {
        free_req(r);
        return lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    pthread_mutex_lock(&e->mu);
    if (e->stop || e->n_unfinished >= e->p.max_queue) {
        int32_t n = e->n_unfinished;
        pthread_mutex_unlock(&e->mu);
        free_req(r);
        return lisa_fail(LISA_ERR_BUSY, "engine queue is full (%d unfinished requests)", n);
    }
    r->id = r->res->id = e->next_id++;
    r->all_next = e->all;
    e->all = r;
    e->n_unfinished++;
    if (e->prep_tail) e->prep_tail->next = r;
    else e->prep_head = r;
    e->prep_tail = r;
    e->n_prep++;
    if (id) *id = r->id;
    pthread_cond_signal(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
    return LISA_OK;
}

/* under mu: take a finished result (id 0 = the oldest) */
static lisa_result *take_done_locked(lisa_engine *e, uint64_t id) {
    for (int32_t i = 0; i < e->n_done; i++) {
        if (id != 0 && e->done[i]->id != id) continue;
        lisa_result *r = e->done[i];
        memmove(e->done + i, e->done + i + 1, (size_t)(e->n_done - i - 1) * sizeof *e->done);
        e->n_done--;
        return r;
    }
    return NULL;
}

static bool in_flight_locked(const lisa_engine *e, uint64_t id) {
    for (const eng_req *r = e->all; r; r = r->all_next)
        if (id == 0 || r->id == id) return true;
    return false;
}

lisa_status lisa_engine_poll(lisa_engine *e, lisa_result **out) {
    pthread_mutex_lock(&e->mu);
    *out = take_done_locked(e, 0);
    pthread_mutex_unlock(&e->mu);
    return *out ? LISA_OK : LISA_ERR_NOT_FOUND;
}

static void add_ms(struct timespec *ts, int64_t ms) {
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

lisa_status lisa_engine_wait(lisa_engine *e, uint64_t id, lisa_result **out) {
    return lisa_engine_wait_timeout(e, id, -1, out);
}

lisa_status lisa_engine_wait_timeout(lisa_engine *e, uint64_t id, int64_t timeout_ms, lisa_result **out) {
    *out = NULL;
    /* condition variables time out against CLOCK_REALTIME (their default clock) */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms >= 0) add_ms(&deadline, timeout_ms);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        lisa_result *r = take_done_locked(e, id);
        if (r) {
            pthread_mutex_unlock(&e->mu);
            *out = r;
            return LISA_OK;
        }
        if (!in_flight_locked(e, id) || e->stop) {
            pthread_mutex_unlock(&e->mu);
            return lisa_fail(LISA_ERR_NOT_FOUND, "engine: no request %llu in flight", (unsigned long long)id);
        }
        if (timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
                pthread_mutex_unlock(&e->mu);
                return lisa_fail(LISA_ERR_BUSY, "engine: request %llu not finished after %lld ms",
                                 (unsigned long long)id, (long long)timeout_ms);
            }
        }
        if (e->p.background) {
            if (timeout_ms >= 0) pthread_cond_timedwait(&e->done_cv, &e->mu, &deadline);
            else pthread_cond_wait(&e->done_cv, &e->mu);
        } else {
            /* caller-driven: step (or, while a worker prepares, wait for it) */
            bool have_work = e->ready_head || e->n_running_pub > 0;
            pthread_mutex_unlock(&e->mu);
            if (have_work) {
                bool busy;
                lisa_engine_step(e, &busy);
                pthread_mutex_lock(&e->mu);
            } else {
                pthread_mutex_lock(&e->mu);
                if (!e->ready_head && !e->n_running_pub && e->n_done == 0) {
                    struct timespec ts;
                    clock_gettime(CLOCK_REALTIME, &ts);
                    add_ms(&ts, 2);
                    pthread_cond_timedwait(&e->sched_cv, &e->mu, &ts);
                }
            }
        }
    }
}

lisa_engine_stats lisa_engine_get_stats(lisa_engine *e) {
    lisa_engine_stats st;
    memset(&st, 0, sizeof st);
    pthread_mutex_lock(&e->mu);
    st.queued = e->n_prep + e->n_preparing;
    st.ready = e->n_ready;
    st.running = e->n_running_pub;
    st.results = e->n_done;
    st.kv_pages_total = e->pool.n_pages;
    st.kv_pages_used = e->pool.n_pages - e->pool.n_free;
    st.kv_prefix_pages = e->tree.n_pages;
    st.kv_prefix_nodes = e->tree.n_nodes;
    st.kv_prefix_hits = e->kv_hits;
    st.kv_reused_tokens = e->kv_reused;
    st.kv_prefix_evictions = e->tree.evictions;
    st.image_cache_hits = e->ic.hits;
    st.image_cache_misses = e->ic.misses;
    st.image_cache_evictions = e->ic.evictions;
    st.image_cache_bytes = lisa_image_cache_bytes(&e->ic);
    st.image_cache_capacity = (int64_t)e->ic.n_retain * (int64_t)e->ic.entry_bytes;
    st.image_cache_entries = (int32_t)(st.image_cache_bytes / (e->ic.entry_bytes ? (int64_t)e->ic.entry_bytes : 1));
    st.completed = e->completed;
    st.failed = e->failed;
    st.steps = e->steps;
    st.last_batch = e->last_batch;
    st.decode_steps = e->decode_steps;
    st.decode_rows = e->decode_rows;
    memcpy(st.decode_batch_hist, e->decode_hist, sizeof st.decode_batch_hist);
    pthread_mutex_unlock(&e->mu);
    return st;
}

