/* tests/test_ops_embedding.c — EMBEDDING (F32/BF16/F16 tables, I32/I64 ids, bad ids) and ARGMAX
 * (first maximum wins, NaN handling as torch.argmax) against plain loops written here.
 * Both ops move or compare stored values, so the checks are exact. */
#include "ops_testutil.h"

#include <math.h>

static const lisa_dtype PDT[] = {LISA_DTYPE_F32, LISA_DTYPE_BF16, LISA_DTYPE_F16};

Test(ops_embedding, gather_rows) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(90);
    const int64_t Ts[] = {1, 7, 733};
    const int64_t Cs[] = {37, 769};
    for (int k = 0; k < 3; k++)
        for (size_t ti = 0; ti < 3; ti++)
            for (size_t ci = 0; ci < 2; ci++)
                for (int i64 = 0; i64 < 2; i64++) {
                    const int64_t V = 1000, T = Ts[ti], C = Cs[ci];
                    lisa_tensor table = ot_rand(&r, PDT[k], 2, V, C, 0, 0, -2, 2);
                    lisa_tensor ids = tu_tensor(i64 ? LISA_DTYPE_I64 : LISA_DTYPE_I32, 1, T, 0, 0, 0);
                    for (int64_t t = 0; t < T; t++) {
                        int64_t id = t == 0 ? V - 1 : (int64_t)(tu_next_u64(&r) % (uint64_t)V);
                        if (i64) ((int64_t *)ids.data)[t] = id;
                        else ((int32_t *)ids.data)[t] = (int32_t)id;
                    }
                    double *tv = ot_values(&table), *ref = malloc(sizeof(double) * (size_t)(T * C));
                    for (int64_t t = 0; t < T; t++) {
                        int64_t id = i64 ? ((int64_t *)ids.data)[t] : ((int32_t *)ids.data)[t];
                        memcpy(ref + t * C, tv + id * C, sizeof(double) * (size_t)C);
                    }
                    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, T, C, 0, 0);
                    tu_poison(&y);
                    OT_OK(lisa_op_embedding(be, &y, &table, &ids));
                    cr_expect(tu_check_close("embedding", &y, ref, 0, 0), "%s T=%lld C=%lld ids %s", lisa_dtype_name(PDT[k]),
                              (long long)T, (long long)C, i64 ? "I64" : "I32");
                    free(tv);
                    free(ref);
                    lisa_tensor_free(&table);
                    lisa_tensor_free(&ids);
                    lisa_tensor_free(&y);
                }
    lisa_backend_free(be);
}

Test(ops_embedding, bad_ids_and_shapes) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor table = tu_tensor(LISA_DTYPE_BF16, 2, 32, 37, 0, 0), ids = tu_tensor(LISA_DTYPE_I32, 1, 3, 0, 0, 0);
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, 3, 37, 0, 0);
    memset(table.data, 0, lisa_tensor_nbytes(&table));
    int32_t *id = ids.data;
    id[0] = 0, id[1] = 32, id[2] = 1;
    tu_poison(&y);
    OT_FAILS(lisa_op_embedding(be, &y, &table, &ids), LISA_ERR_INVALID_ARG, "id 32");
    cr_expect(strstr(lisa_last_error(), "32 rows") != NULL, "names the table size: %s", lisa_last_error());
    cr_expect(isnan(((float *)y.data)[0]), "nothing written on error");
    id[1] = -1;
    OT_FAILS(lisa_op_embedding(be, &y, &table, &ids), LISA_ERR_INVALID_ARG, "id -1");
    lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 2, 3, 36, 0, 0), ids_f = tu_tensor(LISA_DTYPE_F32, 1, 3, 0, 0, 0);
    id[1] = 2;
    OT_FAILS(lisa_op_embedding(be, &y_bad, &table, &ids), LISA_ERR_SHAPE, "embedding");
    OT_FAILS(lisa_op_embedding(be, &y, &table, &ids_f), LISA_ERR_SHAPE, "embedding");
    lisa_tensor_free(&table);
    lisa_tensor_free(&ids);
    lisa_tensor_free(&y);
    lisa_tensor_free(&y_bad);
    lisa_tensor_free(&ids_f);
    lisa_backend_free(be);
}

Test(ops_argmax, rows_ties_nan) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(91);
    const int64_t Rs[] = {1, 3, 733};
    const int64_t Ns[] = {37, 769, 32000};
    for (size_t ri = 0; ri < 3; ri++)
        for (size_t ni = 0; ni < 3; ni++) {
            const int64_t R = Rs[ri], N = Ns[ni];
            if (R * N > 3000000) continue;
            lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, N, 0, 0, -5, 5);
            float *xd = x.data;
            /* row 0: a tie between two maxima; row 1: NaN; row 2: all -inf */
            xd[5] = 100.0f, xd[N - 3] = 100.0f;
            if (R > 1) xd[N + 4] = NAN, xd[N + 9] = NAN, xd[N + 2] = INFINITY;
            if (R > 2)
                for (int64_t j = 0; j < N; j++) xd[2 * N + j] = -INFINITY;
            lisa_tensor y = tu_tensor(LISA_DTYPE_I32, 1, R, 0, 0, 0);
            tu_poison(&y);
            OT_OK(lisa_op_argmax(be, &y, &x));
            for (int64_t i = 0; i < R; i++) {
                int64_t want = 0; /* torch.argmax: first NaN if any, else the first maximum */
                for (int64_t j = 0; j < N; j++) {
                    if (isnan(xd[i * N + j])) {
                        want = j;
                        break;
                    }
                    if (xd[i * N + j] > xd[i * N + want]) want = j;
                }
                cr_expect_eq(((int32_t *)y.data)[i], want, "row %lld of [%lld, %lld]", (long long)i, (long long)R,
                             (long long)N);
            }
            cr_expect_eq(((int32_t *)y.data)[0], 5, "tie: first max wins");
            if (R > 1) cr_expect_eq(((int32_t *)y.data)[1], 4, "NaN wins");
            if (R > 2) cr_expect_eq(((int32_t *)y.data)[2], 0, "all -inf: index 0");
            lisa_tensor_free(&x);
            lisa_tensor_free(&y);
        }
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 2, 3, 5, 0, 0), y = tu_tensor(LISA_DTYPE_I32, 1, 4, 0, 0, 0);
    lisa_tensor yf = tu_tensor(LISA_DTYPE_F32, 1, 3, 0, 0, 0);
    OT_FAILS(lisa_op_argmax(be, &y, &x), LISA_ERR_SHAPE, "argmax");
    OT_FAILS(lisa_op_argmax(be, &yf, &x), LISA_ERR_SHAPE, "argmax");
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_tensor_free(&yf);
    lisa_backend_free(be);
}
