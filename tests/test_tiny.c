/* tests/test_tiny.c — models/tiny.c (`lisa make-tiny`): the written directory has the published
 * layout (every JSON file and tokenizer.model byte-identical to the PyTorch generator's
 * tests/data/tiny-lisa and tiny-clip; the same tensor names, shapes and dtypes), the same bytes for a
 * seed, and the C engine loading it answers exactly the planned text, with one mask per [SEG], for
 * different images, queries, answers and dimensions. */
#include "golden.h"
#include "loader/checkpoint.h"
#include "loader/image.h"
#include "models/lisa_model.h"
#include "models/manifest.h"
#include "models/sam_predict.h"
#include "models/tiny.h"
#include "core/half.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *make(const lisa_tiny_params *p, const char *tmp, const char *name, lisa_tiny_report *rep) {
    char *out = malloc(4096);
    snprintf(out, 4096, "%s/%s", tmp, name);
    cr_assert_eq(lisa_make_tiny(p, out, rep), LISA_OK, "%s", lisa_last_error());
    return out;
}

static bool same_file(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    const bool same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* Every regular file under a (recursively) is byte-identical under b, and b has no others. */
static int compare_trees(const char *a, const char *b) {
    int n = 0;
    DIR *d = opendir(a);
    cr_assert(d, "cannot open %s", a);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char pa[4096], pb[4096];
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        struct stat st;
        cr_assert_eq(stat(pa, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            n += compare_trees(pa, pb);
        } else {
            cr_expect(same_file(pa, pb), "%s and %s differ", pa, pb);
            n++;
        }
    }
    closedir(d);
    return n;
}

static int count_entries(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

/* Same tensor names, shapes and dtypes; `prefix` filters both sides (NULL = all). */
static void expect_same_tensors(const char *got_path, const char *want_path, const char *prefix) {
    lisa_checkpoint *got = NULL, *want = NULL;
    cr_assert_eq(lisa_checkpoint_open(&got, got_path), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_checkpoint_open(&want, want_path), LISA_OK, "%s", lisa_last_error());
    int64_t n_want = 0, n_got = 0;
    for (int64_t i = 0; i < lisa_checkpoint_count(want); i++) {
        const lisa_ckpt_tensor *w = lisa_checkpoint_at(want, i);
        if (prefix && strncmp(w->name, prefix, strlen(prefix))) continue;
        n_want++;
        const lisa_ckpt_tensor *g = lisa_checkpoint_find(got, w->name);
        cr_expect(g, "missing %s", w->name);
        if (!g) continue;
        cr_expect_eq(g->dtype, w->dtype, "%s dtype", w->name);
        cr_expect_eq(g->n_dims, w->n_dims, "%s rank", w->name);
        for (int d = 0; d < w->n_dims; d++)
            cr_expect_eq(g->shape[d], w->shape[d], "%s dim %d", w->name, d);
    }
    for (int64_t i = 0; i < lisa_checkpoint_count(got); i++)
        n_got += !prefix || !strncmp(lisa_checkpoint_at(got, i)->name, prefix, strlen(prefix));
    cr_expect_eq(n_got, n_want, "%s: %lld tensors, %s has %lld", got_path, (long long)n_got, want_path,
                 (long long)n_want);
    lisa_checkpoint_close(got);
    lisa_checkpoint_close(want);
}

Test(tiny, default_layout_equals_the_golden_generator) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    lisa_tiny_params p = lisa_tiny_default_params();
    lisa_tiny_report rep;
    char *out = make(&p, tmp, "m", &rep);
    const char *files[] = {"config.json",           "generation_config.json",
                           "added_tokens.json",     "special_tokens_map.json",
                           "tokenizer_config.json", "tokenizer.model"};
    char a[4096], b[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", out, files[i]);
        snprintf(b, sizeof b, "%s/%s", TINY_LISA_DIR, files[i]);
        cr_expect(same_file(a, b), "%s differs from the generator's", files[i]);
    }
    const char *clip_files[] = {"config.json", "preprocessor_config.json"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/clip-vit-large-patch14/%s", out, clip_files[i]);
        snprintf(b, sizeof b, "%s/%s", TINY_CLIP_DIR, clip_files[i]);
        cr_expect(same_file(a, b), "clip %s differs from the generator's", clip_files[i]);
    }
    /* 2 shards + index, as the golden model (one layer straddles the shards there too) */
    cr_expect_eq(rep.n_shards, 2);
    cr_expect_eq(rep.vocab, 32004);
    cr_expect_eq(rep.total_bytes, 4738176); /* the golden index's total_size */
    snprintf(a, sizeof a, "%s/model-00002-of-00002.safetensors", out);
    struct stat st;
    cr_expect_eq(stat(a, &st), 0);
    expect_same_tensors(out, TINY_LISA_DIR, NULL);
    snprintf(a, sizeof a, "%s/clip-vit-large-patch14/model.safetensors", out);
    expect_same_tensors(a, TINY_CLIP_DIR "/model.safetensors", "vision_model.");
    /* the saved inv_freq buffers (BF16) equal transformers' */
    lisa_checkpoint *g = NULL, *w = NULL;
    cr_assert_eq(lisa_checkpoint_open(&g, out), LISA_OK);
    cr_assert_eq(lisa_checkpoint_open(&w, TINY_LISA_DIR), LISA_OK);
    const lisa_ckpt_tensor *ig = lisa_checkpoint_find(g, "model.layers.1.self_attn.rotary_emb.inv_freq"),
                           *iw = lisa_checkpoint_find(w, "model.layers.1.self_attn.rotary_emb.inv_freq");
    cr_assert(ig && iw && ig->nbytes == iw->nbytes);
    cr_expect(memcmp(ig->data, iw->data, ig->nbytes) == 0);
    cr_expect_str_eq(lisa_checkpoint_metadata(g, "format"), "pt");
    lisa_checkpoint_close(g);
    lisa_checkpoint_close(w);
    tu_remove_tree(tmp);
    free(out);
    free(tmp);
}

Test(tiny, same_seed_same_bytes) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    lisa_tiny_params p = lisa_tiny_default_params();
    p.seed = 7;
    char *a = make(&p, tmp, "a", NULL), *b = make(&p, tmp, "b", NULL);
    cr_expect_eq(compare_trees(a, b), 12); /* 9 files + 3 in clip-vit-large-patch14/ */
    p.seed = 8;
    char *c = make(&p, tmp, "c", NULL);
    char pa[4096], pc[4096];
    snprintf(pa, sizeof pa, "%s/model-00001-of-00002.safetensors", a);
    snprintf(pc, sizeof pc, "%s/model-00001-of-00002.safetensors", c);
    cr_expect(!same_file(pa, pc), "seed 8 wrote seed 7's weights");
    snprintf(pa, sizeof pa, "%s/config.json", a);
    snprintf(pc, sizeof pc, "%s/config.json", c);
    cr_expect(same_file(pa, pc));
    tu_remove_tree(tmp);
    free(a), free(b), free(c), free(tmp);
}

