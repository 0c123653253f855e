/* tests/test_ops_paged.c — KV_APPEND and PAGED_ATTENTION (ops.def) on the CPU backend: against a
 * naive double-precision reference on scattered pages, packed sequences of mixed lengths (prefill
 * chunks with a cached prefix, decode steps), GQA, causal and not; batch invariance (bitwise:
 * a sequence computed in a batch equals the same sequence computed alone); argument errors. */
#include "kernels/ops.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct seq {
    int32_t qlen, kvlen;
    uint64_t seed; /* the sequence's q/k/v values depend on this alone */
} seq;

typedef struct dims {
    int64_t HQ, HKV, D;
    int32_t PS;
    bool causal;
} dims;

/* Runs paged attention on the given sequences (pages scattered by `shuffle_seed`), checks it
 * against a naive double reference, and returns y [sum qlen, HQ, D] (owner). */
static lisa_tensor run_paged(lisa_backend *be, const seq *sq, int B, dims dm, uint64_t shuffle_seed) {
    const int64_t HQ = dm.HQ, HKV = dm.HKV, D = dm.D;
    const int32_t PS = dm.PS;
    int32_t qo[17] = {0}, kvp[17] = {0}, kvl[16];
    for (int b = 0; b < B; b++) {
        qo[b + 1] = qo[b] + sq[b].qlen;
        kvl[b] = sq[b].kvlen;
        kvp[b + 1] = kvp[b] + (sq[b].kvlen + PS - 1) / PS;
    }
    const int32_t n_pages = kvp[B] + 3; /* a few unused pages */
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)(kvp[B] + 1));
    for (int32_t i = 0; i < kvp[B]; i++) idx[i] = i + 2;
    tu_rng sh = tu_rng_seed(shuffle_seed);
    for (int32_t i = kvp[B] - 1; i > 0; i--) {
        int32_t j = (int32_t)(tu_next_u64(&sh) % (uint64_t)(i + 1)), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    lisa_tensor kp = tu_tensor(LISA_DTYPE_F32, 4, n_pages, PS, HKV, D), vp = tu_tensor(LISA_DTYPE_F32, 4, n_pages, PS, HKV, D);
    tu_poison(&kp);
    tu_poison(&vp);
    int64_t total_kv = 0;
    for (int b = 0; b < B; b++) total_kv += sq[b].kvlen;
    lisa_tensor k = tu_tensor(LISA_DTYPE_F32, 3, total_kv, HKV, D, 0), v = tu_tensor(LISA_DTYPE_F32, 3, total_kv, HKV, D, 0);
    lisa_tensor q = tu_tensor(LISA_DTYPE_F32, 3, qo[B], HQ, D, 0), y = tu_tensor(LISA_DTYPE_F32, 3, qo[B], HQ, D, 0);
    lisa_tensor slots = tu_tensor(LISA_DTYPE_I32, 1, total_kv, 0, 0, 0);
    int64_t t = 0;
    for (int b = 0; b < B; b++) {
        tu_rng r = tu_rng_seed(sq[b].seed);
        lisa_tensor kb, vb, qb;
        lisa_tensor_narrow(&kb, &k, 0, t, sq[b].kvlen);
        lisa_tensor_narrow(&vb, &v, 0, t, sq[b].kvlen);
        lisa_tensor_narrow(&qb, &q, 0, qo[b], sq[b].qlen);
        tu_fill_uniform(&kb, &r, -1, 1);
        tu_fill_uniform(&vb, &r, -1, 1);
        tu_fill_uniform(&qb, &r, -1, 1);
        for (int32_t j = 0; j < sq[b].kvlen; j++, t++) ((int32_t *)slots.data)[t] = idx[kvp[b] + j / PS] * PS + j % PS;
    }
    tu_poison(&y);
    cr_assert_eq(lisa_op_kv_append(be, &kp, &vp, &k, &v, &slots), LISA_OK, "%s", lisa_last_error());
    lisa_tensor tqo = lisa_tensor_view4(qo, LISA_DTYPE_I32, 1, B + 1, 0, 0, 0);
    lisa_tensor tkvp = lisa_tensor_view4(kvp, LISA_DTYPE_I32, 1, B + 1, 0, 0, 0);
    lisa_tensor tidx = lisa_tensor_view4(idx, LISA_DTYPE_I32, 1, kvp[B], 0, 0, 0);
    lisa_tensor tkvl = lisa_tensor_view4(kvl, LISA_DTYPE_I32, 1, B, 0, 0, 0);
    const float scale = 1.0f / sqrtf((float)D);
    lisa_paged_params pp = {.batch = B, .page_size = PS, .scale = scale, .causal = dm.causal, .qo_indptr = &tqo,
                            .kv_indptr = &tkvp, .kv_indices = &tidx, .kv_len = &tkvl, .host_qo_indptr = qo,
                            .host_kv_indptr = kvp, .host_kv_indices = idx, .host_kv_len = kvl};
    cr_assert_eq(lisa_op_paged_attention(be, &y, &q, &kp, &vp, &pp), LISA_OK, "%s", lisa_last_error());

    double *ref = malloc(sizeof(double) * (size_t)(lisa_tensor_numel(&y) + 1));
    const float *qd = q.data, *kd = k.data, *vd = v.data;
    int64_t kv0 = 0;
    for (int b = 0; b < B; b++) {
        for (int32_t i = 0; i < sq[b].qlen; i++) {
            const int64_t row = qo[b] + i, pos = sq[b].kvlen - sq[b].qlen + i;
            for (int64_t h = 0; h < HQ; h++) {
                const int64_t kh = h / (HQ / HKV), nvis = dm.causal ? pos + 1 : sq[b].kvlen;
                double *sc = malloc(sizeof(double) * (size_t)nvis), mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < nvis; j++) {
                    double acc = 0;
                    for (int64_t d = 0; d < D; d++)
                        acc += (double)qd[(row * HQ + h) * D + d] * kd[((kv0 + j) * HKV + kh) * D + d];
                    sc[j] = acc * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int64_t j = 0; j < nvis; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int64_t d = 0; d < D; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < nvis; j++) acc += sc[j] / sum * vd[((kv0 + j) * HKV + kh) * D + d];
                    ref[(row * HQ + h) * D + d] = acc;
                }
                free(sc);
            }
        }
        kv0 += sq[b].kvlen;
    }
    /* F32 sgemm vs a double reference: |err| <= 1e-5 + 1e-4 |ref| */
    cr_expect(tu_check_close("paged_attention", &y, ref, 1e-5, 1e-4));
    free(ref);
    lisa_tensor_free(&q);
    lisa_tensor_free(&k);
    lisa_tensor_free(&v);
    lisa_tensor_free(&slots);
    lisa_tensor_free(&kp);
    lisa_tensor_free(&vp);
    free(idx);
    return y;
}

