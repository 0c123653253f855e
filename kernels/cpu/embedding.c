/* kernels/cpu/embedding.c — EMBEDDING (row gather, widening the table's dtype) and ARGMAX.
 * Dimension letters: T ids, V table rows, C width; R rows, N row length (argmax). */
#include "kernels/cpu/cpu.h"

#include <math.h>

lisa_status lisa_cpu_embedding(lisa_backend *be, lisa_tensor *y, const lisa_tensor *table, const lisa_tensor *ids) {
    char s1[96], s2[96], s3[96];
    LISA_TRY(lisa_cpu_check_f32("embedding", "y", y, true));
    LISA_TRY(lisa_cpu_check_param("embedding", "table", table));
    LISA_TRY(lisa_cpu_check_ids("embedding", "ids", ids));
    if (table->n_dims != 2 || ids->n_dims != 1 || y->n_dims != 2 || y->shape[0] != ids->shape[0] ||
        y->shape[1] != table->shape[1])
        return lisa_fail(LISA_ERR_SHAPE, "embedding: y %s, table %s, ids %s; want y[T, C], table[V, C], ids[T]",
                         lisa_tensor_shape_str(y, s1, sizeof s1), lisa_tensor_shape_str(table, s2, sizeof s2),
                         lisa_tensor_shape_str(ids, s3, sizeof s3));
    LISA_TRY(lisa_cpu_check_no_overlap("embedding", "table", y, table));
    const int64_t T = ids->shape[0], V = table->shape[0], C = table->shape[1];
    /* Validate every id before writing anything, so a bad id leaves y untouched. */
    for (int64_t t = 0; t < T; t++) {
        const int64_t id = ids->dtype == LISA_DTYPE_I32 ? ((const int32_t *)ids->data)[t] : ((const int64_t *)ids->data)[t];
        if (id < 0 || id >= V)
            return lisa_fail(LISA_ERR_INVALID_ARG, "embedding: id %lld at position %lld is outside the table's %lld rows",
                             (long long)id, (long long)t, (long long)V);
    }
    float *yd = y->data;
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, T * C))
    for (int64_t t = 0; t < T; t++) {
        const int64_t id = ids->dtype == LISA_DTYPE_I32 ? ((const int32_t *)ids->data)[t] : ((const int64_t *)ids->data)[t];
        lisa_cpu_load_f32(yd + t * C, table, id * C, C);
    }
    return LISA_OK;
}

/* torch.argmax semantics: the first maximum wins; NaN counts as larger than every number, so a
 * row containing NaN returns the index of its first NaN (torch's greater-or-NaN comparison). */
lisa_status lisa_cpu_argmax(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    char s1[96], s2[96];
    LISA_TRY(lisa_cpu_check_f32("argmax", "x", x, true));
    if (!y || y->dtype != LISA_DTYPE_I32 || !lisa_tensor_is_contiguous(y) || (lisa_tensor_numel(y) > 0 && !y->data))
        return lisa_fail(LISA_ERR_SHAPE, "argmax: y must be a contiguous I32 tensor%s%s", y ? ", got " : "",
                         y ? lisa_tensor_shape_str(y, s1, sizeof s1) : "");
    /* x[R, N] -> y[R]; more generally x[..., N] -> y[...] (a 1-D x gives y [1] or a scalar). */
    bool ok = x->n_dims >= 1 && x->shape[x->n_dims - 1] > 0;
    if (ok && x->n_dims == 1) {
        ok = y->n_dims == 0 || (y->n_dims == 1 && y->shape[0] == 1);
    } else if (ok) {
        ok = y->n_dims == x->n_dims - 1;
        for (int d = 0; ok && d < y->n_dims; d++) ok = y->shape[d] == x->shape[d];
    }
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "argmax: y %s does not match x %s (want x[R, N] -> y[R], N > 0)",
                         lisa_tensor_shape_str(y, s1, sizeof s1), lisa_tensor_shape_str(x, s2, sizeof s2));
    const int64_t N = x->shape[x->n_dims - 1], R = lisa_tensor_numel(x) / N;
    const float *xd = x->data;
    int32_t *yd = y->data;
    if (N > INT32_MAX)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "argmax: row length of x %s exceeds I32", lisa_tensor_shape_str(x, s1, sizeof s1));
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, R * N))
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * N;
        int64_t best = 0;
        for (int64_t i = 0; i < N; i++) {
            if (isnan(xr[i])) {
                best = i;
                break;
            }
            if (xr[i] > xr[best]) best = i;
        }
        yd[r] = (int32_t)best;
    }
    return LISA_OK;
}