/* Loads dir (the vision tower found inside it) and checks the planned answer on every (image, query). */
static void expect_answers(const char *dir, const lisa_tiny_report *rep, const char *want_answer, int n_cases) {
    lisa_model_params mp = lisa_model_default_params();
    mp.backend = LISA_BACKEND_CPU;
    mp.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(dir, &mp, &m), LISA_OK, "%s", lisa_last_error());
    static const char *images[] = {"chelsea.png", "rocket.jpg", "coffee.png", "rocket_portrait.jpg",
                                   "chelsea_tiny.png"};
    static const char *queries[] = {
        "Can you segment the cat in this image?",
        "What is the object that people drink from? Please output segmentation mask.",
        "x",
        "Please segment [SEG] and </s> ASSISTANT: Sure, [SEG]. then the rest of a long, long query that goes on "
        "about the picture, its colours, its left and right halves, and what a curious human might ask about it.",
    };
    int n_seg = 0;
    for (size_t k = 0; k < strlen(want_answer); k++)
        n_seg += !strncmp(want_answer + k, "[SEG]", 5);
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = rep->n_answer + 8;
    for (int c = 0; c < n_cases; c++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", IMAGES_DIR, images[c % 5]);
        const char *q = queries[c % 4];
        lisa_result *r = NULL;
        cr_assert_eq(lisa_segment_file(m, path, q, &sp, &r), LISA_OK, "%s", lisa_last_error());
        cr_expect_eq(lisa_result_n_tokens(r), rep->n_answer, "%s / %s: %d tokens: \"%s\"", images[c % 5], q,
                     lisa_result_n_tokens(r), lisa_result_answer(r));
        for (int32_t i = 0; i < rep->n_answer && i < lisa_result_n_tokens(r); i++)
            cr_expect_eq(lisa_result_tokens(r)[i], rep->answer_ids[i], "%s: token %d", images[c % 5], i);
        cr_expect_str_eq(lisa_result_answer(r), want_answer, "%s / %s", images[c % 5], q);
        cr_expect_eq(lisa_result_n_masks(r), n_seg);
        for (int32_t i = 0; i < lisa_result_n_masks(r); i++) {
            int32_t h, w;
            const uint8_t *mk = lisa_result_mask(r, i, &h, &w);
            size_t area = 0;
            for (size_t k = 0; k < (size_t)h * w; k++)
                area += mk[k];
            cr_expect(area > 0 && area < (size_t)h * w, "mask %d of %s is all %s", i, images[c % 5], area ? "1" : "0");
        }
        lisa_result_free(r);
    }
    lisa_model_free(m);
}