Test(ops_paged, mixed_prefill_and_decode_gqa) {
    lisa_backend *be = tu_cpu_backend();
    const seq sq[] = {{7, 7, 1}, {1, 19, 2}, {3, 37, 3}, {1, 1, 4}, {19, 40, 5}};
    lisa_tensor y = run_paged(be, sq, 5, (dims){8, 2, 16, 4, true}, 1);
    lisa_tensor_free(&y);
    y = run_paged(be, sq, 5, (dims){4, 4, 8, 16, false}, 2);
    lisa_tensor_free(&y);
    const seq big[] = {{300, 333, 7}, {1, 733, 8}};
    y = run_paged(be, big, 2, (dims){4, 1, 128, 16, true}, 3);
    lisa_tensor_free(&y);
    lisa_backend_free(be);
}

Test(ops_paged, batch_invariant_bitwise) {
    lisa_backend *be = tu_cpu_backend();
    const seq sq[] = {{5, 21, 11}, {1, 9, 12}, {13, 13, 13}, {270, 300, 14}};
    const dims dm = {4, 2, 8, 4, true};
    lisa_tensor yb = run_paged(be, sq, 4, dm, 21);
    int64_t row = 0;
    for (int b = 0; b < 4; b++) {
        lisa_tensor ya = run_paged(be, &sq[b], 1, dm, 100 + (uint64_t)b); /* alone, other page ids */
        const size_t bytes = (size_t)sq[b].qlen * 4 * 8 * sizeof(float);
        cr_expect(memcmp((float *)yb.data + row * 4 * 8, ya.data, bytes) == 0, "sequence %d differs alone vs batched", b);
        row += sq[b].qlen;
        lisa_tensor_free(&ya);
    }
    lisa_tensor_free(&yb);
    lisa_backend_free(be);
}

