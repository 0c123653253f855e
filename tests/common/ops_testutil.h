/* tests/common/ops_testutil.h — small helpers shared by the tests/test_ops_*.c files (header-only,
 * so the test CMake needs no change). The naive references themselves stay in each test file.
 *
 * Tolerances are always |got − ref| <= atol + rtol·|ref| (tu_check_close).
 */
#ifndef LISA_OPS_TESTUTIL_H
#define LISA_OPS_TESTUTIL_H

#include "kernels/ops.h"
#include "core/error.h"
#include "core/tensor.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Asserts an op call succeeded, printing the library's message otherwise. */
#define OT_OK(call)                                                                                \
    do {                                                                                           \
        lisa_status ot_s_ = (call);                                                                \
        cr_assert_eq(ot_s_, LISA_OK, "%s -> %s: %s", #call, lisa_status_name(ot_s_), lisa_last_error()); \
    } while (0)

/* Asserts a call fails with `status` and that the last error mentions `needle` (e.g. the op name). */
#define OT_FAILS(call, status, needle)                                                             \
    do {                                                                                           \
        lisa_clear_error();                                                                        \
        lisa_status ot_s_ = (call);                                                                \
        cr_expect_eq(ot_s_, (status), "%s -> %s (want %s): %s", #call, lisa_status_name(ot_s_),   \
                     lisa_status_name(status), lisa_last_error());                                 \
        cr_expect(strstr(lisa_last_error(), (needle)) != NULL, "%s: error '%s' does not name '%s'", #call, \
                  lisa_last_error(), (needle));                                                    \
    } while (0)

/* Logical (row-major) values of any tensor as doubles; malloc'd, caller frees. */
static inline double *ot_values(const lisa_tensor *t) {
    int64_t n = lisa_tensor_numel(t);
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    cr_assert(v != NULL);
    int64_t idx[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i;
        for (int d = t->n_dims - 1; d >= 0; d--) {
            idx[d] = r % t->shape[d];
            r /= t->shape[d];
        }
        v[i] = lisa_tensor_get(t, idx);
    }
    return v;
}

/* A random tensor (uniform [lo, hi)) of the given dtype and shape. */
static inline lisa_tensor ot_rand(tu_rng *r, lisa_dtype dt, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2,
                                  int64_t d3, double lo, double hi) {
    lisa_tensor t = tu_tensor(dt, n_dims, d0, d1, d2, d3);
    tu_fill_uniform(&t, r, lo, hi);
    return t;
}

/* A non-contiguous F32 view with the given logical shape: the last dim is embedded in a row
 * `pad` elements wider (a narrow of a bigger buffer), filled with random values; *backing owns
 * the memory. */
static inline lisa_tensor ot_rand_narrowed(tu_rng *r, lisa_tensor *backing, int32_t n_dims, const int64_t *shape,
                                           int64_t pad, double lo, double hi) {
    int64_t big[4];
    for (int d = 0; d < n_dims; d++) big[d] = shape[d];
    big[n_dims - 1] += pad;
    cr_assert(lisa_tensor_alloc(backing, LISA_DTYPE_F32, n_dims, big) == LISA_OK);
    tu_fill_uniform(backing, r, lo, hi);
    lisa_tensor v;
    cr_assert(lisa_tensor_narrow(&v, backing, n_dims - 1, pad / 2, shape[n_dims - 1]) == LISA_OK);
    return v;
}

/* A CPU backend with a deliberately small scratch arena, to force the ops' blocking paths. */
static inline lisa_backend *ot_small_backend(size_t scratch_bytes) {
    lisa_backend *be = NULL;
    cr_assert(lisa_backend_cpu_create(&be, scratch_bytes, 2) == LISA_OK, "%s", lisa_last_error());
    return be;
}

/* Opens a golden file under tests/data/golden. */
static inline FILE *ot_open_golden(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s", LISA_TESTDATA_DIR, name);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot open %s", path);
    return f;
}

/* Reads the next line that is not a comment into buf; false at EOF. */
static inline bool ot_next_line(FILE *f, char *buf, size_t cap) {
    while (fgets(buf, (int)cap, f)) {
        if (buf[0] != '#' && buf[0] != '\n') return true;
    }
    return false;
}

#endif
