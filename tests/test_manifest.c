/* tests/test_manifest.c — expected tensor lists against checkpoints saved from the reference
 * modules (tests/golden/gen_bin.py: transformers 4.31 LlamaForCausalLM + segment_anything 1.0 SAM
 * + LISA's projector and text_hidden_fcs; a transformers CLIPModel), parameter counts of the real
 * 7B/13B configs against counts taken on the reference modules (tests/data/configs/
 * expected_counts.json), and the all-at-once mismatch report. */
#include "loader/checkpoint.h"
#include "loader/json.h"
#include "models/manifest.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

#define BIN_DIR LISA_TESTDATA_DIR "/bin"
#define CFG_DIR LISA_TESTDATA_DIR "/configs"

static lisa_mf_part part_of(const char *name) {
    if (!strncmp(name, "model.visual_model.", 19)) return LISA_PART_SAM;
    if (!strncmp(name, "model.mm_projector", 18)) return LISA_PART_PROJECTOR;
    if (!strncmp(name, "model.text_hidden_fcs", 21)) return LISA_PART_FCS;
    if (!strncmp(name, "vision_model.", 13)) return LISA_PART_CLIP;
    return LISA_PART_LLM;
}

/* Elements per part as stored in the checkpoint (the reference's own module tree). */
static void ck_numel(const lisa_checkpoint *ck, uint64_t *per_part) {
    memset(per_part, 0, LISA_PART_COUNT * sizeof *per_part);
    for (int64_t i = 0; i < lisa_checkpoint_count(ck); i++) {
        const lisa_ckpt_tensor *t = lisa_checkpoint_at(ck, i);
        if (!strncmp(t->name, "text_model.", 11) || strstr(t->name, "projection") || !strcmp(t->name, "logit_scale"))
            continue; /* CLIP text tower: allowed, not in the manifest */
        uint64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
        per_part[part_of(t->name)] += n;
    }
}

Test(manifest, tiny_lisa_matches_the_reference_module_tree) {
    const char *dirs[] = {BIN_DIR "/tiny-lisa", BIN_DIR "/tiny-lisa-st"};
    for (int k = 0; k < 2; k++) {
        lisa_checkpoint *ck;
        cr_assert_eq(lisa_checkpoint_open(&ck, dirs[k]), LISA_OK, "%s", lisa_last_error());
        lisa_manifest m;
        cr_assert_eq(lisa_manifest_from_dir(&m, dirs[k], ck), LISA_OK, "%s", lisa_last_error());
        cr_expect_eq(m.family, LISA_FAMILY_LISA);
        lisa_manifest_report r;
        lisa_status s = lisa_manifest_check(&m, ck, &r);
        cr_expect_eq(s, LISA_OK, "%s", lisa_last_error());
        cr_expect_eq(r.n_missing + r.n_shape + r.n_dtype + r.n_unexpected, 0, "%s", r.text ? r.text : "");
        lisa_manifest_report_free(&r);
        /* SAM dims read off the checkpoint = gen_bin.py's builder arguments */
        const lisa_sam_dims *d = &m.sam;
        cr_expect(d->inferred);
        cr_expect(d->embed == 16 && d->patch == 8 && d->grid == 4 && d->img == 32 && d->depth == 2);
        cr_expect(d->head_dim == 8 && d->mlp == 32 && d->out_chans == 16 && d->window == 2);
        cr_expect_eq(d->global_mask[0], 2u, "global_attn_indexes=[1]");
        cr_expect(d->dec_dim == 16 && d->dec_depth == 2 && d->dec_mlp == 32 && d->dec_downsample == 2);
        cr_expect(d->n_mask_tokens == 4 && d->iou_hidden == 16 && d->mask_in_chans == 16);
        /* every stored element is accounted for, part by part */
        uint64_t want[LISA_PART_COUNT];
        ck_numel(ck, want);
        for (int p = 0; p < LISA_PART_COUNT; p++)
            cr_expect_eq(lisa_manifest_numel(&m, (lisa_mf_part)p, false), want[p], "%s: part %s", dirs[k],
                         lisa_mf_part_name((lisa_mf_part)p));
        int64_t n_opt = 0;
        for (int64_t i = 0; i < m.n_entries; i++) n_opt += m.entries[i].optional;
        cr_expect_eq(m.n_entries, lisa_checkpoint_count(ck), "all optional tensors are present in this checkpoint");
        cr_expect_eq(n_opt, 23, "2 rotary inv_freq + 21 unused SAM tensors");
        lisa_manifest_free(&m);
        lisa_checkpoint_close(ck);
    }
}