Test(tiny, engine_answers_the_planned_text, .timeout = 600) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    lisa_tiny_params p = lisa_tiny_default_params();
    p.n_sam_global = 0; /* windowed SAM blocks only: 5x faster, and the answer does not depend on SAM */
    lisa_tiny_report rep;
    char *out = make(&p, tmp, "m", &rep);
    const int32_t want[] = {18585, 29892, 32003, 869, 2}; /* ▁Sure , [SEG] ▁. </s> */
    cr_assert_eq(rep.n_answer, 5);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(rep.answer_ids[i], want[i]);
    cr_expect_geq(rep.min_margin, 8.0);
    expect_answers(out, &rep, "Sure, [SEG] .", 7);
    tu_remove_tree(tmp);
    free(out), free(tmp);
}

Test(tiny, other_dims_and_answers, .timeout = 600) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    lisa_tiny_params p = lisa_tiny_default_params();
    /* GQA, wider LLM, a different SAM (3 heads of 8, window 7, one global block), one shard */
    p.seed = 3;
    p.llm_hidden = 48;
    p.llm_heads = 6;
    p.llm_kv_heads = 2;
    p.llm_inter = 96;
    p.llm_layers = 3;
    p.clip_hidden = 24;
    p.clip_heads = 3;
    p.clip_layers = 2;
    p.clip_mlp = 40;
    p.sam_embed = 24;
    p.sam_heads = 3;
    p.sam_depth = 2;
    p.sam_window = 7;
    p.sam_global[0] = 1;
    p.n_sam_global = 1;
    p.out_dim = 48;
    p.max_shard_bytes = 1 << 30;
    p.answer = "It is [SEG], I think.";
    lisa_tiny_report rep;
    char *out = make(&p, tmp, "m", &rep);
    cr_expect_eq(rep.n_shards, 1);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    struct stat st;
    cr_expect_eq(stat(path, &st), 0, "one shard is model.safetensors");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    cr_expect_neq(stat(path, &st), 0, "no index for one shard");
    /* HF decodes the piece after an added token with its space: "[SEG] ," */
    expect_answers(out, &rep, "It is [SEG] , I think.", 2);
    tu_remove_tree(tmp);
    free(out), free(tmp);
}

Test(tiny, unshaped_is_random) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    lisa_tiny_params p = lisa_tiny_default_params();
    p.answer = "";
    lisa_tiny_report rep;
    char *out = make(&p, tmp, "m", &rep);
    cr_expect_eq(rep.n_answer, 0);
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, out), LISA_OK);
    const lisa_ckpt_tensor *h = lisa_checkpoint_find(ck, "lm_head.weight");
    cr_assert(h && h->dtype == LISA_DTYPE_BF16);
    /* every row ~N(0, 0.02^2): no shaped row */
    const uint16_t *x = h->data;
    float mx = 0;
    for (int64_t i = 0; i < h->shape[0] * h->shape[1]; i++) {
        float v = lisa_bf16_to_f32(x[i]);
        mx = v > mx ? v : -v > mx ? -v : mx;
    }
    cr_expect_lt(mx, 0.2f, "max |w| = %g", mx);
    lisa_checkpoint_close(ck);
    tu_remove_tree(tmp);
    free(out), free(tmp);
}

