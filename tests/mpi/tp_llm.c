/* tests/mpi/tp_llm.c — tensor parallelism of the LLaMA decoder on CPU ranks (issue #10).
 * Run under `mpirun -np 1|2|4` (CTest does; see tests/CMakeLists.txt). Every rank loads the whole
 * model too (TP = 1, the reference) and its TP shard; the checks:
 *   - the communicator: the all-reduce gives every rank the same bits, equal to the rank-order sum;
 *     all-gather and broadcast move the right bytes;
 *   - vocab-split embedding = the unsplit lookup, bit for bit;
 *   - golden llm_gqa (4 heads / 2 KV heads: split on 2 ranks, KV heads replicated on 4): prefill
 *     logits vs PyTorch (tests/golden/gen_golden.py) and the greedy tokens;
 *   - TP vs TP = 1, contiguous KV cache (llm_gqa) and the paged, batched path the engine uses
 *     (tiny-lisa: vocab 32004, MHA), prefill and decode: logits within 1e-5, identical tokens.
 * Not a Criterion program (Criterion forks every test; MPI ranks must not fork): it prints one
 * closing line "N passed, M failed" on rank 0 and exits non-zero when any rank failed. */
#include "loader/json.h"
#include "models/llama.h"
#include "kernels/comm.h"
#include "core/error.h"
#include "runtime/kv_cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass, n_fail, my_rank;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond)                                                                                                      \
            n_pass++;                                                                                                  \
        else {                                                                                                         \
            n_fail++;                                                                                                  \
            fprintf(stderr, "[rank %d] %s:%d: FAILED: %s: ", my_rank, __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

#define MUST(expr)                                                                                                     \
    do {                                                                                                               \
        lisa_status s_ = (expr);                                                                                       \
        if (s_ != LISA_OK) {                                                                                           \
            fprintf(stderr, "[rank %d] %s:%d: %s: %s\n", my_rank, __FILE__, __LINE__, #expr, lisa_last_error());       \
            exit(2);                                                                                                   \
        }                                                                                                              \
    } while (0)

/* |got - ref| <= 1e-5 (1 + |ref|) everywhere; reports the worst element */
static bool close_f32(const char *what, const float *got, const float *ref, int64_t n, double *max_err) {
    double worst = 0;
    int64_t at = -1;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (!(e <= worst)) worst = e, at = i;
    }
    if (max_err && worst > *max_err) *max_err = worst;
    if (worst > 1e-5) {
        fprintf(stderr, "[rank %d] %s: element %lld: %.9g vs %.9g (error %.3g)\n", my_rank, what, (long long)at,
                got[at], ref[at], worst);
        return false;
    }
    return true;
}

static int32_t argmax(const float *p, int64_t n) {
    int32_t b = 0;
    for (int64_t j = 1; j < n; j++)
        if (p[j] > p[b]) b = (int32_t)j;
    return b;
}

static lisa_status run_graph(lisa_backend *be, lisa_graph_fn fn, void *ctx) {
    size_t ab = 0, mb = 0;
    LISA_TRY(lisa_graph_measure(be, LISA_DTYPE_F32, fn, ctx, &ab, &mb));
    lisa_arena act, meta;
    LISA_TRY(lisa_arena_init(&act, "activations", ab));
    LISA_TRY(lisa_arena_init(&meta, "descriptors", mb));
    lisa_graph g;
    lisa_graph_init(&g, be, &act, &meta, LISA_DTYPE_F32);
    fn(&g, ctx);
    lisa_arena_free(&act);
    lisa_arena_free(&meta);
    return g.status;
}

static void load_cfg(lisa_llama_config *c, const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = NULL;
    MUST(lisa_json_load_file(path, 0, &j));
    MUST(lisa_llama_config_parse(c, j, path));
    cJSON_Delete(j);
}

/* ---- the communicator ------------------------------------------------------------------------ */

static float val(int rank, int64_t i) { return (float)sin(0.37 * (double)(rank + 1) * (double)(i + 1)) * 3.1f; }

static void test_comm(lisa_comm *c) {
    const int64_t n = 1003; /* not a multiple of the rank count: uneven chunks */
    float *x = malloc(n * sizeof *x), *all = malloc((size_t)c->size * n * sizeof *all);
    for (int64_t i = 0; i < n; i++)
        x[i] = val(c->rank, i);
    MUST(c->all_reduce_sum_f32(c, x, (size_t)n));
    bool exact = true;
    for (int64_t i = 0; i < n; i++) {
        float want = val(0, i);
        for (int r = 1; r < c->size; r++)
            want += val(r, i); /* rank order, float */
        exact = exact && memcmp(&want, &x[i], sizeof want) == 0;
    }
    CHECK(exact, "all-reduce differs from the rank-order float sum");
    MUST(c->all_gather(c, all, x, (size_t)n * sizeof *x));
    bool same = true;
    for (int r = 0; r < c->size; r++)
        same = same && memcmp(all + (size_t)r * n, x, (size_t)n * sizeof *x) == 0;
    CHECK(same, "ranks hold different all-reduce bits");
    int32_t token[4] = {c->rank, 7, 8, 9};
    MUST(c->broadcast(c, token, sizeof token, c->size - 1));
    CHECK(token[0] == c->size - 1 && token[3] == 9, "broadcast from the last rank: got %d", token[0]);
    MUST(c->barrier(c));
    free(x);
    free(all);
}

/* ---- embedding ---------------------------------------------------------------------------------- */

typedef struct emb_ctx {
    const lisa_llama *m;
    const int32_t *ids;
    int64_t n;
    float *out; /* [n, C] host */
} emb_ctx;

static void emb_graph(lisa_graph *g, void *p) {
    emb_ctx *e = p;
    lisa_tensor host = lisa_tensor_view(e->out, LISA_DTYPE_F32, 2, (int64_t[]){e->n, e->m->cfg.hidden});
    lisa_g_download(g, &host, lisa_llama_embed(g, e->m, e->ids, e->n));
}

static void test_embedding(lisa_backend *be, const lisa_llama *ref, const lisa_llama *tp) {
    const int32_t V = ref->cfg.vocab, C = ref->cfg.hidden;
    int32_t ids[9] = {0, 1, V - 1, V / 2, V / 2 - 1, V / 4, (V * 3) / 4, 2, V / 3};
    float *a = calloc(9 * (size_t)C, sizeof *a), *b = calloc(9 * (size_t)C, sizeof *b);
    emb_ctx ea = {ref, ids, 9, a}, eb = {tp, ids, 9, b};
    MUST(run_graph(be, emb_graph, &ea));
    MUST(run_graph(be, emb_graph, &eb));
    CHECK(memcmp(a, b, 9 * (size_t)C * sizeof *a) == 0, "vocab-split embedding differs from the unsplit one");
    int32_t bad = V;
    emb_ctx ec = {tp, &bad, 1, b};
    lisa_status s = run_graph(be, emb_graph, &ec);
    CHECK(s == LISA_ERR_INVALID_ARG && strstr(lisa_last_error(), "outside"), "bad id: %s", lisa_last_error());
    free(a);
    free(b);
}

/* ---- contiguous KV cache: prefill + greedy decode ----------------------------------------------- */

typedef struct step_ctx {
    const lisa_llama *m;
    lisa_kv_cache *kv;
    const int32_t *ids;
    int64_t n;
    float *logits; /* [n, V] host */
} step_ctx;

static void step_graph(lisa_graph *g, void *p) {
    step_ctx *s = p;
    lisa_kv_cache saved = *s->kv;
    T *h = lisa_llama_forward(g, s->m, s->kv, lisa_llama_embed(g, s->m, s->ids, s->n));
    lisa_tensor host = lisa_tensor_view(s->logits, LISA_DTYPE_F32, 2, (int64_t[]){s->n, s->m->cfg.vocab});
    lisa_g_download(g, &host, lisa_llama_logits(g, s->m, h));
    if (g_measuring(g)) *s->kv = saved;
}

/* greedy: prompt ids[n], then n_gen tokens; logits of every step into logits[(n + n_gen - 1), V] */
static void greedy(lisa_backend *be, const lisa_llama *m, const int32_t *prompt, int64_t n, int n_gen, int32_t *gen,
                   float *logits) {
    const int64_t V = m->cfg.vocab;
    lisa_kv_cache kv;
    MUST(lisa_kv_cache_init(&kv, be, &m->local, (int32_t)(n + n_gen), LISA_DTYPE_F32));
    step_ctx s = {m, &kv, prompt, n, logits};
    MUST(run_graph(be, step_graph, &s));
    gen[0] = argmax(logits + (n - 1) * V, V);
    for (int j = 1; j < n_gen; j++) {
        s.ids = &gen[j - 1];
        s.n = 1;
        s.logits = logits + (n - 1 + j) * V;
        MUST(run_graph(be, step_graph, &s));
        gen[j] = argmax(s.logits, V);
    }
    lisa_kv_cache_free(&kv);
}

static void test_contiguous(lisa_backend *be, const lisa_llama *ref, const lisa_llama *tp, const lisa_checkpoint *gold,
                            double *max_err) {
    lisa_tensor in, want_gen, want_logits;
    MUST(lisa_checkpoint_get(gold, "input_ids", &in));
    MUST(lisa_checkpoint_get(gold, "gen_ids", &want_gen));
    MUST(lisa_checkpoint_get(gold, "prefill_logits", &want_logits));
    const int64_t n = in.shape[0], V = ref->cfg.vocab;
    const int G = (int)want_gen.shape[0];
    int32_t *ids = malloc((size_t)n * sizeof *ids), *gen_ref = malloc((size_t)G * sizeof(int32_t)),
            *gen_tp = malloc((size_t)G * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)((const int64_t *)in.data)[i];
    const size_t rows = (size_t)(n + G - 1);
    float *lr = malloc(rows * V * sizeof(float)), *lt = malloc(rows * V * sizeof(float));
    greedy(be, ref, ids, n, G, gen_ref, lr);
    greedy(be, tp, ids, n, G, gen_tp, lt);
    /* against PyTorch: prefill logits, |d| <= 1e-5 max|ref| + 1e-4 |ref| (the TP = 1 parity test's bound) */
    const float *gl = want_logits.data;
    double gmax = 0;
    for (int64_t i = 0; i < n * V; i++)
        gmax = fmax(gmax, fabs(gl[i]));
    int64_t bad = 0;
    for (int64_t i = 0; i < n * V; i++)
        bad += !(fabs((double)lt[i] - gl[i]) <= 1e-5 * gmax + 1e-4 * fabs(gl[i]));
    CHECK(bad == 0, "%lld prefill logits off PyTorch's", (long long)bad);
    bool gen_ok = true;
    for (int j = 0; j < G; j++)
        gen_ok = gen_ok && gen_tp[j] == (int32_t)((const int64_t *)want_gen.data)[j];
    CHECK(gen_ok, "greedy tokens differ from PyTorch's");
    CHECK(memcmp(gen_ref, gen_tp, (size_t)G * sizeof(int32_t)) == 0, "greedy tokens: TP differs from TP=1");
    CHECK(close_f32("contiguous logits (prefill + decode)", lt, lr, (int64_t)rows * V, max_err), "TP vs TP=1");
    free(ids);
    free(gen_ref);
    free(gen_tp);
    free(lr);
    free(lt);
}

/* ---- paged KV, batched prefill + decode (the engine's path) ------------------------------------- */

#define NSEQ 3
typedef struct batch_ctx {
    const lisa_llama *m;
    lisa_llama_batch bt;
    const int32_t *ids;
    int32_t last[NSEQ];
    float *logits; /* [NSEQ, V] host: the last row of each sequence */
} batch_ctx;

static void batch_graph(lisa_graph *g, void *p) {
    batch_ctx *b = p;
    const int64_t C = b->m->cfg.hidden;
    T *h = lisa_llama_forward_batch(g, b->m, &b->bt, lisa_llama_embed(g, b->m, b->ids, b->bt.n_rows));
    T *hl = lisa_g_new(g, g->act_dtype, 2, NSEQ, C, 0, 0);
    for (int i = 0; i < NSEQ; i++)
        lisa_g_copy_to(g, lisa_g_narrow(g, hl, 0, i, 1), lisa_g_narrow(g, h, 0, b->last[i], 1));
    lisa_tensor host = lisa_tensor_view(b->logits, LISA_DTYPE_F32, 2, (int64_t[]){NSEQ, b->m->cfg.vocab});
    lisa_g_download(g, &host, lisa_llama_logits(g, b->m, hl));
}

/* Prompts of different lengths prefilled together, then n_dec decode steps for all; returns the
 * tokens [NSEQ][1 + n_dec] and the logits [(1 + n_dec) * NSEQ, V]. */
static void paged_run(lisa_backend *be, const lisa_llama *m, int n_dec, int32_t *tokens, float *logits) {
    static const int32_t lens[NSEQ] = {7, 19, 3};
    const int32_t V = m->cfg.vocab, PS = 4;
    lisa_kv_pool pool;
    MUST(lisa_kv_pool_init(&pool, be, m->cfg.n_layers, 32, PS, m->local.n_kv_heads, m->cfg.head_dim, LISA_DTYPE_F32));
    lisa_kv_seq seq[NSEQ];
    int32_t qo[NSEQ + 1], kvp[NSEQ + 1], kvl[NSEQ], idx[64], pos[64], slots[64], ids[64];
    for (int i = 0; i < NSEQ; i++) {
        MUST(lisa_kv_seq_init(&pool, &seq[i], NULL, 0));
        MUST(lisa_kv_seq_reserve(&pool, &seq[i], lens[i] + n_dec + 1));
    }
    for (int step = 0; step <= n_dec; step++) {
        int32_t rows = 0, np = 0;
        qo[0] = kvp[0] = 0;
        for (int i = 0; i < NSEQ; i++) {
            const int32_t p0 = step ? seq[i].len : 0, p1 = step ? seq[i].len + 1 : lens[i];
            for (int32_t p = p0; p < p1; p++, rows++) {
                pos[rows] = p;
                slots[rows] = lisa_kv_seq_slot(&pool, &seq[i], p);
                /* prompt ids spread over the vocabulary (every rank's shard is hit) */
                ids[rows] = step ? tokens[i * (n_dec + 1) + step - 1]
                                 : (int32_t)((7919u * (unsigned)(p + 31 * i)) % (unsigned)V);
            }
            qo[i + 1] = rows;
            for (int k = 0; k < seq[i].n_pages; k++)
                idx[np++] = seq[i].pages[k];
            kvp[i + 1] = np;
            kvl[i] = p1;
        }
        batch_ctx b = {.m = m, .ids = ids, .logits = logits + (size_t)step * NSEQ * V};
        b.bt = (lisa_llama_batch){.n_seqs = NSEQ,
                                  .n_rows = rows,
                                  .qo_indptr = qo,
                                  .positions = pos,
                                  .slots = slots,
                                  .kv_indptr = kvp,
                                  .kv_indices = idx,
                                  .kv_len = kvl,
                                  .page_size = PS,
                                  .k_pages = pool.k,
                                  .v_pages = pool.v};
        for (int i = 0; i < NSEQ; i++)
            b.last[i] = qo[i + 1] - 1;
        MUST(run_graph(be, batch_graph, &b));
        for (int i = 0; i < NSEQ; i++) {
            seq[i].len = kvl[i];
            tokens[i * (n_dec + 1) + step] = argmax(b.logits + (size_t)i * V, V);
        }
    }
    for (int i = 0; i < NSEQ; i++)
        lisa_kv_seq_release(&pool, &seq[i]);
    lisa_kv_pool_free(&pool);
}

static void test_paged(lisa_backend *be, const lisa_llama *ref, const lisa_llama *tp, double *max_err) {
    const int n_dec = 4;
    const size_t V = (size_t)ref->cfg.vocab, nl = (size_t)(n_dec + 1) * NSEQ * V;
    int32_t tr[NSEQ * (n_dec + 1)], tt[NSEQ * (n_dec + 1)];
    float *lr = malloc(nl * sizeof(float)), *lt = malloc(nl * sizeof(float));
    paged_run(be, ref, n_dec, tr, lr);
    paged_run(be, tp, n_dec, tt, lt);
    CHECK(memcmp(tr, tt, sizeof tr) == 0, "paged greedy tokens: TP differs from TP=1");
    CHECK(close_f32("paged logits (batched prefill + decode)", lt, lr, (int64_t)nl, max_err), "TP vs TP=1");
    free(lr);
    free(lt);
}

/* ---- main ------------------------------------------------------------------------------------- */

static void load_pair(lisa_backend *be, lisa_comm *c, const char *dir, lisa_checkpoint **ck, lisa_llama **ref,
                      lisa_llama **tp) {
    lisa_llama_config cfg;
    load_cfg(&cfg, dir);
    MUST(lisa_checkpoint_open(ck, dir));
    MUST(lisa_llama_load(ref, be, *ck, &cfg));
    MUST(lisa_llama_load_tp(tp, be, *ck, &cfg, c));
}

int main(void) {
    lisa_comm *c = NULL;
    int32_t wr = 0, ws = 1;
    MUST(lisa_mpi_world(&wr, &ws));
    my_rank = wr;
    MUST(lisa_comm_mpi_create(&c, ws, NULL, NULL));
    lisa_backend *be = NULL;
    MUST(lisa_backend_cpu_create(&be, 0, 1));
    test_comm(c);

    double max_err = 0;
    lisa_checkpoint *ck = NULL, *gold = NULL;
    lisa_llama *ref = NULL, *tp = NULL;
    /* golden GQA model: 4 heads, 2 KV heads, vocab 512 */
    load_pair(be, c, LISA_TESTDATA_DIR "/golden/llm_gqa", &ck, &ref, &tp);
    CHECK(tp->local.n_heads == 4 / c->size, "local heads %d", tp->local.n_heads);
    CHECK(tp->local.n_kv_heads == (c->size <= 2 ? 2 / c->size : 1), "local KV heads %d", tp->local.n_kv_heads);
    CHECK(tp->tp.kv_replicated == (c->size > 2), "KV replication");
    MUST(lisa_checkpoint_open(&gold, LISA_TESTDATA_DIR "/golden/llm_gqa.safetensors"));
    test_embedding(be, ref, tp);
    test_contiguous(be, ref, tp, gold, &max_err);
    test_paged(be, ref, tp, &max_err);
    lisa_checkpoint_close(gold);
    lisa_llama_free(tp);
    lisa_llama_free(ref);
    lisa_checkpoint_close(ck);

    /* the tiny LISA's LLM: MHA, 4 heads, vocab 32004 (8001 rows per rank on 4) */
    load_pair(be, c, LISA_TESTDATA_DIR "/tiny-lisa", &ck, &ref, &tp);
    CHECK(tp->local.vocab == 32004 / c->size && tp->local.intermediate == 64 / c->size, "local vocab %d inter %d",
          tp->local.vocab, tp->local.intermediate);
    test_embedding(be, ref, tp);
    test_paged(be, ref, tp, &max_err);
    lisa_llama_free(tp);
    lisa_llama_free(ref);
    lisa_checkpoint_close(ck);

    /* every rank's counts, summed on rank 0 */
    int32_t mine[2] = {n_pass, n_fail}, *all = malloc(sizeof mine * (size_t)c->size);
    MUST(c->all_gather(c, all, mine, sizeof mine));
    int tp_pass = 0, tp_fail = 0;
    for (int r = 0; r < c->size; r++)
        tp_pass += all[2 * r], tp_fail += all[2 * r + 1];
    if (c->rank == 0) {
        printf("TP=%d: max relative logit difference vs TP=1: %.3g\n", c->size, max_err);
        printf("%d passed, %d failed\n", tp_pass, tp_fail);
    }
    free(all);
    lisa_backend_free(be);
    lisa_comm_free(c);
    return tp_fail ? 1 : 0;
}
