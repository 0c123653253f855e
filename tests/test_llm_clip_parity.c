/* tests/test_llm_clip_parity.c — the LLaMA decoder (MHA and GQA, KV cache, greedy decoding) and
 * the CLIP vision tower on the CPU backend against the PyTorch reference (transformers 4.31, fp32
 * compute on the stored BF16/F32 weights). Golden data: tests/golden/gen_golden.py. */
#include "golden.h"
#include "loader/json.h"
#include "models/clip.h"
#include "models/llama.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-4
#define ATOL_REL 1e-5

static lisa_llama *load_llama_fuse(lisa_backend *be, const char *dir, lisa_checkpoint **ck_out, bool fuse) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg_json = NULL;
    cr_assert_eq(lisa_json_load_file(path, 0, &cfg_json), LISA_OK, "%s", lisa_last_error());
    lisa_llama_config cfg;
    cr_assert_eq(lisa_llama_config_parse(&cfg, cfg_json, path), LISA_OK, "%s", lisa_last_error());
    cJSON_Delete(cfg_json);
    cr_assert_eq(lisa_checkpoint_open(ck_out, dir), LISA_OK, "%s", lisa_last_error());
    lisa_llama *m = NULL;
    cr_assert_eq(lisa_llama_load_fuse(&m, be, *ck_out, &cfg, LISA_DTYPE_BF16, NULL, fuse), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m->fused, fuse);
    return m;
}

static lisa_llama *load_llama(lisa_backend *be, const char *dir, lisa_checkpoint **ck_out) {
    return load_llama_fuse(be, dir, ck_out, false);
}

typedef struct llm_step {
    const lisa_llama *m;
    lisa_kv_cache *kv;
    lisa_tensor ids;    /* I32 [T] host */
    lisa_tensor logits; /* F32 [T, V] host, filled */
} llm_step;

static void llm_step_graph(lisa_graph *g, void *ctx) {
    llm_step *s = ctx;
    lisa_kv_cache saved = *s->kv; /* the counting pass must not advance the cache */
    T *x = lisa_g_embedding(g, &s->m->embed, lisa_g_wrap(g, &s->ids));
    T *h = lisa_llama_forward(g, s->m, s->kv, x);
    lisa_g_copy_to(g, &s->logits, lisa_llama_logits(g, s->m, h));
    if (g_measuring(g)) *s->kv = saved;
}

static int32_t argmax_row(const lisa_tensor *logits, int64_t row) {
    const int64_t V = logits->shape[1];
    const float *p = (const float *)logits->data + row * V;
    int32_t best = 0;
    for (int64_t j = 1; j < V; j++)
        if (p[j] > p[best]) best = (int32_t)j;
    return best;
}

/* fuse: q/k/v and gate/up concatenated into one GEMM each, as device backends run them (their
 * graph path, on the CPU: the same reference within the same tolerance) */
