/* tests/test_safetensors.c — the safetensors loader against files written by the reference
 * Python `safetensors` package (tests/golden/gen_safetensors.py), the bad-file corpus, shard
 * indexes, and our writer round-tripping. */
#include "loader/checkpoint.h"
#include "core/error.h"
#include "core/half.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define ST_DIR LISA_TESTDATA_DIR "/safetensors"

/* The generator's value formula, recomputed here: v = (i % 251) - 125, float types * 0.125. */
static double pattern_value(lisa_dtype dt, int64_t i) {
    double v = (double)(i % 251) - 125;
    switch (dt) {
    case LISA_DTYPE_F32:
    case LISA_DTYPE_F16:
    case LISA_DTYPE_BF16: return v * 0.125;
    case LISA_DTYPE_U8: return v + 125;
    case LISA_DTYPE_BOOL: return ((int64_t)v % 2 == 0) ? 1 : 0;
    default: return v * 1000003;
    }
}

static void expect_pattern(const lisa_checkpoint *ck, const char *name, lisa_dtype dt, int32_t nd, const int64_t *shape) {
    const lisa_ckpt_tensor *e = lisa_checkpoint_find(ck, name);
    cr_assert_not_null(e, "tensor %s missing", name);
    cr_expect_eq(e->dtype, dt, "%s dtype", name);
    cr_assert_eq(e->n_dims, nd, "%s n_dims", name);
    for (int d = 0; d < nd; d++) cr_expect_eq(e->shape[d], shape[d], "%s shape[%d]", name, d);
    cr_expect_eq((uintptr_t)e->data % lisa_dtype_size(dt), 0, "%s alignment", name);
    lisa_tensor t = lisa_ckpt_tensor_view(e);
    int64_t n = lisa_tensor_numel(&t);
    cr_expect_eq(e->nbytes, (size_t)n * lisa_dtype_size(dt));
    for (int64_t i = 0; i < n; i++) {
        int64_t idx[4] = {0, 0, 0, 0}, rem = i;
        for (int d = nd - 1; d >= 0; d--) {
            idx[d] = rem % shape[d];
            rem /= shape[d];
        }
        double got = lisa_tensor_get(&t, idx), want = pattern_value(dt, i);
        if (got != want) {
            cr_expect_fail("%s[%lld] = %g, want %g", name, (long long)i, got, want);
            return;
        }
    }
}

Test(safetensors, reads_reference_file) {
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, ST_DIR "/good.safetensors"), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_checkpoint_count(ck), 10);
    expect_pattern(ck, "f32.matrix", LISA_DTYPE_F32, 2, (int64_t[]){37, 19});
    expect_pattern(ck, "f16.vec", LISA_DTYPE_F16, 1, (int64_t[]){769});
    expect_pattern(ck, "bf16.4d", LISA_DTYPE_BF16, 4, (int64_t[]){2, 3, 5, 7});
    expect_pattern(ck, "i32.3d", LISA_DTYPE_I32, 3, (int64_t[]){3, 4, 5});
    expect_pattern(ck, "i64.vec", LISA_DTYPE_I64, 1, (int64_t[]){11});
    expect_pattern(ck, "u8.img", LISA_DTYPE_U8, 3, (int64_t[]){4, 6, 3});
    expect_pattern(ck, "bool.mask", LISA_DTYPE_BOOL, 1, (int64_t[]){9});
    expect_pattern(ck, "scalar", LISA_DTYPE_F32, 0, NULL);
    expect_pattern(ck, "model.visual_model.image_encoder.pos_embed", LISA_DTYPE_F32, 4, (int64_t[]){1, 4, 4, 8});
    const lisa_ckpt_tensor *e = lisa_checkpoint_find(ck, "empty");
    cr_assert_not_null(e);
    cr_expect_eq(e->nbytes, 0);
    cr_expect_eq(e->shape[0], 0);
    cr_expect_str_eq(lisa_checkpoint_metadata(ck, "note"), "lisa test corpus");
    cr_expect_null(lisa_checkpoint_metadata(ck, "absent"));
    /* sorted, and lookup by name is exact */
    for (int64_t i = 1; i < lisa_checkpoint_count(ck); i++)
        cr_expect(strcmp(lisa_checkpoint_at(ck, i - 1)->name, lisa_checkpoint_at(ck, i)->name) < 0);
    cr_expect_null(lisa_checkpoint_find(ck, "f32.matri"));
    lisa_tensor t;
    cr_expect_eq(lisa_checkpoint_get(ck, "nope", &t), LISA_ERR_NOT_FOUND);
    cr_expect(strstr(lisa_last_error(), "'nope'") && strstr(lisa_last_error(), "good.safetensors"));
    lisa_checkpoint_close(ck);
}

