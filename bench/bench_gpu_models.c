/* bench/bench_gpu_models.c — whole-model numbers of the CUDA backend at LISA-7B's dimensions: SAM
 * ViT-H encoder img/s (batch 1 and 8), the SAM mask decoder (8 masks, and 1), LLaMA-7B prefill of
 * 8 x 330 tokens over the paged KV cache, LLaMA-7B decode ms/step at batch 1 and 16, and LISA-7B end
 * to end through the engine: single-request latency and samples/s. Per-op time tables (CUDA events
 * around every op, kernels/profile.h) of SAM at batch 8, one decode step at batch 1 and the mask
 * decoder: printed (top 15) and in the JSON (optable_*).
 *
 * usage: bench_gpu_models [--quick] [--json FILE] [--device N] [--data DIR] [--keep DIR] [--self-test]
 *                         [--only LIST] [--after SECTION]
 *
 * Sections (in order): sam_b1, sam_b8, mask_decoder, mask_decoder_n1, llm, lisa, lisa_q4. A failing section
 * is abandoned (its keys stay null) and the next one runs; --json is rewritten after every number.
 * When the backend cannot synchronize after a failure (a sticky CUDA error), the program exits
 * with status 3 and "model_bench_aborted_after": SECTION in the JSON; bench/gpu/suite.sh then runs
 * the rest in a fresh process with --after SECTION. --only runs the named sections.
 *
 * --self-test runs every step on the CPU backend with a small synthetic model (F32, batch 2 SAM,
 * 3 engine requests): no GPU needed; it checks the benchmark code itself (CI runs it).
 *
 * Model: a synthetic LISA-7B written by make-tiny (`synthetic`: shapes only, the file's data is a
 * hole) at the published dims — LLaMA-7B (4096, 32 layers, 32 heads, 11008, vocab 32004), SAM ViT-H
 * (1280, 32 blocks, 16 heads, window 14, global 7/15/23/31, out 256), CLIP ViT-L/14 (1024, 24 layers,
 * 23 run) — whose weights are drawn on the GPU at load (models/weights.h: N(mean, std) per tensor,
 * make-tiny's scales; never zeros), stored BF16, BF16 activations (lisa_model.act_dtype). The model
 * is steered (lisa_tiny_steer) to answer "Sure, it is [SEG] in the picture." + </s>: 10 generated
 * tokens and one [SEG] (so one mask decode + postprocess) per request, a typical LISA answer.
 *
 * Method (docs/style.md §9): every number is the median of N timed runs after warm-up runs, timed on the
 * host around the whole call with a device synchronize at the end (what a caller of the engine
 * sees: graph building, plan uploads and launches included). No L2 flush: a model step's working
 * set (weights) is far larger than L2.
 *   - SAM: lisa_sam_encode on a device BF16 batch [B, 3, 1024, 1024] (input already on the GPU, as
 *     the PyTorch peer's); img/s = B / time.
 *   - prefill: 8 sequences of 330 tokens in one packed step (lisa_llama_forward_batch over a 16-token
 *     paged pool: embedding, 32 layers with flash attention over the pages, final norm), then the
 *     logits of each sequence's last row and their argmax, downloaded. (The peer's HF forward also
 *     computes the logits of all 2640 rows: ~0.7 TFLOP more.)
 *   - decode: one token per sequence against 330+ cached tokens (the pool filled by real prefills),
 *     embedding -> 32 layers (split-KV paged attention) -> logits -> argmax -> download, i.e. the
 *     engine's decode step; ms per step, replayed from a CUDA graph as the engine does
 *     (llama7b_decode_b*_ms) and launched op by op (llama7b_decode_b*_eager_ms).
 *   - LISA-7B: lisa_engine (background scheduler, max_batch 8, max_images 8) serves N requests
 *     (640x480 synthetic images, realistic 20-30-word queries: prompts of ~320-340 positions) after
 *     2 warm-up requests; samples/s = N / wall time from the first submit to the last result.
 *     Preprocessing runs on the engine's CPU workers, overlapped with the GPU.
 *   - mask decoder: lisa_sam_decode (prompt tokens, two-way transformer, upscaling, hypernetwork
 *     MLPs, IoU head) for N text prompts on one random image embedding [1, 256, 64, 64], as one
 *     captured step replayed (the engine's mask stage) and op by op; fused ops vs the generic ones.
 *   - latency: one request at a time through the same engine, submit to result, median of 5.
 * JSON keys (bench/results/DATE-CARD.json): sam_vit_h_b1_img_per_s, sam_vit_h_b8_img_per_s,
 * sam_mask_decoder_ms (8 masks, a captured step replayed; op by op without CUDA graphs; details
 * sam_mask_decoder_{eager,generic,generic_eager}_ms, sam_mask_decoder_{,generic_}kernels),
 * sam_mask_decoder_n1_ms, llama7b_prefill_8x330_ms,
 * llama7b_decode_b1_ms, llama7b_decode_b16_ms, lisa7b_latency_ms, lisa7b_samples_per_s,
 * lisa7b_samples_per_s_q4 (4 queries per image, reusing its encoding and KV prefix), details
 * (lisa7b_*, model_load_s) and optable_sam_b8 / optable_decode_b1 / optable_mask_decoder_n8.
 * Prints "no CUDA device: skipped" without a GPU.
 */
#include <stdio.h>