Test(manifest, clip_directory) {
    lisa_checkpoint *ck;
    cr_assert_eq(lisa_checkpoint_open(&ck, BIN_DIR "/clip"), LISA_OK, "%s", lisa_last_error());
    lisa_manifest m;
    cr_assert_eq(lisa_manifest_from_dir(&m, BIN_DIR "/clip", ck), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m.family, LISA_FAMILY_CLIP);
    cr_expect(m.clip.hidden == 8 && m.clip.n_layers == 3 && m.clip.patch == 14 && m.clip.image == 28);
    cr_expect_eq(lisa_manifest_check(&m, ck, NULL), LISA_OK, "%s", lisa_last_error());
    uint64_t want[LISA_PART_COUNT];
    ck_numel(ck, want);
    cr_expect_eq(lisa_manifest_numel(&m, LISA_PART_CLIP, true), want[LISA_PART_CLIP], "position_ids (a buffer) is absent");
    lisa_manifest_free(&m);
    lisa_checkpoint_close(ck);
}

static int64_t jint(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "%s", k);
    return (int64_t)v->valuedouble;
}

Test(manifest, real_config_parameter_counts) {
    cJSON *counts;
    cr_assert_eq(lisa_json_load_file(CFG_DIR "/expected_counts.json", 0, &counts), LISA_OK, "%s", lisa_last_error());
    const char *names[] = {"lisa-7b-v1", "lisa-13b-llama2-v1"};
    for (int k = 0; k < 2; k++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, names[k]);
        char dir[512];
        snprintf(dir, sizeof dir, CFG_DIR "/%s", names[k]);
        lisa_manifest m;
        cr_assert_eq(lisa_manifest_from_dir(&m, dir, NULL), LISA_OK, "%s", lisa_last_error());
        cr_expect_eq((int64_t)lisa_manifest_numel(&m, LISA_PART_LLM, true), jint(c, "llm_params"), "%s", names[k]);
        cr_expect_eq((int64_t)lisa_manifest_numel(&m, LISA_PART_PROJECTOR, true), jint(c, "projector_params"));
        cr_expect_eq((int64_t)lisa_manifest_numel(&m, LISA_PART_FCS, true), jint(c, "text_hidden_fcs_params"));
        cr_expect_eq((int64_t)lisa_manifest_numel(&m, LISA_PART_SAM, true), jint(c, "sam_params"));
        int64_t sam_tensors = 0;
        for (int64_t i = 0; i < m.n_entries; i++) sam_tensors += m.entries[i].part == LISA_PART_SAM;
        cr_expect_eq(sam_tensors, jint(c, "sam_tensors"), "every tensor of build_sam_vit_h's state_dict");
        cr_expect(!m.sam.inferred && m.sam.global_mask[0] == ((1u << 7) | (1u << 15) | (1u << 23) | (1u << 31)));
        int64_t kv = 2 * m.llm.n_layers * m.llm.n_kv_heads * m.llm.head_dim * 2;
        cr_expect_eq(kv, jint(c, "kv_bytes_per_token_bf16"));
        lisa_manifest_free(&m);
    }
    cJSON_Delete(counts);
}