Test(safetensors, sharded_index_and_directory) {
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, ST_DIR "/sharded"), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_checkpoint_count(ck), 6);
    cr_expect_eq(lisa_checkpoint_file_count(ck), 2);
    expect_pattern(ck, "bf16.4d", LISA_DTYPE_BF16, 4, (int64_t[]){2, 3, 5, 7});
    expect_pattern(ck, "u8.img", LISA_DTYPE_U8, 3, (int64_t[]){4, 6, 3});
    const lisa_ckpt_tensor *a = lisa_checkpoint_find(ck, "f16.vec"), *b = lisa_checkpoint_find(ck, "i64.vec");
    cr_expect(strstr(lisa_checkpoint_file_path(ck, a->file), "00001-of-00002"));
    cr_expect(strstr(lisa_checkpoint_file_path(ck, b->file), "00002-of-00002"));
    lisa_checkpoint_close(ck);
    /* the index file itself */
    cr_assert_eq(lisa_checkpoint_open(&ck, ST_DIR "/sharded/model.safetensors.index.json"), LISA_OK, "%s",
                 lisa_last_error());
    cr_expect_eq(lisa_checkpoint_count(ck), 6);
    lisa_checkpoint_close(ck);
}

Test(safetensors, bad_corpus) {
    size_t len = 0;
    char *list = tu_read_file(ST_DIR "/bad/EXPECTED.txt", &len);
    cr_assert_not_null(list);
    int n = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char name[256], status[64], needle[256];
        cr_assert_eq(sscanf(line, "%255[^\t]\t%63[^\t]\t%255[^\n]", name, status, needle), 3, "bad line: %s", line);
        char path[1024];
        snprintf(path, sizeof path, "%s/bad/%s", ST_DIR, name);
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
    cr_expect_geq(n, 20);
    free(list);
}

Test(safetensors, missing_path) {
    lisa_checkpoint *ck;
    cr_expect_eq(lisa_checkpoint_open(&ck, ST_DIR "/does-not-exist.safetensors"), LISA_ERR_NOT_FOUND);
    cr_expect_eq(lisa_checkpoint_open(&ck, ST_DIR "/bad"), LISA_ERR_NOT_FOUND);
    cr_expect(strstr(lisa_last_error(), "model.safetensors") != NULL);
}

/* Every prefix of a valid file must fail cleanly (or, for the full file, succeed). */
Test(safetensors, every_truncation_fails_cleanly) {
    size_t len = 0;
    char *buf = tu_read_file(ST_DIR "/good.safetensors", &len);
    cr_assert_not_null(buf);
    for (size_t n = 0; n < len; n += (n < 600 ? 1 : 97)) {
        lisa_checkpoint *ck = NULL;
        lisa_status s = lisa_checkpoint_open_safetensors_memory(&ck, buf, n, "prefix");
        if (s == LISA_OK) {
            cr_expect_fail("prefix of %zu of %zu bytes was accepted", n, len);
            lisa_checkpoint_close(ck);
        }
    }
    free(buf);
}

Test(safetensors, writer_roundtrip_and_misaligned_copy) {
    char *dir = tu_make_tmpdir("lisa-st");
    cr_assert_not_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    tu_rng r = tu_rng_seed(3);
    lisa_tensor a = tu_tensor(LISA_DTYPE_U8, 1, 3, 0, 0, 0); /* 3 bytes: makes the next tensor misaligned */
    lisa_tensor b = tu_tensor(LISA_DTYPE_F32, 2, 7, 5, 0, 0);
    lisa_tensor c = tu_tensor(LISA_DTYPE_BF16, 3, 2, 3, 4, 0);
    tu_fill_uniform(&a, &r, 0, 255);
    tu_fill_uniform(&b, &r, -3, 3);
    tu_fill_uniform(&c, &r, -3, 3);
    lisa_st_write_item items[] = {{"a.bytes", a}, {"b.f32", b}, {"c.bf16", c}};
    const char *meta[] = {"format", "pt", "k", "v"};
    cr_assert_eq(lisa_safetensors_write(path, items, 3, meta, 2), LISA_OK, "%s", lisa_last_error());
    lisa_checkpoint *ck = NULL;
    cr_assert_eq(lisa_checkpoint_open(&ck, path), LISA_OK, "%s", lisa_last_error());
    cr_expect_str_eq(lisa_checkpoint_metadata(ck, "k"), "v");
    for (int i = 0; i < 3; i++) {
        lisa_tensor got;
        cr_assert_eq(lisa_checkpoint_get(ck, items[i].name, &got), LISA_OK);
        cr_expect_eq((uintptr_t)got.data % lisa_dtype_size(got.dtype), 0, "%s aligned", items[i].name);
        cr_expect(tu_check_tensors(items[i].name, &got, &items[i].tensor, 0, 0));
    }
    lisa_checkpoint_close(ck);
    /* a name given twice is refused and no file is left behind */
    lisa_st_write_item dup[] = {{"x", b}, {"x", b}};
    snprintf(path, sizeof path, "%s/dup.safetensors", dir);
    cr_expect_eq(lisa_safetensors_write(path, dup, 2, NULL, 0), LISA_ERR_INVALID_ARG);
    FILE *f = fopen(path, "rb");
    cr_expect_null(f);
    if (f) fclose(f);
    lisa_tensor_free(&a);
    lisa_tensor_free(&b);
    lisa_tensor_free(&c);
    tu_remove_tree(dir);
    free(dir);
}