Test(tiny, errors_name_the_problem_and_leave_nothing) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    char out[4096];
    snprintf(out, sizeof out, "%s/m", tmp);
    lisa_tiny_params p = lisa_tiny_default_params();
    p.llm_heads = 5;
    cr_expect_eq(lisa_make_tiny(&p, out, NULL), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "llm_heads"), "%s", lisa_last_error());
    p = lisa_tiny_default_params();
    p.out_dim = 40;
    cr_expect_eq(lisa_make_tiny(&p, out, NULL), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "out_dim"), "%s", lisa_last_error());
    p = lisa_tiny_default_params();
    p.sam_global[1] = 4; /* depth 4: blocks 0..3 */
    cr_expect_eq(lisa_make_tiny(&p, out, NULL), LISA_ERR_INVALID_ARG);
    p = lisa_tiny_default_params();
    p.sp_model = "/no/such/tokenizer.model";
    cr_expect_eq(lisa_make_tiny(&p, out, NULL), LISA_ERR_NOT_FOUND);
    cr_expect(strstr(lisa_last_error(), "/no/such/tokenizer.model"), "%s", lisa_last_error());
    p = lisa_tiny_default_params();
    p.answer = "Sure, [SEG] and [SEG].";
    cr_expect_eq(lisa_make_tiny(&p, out, NULL), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "[SEG]"), "%s", lisa_last_error());
    cr_expect_eq(count_entries(tmp), 0, "a failed make-tiny left files in %s", tmp);
    /* an existing non-empty directory is never touched */
    p = lisa_tiny_default_params();
    cr_assert_eq(lisa_make_tiny(&p, out, NULL), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_make_tiny(&p, out, NULL), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "already exists"), "%s", lisa_last_error());
    cr_expect_eq(count_entries(out), 10); /* 9 files and clip-vit-large-patch14/ */
    cr_expect_eq(count_entries(tmp), 1);
    tu_remove_tree(tmp);
    free(tmp);
}

Test(tiny, sam_alone_stock_names, .timeout = 300) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    char path[4096];
    snprintf(path, sizeof path, "%s/sam.safetensors", tmp);
    lisa_tiny_params p = lisa_tiny_default_params();
    cr_assert_eq(lisa_tiny_write_sam(&p, path), LISA_OK, "%s", lisa_last_error());
    /* the names, shapes and dtypes segment-anything uses (golden file of the same dims) */
    expect_same_tensors(path, GOLDEN_DIR "/sam_stock_names.safetensors", NULL);
    lisa_sam_predictor *sp = NULL;
    cr_assert_eq(lisa_sam_predictor_load(&sp, path, 2), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_sam_predictor_model(sp)->dec.dim, 32);
    cr_expect_eq(lisa_sam_predictor_model(sp)->enc.depth, 4);
    lisa_bitmap img;
    cr_assert_eq(lisa_image_load(&img, IMAGES_DIR "/chelsea_tiny.png", NULL), LISA_OK);
    lisa_sam_masks mk;
    float prompts[3 * 32];
    tu_rng r = tu_rng_seed(5);
    for (int i = 0; i < 3 * 32; i++)
        prompts[i] = (float)tu_normal(&r);
    cr_expect_eq(lisa_sam_predictor_predict(&mk, sp, prompts, 3, false), LISA_ERR_INVALID_ARG); /* no image yet */
    cr_assert_eq(lisa_sam_predictor_set_image(sp, img.data, img.h, img.w, NULL), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_sam_predictor_predict(&mk, sp, prompts, 3, true), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(mk.n, 3);
    cr_expect_eq(mk.h, img.h);
    cr_expect_eq(mk.w, img.w);
    for (size_t i = 0; i < (size_t)3 * img.h * img.w; i++)
        cr_assert_eq(mk.masks[i], mk.logits[i] > 0.0f);
    lisa_sam_masks_free(&mk);
    lisa_sam_predictor_free(sp);
    lisa_bitmap_free(&img);
    tu_remove_tree(tmp);
    free(tmp);
}