/* A damaged copy of tiny-lisa: every kind of problem, all reported in one go. */
Test(manifest, reports_every_mismatch_at_once) {
    lisa_checkpoint *src;
    cr_assert_eq(lisa_checkpoint_open(&src, BIN_DIR "/tiny-lisa"), LISA_OK);
    int64_t n = lisa_checkpoint_count(src);
    lisa_st_write_item *items = calloc((size_t)n + 1, sizeof *items);
    int64_t k = 0;
    lisa_tensor wrong = tu_tensor(LISA_DTYPE_BF16, 2, 41, 16, 0, 0), ints = tu_tensor(LISA_DTYPE_I64, 1, 16, 0, 0, 0);
    lisa_tensor extra = tu_tensor(LISA_DTYPE_F32, 1, 3, 0, 0, 0);
    tu_fill_uniform(&wrong, &(tu_rng){1}, -1, 1);
    tu_fill_uniform(&ints, &(tu_rng){2}, 0, 9);
    tu_fill_uniform(&extra, &(tu_rng){3}, 0, 9);
    for (int64_t i = 0; i < n; i++) {
        const lisa_ckpt_tensor *t = lisa_checkpoint_at(src, i);
        if (!strcmp(t->name, "model.norm.weight") || !strcmp(t->name, "model.visual_model.mask_decoder.iou_token.weight") ||
            !strcmp(t->name, "model.visual_model.prompt_encoder.point_embeddings.0.weight"))
            continue; /* two required ones missing, one optional one (not a problem) */
        items[k] = (lisa_st_write_item){t->name, lisa_ckpt_tensor_view(t)};
        if (!strcmp(t->name, "model.layers.0.mlp.up_proj.weight")) items[k].tensor = wrong;
        if (!strcmp(t->name, "model.text_hidden_fcs.0.0.bias")) items[k].tensor = ints;
        k++;
    }
    items[k++] = (lisa_st_write_item){"model.extra.weight", extra};
    char *dir = tu_make_tmpdir("lisa-mf");
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(lisa_safetensors_write(path, items, k, NULL, 0), LISA_OK, "%s", lisa_last_error());
    size_t len;
    char *cfg = tu_read_file(BIN_DIR "/tiny-lisa/config.json", &len);
    snprintf(path, sizeof path, "%s/config.json", dir);
    cr_assert(tu_write_file(path, cfg, len));
    lisa_checkpoint *ck;
    cr_assert_eq(lisa_checkpoint_open(&ck, dir), LISA_OK, "%s", lisa_last_error());
    lisa_manifest m;
    cr_assert_eq(lisa_manifest_from_dir(&m, dir, ck), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m.sam.dec_dim, 16, "decoder dim still inferred without iou_token");
    lisa_manifest_report r;
    cr_expect_eq(lisa_manifest_check(&m, ck, &r), LISA_ERR_SHAPE);
    const char *msg = lisa_last_error();
    cr_expect_eq(r.n_missing, 2, "%s", r.text);
    cr_expect_eq(r.n_shape, 1, "%s", r.text);
    cr_expect_eq(r.n_dtype, 1, "%s", r.text);
    cr_expect_eq(r.n_unexpected, 1, "%s", r.text);
    const char *needles[] = {"missing     model.norm.weight  expected [16]",
                             "missing     model.visual_model.mask_decoder.iou_token.weight  expected [1, 16]",
                             "shape       model.layers.0.mlp.up_proj.weight  expected [40, 16]  found [41, 16] BF16",
                             "dtype       model.text_hidden_fcs.0.0.bias  expected a float dtype  found [16] I64",
                             "unexpected  model.extra.weight  found [3] F32",
                             "2 missing, 1 wrong shape, 1 wrong dtype, 1 unexpected"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++) {
        cr_expect(strstr(msg, needles[i]), "last error lacks '%s':\n%s", needles[i], msg);
        if (i < 5) cr_expect(strstr(r.text, needles[i]), "report lacks '%s'", needles[i]);
    }
    cr_expect(!strstr(msg, "point_embeddings"), "an absent unused tensor is not a problem");
    lisa_manifest_report_free(&r);
    lisa_manifest_free(&m);
    lisa_checkpoint_close(ck);
    lisa_checkpoint_close(src);
    free(cfg);
    free(items);
    lisa_tensor_free(&wrong);
    lisa_tensor_free(&ints);
    lisa_tensor_free(&extra);
    tu_remove_tree(dir);
    free(dir);
}

static lisa_status build_from(const char *json, lisa_manifest *m) {
    cJSON *c = cJSON_Parse(json);
    cr_assert_not_null(c, "%s", json);
    lisa_status s = lisa_manifest_build(m, c, "cfg.json", NULL);
    cJSON_Delete(c);
    return s;
}

static const lisa_manifest_entry *entry(const lisa_manifest *m, const char *name) {
    for (int64_t i = 0; i < m->n_entries; i++)
        if (!strcmp(m->entries[i].name, name)) return &m->entries[i];
    return NULL;
}

#define TINY "\"intermediate_size\":40,\"num_hidden_layers\":2,\"vocab_size\":40,\"mm_hidden_size\":8,\"out_dim\":8"
#define HEADS2 ",\"hidden_size\":16,\"num_attention_heads\":2"