static void gqa_prefill_and_decode(bool fuse) {
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *ck = NULL, *gold = golden_open("llm_gqa");
    lisa_llama *m = load_llama_fuse(be, GOLDEN_DIR "/llm_gqa", &ck, fuse);
    cr_expect_eq(m->layers[0].wqkv.n_dims, fuse ? 2 : 0);
    cr_expect_eq(m->cfg.n_kv_heads, 2);
    cr_expect_eq(m->cfg.n_heads, 4);
    lisa_tensor in = golden_get(gold, "input_ids"), want_gen = golden_get(gold, "gen_ids");
    const int64_t Tn = in.shape[0], G = want_gen.shape[0], V = m->cfg.vocab;
    lisa_kv_cache kv;
    cr_assert_eq(lisa_kv_cache_init(&kv, be, &m->cfg, (int32_t)(Tn + G), LISA_DTYPE_F32), LISA_OK);

    /* prefill: every position's logits */
    llm_step s = {.m = m, .kv = &kv, .ids = tu_tensor(LISA_DTYPE_I32, 1, Tn, 0, 0, 0),
                  .logits = tu_tensor(LISA_DTYPE_F32, 2, Tn, V, 0, 0)};
    for (int64_t i = 0; i < Tn; i++) ((int32_t *)s.ids.data)[i] = (int32_t)((int64_t *)in.data)[i];
    tu_poison(&s.logits);
    cr_assert_eq(golden_run_graph(be, llm_step_graph, &s, NULL, NULL), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(kv.len, Tn);
    cr_expect(golden_check(gold, "prefill_logits", &s.logits, RTOL, ATOL_REL));
    int32_t next = argmax_row(&s.logits, Tn - 1);
    lisa_tensor_free(&s.ids);
    lisa_tensor_free(&s.logits);

    /* greedy decode with the KV cache, one token per step */
    s.ids = tu_tensor(LISA_DTYPE_I32, 1, 1, 0, 0, 0);
    s.logits = tu_tensor(LISA_DTYPE_F32, 2, 1, V, 0, 0);
    for (int64_t j = 0; j < G; j++) {
        cr_expect_eq(next, (int32_t)((int64_t *)want_gen.data)[j], "greedy token %lld: got %d want %lld", (long long)j,
                     next, (long long)((int64_t *)want_gen.data)[j]);
        if (j == G - 1) break;
        ((int32_t *)s.ids.data)[0] = next;
        cr_assert_eq(golden_run_graph(be, llm_step_graph, &s, NULL, NULL), LISA_OK, "%s", lisa_last_error());
        next = argmax_row(&s.logits, 0);
    }
    cr_expect_eq(kv.len, Tn + G - 1);
    lisa_tensor_free(&s.ids);
    lisa_tensor_free(&s.logits);
    lisa_kv_cache_free(&kv);
    lisa_llama_free(m);
    lisa_checkpoint_close(ck);
    lisa_checkpoint_close(gold);
    lisa_backend_free(be);
}

Test(llm_parity, gqa_prefill_logits_and_greedy_decode, .timeout = 300) { gqa_prefill_and_decode(false); }

Test(llm_parity, fused_qkv_and_gate_up_weights, .timeout = 300) { gqa_prefill_and_decode(true); }

Test(llm_parity, incremental_equals_one_shot, .timeout = 300) {
    /* Feeding the prompt one token at a time through the cache gives the one-shot logits. */
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *ck = NULL, *gold = golden_open("llm_gqa");
    lisa_llama *m = load_llama(be, GOLDEN_DIR "/llm_gqa", &ck);
    lisa_tensor in = golden_get(gold, "input_ids"), ref = golden_get(gold, "prefill_logits");
    const int64_t Tn = in.shape[0], V = m->cfg.vocab;
    lisa_kv_cache kv;
    cr_assert_eq(lisa_kv_cache_init(&kv, be, &m->cfg, (int32_t)Tn, LISA_DTYPE_F32), LISA_OK);
    llm_step s = {.m = m, .kv = &kv, .ids = tu_tensor(LISA_DTYPE_I32, 1, 1, 0, 0, 0),
                  .logits = tu_tensor(LISA_DTYPE_F32, 2, 1, V, 0, 0)};
    for (int64_t t = 0; t < Tn; t++) {
        ((int32_t *)s.ids.data)[0] = (int32_t)((int64_t *)in.data)[t];
        cr_assert_eq(golden_run_graph(be, llm_step_graph, &s, NULL, NULL), LISA_OK, "%s", lisa_last_error());
        lisa_tensor row;
        cr_assert_eq(lisa_tensor_narrow(&row, &ref, 0, t, 1), LISA_OK);
        char what[64];
        snprintf(what, sizeof what, "logits at position %lld", (long long)t);
        cr_expect(tu_check_tensors(what, &s.logits, &row, 1e-5 * 4, RTOL));
    }
    /* the cache is full: one more token is a clear LISA_ERR_LIMIT, not a crash */
    cr_expect_eq(golden_run_graph(be, llm_step_graph, &s, NULL, NULL), LISA_ERR_LIMIT);
    cr_expect(strstr(lisa_last_error(), "KV cache") != NULL, "%s", lisa_last_error());
    lisa_tensor_free(&s.ids);
    lisa_tensor_free(&s.logits);
    lisa_kv_cache_free(&kv);
    lisa_llama_free(m);
    lisa_checkpoint_close(ck);
    lisa_checkpoint_close(gold);
    lisa_backend_free(be);
}

typedef struct clip_run {
    const lisa_clip *m;
    lisa_tensor px, out;
} clip_run;

static void clip_graph(lisa_graph *g, void *ctx) {
    clip_run *c = ctx;
    lisa_g_copy_to(g, &c->out, lisa_clip_encode(g, c->m, lisa_g_wrap(g, &c->px)));
}

Test(clip_parity, layer_minus_two_without_cls, .timeout = 300) {
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *gold = golden_open("lisa_chelsea");
    lisa_clip *m = NULL;
    cr_assert_eq(lisa_clip_load(&m, be, TINY_CLIP_DIR, -2), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m->cfg.n_layers, 3);
    cr_expect_eq(m->cfg.n_run, 2); /* hidden_states[-2] = output of layer 2 of 3 */
    cr_expect(m->cfg.quick_gelu);
    lisa_tensor px = golden_get(gold, "clip_px");
    clip_run c = {.m = m, .px = lisa_tensor_view4(px.data, LISA_DTYPE_F32, 4, 1, 3, 224, 224),
                  .out = tu_tensor(LISA_DTYPE_F32, 3, 1, 256, m->cfg.hidden, 0)};
    tu_poison(&c.out);
    cr_assert_eq(golden_run_graph(be, clip_graph, &c, NULL, NULL), LISA_OK, "%s", lisa_last_error());
    cr_expect(golden_check(gold, "clip_l23", &c.out, RTOL, ATOL_REL));
    lisa_tensor_free(&c.out);
    lisa_clip_free(m);
    lisa_checkpoint_close(gold);
    lisa_backend_free(be);
}

Test(clip_parity, missing_directory_is_a_clear_error) {
    lisa_backend *be = tu_cpu_backend();
    lisa_clip *m = (lisa_clip *)0x1;
    cr_expect_eq(lisa_clip_load(&m, be, LISA_TESTDATA_DIR "/no-such-clip", -2), LISA_ERR_IO);
    cr_expect_null(m);
    cr_expect(strstr(lisa_last_error(), "no-such-clip/config.json") != NULL, "%s", lisa_last_error());
    lisa_backend_free(be);
}
