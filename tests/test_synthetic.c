/* tests/test_synthetic.c — synthetic checkpoints (make-tiny's `synthetic`: shapes + [mean, std] in
 * the safetensors metadata, data drawn at load by backend ops; models/weights.h) and steering
 * (lisa_tiny_steer), on the CPU backend. The GPU runs the same code with its own ops
 * (lisa-check's real-dims section, bench_gpu_models). */
#include "golden.h"
#include "loader/checkpoint.h"
#include "models/lisa_model.h"
#include "models/tiny.h"
#include "core/error.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *make_synthetic(lisa_tiny_params *p, lisa_tiny_report *rep) {
    char *dir = tu_make_tmpdir("lisa-synth");
    char out[4200];
    snprintf(out, sizeof out, "%s/model", dir);
    p->synthetic = true;
    p->sp_model = LISA_TESTDATA_DIR "/tokenizer/llama-spm.model";
    cr_assert_eq(lisa_make_tiny(p, out, rep), LISA_OK, "%s", lisa_last_error());
    return dir;
}

static lisa_model *load(const char *dir) {
    char path[4200], clip[4300];
    snprintf(path, sizeof path, "%s/model", dir);
    snprintf(clip, sizeof clip, "%s/model/clip-vit-large-patch14", dir);
    lisa_model_params mp = lisa_model_default_params();
    mp.backend = LISA_BACKEND_CPU;
    mp.vision_tower = clip;
    mp.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(path, &mp, &m), LISA_OK, "%s", lisa_last_error());
    return m;
}

/* mean and standard deviation of an F32 host tensor, in double */
static void stats(const lisa_tensor *t, double *mean, double *sd) {
    cr_assert_eq(t->dtype, LISA_DTYPE_F32);
    const int64_t n = lisa_tensor_numel(t);
    const float *x = t->data;
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        q += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(q / (double)n);
}

Test(synthetic, checkpoint_holds_shapes_and_init_only, .timeout = 120) {
    lisa_tiny_params p = lisa_tiny_default_params();
    lisa_tiny_report rep;
    char *dir = make_synthetic(&p, &rep);
    char path[4200];
    snprintf(path, sizeof path, "%s/model/model.safetensors", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(rep.n_shards, 1);
    cr_expect_gt(rep.total_bytes, 1000000, "total %lld", (long long)rep.total_bytes);
    cr_expect_geq(st.st_size, rep.total_bytes);
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, path), LISA_OK, "%s", lisa_last_error());
    cr_expect_str_eq(lisa_checkpoint_metadata(ck, "lisa_synthetic"), "0");
    const char *init = lisa_checkpoint_metadata(ck, "lisa_synthetic_init");
    cr_assert_not_null(init);
    /* the recorded distributions are make-tiny's: o_proj at 2 layers keeps the drawn models' gain */
    cJSON *j = cJSON_Parse(init);
    cr_assert(cJSON_IsObject(j));
    const cJSON *ln = cJSON_GetObjectItemCaseSensitive(j, "model.layers.0.input_layernorm.weight");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "model.layers.1.self_attn.o_proj.weight");
    cr_assert(cJSON_GetArraySize(ln) == 2 && cJSON_GetArraySize(op) == 2);
    cr_expect_eq(cJSON_GetArrayItem(ln, 0)->valuedouble, 1.0);
    cr_expect_eq(cJSON_GetArrayItem(ln, 1)->valuedouble, 0.1);
    cr_expect_eq(cJSON_GetArrayItem(op, 0)->valuedouble, 0.0);
    cr_expect(fabs(cJSON_GetArrayItem(op, 1)->valuedouble - 0.35 / sqrt(32.0)) < 1e-15);
    cJSON_Delete(j);
    const lisa_ckpt_tensor *e = lisa_checkpoint_find(ck, "lm_head.weight");
    cr_assert_not_null(e);
    cr_expect_eq(e->dtype, LISA_DTYPE_BF16);
    cr_expect_eq(e->shape[0], rep.vocab);
    lisa_checkpoint_close(ck);
    tu_remove_tree(dir);
    free(dir);
}

