/* tests/test_tp_shard.c — tensor-parallel shard math (models/tp.h) and per-rank weight loading,
 * without MPI: the divisibility rules and their messages, uneven vocab / intermediate splits that
 * tile the whole range, GQA KV-head replication, and each rank's weights equal to the matching
 * slice of the whole model's (row slices are views of the mapping, column slices owned copies).
 * The multi-rank numerics are in tests/mpi/tp_llm.c (mpirun). */
#include "golden.h"
#include "loader/json.h"
#include "models/llama.h"
#include "kernels/comm.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

static lisa_llama_config cfg(int32_t heads, int32_t kv, int32_t inter, int32_t vocab) {
    lisa_llama_config c = {.hidden = heads * 128,
                           .intermediate = inter,
                           .n_layers = 1,
                           .n_heads = heads,
                           .n_kv_heads = kv,
                           .head_dim = 128,
                           .vocab = vocab,
                           .max_pos = 4096};
    return c;
}

Test(tp_shard, heads_that_do_not_split_are_clear_errors) {
    lisa_tp_shard s;
    lisa_llama_config c13 = cfg(40, 40, 13824, 32003); /* LISA-13B */
    cr_expect_eq(lisa_tp_shard_make(&s, &c13, 3, 0), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "40 attention heads do not split over 3 ranks"), "%s", lisa_last_error());
    cr_expect_eq(lisa_tp_shard_make(&s, &c13, 16, 0), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "40 attention heads") && strstr(lisa_last_error(), "16 ranks"), "%s",
              lisa_last_error());
    for (int32_t tp = 1; tp <= 8; tp *= 2) {
        cr_expect_eq(lisa_tp_shard_make(&s, &c13, tp, tp - 1), LISA_OK, "13B on %d: %s", tp, lisa_last_error());
        cr_expect_eq(s.n_heads * tp, 40);
    }
    /* KV heads neither a multiple nor a divisor of the rank count */
    lisa_llama_config g = cfg(12, 3, 64, 100);
    cr_expect_eq(lisa_tp_shard_make(&s, &g, 2, 0), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "3 key/value heads do not split over 2 ranks"), "%s", lisa_last_error());
    /* ranks out of range; shares too small */
    cr_expect_eq(lisa_tp_shard_make(&s, &c13, 2, 2), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "rank 2 of 2"), "%s", lisa_last_error());
    cr_expect_eq(lisa_tp_shard_make(&s, &c13, 0, 0), LISA_ERR_INVALID_ARG);
    lisa_llama_config tiny = cfg(8, 8, 4, 100);
    cr_expect_eq(lisa_tp_shard_make(&s, &tiny, 8, 0), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "intermediate_size 4"), "%s", lisa_last_error());
}

Test(tp_shard, uneven_vocab_and_intermediate_tile_the_range) {
    /* 32004 (7B) and 32003 (13B) rows over 1..8 ranks (heads chosen to divide) */
    const int32_t vocabs[2] = {32004, 32003}, inters[2] = {11008, 13825};
    for (int k = 0; k < 2; k++)
        for (int32_t tp = 1; tp <= 8; tp++) {
            lisa_llama_config c = cfg(8 * 7 * 5 * 3, 8 * 7 * 5 * 3, inters[k], vocabs[k]);
            int32_t next_v = 0, next_i = 0, min_v = 1 << 30, max_v = 0;
            for (int32_t r = 0; r < tp; r++) {
                lisa_tp_shard s;
                cr_assert_eq(lisa_tp_shard_make(&s, &c, tp, r), LISA_OK, "%s", lisa_last_error());
                cr_expect_eq(s.vocab0, next_v, "vocab %d on %d ranks: rank %d starts at %d", vocabs[k], tp, r,
                             s.vocab0);
                cr_expect_eq(s.inter0, next_i);
                next_v = s.vocab0 + s.n_vocab;
                next_i = s.inter0 + s.n_inter;
                min_v = s.n_vocab < min_v ? s.n_vocab : min_v;
                max_v = s.n_vocab > max_v ? s.n_vocab : max_v;
                cr_expect_eq(s.vocab_pad, (vocabs[k] + tp - 1) / tp);
                cr_expect(s.n_vocab <= s.vocab_pad);
                cr_expect_eq(s.n_heads * tp, c.n_heads);
                cr_expect_eq(s.head0, r * s.n_heads);
                cr_expect(!s.kv_replicated);
            }
            cr_expect_eq(next_v, vocabs[k]);
            cr_expect_eq(next_i, inters[k]);
            cr_expect(max_v - min_v <= 1, "vocab shards %d..%d", min_v, max_v);
        }
}

Test(tp_shard, gqa_kv_heads_split_or_replicate) {
    /* 32 query heads, 8 KV heads (groups of 4) */
    lisa_llama_config c = cfg(32, 8, 1024, 1000);
    lisa_tp_shard s;
    cr_assert_eq(lisa_tp_shard_make(&s, &c, 4, 3), LISA_OK);
    cr_expect(s.n_kv_heads == 2 && s.kv_head0 == 6 && s.head0 == 24 && s.n_heads == 8 && !s.kv_replicated);
    /* 16 ranks: 2 query heads each, both in one group; each KV head on 2 ranks */
    for (int32_t r = 0; r < 16; r++) {
        cr_assert_eq(lisa_tp_shard_make(&s, &c, 16, r), LISA_OK, "%s", lisa_last_error());
        cr_expect(s.kv_replicated && s.n_kv_heads == 1 && s.n_heads == 2);
        cr_expect_eq(s.kv_head0, r / 2);
        cr_expect_eq(s.head0 / 4, s.kv_head0, "rank %d: query heads %d.. use KV head %d", r, s.head0, s.kv_head0);
    }
}

