/* tests/test_pytorch_bin.c — PyTorch .bin checkpoints against files written by the reference stack
 * (tests/golden/gen_bin.py: torch 1.13 torch.save, transformers 4.31 save_pretrained): every tensor
 * must be bit-identical to its safetensors twin (written by the `safetensors` package from the same
 * tensors); the bad corpus must fail with its status and a message naming the problem; the writers
 * (torch.save-compatible .bin, sharded directories, dtype casts) must round-trip. */
#include "loader/checkpoint.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define BIN_DIR LISA_TESTDATA_DIR "/bin"

static lisa_checkpoint *open_ok(const char *path) {
    lisa_checkpoint *ck = NULL;
    lisa_status s = lisa_checkpoint_open(&ck, path);
    cr_assert_eq(s, LISA_OK, "%s: %s", path, lisa_last_error());
    return ck;
}

static void expect_same(const lisa_checkpoint *a, const lisa_checkpoint *b, lisa_dtype cast) {
    cr_expect_eq(lisa_checkpoint_count(a), lisa_checkpoint_count(b));
    lisa_status s = lisa_checkpoint_compare(a, b, cast);
    cr_expect_eq(s, LISA_OK, "%s", lisa_last_error());
    /* and by hand for the first tensors, in case compare itself is wrong */
    for (int64_t i = 0; i < lisa_checkpoint_count(a) && i < 8; i++) {
        const lisa_ckpt_tensor *x = lisa_checkpoint_at(a, i), *y = lisa_checkpoint_find(b, x->name);
        cr_assert_not_null(y, "%s missing", x->name);
        if (cast == LISA_DTYPE_COUNT) {
            cr_expect_eq(x->nbytes, y->nbytes, "%s", x->name);
            cr_expect(x->nbytes == 0 || memcmp(x->data, y->data, x->nbytes) == 0, "%s bytes", x->name);
        }
    }
}

Test(pytorch_bin, single_file_matches_safetensors_twin) {
    lisa_checkpoint *bin = open_ok(BIN_DIR "/single/pytorch_model.bin");
    lisa_checkpoint *twin = open_ok(BIN_DIR "/twin.safetensors");
    cr_expect_eq(lisa_checkpoint_count(bin), 19);
    cr_expect_eq(lisa_checkpoint_file_format(bin, 0), LISA_CKPT_TORCH_BIN);
    expect_same(twin, bin, LISA_DTYPE_COUNT);
    expect_same(bin, twin, LISA_DTYPE_COUNT);
    /* dtypes as torch stored them */
    struct {
        const char *name;
        lisa_dtype dt;
    } want[] = {{"0.weight", LISA_DTYPE_BF16}, {"1.weight", LISA_DTYPE_F32}, {"f16.vec", LISA_DTYPE_F16},
                {"i64.ids", LISA_DTYPE_I64},   {"i32.vec", LISA_DTYPE_I32},  {"u8.img", LISA_DTYPE_U8},
                {"bool.mask", LISA_DTYPE_BOOL}, {"scalar", LISA_DTYPE_F32}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const lisa_ckpt_tensor *t = lisa_checkpoint_find(bin, want[i].name);
        cr_assert_not_null(t, "%s", want[i].name);
        cr_expect_eq(t->dtype, want[i].dt, "%s dtype", want[i].name);
    }
    cr_expect_eq(lisa_checkpoint_find(bin, "scalar")->n_dims, 0);
    cr_expect_eq(lisa_checkpoint_find(bin, "empty")->nbytes, 0);
    /* views of one storage stay views of the mapped file: view.rows starts at element 10 of `big`,
     * view.tail at element 17, so their data are 7 floats apart (zero copy, storage offset kept) */
    const lisa_ckpt_tensor *r = lisa_checkpoint_find(bin, "view.rows"), *t = lisa_checkpoint_find(bin, "view.tail");
    cr_expect_eq((const char *)t->data - (const char *)r->data, 7 * 4);
    /* tied names share bytes */
    cr_expect_eq(lisa_checkpoint_find(bin, "tied.a")->data, lisa_checkpoint_find(bin, "tied.b")->data);
    /* the transposed tensor was copied contiguous: [[0,4,8],[1,5,9],[2,6,10],[3,7,11]] */
    const lisa_ckpt_tensor *tr = lisa_checkpoint_find(bin, "transposed");
    cr_assert_eq(tr->n_dims, 2);
    cr_expect(tr->shape[0] == 4 && tr->shape[1] == 3);
    const float *f = tr->data;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) cr_expect_eq(f[i * 3 + j], (float)(j * 4 + i), "transposed[%d][%d]", i, j);
    for (int64_t i = 0; i < lisa_checkpoint_count(bin); i++) {
        const lisa_ckpt_tensor *e = lisa_checkpoint_at(bin, i);
        cr_expect_eq((uintptr_t)e->data % lisa_dtype_size(e->dtype), 0, "%s aligned", e->name);
    }
    lisa_checkpoint_close(bin);
    lisa_checkpoint_close(twin);
}