Test(synthetic, weights_drawn_at_load_with_recorded_scales, .timeout = 300) {
    lisa_tiny_params p = lisa_tiny_default_params();
    p.llm_hidden = 64, p.llm_heads = 4, p.llm_kv_heads = 4, p.llm_inter = 128;
    char *dir = make_synthetic(&p, NULL);
    lisa_model *m = load(dir), *m2 = load(dir);
    double mean, sd;
    const lisa_llama_layer *L = &m->llm->layers[1];
    stats(&L->attn_norm, &mean, &sd); /* 1 + N(0, 0.1²) */
    cr_expect(fabs(mean - 1.0) < 0.05 && fabs(sd - 0.1) < 0.03, "norm gain mean %g sd %g", mean, sd);
    stats(&L->wq, &mean, &sd); /* N(0, 1/64) */
    cr_expect(fabs(mean) < 0.01 && fabs(sd - 0.125) < 0.01, "wq mean %g sd %g", mean, sd);
    stats(&m->llm->embed, &mean, &sd); /* N(0, 1) over 32004 x 64 */
    cr_expect(fabs(mean) < 0.01 && fabs(sd - 1.0) < 0.01, "embed mean %g sd %g", mean, sd);
    stats(&m->sam->blocks[0].qkv_b, &mean, &sd); /* N(0, 0.05²) */
    cr_expect(fabs(sd - 0.05) < 0.02, "qkv bias sd %g", sd);
    /* different tensors start at different pattern offsets; the same tensor is the same on reload */
    cr_expect_neq(memcmp(L->wq.data, L->wk.data, 64 * sizeof(float)), 0);
    cr_expect_eq(memcmp(m->llm->lm_head.data, m2->llm->lm_head.data, lisa_tensor_nbytes(&m->llm->lm_head)), 0);
    cr_expect_eq(memcmp(m->clip->layers[0].fc1_w.data, m2->clip->layers[0].fc1_w.data,
                        lisa_tensor_nbytes(&m->clip->layers[0].fc1_w)),
                 0);
    for (int64_t i = 0; i < lisa_tensor_numel(&m->sam->blocks[1].lin1_w); i++)
        cr_assert(isfinite(((const float *)m->sam->blocks[1].lin1_w.data)[i]));
    lisa_model_free(m);
    lisa_model_free(m2);
    tu_remove_tree(dir);
    free(dir);
}

/* A steered synthetic model answers the plan (and so decodes one mask) for any image and query, at
 * two depths: 2 layers, and 16 layers where the depth-scaled residual gain matters. */
static void steered_run(int32_t layers) {
    lisa_tiny_params p = lisa_tiny_default_params();
    p.llm_hidden = 128, p.llm_heads = 4, p.llm_kv_heads = 2, p.llm_inter = 256, p.llm_layers = layers;
    p.seed = 7;
    char *dir = make_synthetic(&p, NULL);
    lisa_model *m = load(dir);
    float margin = 0;
    int32_t ids[LISA_TINY_MAX_ANSWER + 1], n_ids = 0;
    cr_assert_eq(lisa_tiny_steer(m, "Sure, [SEG].", &margin, ids, &n_ids), LISA_OK, "%s", lisa_last_error());
    cr_expect_gt(margin, 8.0f, "margin %g", margin);
    cr_assert_geq(n_ids, 4);
    cr_expect_eq(ids[n_ids - 1], 2, "the plan ends with </s>");
    uint8_t rgb[40 * 56 * 3];
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (uint8_t)(i * 37 + (i >> 5));
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = 12;
    lisa_result *r = NULL;
    cr_assert_eq(lisa_model_run(m, rgb, 40, 56, "Where is the thing that does not exist?", &sp, NULL, &r), LISA_OK,
                 "%s", lisa_last_error());
    cr_assert_eq(lisa_result_n_tokens(r), n_ids, "generated %d tokens, planned %d", lisa_result_n_tokens(r), n_ids);
    for (int32_t i = 0; i < n_ids; i++)
        cr_expect_eq(lisa_result_tokens(r)[i], ids[i], "token %d", i);
    cr_expect_eq(lisa_result_n_masks(r), 1);
    cr_expect_str_eq(lisa_result_answer(r), "Sure, [SEG] ."); /* chat.py decodes the added token with a space */
    lisa_result_free(r);
    lisa_model_free(m);
    tu_remove_tree(dir);
    free(dir);
}

Test(synthetic, steered_answer_2_layers, .timeout = 300) { steered_run(2); }
Test(synthetic, steered_answer_16_layers, .timeout = 300) { steered_run(16); }

Test(synthetic, steering_needs_owned_weights, .timeout = 120) {
    lisa_model_params mp = lisa_model_default_params();
    mp.backend = LISA_BACKEND_CPU;
    mp.vision_tower = TINY_CLIP_DIR;
    mp.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &mp, &m), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_tiny_steer(m, "Sure.", NULL, NULL, NULL), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "synthetic") != NULL, "%s", lisa_last_error());
    lisa_model_free(m);
}
