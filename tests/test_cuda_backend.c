/* tests/test_cuda_backend.c — the CUDA backend where CI runs: no GPU. Creating the backend must
 * fail cleanly (LISA_ERR_UNSUPPORTED, "no CUDA device"), its ops table must cover kernels/ops.def,
 * and lisa-check must skip with exit status 0. With a GPU present, creation must succeed and one
 * op round-trips; the full GPU checks are lisa-check's (bench/gpu/suite.sh). */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#ifdef LISA_HAVE_CUDA
#include "kernels/cuda/cuda.h"

Test(cuda_backend, create_reports_missing_device) {
    lisa_backend *be = (lisa_backend *)0x1;
    lisa_clear_error();
    lisa_status s = lisa_backend_cuda_create(&be, 0, 1 << 20);
    if (lisa_cuda_device_count() == 0) {
        cr_expect_eq(s, LISA_ERR_UNSUPPORTED, "got %s: %s", lisa_status_name(s), lisa_last_error());
        cr_expect_null(be);
        cr_expect(strstr(lisa_last_error(), "no CUDA device") != NULL, "message: %s", lisa_last_error());
        return;
    }
    /* a GPU is present: one op through device memory */
    cr_assert_eq(s, LISA_OK, "%s", lisa_last_error());
    float h[6] = {1, -2, 3, -4, 5, -6}, out[6];
    void *d = NULL;
    cr_assert_eq(be->mem_alloc(be, sizeof h, &d), LISA_OK);
    cr_assert_eq(be->upload(be, d, h, sizeof h), LISA_OK);
    lisa_tensor t = lisa_tensor_view4(d, LISA_DTYPE_F32, 2, 2, 3, 0, 0);
    t.device = LISA_DEVICE_CUDA;
    cr_assert_eq(lisa_op_relu(be, &t, &t), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(be->download(be, out, d, sizeof out), LISA_OK);
    for (int i = 0; i < 6; i++) cr_expect_eq(out[i], h[i] > 0 ? h[i] : 0.0f);
    /* a host tensor is refused with a message, not dereferenced */
    lisa_tensor ht = lisa_tensor_view4(h, LISA_DTYPE_F32, 2, 2, 3, 0, 0);
    cr_expect_eq(lisa_op_relu(be, &ht, &ht), LISA_ERR_INVALID_ARG);
    be->mem_free(be, d);
    lisa_backend_free(be);
}

Test(cuda_backend, device_index_out_of_range) {
    lisa_backend *be = NULL;
    lisa_status s = lisa_backend_cuda_create(&be, 1000, 0);
    cr_expect(s == LISA_ERR_UNSUPPORTED || s == LISA_ERR_INVALID_ARG, "got %s", lisa_status_name(s));
    cr_expect_null(be);
}

Test(cuda_backend, ops_table_covers_ops_def) {
    lisa_backend fake = {.name = "cuda", .ops = lisa_cuda_ops_table()};
    for (int op = 0; op < LISA_OP_COUNT; op++)
        cr_expect(lisa_backend_supports(&fake, (lisa_op)op), "op %s has no CUDA entry", lisa_op_name((lisa_op)op));
}

Test(cuda_backend, lisa_check_skips_without_device) {
    if (lisa_cuda_device_count() > 0) cr_skip_test("a CUDA device is present: run lisa-check itself");
    char *dir = tu_make_tmpdir("lisa-check");
    cr_assert_not_null(dir);
    char cmd[8400], json[4096];
    snprintf(json, sizeof json, "%s/check.json", dir);
    snprintf(cmd, sizeof cmd, "'%s/bin/lisa-check' --json '%s' 2>&1", LISA_BINARY_DIR, json);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d, output: %s", st, out);
    cr_expect(strstr(out, "no CUDA device: skipped") != NULL, "output: %s", out);
    char *j = tu_read_file(json, NULL);
    cr_assert_not_null(j, "no JSON written");
    cr_expect(strstr(j, "\"check_failures\": 0") != NULL, "%s", j);
    cr_expect(strstr(j, "\"no_device\": true") != NULL, "%s", j);
    free(j);
    tu_remove_tree(dir);
    free(dir);
}

#else

Test(cuda_backend, not_built) { cr_skip_test("built without CUDA (LISA_CUDA=OFF or no nvcc)"); }

#endif