#ifndef LISA_HAVE_CUDA
int main(void) {
    printf("bench_gpu_models: built without CUDA: skipped\n");
    return 0;
}
#else

#include "kernels/cuda/cuda.h"
#include "kernels/profile.h"
#include "models/lisa_model.h"
#include "models/tiny.h"
#include "core/error.h"
#include "runtime/kv_cache.h"

#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static lisa_backend *be;
static lisa_model *m;
static int reps = 5, warm = 2;
static bool self_test;

typedef struct kv {
    char key[64];
    double v;
} kv;
static kv results[64];
static int n_results;
static const char *json_path, *device_name = "unknown";
static char optables[1 << 16]; /* ",\n  \"optable_NAME\": {...}" fragments (kernels/profile.h JSON) */
static size_t optables_len;
static char failed[512], aborted[64]; /* sections that failed; the one after which the context was lost */

/* Writes the JSON file (atomically: a temporary renamed) with every number so far: called after
 * every measurement, so that a later crash or timeout keeps what was measured. */
static void write_json(void) {
    if (!json_path) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", json_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "bench_gpu_models: cannot write %s\n", tmp);
        return;
    }
    fprintf(f, "{\n  \"model_bench_device\": \"%s\"", device_name);
    for (int i = 0; i < n_results; i++) {
        if (isfinite(results[i].v))
            fprintf(f, ",\n  \"%s\": %.4g", results[i].key, results[i].v);
        else
            fprintf(f, ",\n  \"%s\": null", results[i].key);
    }
    fprintf(f, ",\n  \"model_bench_failed_sections\": \"%s\",\n  \"model_bench_aborted_after\": \"%s\"%s\n}\n", failed,
            aborted, optables);
    if (fclose(f) == 0) rename(tmp, json_path);
}