Test(manifest, projector_types_and_config_errors) {
    lisa_manifest m;
    cr_assert_eq(build_from("{" TINY HEADS2 ",\"mm_projector_type\":\"mlp2x_gelu\"}", &m), LISA_OK, "%s", lisa_last_error());
    const lisa_manifest_entry *a = entry(&m, "model.mm_projector.0.weight"), *b = entry(&m, "model.mm_projector.2.weight");
    cr_assert(a && b);
    cr_expect(a->shape[0] == 16 && a->shape[1] == 8 && b->shape[0] == 16 && b->shape[1] == 16);
    cr_expect_null(entry(&m, "model.mm_projector.weight"));
    cr_expect_eq(lisa_manifest_numel(&m, LISA_PART_PROJECTOR, true), 8 * 16 + 16 + 16 * 16 + 16);
    lisa_manifest_free(&m);
    cr_assert_eq(build_from("{" TINY HEADS2 "}", &m), LISA_OK);
    cr_expect_not_null(entry(&m, "model.mm_projector.weight"), "linear by default (LISA v1)");
    lisa_manifest_free(&m);
    /* GQA shapes */
    cr_assert_eq(build_from("{\"model_type\":\"llama\",\"hidden_size\":16,\"intermediate_size\":40,\"num_hidden_layers\":1,"
                            "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":10}",
                            &m),
                 LISA_OK);
    cr_expect_eq(m.family, LISA_FAMILY_LLAMA);
    cr_expect_eq(entry(&m, "model.layers.0.self_attn.k_proj.weight")->shape[0], 8);
    cr_expect_null(entry(&m, "model.text_hidden_fcs.0.0.weight"));
    lisa_manifest_free(&m);

    cr_expect_eq(build_from("{" TINY HEADS2 ",\"mm_projector_type\":\"qformer\"}", &m), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "cfg.json") && strstr(lisa_last_error(), "'qformer'"), "%s", lisa_last_error());
    cr_expect_eq(build_from("{\"model_type\":\"llama\",\"intermediate_size\":40}", &m), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "hidden_size"), "%s", lisa_last_error());
    cr_expect_eq(build_from("{" TINY ",\"hidden_size\":16,\"num_attention_heads\":3}", &m), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "do not divide"), "%s", lisa_last_error());
    cr_expect_eq(build_from("{" TINY ",\"hidden_size\":-16,\"num_attention_heads\":2}", &m), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "out of range"), "%s", lisa_last_error());
    cr_expect_eq(build_from("{\"model_type\":\"bert\"}", &m), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "'bert'"), "%s", lisa_last_error());
}

Test(manifest, checkpoint_name_diff) {
    lisa_checkpoint *ck;
    cr_assert_eq(lisa_checkpoint_open(&ck, BIN_DIR "/tiny-lisa"), LISA_OK);
    lisa_manifest m;
    cr_assert_eq(lisa_manifest_from_dir(&m, BIN_DIR "/tiny-lisa", ck), LISA_OK);
    const char **expected = calloc((size_t)m.n_entries + 2, sizeof *expected);
    int64_t n = 0;
    for (int64_t i = 0; i < m.n_entries; i++)
        if (!m.entries[i].optional) expected[n++] = m.entries[i].name;
    expected[n++] = "not.there";
    expected[n++] = "not.there"; /* listed twice, reported once */
    const char *allow[] = {"model.layers.*"};
    lisa_ckpt_name_diff d;
    cr_assert_eq(lisa_checkpoint_diff_names(ck, expected, n, allow, 1, &d), LISA_OK);
    cr_expect_eq(d.n_missing, 1);
    cr_expect_str_eq(d.missing[0], "not.there");
    cr_expect_eq(d.n_unexpected, 21, "the unused SAM tensors; inv_freq is allowed by the pattern");
    for (int64_t i = 0; i < d.n_unexpected; i++)
        cr_expect(strstr(d.unexpected[i], "point") || strstr(d.unexpected[i], "mask_downscaling") ||
                      strstr(d.unexpected[i], "iou_prediction_head"),
                  "%s", d.unexpected[i]);
    lisa_ckpt_name_diff_free(&d);
    cr_expect(lisa_name_matches("a.*", "a.b") && !lisa_name_matches("a.*", "ab") && lisa_name_matches("x", "x") &&
              !lisa_name_matches("x", "xy"));
    free(expected);
    lisa_manifest_free(&m);
    lisa_checkpoint_close(ck);
}

