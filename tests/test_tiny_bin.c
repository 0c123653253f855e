/* tests/test_tiny_bin.c — `lisa make-tiny --format bin` (issue #6): the same seed written as
 * torch.save .bin shards (the released checkpoints' format) and as safetensors gives identical
 * tensors, and the model loaded from the .bin directory answers exactly as the safetensors one. */
#include "golden.h"
#include "loader/checkpoint.h"
#include "models/tiny.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

Test(tiny_bin, bin_and_safetensors_are_the_same_model, .timeout = 600) {
    char *root = tu_make_tmpdir("lisa-tiny-bin");
    char st_dir[1024], bin_dir[1024], path[1200];
    snprintf(st_dir, sizeof st_dir, "%s/st", root);
    snprintf(bin_dir, sizeof bin_dir, "%s/bin", root);
    lisa_tiny_params p = lisa_tiny_default_params();
    p.seed = 5;
    cr_assert_eq(lisa_make_tiny(&p, st_dir, NULL), LISA_OK, "%s", lisa_last_error());
    p.format = LISA_CKPT_TORCH_BIN;
    lisa_tiny_report rep;
    cr_assert_eq(lisa_make_tiny(&p, bin_dir, &rep), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(rep.n_shards, 2);
    struct stat st;
    snprintf(path, sizeof path, "%s/pytorch_model.bin.index.json", bin_dir);
    cr_expect_eq(stat(path, &st), 0, "missing %s", path);
    snprintf(path, sizeof path, "%s/pytorch_model-00001-of-00002.bin", bin_dir);
    cr_expect_eq(stat(path, &st), 0, "missing %s", path);

    lisa_checkpoint *a = NULL, *b = NULL;
    cr_assert_eq(lisa_checkpoint_open(&a, st_dir), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_checkpoint_open(&b, bin_dir), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_checkpoint_count(a), lisa_checkpoint_count(b));
    for (int64_t i = 0; i < lisa_checkpoint_count(a); i++) {
        const lisa_ckpt_tensor *x = lisa_checkpoint_at(a, i), *y = lisa_checkpoint_at(b, i);
        cr_assert_str_eq(x->name, y->name);
        cr_expect_eq(x->dtype, y->dtype, "%s", x->name);
        cr_expect(x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0, "%s differs", x->name);
    }
    lisa_checkpoint_close(a);
    lisa_checkpoint_close(b);

    lisa_model_params mp = lisa_model_default_params();
    mp.backend = LISA_BACKEND_CPU;
    lisa_model *ma = NULL, *mb = NULL;
    cr_assert_eq(lisa_model_load(st_dir, &mp, &ma), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_model_load(bin_dir, &mp, &mb), LISA_OK, "%s", lisa_last_error());
    lisa_segment_params sp = lisa_segment_default_params();
    sp.max_new_tokens = 8;
    lisa_result *ra = NULL, *rb = NULL;
    const char *q = "Please segment the cat in this image.";
    cr_assert_eq(lisa_segment_file(ma, IMAGES_DIR "/chelsea_tiny.png", q, &sp, &ra), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_segment_file(mb, IMAGES_DIR "/chelsea_tiny.png", q, &sp, &rb), LISA_OK, "%s", lisa_last_error());
    cr_expect_str_eq(lisa_result_answer(ra), lisa_result_answer(rb));
    cr_assert_eq(lisa_result_n_masks(ra), lisa_result_n_masks(rb));
    cr_expect_gt(lisa_result_n_masks(ra), 0);
    for (int i = 0; i < lisa_result_n_masks(ra); i++) {
        int32_t h, w;
        const uint8_t *x = lisa_result_mask(ra, i, &h, &w), *y = lisa_result_mask(rb, i, NULL, NULL);
        cr_expect(memcmp(x, y, (size_t)h * w) == 0, "mask %d differs", i);
    }
    lisa_result_free(ra);
    lisa_result_free(rb);
    lisa_model_free(ma);
    lisa_model_free(mb);
    tu_remove_tree(root);
    free(root);
}