Test(pytorch_bin, zip_variants_match) {
    lisa_checkpoint *twin = open_ok(BIN_DIR "/twin.safetensors");
    const char *files[] = {BIN_DIR "/zip64_forced.bin", BIN_DIR "/deflated.bin", BIN_DIR "/c_written.bin"};
    for (size_t i = 0; i < 3; i++) {
        lisa_checkpoint *ck = open_ok(files[i]);
        expect_same(twin, ck, LISA_DTYPE_COUNT);
        lisa_checkpoint_close(ck);
    }
    lisa_checkpoint_close(twin);
    /* hand-pickled, zipped by Python's zipfile (no ZIP64 records): two views of one storage */
    lisa_checkpoint *ck = open_ok(BIN_DIR "/pyzip.bin");
    const float *w = lisa_checkpoint_find(ck, "w")->data, *v = lisa_checkpoint_find(ck, "v")->data;
    for (int i = 0; i < 6; i++) cr_expect_eq(w[i], (float)i);
    cr_expect(v[0] == 4 && v[1] == 5);
    lisa_checkpoint_close(ck);
}

Test(pytorch_bin, sharded_bin_matches_sharded_safetensors) {
    lisa_checkpoint *bin = open_ok(BIN_DIR "/tiny-lisa");
    lisa_checkpoint *st = open_ok(BIN_DIR "/tiny-lisa-st");
    cr_expect_eq(lisa_checkpoint_file_count(bin), 2);
    cr_expect_eq(lisa_checkpoint_file_format(bin, 1), LISA_CKPT_TORCH_BIN);
    cr_expect_eq(lisa_checkpoint_file_format(st, 0), LISA_CKPT_SAFETENSORS);
    cr_expect_gt(lisa_checkpoint_count(bin), 150);
    expect_same(st, bin, LISA_DTYPE_COUNT);
    /* mixed dtypes as the merge script leaves them: LLM bf16, SAM and text_hidden_fcs f32 */
    cr_expect_eq(lisa_checkpoint_find(bin, "model.layers.1.mlp.down_proj.weight")->dtype, LISA_DTYPE_BF16);
    cr_expect_eq(lisa_checkpoint_find(bin, "model.text_hidden_fcs.0.2.weight")->dtype, LISA_DTYPE_F32);
    cr_expect_eq(lisa_checkpoint_find(bin, "model.visual_model.image_encoder.pos_embed")->dtype, LISA_DTYPE_F32);
    lisa_checkpoint_close(st);
    /* the index file itself, and every tensor in the shard the index names */
    lisa_checkpoint *idx = open_ok(BIN_DIR "/tiny-lisa/pytorch_model.bin.index.json");
    expect_same(bin, idx, LISA_DTYPE_COUNT);
    lisa_checkpoint_close(idx);
    lisa_checkpoint_close(bin);
    lisa_checkpoint *clip = open_ok(BIN_DIR "/clip");
    cr_expect_not_null(lisa_checkpoint_find(clip, "vision_model.embeddings.patch_embedding.weight"));
    lisa_checkpoint_close(clip);
}