/* A communicator that only claims a rank (no collective is called while loading). */
static lisa_comm fake_comm(int32_t rank, int32_t size) {
    lisa_comm c = {.name = "fake", .rank = rank, .size = size};
    return c;
}

static void expect_slice(const lisa_tensor *part, const lisa_tensor *whole, int dim, int64_t start, const char *what) {
    lisa_tensor ref;
    cr_assert_eq(lisa_tensor_narrow(&ref, whole, dim, start, part->shape[dim]), LISA_OK);
    cr_assert(lisa_tensor_same_shape(part, &ref), "%s: shape", what);
    cr_assert(lisa_tensor_is_contiguous(part), "%s: contiguous", what);
    int64_t idx[4] = {0, 0, 0, 0}, bad = 0;
    for (idx[0] = 0; idx[0] < ref.shape[0]; idx[0]++)
        for (idx[1] = 0; idx[1] < ref.shape[1]; idx[1]++)
            bad += lisa_tensor_get(part, idx) != lisa_tensor_get(&ref, idx);
    cr_expect_eq(bad, 0, "%s: %lld values differ", what, (long long)bad);
}

Test(tp_shard, each_rank_loads_its_slices, .timeout = 120) {
    lisa_backend *be = tu_cpu_backend();
    const char *dir = GOLDEN_DIR "/llm_gqa";
    cJSON *j = NULL;
    cr_assert_eq(lisa_json_load_file(GOLDEN_DIR "/llm_gqa/config.json", 0, &j), LISA_OK);
    lisa_llama_config c;
    cr_assert_eq(lisa_llama_config_parse(&c, j, "config.json"), LISA_OK);
    cJSON_Delete(j);
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, dir), LISA_OK, "%s", lisa_last_error());
    lisa_llama *whole = NULL;
    cr_assert_eq(lisa_llama_load(&whole, be, ck, &c), LISA_OK, "%s", lisa_last_error());
    cr_expect_null(whole->weights.device_block, "no copies without TP on the CPU");
    for (int32_t size = 2; size <= 4; size += 2)
        for (int32_t r = 0; r < size; r++) {
            lisa_comm fc = fake_comm(r, size);
            lisa_llama *m = NULL;
            cr_assert_eq(lisa_llama_load_tp(&m, be, ck, &c, &fc), LISA_OK, "%s", lisa_last_error());
            const int64_t D = c.head_dim, q0 = m->tp.head0 * D, k0 = m->tp.kv_head0 * D;
            char what[64];
            snprintf(what, sizeof what, "rank %d of %d", r, size);
            for (int l = 0; l < c.n_layers; l++) {
                const lisa_llama_layer *L = &m->layers[l], *W = &whole->layers[l];
                expect_slice(&L->wq, &W->wq, 0, q0, what);
                expect_slice(&L->wk, &W->wk, 0, k0, what);
                expect_slice(&L->wv, &W->wv, 0, k0, what);
                expect_slice(&L->wo, &W->wo, 1, q0, what);
                expect_slice(&L->w_gate, &W->w_gate, 0, m->tp.inter0, what);
                expect_slice(&L->w_up, &W->w_up, 0, m->tp.inter0, what);
                expect_slice(&L->w_down, &W->w_down, 1, m->tp.inter0, what);
                /* row slices point into the mapping; column slices into the owned block */
                cr_expect_eq(L->wq.data, (char *)W->wq.data + q0 * c.hidden * lisa_dtype_size(W->wq.dtype));
                cr_expect((char *)L->wo.data >= (char *)m->weights.device_block &&
                          (char *)L->wo.data < (char *)m->weights.device_block + m->weights.bytes_needed);
            }
            expect_slice(&m->embed, &whole->embed, 0, m->tp.vocab0, what);
            expect_slice(&m->lm_head, &whole->lm_head, 0, m->tp.vocab0, what);
            cr_expect_eq(m->local.n_kv_heads, 1); /* 2 KV heads: split on 2, replicated on 4 */
            cr_expect_eq(m->tp.kv_replicated, size == 4);
            lisa_llama_free(m);
        }
    /* a communicator over device memory does not go with the CPU backend */
    lisa_comm dev = fake_comm(0, 2);
    dev.device_memory = true;
    lisa_llama *m = NULL;
    cr_expect_eq(lisa_llama_load_tp(&m, be, ck, &c, &dev), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "NCCL with CUDA"), "%s", lisa_last_error());
    lisa_llama_free(whole);
    lisa_checkpoint_close(ck);
    lisa_backend_free(be);
}

Test(tp_shard, single_communicator) {
    lisa_comm *c = NULL;
    cr_assert_eq(lisa_comm_single_create(&c), LISA_OK);
    cr_expect(c->rank == 0 && c->size == 1 && !c->device_memory);
    float x[3] = {1, 2, 3}, y[3] = {0};
    cr_expect_eq(c->all_reduce_sum_f32(c, x, 3), LISA_OK);
    cr_expect(x[0] == 1 && x[2] == 3);
    cr_expect_eq(c->all_gather(c, y, x, sizeof x), LISA_OK);
    cr_expect(memcmp(x, y, sizeof x) == 0);
    cr_expect_eq(c->broadcast(c, x, sizeof x, 0), LISA_OK);
    cr_expect_eq(c->barrier(c), LISA_OK);
#ifndef LISA_HAVE_NCCL
    lisa_comm *n = NULL;
    cr_expect_eq(lisa_comm_nccl_create(&n, c, 0, NULL), LISA_ERR_UNSUPPORTED, "no NCCL in this build");
    cr_expect(strstr(lisa_last_error(), "no NCCL"), "%s", lisa_last_error());
#endif
    lisa_comm_free(c);
}