Test(ops_paged, argument_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor kp = tu_tensor(LISA_DTYPE_F32, 4, 2, 4, 1, 8), vp = tu_tensor(LISA_DTYPE_F32, 4, 2, 4, 1, 8);
    lisa_tensor k = tu_tensor(LISA_DTYPE_F32, 3, 2, 1, 8, 0), v = tu_tensor(LISA_DTYPE_F32, 3, 2, 1, 8, 0);
    tu_rng r = tu_rng_seed(5);
    tu_fill_uniform(&k, &r, -1, 1);
    tu_fill_uniform(&v, &r, -1, 1);
    tu_poison(&kp);
    int32_t sl[2] = {0, 8};
    lisa_tensor slots = lisa_tensor_view4(sl, LISA_DTYPE_I32, 1, 2, 0, 0, 0);
    cr_expect_eq(lisa_op_kv_append(be, &kp, &vp, &k, &v, &slots), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "slot 8") != NULL, "%s", lisa_last_error());
    sl[0] = 5;
    sl[1] = -1; /* padding row: skipped */
    cr_expect_eq(lisa_op_kv_append(be, &kp, &vp, &k, &v, &slots), LISA_OK);
    cr_expect_eq(((float *)kp.data)[5 * 8 + 3], ((float *)k.data)[3]);
    cr_expect(isnan(((float *)kp.data)[0]), "slot 0 must stay untouched");
    lisa_tensor q = tu_tensor(LISA_DTYPE_F32, 3, 2, 3, 4, 0), y = tu_tensor(LISA_DTYPE_F32, 3, 2, 3, 4, 0);
    int32_t qo[2] = {0, 2}, kvp[2] = {0, 1}, idx[1] = {0}, kvl[1] = {2};
    lisa_paged_params pp = {.batch = 1, .page_size = 4, .scale = 1, .host_qo_indptr = qo, .host_kv_indptr = kvp,
                            .host_kv_indices = idx, .host_kv_len = kvl};
    cr_expect_eq(lisa_op_paged_attention(be, &y, &q, &kp, &vp, &pp), LISA_ERR_SHAPE); /* head dim 4 vs the pool's 8 */
    lisa_tensor_free(&q);
    lisa_tensor_free(&y);
    q = tu_tensor(LISA_DTYPE_F32, 3, 2, 2, 8, 0);
    y = tu_tensor(LISA_DTYPE_F32, 3, 2, 2, 8, 0);
    kvl[0] = 9; /* more keys than one page holds */
    cr_expect_eq(lisa_op_paged_attention(be, &y, &q, &kp, &vp, &pp), LISA_ERR_SHAPE);
    cr_expect(strstr(lisa_last_error(), "9 keys") != NULL, "%s", lisa_last_error());
    kvl[0] = 2;
    idx[0] = 7;
    cr_expect_eq(lisa_op_paged_attention(be, &y, &q, &kp, &vp, &pp), LISA_ERR_INVALID_ARG);
    lisa_tensor_free(&q);
    lisa_tensor_free(&y);
    lisa_tensor_free(&kp);
    lisa_tensor_free(&vp);
    lisa_tensor_free(&k);
    lisa_tensor_free(&v);
    lisa_backend_free(be);
}