static void put(const char *key, double v) {
    if (n_results < 64) {
        snprintf(results[n_results].key, sizeof results[n_results].key, "%s", key);
        results[n_results++].v = v;
    }
    write_json();
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A failure inside a benchmark section abandons that section only (its keys stay null; what it
 * allocated leaks, the process is about to end); elsewhere it ends the program. When the backend
 * cannot even synchronize afterwards (a sticky CUDA error: the context is lost), the program writes
 * its JSON and exits with status 3 naming the section, and bench/gpu/suite.sh reruns it in a fresh
 * process with --after SECTION. */
static jmp_buf section_jmp;
static bool in_section;
static int failed_sections;
static const char *only, *after; /* --only LIST, --after NAME */

static void check(lisa_status s, const char *what) {
    if (s != LISA_OK) {
        fprintf(stderr, "bench_gpu_models: %s: %s: %s\n", what, lisa_status_name(s), lisa_last_error());
        if (in_section) longjmp(section_jmp, 1);
        exit(1);
    }
}

/* --only a,b (comma-separated names) and --after NAME (skip every section up to and including NAME). */
static bool selected(const char *name, bool *past_after) {
    if (after && !*past_after) {
        if (!strcmp(after, name)) *past_after = true;
        return false;
    }
    if (!only) return true;
    const size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

typedef void (*section_fn)(int64_t arg);

static void run_section(const char *name, section_fn fn, int64_t arg) {
    static bool past_after;
    if (!selected(name, &past_after) || aborted[0]) return;
    printf("\n== %s\n", name);
    fflush(stdout);
    in_section = true;
    if (setjmp(section_jmp) == 0) {
        fn(arg);
    } else {
        failed_sections++;
        const size_t n = strlen(failed);
        snprintf(failed + n, sizeof failed - n, "%s%s", n ? "," : "", name);
        fprintf(stderr, "bench_gpu_models: section %s abandoned\n", name);
        lisa_clear_error();
        if (be->synchronize(be) != LISA_OK) {
            snprintf(aborted, sizeof aborted, "%s", name);
            fprintf(stderr, "bench_gpu_models: the backend cannot synchronize after section %s (%s): the context is lost; "
                            "rerun with --after %s\n", name, lisa_last_error(), name);
        }
    }
    in_section = false;
    write_json();
}

/* Appends a per-op table to the JSON (key optable_NAME) and prints its top 15 rows. */
static void keep_profile(const char *name, const lisa_op_profile *p) {
    char title[96];
    snprintf(title, sizeof title, "per-op time, %s", name);
    lisa_profile_print(p, stdout, 15, title);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return;
    fprintf(f, ",\n  \"optable_%s\": ", name);
    lisa_profile_json(p, f, 15);
    fclose(f);
    if (optables_len + len < sizeof optables) {
        memcpy(optables + optables_len, buf, len + 1);
        optables_len += len;
    }
    free(buf);
    write_json();
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- graphs in one arena sized by a counting pass --------------------------------------------- */

/* Owns its activation block (backend memory) and descriptor arena until stage_free. */
typedef struct stage {
    lisa_graph_fn fn;
    void *ctx;
    void *mem;
    lisa_arena act, meta;
} stage;

static void stage_init(stage *st, lisa_graph_fn fn, void *ctx) {
    size_t a = 0, mb = 0;
    st->fn = fn, st->ctx = ctx;
    check(lisa_graph_measure(be, m->act_dtype, fn, ctx, &a, &mb), "measure");
    check(be->mem_alloc(be, a ? a : 1, &st->mem), "arena");
    lisa_arena_init_external(&st->act, "bench activations", st->mem, a);
    check(lisa_arena_init(&st->meta, "bench descriptors", mb), "descriptors");
}

static void stage_free(stage *st) {
    be->synchronize(be);
    be->mem_free(be, st->mem);
    lisa_arena_free(&st->meta);
}

static double stage_run(stage *st) {
    const double t0 = now_ms();
    lisa_arena_reset(&st->act, 0);
    lisa_arena_reset(&st->meta, 0);
    lisa_graph g;
    lisa_graph_init(&g, be, &st->act, &st->meta, m->act_dtype);
    st->fn(&g, st->ctx);
    check(g.status, "graph");
    check(be->synchronize(be), "synchronize");
    return now_ms() - t0;
}

/* median of reps timed runs after warm-up runs */
static double stage_time(stage *st, int n_warm, int n_reps) {
    double t[64];
    for (int i = 0; i < n_warm; i++)
        stage_run(st);
    for (int i = 0; i < n_reps && i < 64; i++)
        t[i] = stage_run(st);
    qsort(t, (size_t)n_reps, sizeof *t, cmp_d);
    return t[n_reps / 2];
}

/* ---- SAM ViT-H encoder ------------------------------------------------------------------------- */

/* Owns px's device memory (freed by bench_sam). */
typedef struct sam_ctx {
    lisa_tensor px; /* device BF16 [B, 3, S, S] */
} sam_ctx;

static void sam_graph(lisa_graph *g, void *ctx) {
    sam_ctx *c = ctx;
    lisa_sam_encode(g, m->sam, &c->px);
}

static void bench_sam(int64_t B) {
    const int64_t S = m->sam->enc.img_size;
    sam_ctx c;
    c.px = lisa_tensor_view4(NULL, m->act_dtype, 4, B, 3, S, S);
    const size_t n = (size_t)lisa_tensor_numel(&c.px);
    check(be->mem_alloc(be, lisa_tensor_nbytes(&c.px), &c.px.data), "pixels");
    c.px.device = be->device, c.px.device_id = be->device_id;
    /* normalized-pixel-like values in [-2, 2], converted to the activation dtype by the COPY op */
    float *h = malloc(n * sizeof(float));
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = (float)((double)(s >> 11) * (4.0 / 9007199254740992.0) - 2.0);
    }
    void *tmp = NULL;
    check(be->mem_alloc(be, n * sizeof(float), &tmp), "staging");
    check(be->upload(be, tmp, h, n * sizeof(float)), "upload");
    lisa_tensor src = lisa_tensor_view4(tmp, LISA_DTYPE_F32, 4, B, 3, S, S);
    src.device = be->device, src.device_id = be->device_id;
    check(lisa_op_copy(be, &c.px, &src), "cast");
    check(be->synchronize(be), "synchronize");
    be->mem_free(be, tmp);
    free(h);
    stage st;
    stage_init(&st, sam_graph, &c);
    const double ms = stage_time(&st, warm, reps);
    const double ips = (double)B * 1e3 / ms;
    printf("SAM ViT-H encoder, batch %lld: %.1f ms -> %.2f img/s\n", (long long)B, ms, ips);
    char key[64];
    snprintf(key, sizeof key, "sam_vit_h_b%lld_img_per_s", (long long)B);
    put(key, ips);
    if (B > 1) { /* where the batch's time goes: one more run, every op timed */
        lisa_op_profile prof;
        check(lisa_profile_begin(be, &prof, 1 << 15), "profile");
        stage_run(&st);
        check(lisa_profile_end(&prof), "profile");
        snprintf(key, sizeof key, "sam_b%lld", (long long)B);
        keep_profile(key, &prof);
        lisa_profile_free(&prof);
    }
    stage_free(&st);
    be->mem_free(be, c.px.data);
}

/* ---- SAM mask decoder ---------------------------------------------------------------------------- */

/* Owns emb and sparse (device memory, freed by bench_mask_decoder). */
typedef struct dec_ctx {
    lisa_tensor emb;    /* [1, out, grid, grid] */
    lisa_tensor sparse; /* [N, 1, out]: one text embedding per mask (LISA's prompt) */
    lisa_sam_decode_opts opts; /* fused ops (default) or the generic ones */
} dec_ctx;

static void dec_graph(lisa_graph *g, void *ctx) {
    dec_ctx *c = ctx;
    T *low, *iou;
    lisa_sam_decode_ex(g, m->sam, &c->emb, &c->sparse, &low, &iou, &c->opts);
}

/* Device tensor of the activation dtype holding uniform values in [-a, a] (converted by COPY). */
static lisa_tensor dev_uniform(int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3, float a, uint64_t seed) {
    lisa_tensor t = lisa_tensor_view4(NULL, m->act_dtype, n_dims, d0, d1, d2, d3);
    const size_t n = (size_t)lisa_tensor_numel(&t);
    check(be->mem_alloc(be, lisa_tensor_nbytes(&t), &t.data), "alloc");
    t.device = be->device, t.device_id = be->device_id;
    float *h = malloc(n * sizeof(float));
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = (float)((double)(s >> 11) * (2.0 * a / 9007199254740992.0) - a);
    }
    void *tmp = NULL;
    check(be->mem_alloc(be, n * sizeof(float), &tmp), "staging");
    check(be->upload(be, tmp, h, n * sizeof(float)), "upload");
    lisa_tensor src = lisa_tensor_view4(tmp, LISA_DTYPE_F32, n_dims, d0, d1, d2, d3);
    src.device = be->device, src.device_id = be->device_id;
    check(lisa_op_copy(be, &t, &src), "cast");
    check(be->synchronize(be), "synchronize");
    be->mem_free(be, tmp);
    free(h);
    return t;
}

/* The stage's step captured (its arena reset as stage_run does); *nodes = its kernels + copies. */
static lisa_backend_graph *stage_capture(stage *st, int64_t *nodes) {
    lisa_arena_reset(&st->act, 0);
    lisa_arena_reset(&st->meta, 0);
    lisa_graph g;
    lisa_graph_init(&g, be, &st->act, &st->meta, m->act_dtype);
    check(be->graph_capture_begin(be, 0), "capture");
    st->fn(&g, st->ctx);
    if (g.status != LISA_OK) be->graph_capture_abort(be);
    check(g.status, "captured graph");
    lisa_backend_graph *gr = NULL;
    check(be->graph_capture_end(be, &gr), "capture");
    *nodes = lisa_cuda_graph_nodes(gr);
    return gr;
}

/* median ms of n replays of a captured step (launch + synchronize) after warm-up replays */
static double graph_time(lisa_backend_graph *gr, int n) {
    double t[64];
    if (n > 64) n = 64;
    for (int i = 0; i < warm + n; i++) {
        const double t0 = now_ms();
        check(be->graph_launch(be, gr), "graph launch");
        check(be->synchronize(be), "synchronize");
        if (i >= warm) t[i - warm] = now_ms() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return t[n / 2];
}

/* The mask decoder (prompt tokens + two-way transformer + upscaling + hypernetwork MLPs) for N masks
 * on one image embedding: what a LISA step runs per image after the LLM. Timed as the engine runs
 * it (models/mask_decoder.c: one captured step, replayed; the key without suffix) and op by op
 * (_eager), on the fused ops (TWOWAY_*, MLP3) and, for N = 8, on the generic ones (one op per
 * term, the path before them: _generic); each captured step's nodes (kernels + copies: _kernels). */
static void bench_mask_decoder(int64_t N) {
    const int64_t O = m->cfg.out_dim, G = m->sam->enc.img_size / 16;
    const bool capture = lisa_backend_can_capture(be);
    for (int unfused = 0; unfused < (N == 8 ? 2 : 1); unfused++) {
        dec_ctx c = {.opts = {.unfused = unfused != 0}};
        c.emb = dev_uniform(4, 1, O, G, G, 1.0f, 11);
        c.sparse = dev_uniform(3, N, 1, O, 0, 1.0f, 12);
        stage st;
        stage_init(&st, dec_graph, &c);
        const double eager = stage_time(&st, warm, reps * 3);
        double replay = NAN;
        int64_t nodes = -1;
        if (capture) {
            lisa_backend_graph *gr = stage_capture(&st, &nodes);
            replay = graph_time(gr, reps * 3);
            be->graph_free(be, gr);
        }
        printf("SAM mask decoder, %lld mask%s on one image, %s ops: %.3f ms from a CUDA graph (%lld kernels/copies), "
               "%.3f ms op by op\n",
               (long long)N, N == 1 ? "" : "s", unfused ? "generic" : "fused", replay, (long long)nodes, eager);
        char key[48];
        const char *base = N == 8 ? "sam_mask_decoder" : "sam_mask_decoder_n1";
        snprintf(key, sizeof key, "%s%s_ms", base, unfused ? "_generic" : "");
        put(key, capture ? replay : eager);
        snprintf(key, sizeof key, "%s%s_eager_ms", base, unfused ? "_generic" : "");
        put(key, eager);
        snprintf(key, sizeof key, "%s%s_kernels", base, unfused ? "_generic" : "");
        put(key, (double)nodes);
        if (N == 8 && !unfused) {
            lisa_op_profile prof;
            check(lisa_profile_begin(be, &prof, 1 << 12), "profile");
            stage_run(&st);
            check(lisa_profile_end(&prof), "profile");
            keep_profile("mask_decoder_n8", &prof);
            lisa_profile_free(&prof);
        }
        stage_free(&st);
        be->mem_free(be, c.emb.data);
        be->mem_free(be, c.sparse.data);
    }
}

/* ---- LLaMA-7B prefill and decode over the paged cache ------------------------------------------ */

#define CTX     330
#define MAX_SEQ 16

/* The LLaMA benchmark's plan: owns the host arrays pos/slots/ids/idx and the sequences' page tables
 * (bench_llm frees them); borrows the pool. Pinned (the backend's host_alloc), struct included, because
 * the CUDA-graph replays read the plan arrays and write `next`. */
typedef struct llm_ctx {
    lisa_kv_pool *pool;
    int32_t nb, rows;
    int32_t qo[MAX_SEQ + 1], kvp[MAX_SEQ + 1], kvl[MAX_SEQ], next[MAX_SEQ];
    int32_t *pos, *slots, *ids, *idx;
    lisa_kv_seq seq[MAX_SEQ];
} llm_ctx;

/* The step of sequences first..first+nb: prefill rows [0, CTX) when prefill, else one decode row at
 * position len (the engine's plan_rows). */
static void plan(llm_ctx *c, int32_t first, int32_t nb, bool prefill, int32_t len) {
    int32_t rows = 0, pages = 0;
    c->qo[0] = c->kvp[0] = 0;
    uint64_t s = 0x2545f4914f6cdd1dull ^ (uint64_t)len;
    for (int32_t b = 0; b < nb; b++) {
        const lisa_kv_seq *q = &c->seq[first + b];
        const int32_t p0 = prefill ? 0 : len, p1 = prefill ? CTX : len + 1;
        for (int32_t p = p0; p < p1; p++, rows++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            c->pos[rows] = p;
            c->slots[rows] = lisa_kv_seq_slot(c->pool, q, p);
            c->ids[rows] = 3 + (int32_t)(s % 31990);
        }
        c->qo[b + 1] = rows;
        for (int32_t i = 0; i < q->n_pages; i++)
            c->idx[pages++] = q->pages[i];
        c->kvp[b + 1] = pages;
        c->kvl[b] = p1;
    }
    c->nb = nb, c->rows = rows;
}

static void llm_graph(lisa_graph *g, void *ctx) {
    llm_ctx *c = ctx;
    const int64_t C = m->cfg.llm.hidden;
    lisa_tensor tid = lisa_tensor_view(c->ids, LISA_DTYPE_I32, 1, (int64_t[]){c->rows});
    T *x = lisa_g_embedding(g, &m->llm->embed, lisa_g_upload(g, &tid));
    lisa_llama_batch bt = {.n_seqs = c->nb,
                           .n_rows = c->rows,
                           .qo_indptr = c->qo,
                           .positions = c->pos,
                           .slots = c->slots,
                           .kv_indptr = c->kvp,
                           .kv_indices = c->idx,
                           .kv_len = c->kvl,
                           .page_size = c->pool->page_size,
                           .k_pages = c->pool->k,
                           .v_pages = c->pool->v};
    T *h = lisa_llama_forward_batch(g, m->llm, &bt, x);
    T *last = lisa_g_new(g, g->act_dtype, 2, c->nb, C, 0, 0);
    for (int32_t b = 0; b < c->nb; b++)
        lisa_g_copy_to(g, lisa_g_narrow(g, last, 0, b, 1), lisa_g_narrow(g, h, 0, c->qo[b + 1] - 1, 1));
    lisa_tensor next = lisa_tensor_view(c->next, LISA_DTYPE_I32, 1, (int64_t[]){c->nb});
    lisa_g_download(g, &next, lisa_g_argmax(g, lisa_llama_logits(g, m->llm, last)));
}

static void *pinned(size_t bytes) {
    void *p = NULL;
    if (self_test)
        p = calloc(1, bytes);
    else
        check(be->host_alloc(be, bytes, &p), "pinned memory");
    memset(p, 0, bytes);
    return p;
}

static void pinned_free(void *p) {
    if (self_test)
        free(p);
    else
        be->host_free(be, p);
}

/* median ms per decode step over n steps after warm ones, graph != NULL: replays */
static double decode_steps(stage *st, llm_ctx *c, int32_t nb, int32_t first_pos, lisa_backend_graph *graph, int n) {
    double t[64];
    for (int i = 0; i < warm + n; i++) {
        plan(c, 0, nb, false, first_pos + i);
        double dt;
        if (graph) {
            const double t0 = now_ms();
            check(be->graph_launch(be, graph), "graph launch");
            check(be->synchronize(be), "synchronize");
            dt = now_ms() - t0;
        } else {
            dt = stage_run(st);
        }
        if (i >= warm) t[i - warm] = dt;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return t[n / 2];
}

static void bench_llm(void) {
    const lisa_llama_config *lc = &m->cfg.llm;
    const int n_dec = reps * 3 < 30 ? reps * 3 : 30;
    const int32_t PS = 16, steps = 2 * (n_dec + warm) + 2, per_seq = (CTX + steps + 2 + PS - 1) / PS;
    lisa_kv_pool pool;
    check(lisa_kv_pool_init(&pool, be, lc->n_layers, MAX_SEQ * per_seq, PS, lc->n_kv_heads, lc->head_dim, m->act_dtype),
          "KV pool");
    llm_ctx *c = pinned(sizeof *c);
    c->pool = &pool;
    const int32_t cap_rows = 8 * CTX;
    c->pos = pinned(cap_rows * sizeof(int32_t));
    c->slots = pinned(cap_rows * sizeof(int32_t));
    c->ids = pinned(cap_rows * sizeof(int32_t));
    c->idx = pinned(MAX_SEQ * per_seq * sizeof(int32_t));
    for (int32_t b = 0; b < MAX_SEQ; b++) {
        check(lisa_kv_seq_init(&pool, &c->seq[b], NULL, 0), "sequence");
        check(lisa_kv_seq_reserve(&pool, &c->seq[b], per_seq * PS), "pages");
    }
    /* prefill: 8 x 330 (also fills sequences 0-7), then 8-15 once (decode at batch 16 reads them) */
    plan(c, 0, 8, true, 0);
    stage st;
    stage_init(&st, llm_graph, c);
    const double ms = stage_time(&st, warm, reps);
    printf("LLaMA-7B prefill 8 x %d tokens (paged, 16-token pages): %.1f ms (%.0f tokens/s)\n", CTX, ms,
           8 * CTX * 1e3 / ms);
    put("llama7b_prefill_8x330_ms", ms);
    if (!self_test) { /* host waits in one prefill step: the plan uploads and the final download only */
        const int64_t w0 = lisa_cuda_host_waits(be);
        stage_run(&st);
        const int64_t w = lisa_cuda_host_waits(be) - w0;
        printf("host waits in one prefill step: %lld (uploads of the plan, the download, the bench's synchronize; no op "
               "waits: tools/check_syncs.py)\n", (long long)w);
        put("llama7b_prefill_host_waits", (double)w);
    }
    plan(c, 8, 8, true, 0);
    stage_run(&st);
    stage_free(&st);
    /* decode: one row per sequence at positions CTX, CTX+1, ...: op by op, then replaying a CUDA
     * graph captured once per batch size (split-KV planned for max_position_embeddings keys, as the
     * engine captures it) */
    const int32_t bs[2] = {1, 16};
    for (int k = 0; k < 2; k++) {
        plan(c, 0, bs[k], false, CTX);
        stage_init(&st, llm_graph, c);
        const double eager = decode_steps(&st, c, bs[k], CTX, NULL, n_dec);
        if (bs[k] == 1) { /* one eager decode step, every op timed */
            lisa_op_profile prof;
            plan(c, 0, bs[k], false, CTX + n_dec + warm);
            check(lisa_profile_begin(be, &prof, 1 << 13), "profile");
            stage_run(&st);
            check(lisa_profile_end(&prof), "profile");
            keep_profile("decode_b1", &prof);
            lisa_profile_free(&prof);
        }
        double graphed = NAN;
        lisa_backend_graph *graph = NULL;
        if (!self_test) {
            plan(c, 0, bs[k], false, CTX + n_dec + warm);
            lisa_status s = be->graph_capture_begin(be, lc->max_pos);
            if (s == LISA_OK) {
                lisa_arena_reset(&st.act, 0);
                lisa_arena_reset(&st.meta, 0);
                lisa_graph g;
                lisa_graph_init(&g, be, &st.act, &st.meta, m->act_dtype);
                st.fn(&g, st.ctx);
                s = g.status;
                if (s == LISA_OK)
                    s = be->graph_capture_end(be, &graph);
                else
                    be->graph_capture_abort(be);
            }
            if (s == LISA_OK)
                graphed = decode_steps(&st, c, bs[k], CTX + n_dec + warm, graph, n_dec);
            else
                fprintf(stderr, "decode batch %d: CUDA graph capture failed: %s\n", bs[k], lisa_last_error());
            if (graph) be->graph_free(be, graph);
        }
        const double best = isfinite(graphed) ? graphed : eager;
        printf("LLaMA-7B decode, batch %d at %d+ cached tokens: %.2f ms/step with a CUDA graph, %.2f op by op "
               "(%.0f tokens/s)\n",
               bs[k], CTX, graphed, eager, bs[k] * 1e3 / best);
        char key[64];
        snprintf(key, sizeof key, "llama7b_decode_b%d_ms", bs[k]);
        put(key, best);
        snprintf(key, sizeof key, "llama7b_decode_b%d_eager_ms", bs[k]);
        put(key, eager);
        stage_free(&st);
    }
    for (int32_t b = 0; b < MAX_SEQ; b++)
        lisa_kv_seq_release(&pool, &c->seq[b]);
    lisa_kv_pool_free(&pool);
    pinned_free(c->pos);
    pinned_free(c->slots);
    pinned_free(c->ids);
    pinned_free(c->idx);
    pinned_free(c);
}

/* ---- LISA-7B end to end through the engine ----------------------------------------------------- */

static const char *const queries[8] = {
    "Please segment the cup that is closest to the left edge of the table in this image, and explain briefly why.",
    "What object in this picture would a tired person most likely use to rest after a long day? Please output the "
    "mask.",
    "Can you segment the part of the image that shows where the light is coming from in this room, please?",
    "Which item on the shelf is the most fragile one? Please give a segmentation mask for it and nothing else.",
    "Segment the animal that looks the most relaxed in this photograph, the one that seems to be sleeping soundly.",
    "Where should a visitor put their wet umbrella when they enter this place? Please respond with a mask of it.",
    "Please find and segment the thing in this scene that can tell us what time it is right now, if any exists.",
    "In this image, which object would keep food cold for a few days? Output a segmentation mask of the object.",
};

static void synthetic_rgb(uint8_t *rgb, int32_t h, int32_t w, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                const int v = ((x * (k + 1) + y * (3 - k) + (int)seed * 40) % 256) / 2 + (int)((s >> 58) & 63);
                rgb[((size_t)y * w + x) * 3 + k] = (uint8_t)(v > 255 ? 255 : v);
            }
}

/* n_req requests on n_req / per_image pictures: per_image = 1 is every request on its own image;
 * per_image = 4 asks 4 queries of each picture through a lisa_image (issue #17: the engine encodes
 * the picture once and reuses its KV prefix through the image for the other queries). */
static void bench_lisa(int32_t n_req, int32_t per_image) {
    const int32_t H = 480, W = 640;
    lisa_engine_params ep = lisa_engine_default_params();
    ep.max_batch = 8, ep.max_images = 8, ep.background = true, ep.max_prefill_tokens = 8 * 360;
    lisa_engine *e = NULL;
    const double t_create = now_ms();
    check(lisa_engine_create(m, &ep, &e), "engine");
    printf("engine created in %.1f s (max_batch %d, max_images %d)\n", (now_ms() - t_create) / 1e3, ep.max_batch,
           ep.max_images);
    uint8_t *rgb = malloc((size_t)H * W * 3);
    uint64_t *ids = calloc((size_t)n_req + 2, sizeof *ids);
    lisa_request rq = lisa_request_default();
    rq.rgb = rgb, rq.height = H, rq.width = W, rq.params.max_new_tokens = 32;
    /* warm-up: two requests (CUDA contexts of the workers, GEMM plans, first-touch of the pool) */
    for (int i = 0; i < 2; i++) {
        synthetic_rgb(rgb, H, W, 1000 + (uint64_t)i);
        rq.query = queries[i];
        check(lisa_engine_submit(e, &rq, &ids[i]), "submit");
    }
    for (int i = 0; i < 2; i++) {
        lisa_result *r = NULL;
        check(lisa_engine_wait(e, ids[i], &r), "warm-up");
        check(lisa_result_status(r), "warm-up request");
        lisa_result_free(r);
    }
    /* single-request latency: one request at a time, submit to result (median of 5; 1 in the self-test;
     * measured once, in the one-query-per-image section) */
    double lat[5];
    const int n_lat = per_image > 1 ? 0 : self_test ? 1 : 5;
    for (int i = 0; i < n_lat; i++) {
        synthetic_rgb(rgb, H, W, 2000 + (uint64_t)i);
        rq.query = queries[(i + 3) % 8];
        const double t_s = now_ms();
        uint64_t id = 0;
        check(lisa_engine_submit(e, &rq, &id), "submit");
        lisa_result *r = NULL;
        check(lisa_engine_wait(e, id, &r), "wait");
        lat[i] = now_ms() - t_s;
        check(lisa_result_status(r), "latency request");
        lisa_result_free(r);
    }
    if (n_lat > 0) {
        qsort(lat, (size_t)n_lat, sizeof *lat, cmp_d);
        printf("LISA-7B single-request latency (one request in flight, submit to result): %.1f ms (median of %d; min "
               "%.1f, max %.1f)\n", lat[n_lat / 2], n_lat, lat[0], lat[n_lat - 1]);
        put("lisa7b_latency_ms", lat[n_lat / 2]);
    }
    double tokens = 0, masks = 0, prompt = 0, dec = 0;
    const double t0 = now_ms();
    lisa_image *img = NULL;
    for (int32_t i = 0; i < n_req; i++) {
        rq.query = queries[i % 8];
        if (per_image <= 1) {
            synthetic_rgb(rgb, H, W, (uint64_t)i);
        } else if (i % per_image == 0) { /* a new picture, decoded (here: copied) once */
            lisa_image_free(img);
            synthetic_rgb(rgb, H, W, 100000 + (uint64_t)i);
            check(lisa_image_create_rgb(rgb, H, W, &img), "image");
            rq.rgb = NULL;
            rq.image = img;
        }
        check(lisa_engine_submit(e, &rq, &ids[i]), "submit");
    }
    lisa_image_free(img); /* the requests hold their references */
    int failed = 0;
    for (int32_t i = 0; i < n_req; i++) {
        lisa_result *r = NULL;
        check(lisa_engine_wait(e, ids[i], &r), "wait");
        if (lisa_result_status(r) != LISA_OK) {
            if (!failed) fprintf(stderr, "request failed: %s\n", lisa_result_error(r));
            failed++;
        }
        tokens += lisa_result_n_tokens(r);
        masks += lisa_result_n_masks(r);
        prompt += lisa_result_timings(r).n_prompt_tokens;
        dec += lisa_result_timings(r).decode_ms;
        lisa_result_free(r);
    }
    const double sec = (now_ms() - t0) / 1e3;
    const lisa_engine_stats stt = lisa_engine_get_stats(e);
    printf("LISA-7B end to end, %d queries per image: %d requests in %.2f s -> %.2f samples/s (%.1f tokens, %.2f "
           "masks, %.0f prompt positions per request; %lld engine steps; image cache %lld hits / %lld misses; %lld "
           "KV prefix hits; %d failed)\n",
           per_image, n_req, sec, n_req / sec, tokens / n_req, masks / n_req, prompt / n_req, (long long)stt.steps,
           (long long)stt.image_cache_hits, (long long)stt.image_cache_misses, (long long)stt.kv_prefix_hits, failed);
    if (per_image > 1) {
        char key[64];
        snprintf(key, sizeof key, "lisa7b_samples_per_s_q%d", per_image);
        put(key, failed ? NAN : n_req / sec);
        snprintf(key, sizeof key, "lisa7b_q%d_kv_prefix_hits", per_image);
        put(key, (double)stt.kv_prefix_hits);
        lisa_engine_free(e);
        free(rgb);
        free(ids);
        return;
    }
    put("lisa7b_samples_per_s", failed ? NAN : n_req / sec);
    put("lisa7b_requests", n_req);
    put("lisa7b_max_batch", ep.max_batch);
    put("lisa7b_tokens_per_sample", tokens / n_req);
    put("lisa7b_masks_per_sample", masks / n_req);
    put("lisa7b_prompt_positions", prompt / n_req);
    lisa_engine_free(e);
    free(rgb);
    free(ids);
}

/* ---- main ------------------------------------------------------------------------------------------ */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void sec_sam(int64_t B) { bench_sam(B); }
static void sec_llm(int64_t unused) { bench_llm(); }
static void sec_lisa(int64_t n) { bench_lisa((int32_t)n, 1); }
static void sec_lisa_q4(int64_t n) { bench_lisa((int32_t)n, 4); }

/* The timed sections, in order (names for --only / --after): sam_b1, sam_b8, mask_decoder,
 * mask_decoder_n1, llm, lisa, lisa_q4. */
static void run_sections(int32_t n_requests) {
    run_section("sam_b1", sec_sam, 1);
    run_section("sam_b8", sec_sam, self_test ? 2 : 8);
    run_section("mask_decoder", bench_mask_decoder, 8);
    run_section("mask_decoder_n1", bench_mask_decoder, 1);
    run_section("llm", sec_llm, 0);
    run_section("lisa", sec_lisa, n_requests);
    run_section("lisa_q4", sec_lisa_q4, n_requests);
}

int main(int argc, char **argv) {
    const char *data = NULL, *keep = NULL;
    int device = 0;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--self-test"))
            self_test = true;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc)
            keep = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--after") && i + 1 < argc)
            after = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gpu_models [--quick] [--json FILE] [--device N] [--data DIR] [--keep DIR] "
                            "[--self-test] [--only LIST] [--after SECTION]\n"
                            "  sections: sam_b1 sam_b8 mask_decoder mask_decoder_n1 llm lisa lisa_q4\n");
            return 2;
        }
    }
    lisa_status s =
        self_test ? lisa_backend_cpu_create(&be, 0, 0) : lisa_backend_cuda_create(&be, device, (size_t)512 << 20);
    if (!self_test && s == LISA_ERR_UNSUPPORTED && lisa_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 0;
    }
    check(s, self_test ? "cpu backend" : "cuda backend");
    if (quick) reps = 3, warm = 1;
    if (self_test) reps = 1, warm = 1;
    struct stat st;
    if (!data) data = stat("tests/data/tokenizer/llama-spm.model", &st) == 0 ? "tests/data" : LISA_BENCH_DATA_DIR;
    char dir[4200], model[4300], clip[4400], sp[4300];
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
        mkdir(dir, 0755);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/lisa-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) check(lisa_fail(LISA_ERR_IO, "mkdtemp %s", dir), "temp dir");
    }
    snprintf(model, sizeof model, "%s/lisa-7b-synthetic", dir);
    snprintf(clip, sizeof clip, "%s/clip-vit-large-patch14", model);
    snprintf(sp, sizeof sp, "%s/tokenizer/llama-spm.model", data);
    if (stat(model, &st) != 0) {
        lisa_tiny_params p = lisa_tiny_default_params();
        p.seed = 7, p.synthetic = true, p.sp_model = sp, p.answer = "";
        p.llm_hidden = 4096, p.llm_heads = 32, p.llm_kv_heads = 32, p.llm_inter = 11008, p.llm_layers = 32;
        p.llm_max_pos = 2048;
        p.clip_hidden = 1024, p.clip_heads = 16, p.clip_mlp = 4096, p.clip_layers = 24;
        p.sam_embed = 1280, p.sam_heads = 16, p.sam_window = 14, p.sam_depth = 32, p.out_dim = 256;
        const int32_t gl[4] = {7, 15, 23, 31};
        memcpy(p.sam_global, gl, sizeof gl);
        p.n_sam_global = 4;
        if (self_test) { /* small: the code paths, not the numbers */
            p.llm_hidden = 128, p.llm_heads = 4, p.llm_kv_heads = 2, p.llm_inter = 256, p.llm_layers = 4;
            p.clip_hidden = 64, p.clip_heads = 2, p.clip_mlp = 128, p.clip_layers = 3;
            p.sam_embed = 32, p.sam_heads = 2, p.sam_depth = 4, p.out_dim = 32, p.sam_global[0] = 1,
            p.sam_global[1] = 3;
            p.n_sam_global = 2;
        }
        lisa_tiny_report rep;
        check(lisa_make_tiny(&p, model, &rep), "make-tiny (synthetic LISA-7B)");
        printf("synthetic LISA-7B: %d tensors, %.2f GB (a hole: nothing written)\n", rep.n_tensors,
               (double)rep.total_bytes / 1e9);
    }
    const char *dev = self_test ? "cpu (self-test)" : lisa_cuda_device_name(be);
    device_name = dev;
    printf("bench_gpu_models on %s (%s)\n", dev, quick ? "quick" : "full");
    lisa_model_params mp = lisa_model_default_params();
    mp.vision_tower = clip;
    double t0 = now_ms();
    check(lisa_model_load_precision(model, &mp, be, self_test ? LISA_DTYPE_F32 : LISA_DTYPE_BF16, &m), "load");
    check(be->synchronize(be), "load");
    const double load_s = (now_ms() - t0) / 1e3;
    printf("loaded in %.1f s (weights drawn on the %s backend)\n", load_s, be->name);
    put("model_load_s", load_s);
    float margin = 0;
    check(lisa_tiny_steer(m, "Sure, it is [SEG] in the picture.", &margin, NULL, NULL), "steer");
    printf("steered to answer \"Sure, it is [SEG] in the picture.\" (planned-row margin %.1f)\n", margin);

    run_sections(self_test ? 3 : quick ? 8 : 24);
    write_json();
    if (aborted[0]) {
        if (!keep) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return 3; /* the context is lost: suite.sh reruns the rest with --after */
    }
    if (!failed_sections) {
        lisa_model_free(m);
        lisa_backend_free(be);
    }
    if (!keep) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed_sections ? 1 : 0;
}
#endif