Test(pytorch_bin, bad_corpus) {
    size_t len = 0;
    char *list = tu_read_file(BIN_DIR "/bad/EXPECTED.txt", &len);
    cr_assert_not_null(list);
    int n = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char name[256], status[64], needle[256];
        cr_assert_eq(sscanf(line, "%255[^\t]\t%63[^\t]\t%255[^\n]", name, status, needle), 3, "bad line: %s", line);
        char path[1024];
        snprintf(path, sizeof path, "%s/bad/%s", BIN_DIR, name);
        lisa_checkpoint *ck = (lisa_checkpoint *)0x1;
        lisa_status s = lisa_checkpoint_open(&ck, path);
        cr_expect_null(ck, "%s: out pointer must be NULL on failure", name);
        cr_expect_str_eq(lisa_status_name(s), status, "%s: got %s (%s)", name, lisa_status_name(s), lisa_last_error());
        cr_expect(strstr(lisa_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", name, lisa_last_error(),
                  needle);
        cr_expect(strstr(lisa_last_error(), name) != NULL, "%s: message '%s' does not name the file", name,
                  lisa_last_error());
        n++;
    }
    cr_expect_geq(n, 30);
    free(list);
}

/* Every prefix of a valid archive fails cleanly; so does every single-byte corruption of the
 * central directory and end records (which ASan/UBSan builds check for out-of-bounds reads). */
Test(pytorch_bin, truncations_and_corruptions_fail_cleanly) {
    size_t len = 0;
    unsigned char *buf = (unsigned char *)tu_read_file(BIN_DIR "/single/pytorch_model.bin", &len);
    cr_assert_not_null(buf);
    for (size_t n = 0; n < len; n += (n < 256 || n > len - 600 ? 1 : 61)) {
        lisa_checkpoint *ck = NULL;
        if (lisa_checkpoint_open_bin_memory(&ck, buf, n, "prefix") == LISA_OK) {
            cr_expect_fail("prefix of %zu of %zu bytes was accepted", n, len);
            lisa_checkpoint_close(ck);
        }
    }
    unsigned char *copy = malloc(len);
    int accepted = 0;
    for (size_t at = len - 520; at < len; at++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(copy, buf, len);
            copy[at] ^= (unsigned char)(1u << bit);
            lisa_checkpoint *ck = NULL;
            if (lisa_checkpoint_open_bin_memory(&ck, copy, len, "flip") == LISA_OK) {
                accepted++; /* e.g. a flipped time stamp: harmless, but the tensors must be intact */
                lisa_checkpoint *orig = NULL;
                cr_assert_eq(lisa_checkpoint_open_bin_memory(&orig, buf, len, "orig"), LISA_OK);
                cr_expect_eq(lisa_checkpoint_compare(orig, ck, LISA_DTYPE_COUNT), LISA_OK, "flip at %zu: %s", at,
                             lisa_last_error());
                lisa_checkpoint_close(orig);
                lisa_checkpoint_close(ck);
            }
        }
    }
    cr_log_info("%d of %d end-of-file bit flips were harmless", accepted, 520 * 3);
    free(copy);
    free(buf);
}

Test(pytorch_bin, crc_policy) {
    /* A stored entry above LISA_ZIP_SMALL_ENTRY with a flipped byte: refused by default (naming
     * the entry), accepted with skip_crc. Small entries are always checked. */
    char *dir = tu_make_tmpdir("lisa-crc");
    cr_assert_not_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/big.bin", dir);
    lisa_tensor t = tu_tensor(LISA_DTYPE_F32, 1, (1 << 20) / 4 + 100, 0, 0, 0);
    tu_rng r = tu_rng_seed(5);
    tu_fill_uniform(&t, &r, -1, 1);
    lisa_st_write_item item = {"big", t};
    cr_assert_eq(lisa_torch_save_write(path, &item, 1, LISA_DTYPE_COUNT), LISA_OK, "%s", lisa_last_error());
    size_t len;
    char *bytes = tu_read_file(path, &len);
    cr_assert_not_null(bytes);
    bytes[len / 2] ^= 1; /* inside the 1 MB tensor */
    cr_assert(tu_write_file(path, bytes, len));
    lisa_checkpoint *ck = NULL;
    cr_expect_eq(lisa_checkpoint_open(&ck, path), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "'archive/data/0': CRC-32 mismatch"), "%s", lisa_last_error());
    lisa_checkpoint_options opt = {.skip_crc = true};
    cr_expect_eq(lisa_checkpoint_open_ex(&ck, path, &opt), LISA_OK, "%s", lisa_last_error());
    lisa_checkpoint_close(ck);
    /* bad_crc.bin's corrupted entry is small: checked even with skip_crc */
    cr_expect_eq(lisa_checkpoint_open_ex(&ck, BIN_DIR "/bad/bad_crc.bin", &opt), LISA_ERR_FORMAT);
    free(bytes);
    lisa_tensor_free(&t);
    tu_remove_tree(dir);
    free(dir);
}