/* One tensor table per network (models/tensors.h) drives make-tiny, the manifest and the weight
 * loaders: for a GQA model with another SAM layout, the manifest finds exactly make-tiny's tensors,
 * and after loading, every row with a slot is bound with the row's shape (every other row is one
 * inference never reads: optional in the manifest). */
typedef struct slot_check {
    int64_t bound, unbound, rows;
    bool unread_are_optional;
} slot_check;

static lisa_status check_slot(void *ctx, const lisa_tensor_spec *s) {
    slot_check *c = ctx;
    c->rows++;
    if (!s->slot) {
        c->unbound++;
        cr_expect(!c->unread_are_optional || (s->flags & LISA_TF_OPT), "%s: never read but required by the manifest", s->name);
        return LISA_OK;
    }
    c->bound++;
    cr_expect(s->slot->data != NULL, "%s: not bound", s->name);
    cr_expect_eq(s->slot->n_dims, s->n_dims, "%s", s->name);
    for (int d = 0; d < s->n_dims; d++) cr_expect_eq(s->slot->shape[d], s->shape[d], "%s dim %d", s->name, d);
    return LISA_OK;
}

Test(tiny, one_table_for_loader_manifest_and_make_tiny, .timeout = 300) {
    char *tmp = tu_make_tmpdir("lisa-tiny");
    lisa_tiny_params p = lisa_tiny_default_params();
    p.llm_kv_heads = 2;
    p.sam_depth = 3;
    p.sam_global[0] = 2;
    p.n_sam_global = 1;
    p.answer = "";
    char *dir = make(&p, tmp, "m", NULL);
    lisa_checkpoint *ck;
    cr_assert_eq(lisa_checkpoint_open(&ck, dir), LISA_OK, "%s", lisa_last_error());
    lisa_manifest mf;
    cr_assert_eq(lisa_manifest_from_dir(&mf, dir, ck), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_manifest_check(&mf, ck, NULL), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(mf.n_entries, lisa_checkpoint_count(ck), "make-tiny writes every row, the optional ones too");
    cr_expect(mf.sam.depth == 3 && mf.sam.global_mask[0] == 4u && mf.sam.window == 14 && mf.sam.dec_dim == 32);

    lisa_model_params mp = lisa_model_default_params();
    mp.backend = LISA_BACKEND_CPU;
    mp.n_threads = 1;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(dir, &mp, &m), LISA_OK, "%s", lisa_last_error());
    slot_check c = {.unread_are_optional = true};
    cr_assert_eq(lisa_llama_tensors_body(&mf.llm, m->llm, check_slot, &c), LISA_OK);
    cr_assert_eq(lisa_llama_tensors_head(&mf.llm, m->llm, check_slot, &c), LISA_OK);
    cr_assert_eq(lisa_glue_tensors_projector(&mf.llm, m, check_slot, &c), LISA_OK);
    cr_assert_eq(lisa_glue_tensors_fcs(&mf.llm, m, check_slot, &c), LISA_OK);
    cr_assert_eq(lisa_sam_tensors(&mf.sam, "model.visual_model.", m->sam, check_slot, &c), LISA_OK);
    cr_expect_eq(c.rows, mf.n_entries);
    cr_expect_eq(c.unbound, 2 + 15, "inv_freq per layer and SAM's unused prompt-encoder tensors");
    lisa_manifest cm;
    char clip_dir[4096];
    snprintf(clip_dir, sizeof clip_dir, "%s/clip-vit-large-patch14", dir);
    cr_assert_eq(lisa_manifest_from_dir(&cm, clip_dir, NULL), LISA_OK, "%s", lisa_last_error());
    slot_check cc = {0};
    cr_assert_eq(lisa_clip_tensors(&cm.clip, m->clip, check_slot, &cc), LISA_OK);
    /* LLaVA's hidden_states[-2]: the last layer, position_ids and post_layernorm are never read */
    cr_expect_eq(cc.unbound, 16 + 1 + 2, "%lld", (long long)cc.unbound);
    cr_expect_eq(cc.rows, cm.n_entries);
    lisa_manifest_free(&cm);
    lisa_model_free(m);
    lisa_manifest_free(&mf);
    lisa_checkpoint_close(ck);
    tu_remove_tree(tmp);
    free(dir);
    free(tmp);
}