static void items_of(const lisa_checkpoint *ck, lisa_st_write_item **items, int64_t *n) {
    *n = lisa_checkpoint_count(ck);
    *items = calloc((size_t)*n + 1, sizeof **items);
    for (int64_t i = 0; i < *n; i++) {
        const lisa_ckpt_tensor *t = lisa_checkpoint_at(ck, i);
        (*items)[i] = (lisa_st_write_item){t->name, lisa_ckpt_tensor_view(t)};
    }
}

/* The C writer is deterministic and its committed output was checked by torch.load in
 * gen_bin.py; writing the same tensors again must give the same bytes. */
Test(pytorch_bin, c_writer_matches_committed) {
    lisa_checkpoint *twin = open_ok(BIN_DIR "/twin.safetensors");
    lisa_st_write_item *items;
    int64_t n;
    items_of(twin, &items, &n);
    char *dir = tu_make_tmpdir("lisa-cw");
    char path[1024];
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    cr_assert_eq(lisa_torch_save_write(path, items, n, LISA_DTYPE_COUNT), LISA_OK, "%s", lisa_last_error());
    size_t a_len, b_len;
    char *a = tu_read_file(path, &a_len), *b = tu_read_file(BIN_DIR "/c_written.bin", &b_len);
    cr_assert(a && b);
    cr_expect(a_len == b_len && memcmp(a, b, a_len) == 0,
              "the writer's output changed: regenerate c_written.bin and rerun gen_bin.py's torch.load check");
    lisa_checkpoint *back = open_ok(path);
    expect_same(twin, back, LISA_DTYPE_COUNT);
    /* alignment as torch: every storage starts at a multiple of 64 in the file */
    lisa_checkpoint *m = NULL;
    cr_assert_eq(lisa_checkpoint_open_bin_memory(&m, a, a_len, "mem"), LISA_OK);
    for (int64_t i = 0; i < lisa_checkpoint_count(m); i++) {
        const lisa_ckpt_tensor *t = lisa_checkpoint_at(m, i);
        if (t->nbytes) cr_expect_eq(((const char *)t->data - a) % 64, 0, "%s not 64-aligned", t->name);
    }
    lisa_checkpoint_close(m);
    /* bad items are refused and leave no file */
    lisa_st_write_item dup[] = {items[0], items[0]};
    snprintf(path, sizeof path, "%s/dup.bin", dir);
    cr_expect_eq(lisa_torch_save_write(path, dup, 2, LISA_DTYPE_COUNT), LISA_ERR_INVALID_ARG);
    struct stat st;
    cr_expect_neq(stat(path, &st), 0);
    free(a);
    free(b);
    free(items);
    lisa_checkpoint_close(back);
    lisa_checkpoint_close(twin);
    tu_remove_tree(dir);
    free(dir);
}

/* .bin -> sharded safetensors / sharded .bin: identical tensors; with a bf16 cast, identical to
 * torch's own .to(torch.bfloat16) (twin_bf16.safetensors). */
Test(pytorch_bin, convert_round_trips) {
    lisa_checkpoint *src = open_ok(BIN_DIR "/single/pytorch_model.bin");
    lisa_checkpoint *bf16 = open_ok(BIN_DIR "/twin_bf16.safetensors");
    lisa_st_write_item *items;
    int64_t n;
    items_of(src, &items, &n);
    char *dir = tu_make_tmpdir("lisa-conv");
    struct {
        lisa_ckpt_format format;
        uint64_t shard;
        lisa_dtype cast;
        const char *expect_file;
    } cases[] = {
        {LISA_CKPT_SAFETENSORS, 0, LISA_DTYPE_COUNT, "model.safetensors"},
        {LISA_CKPT_SAFETENSORS, 200, LISA_DTYPE_COUNT, "model.safetensors.index.json"},
        {LISA_CKPT_TORCH_BIN, 200, LISA_DTYPE_COUNT, "pytorch_model.bin.index.json"},
        {LISA_CKPT_TORCH_BIN, 0, LISA_DTYPE_COUNT, "pytorch_model.bin"},
        {LISA_CKPT_SAFETENSORS, 300, LISA_DTYPE_BF16, "model.safetensors.index.json"},
        {LISA_CKPT_TORCH_BIN, 0, LISA_DTYPE_BF16, "pytorch_model.bin"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char sub[1024], probe[1100];
        snprintf(sub, sizeof sub, "%s/out%zu", dir, c);
        cr_assert_eq(mkdir(sub, 0755), 0);
        lisa_ckpt_write_params p = {cases[c].format, cases[c].shard, cases[c].cast};
        cr_assert_eq(lisa_checkpoint_write_dir(sub, items, n, &p), LISA_OK, "case %zu: %s", c, lisa_last_error());
        snprintf(probe, sizeof probe, "%s/%s", sub, cases[c].expect_file);
        struct stat st;
        cr_expect_eq(stat(probe, &st), 0, "case %zu: %s missing", c, probe);
        lisa_checkpoint *out = open_ok(sub);
        if (cases[c].shard) cr_expect_gt(lisa_checkpoint_file_count(out), 2, "case %zu: not sharded", c);
        expect_same(src, out, cases[c].cast);
        if (cases[c].cast == LISA_DTYPE_BF16) expect_same(bf16, out, LISA_DTYPE_COUNT); /* = torch's cast */
        lisa_checkpoint_close(out);
    }
    free(items);
    lisa_checkpoint_close(bf16);
    lisa_checkpoint_close(src);
    tu_remove_tree(dir);
    free(dir);
}

Test(pytorch_bin, directory_preference) {
    /* HF order: model.safetensors.index.json, model.safetensors, pytorch_model.bin.index.json,
     * pytorch_model.bin */
    char *dir = tu_make_tmpdir("lisa-pref");
    lisa_checkpoint *src = open_ok(BIN_DIR "/pyzip.bin");
    lisa_st_write_item *items;
    int64_t n;
    items_of(src, &items, &n);
    char path[1024];
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    cr_assert_eq(lisa_torch_save_write(path, items, n, LISA_DTYPE_COUNT), LISA_OK);
    lisa_checkpoint *ck = open_ok(dir);
    cr_expect_eq(lisa_checkpoint_file_format(ck, 0), LISA_CKPT_TORCH_BIN);
    lisa_checkpoint_close(ck);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(lisa_safetensors_write(path, items, n, NULL, 0), LISA_OK);
    ck = open_ok(dir);
    cr_expect_eq(lisa_checkpoint_file_format(ck, 0), LISA_CKPT_SAFETENSORS);
    lisa_checkpoint_close(ck);
    free(items);
    lisa_checkpoint_close(src);
    tu_remove_tree(dir);
    free(dir);
    lisa_checkpoint *none = NULL;
    cr_expect_eq(lisa_checkpoint_open(&none, BIN_DIR "/bad"), LISA_ERR_NOT_FOUND);
    cr_expect(strstr(lisa_last_error(), "pytorch_model.bin"), "%s", lisa_last_error());
}

/* The model loaders (models/) take .bin directories exactly as safetensors ones: the tiny LISA
 * checkpoint's LLaMA and SAM, and the tiny CLIP directory's vision tower. */
#include "loader/json.h"
#include "models/clip.h"
#include "models/llama.h"
#include "models/sam.h"

Test(pytorch_bin, model_loaders_accept_bin_directories) {
    lisa_backend *be = tu_cpu_backend();
    lisa_checkpoint *ck = open_ok(BIN_DIR "/tiny-lisa");
    cJSON *cfg;
    cr_assert_eq(lisa_json_load_file(BIN_DIR "/tiny-lisa/config.json", 0, &cfg), LISA_OK);
    lisa_llama_config lc;
    cr_assert_eq(lisa_llama_config_parse(&lc, cfg, "config.json"), LISA_OK, "%s", lisa_last_error());
    lisa_llama *llm = NULL;
    cr_expect_eq(lisa_llama_load(&llm, be, ck, &lc), LISA_OK, "%s", lisa_last_error());
    lisa_llama_free(llm);
    lisa_sam *sam = NULL;
    cr_expect_eq(lisa_sam_load(&sam, be, ck), LISA_OK, "%s", lisa_last_error());
    lisa_sam_free(sam);
    lisa_clip *clip = NULL;
    cr_expect_eq(lisa_clip_load(&clip, be, BIN_DIR "/clip", -2), LISA_OK, "%s", lisa_last_error());
    lisa_clip_free(clip);
    cJSON_Delete(cfg);
    lisa_checkpoint_close(ck);
    lisa_backend_free(be);
}
