/* kernels/cpu/paged.c — KV_APPEND and PAGED_ATTENTION (ops.def) over the paged KV layout of
 * runtime/kv_cache.h: one layer's pool k_pages, v_pages [n_pages, page_size, Hkv, D].
 *
 * Paged attention, per sequence b and kv head: gather the sequence's kv_len[b] keys and values
 * from its pages into scratch (dense [Tk, D]), then exactly the dense ATTENTION recipe:
 * S = scale · Q Kᵀ (sgemm), causal mask, softmax with double sums, Y = P V (sgemm), in blocks of
 * queries. Everything a sequence computes depends only on that sequence's rows and pages, so a
 * batch gives bit-identical results to running each sequence alone.
 */
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static lisa_status check_pool(const char *op, const char *what, const lisa_tensor *t, int64_t *n_pages, int64_t *ps,
                              int64_t *hkv, int64_t *d) {
    char sb[96];
    LISA_TRY(lisa_cpu_check_f32(op, what, t, true));
    if (t->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s %s is not [n_pages, page_size, Hkv, D]", op, what,
                         lisa_tensor_shape_str(t, sb, sizeof sb));
    *n_pages = t->shape[0];
    *ps = t->shape[1];
    *hkv = t->shape[2];
    *d = t->shape[3];
    return LISA_OK;
}

lisa_status lisa_cpu_kv_append(lisa_backend *be, lisa_tensor *k_pages, lisa_tensor *v_pages, const lisa_tensor *k,
                               const lisa_tensor *v, const lisa_tensor *slots) {
    char s1[96], s2[96];
    int64_t NP = 0, PS = 0, HKV = 0, D = 0, NP2 = 0, PS2 = 0, HKV2 = 0, D2 = 0;
    LISA_TRY(check_pool("kv_append", "k_pages", k_pages, &NP, &PS, &HKV, &D));
    LISA_TRY(check_pool("kv_append", "v_pages", v_pages, &NP2, &PS2, &HKV2, &D2));
    LISA_TRY(lisa_cpu_check_f32("kv_append", "k", k, false));
    LISA_TRY(lisa_cpu_check_f32("kv_append", "v", v, false));
    LISA_TRY(lisa_cpu_check_ids("kv_append", "slots", slots));
    if (NP != NP2 || PS != PS2 || HKV != HKV2 || D != D2 || k->n_dims != 3 || !lisa_tensor_same_shape(k, v) ||
        k->shape[1] != HKV || k->shape[2] != D || slots->dtype != LISA_DTYPE_I32 || slots->n_dims != 1 ||
        slots->shape[0] != k->shape[0])
        return lisa_fail(LISA_ERR_SHAPE, "kv_append: k %s / pool %s do not agree (want k = v [T, Hkv, D], slots I32 [T])",
                         lisa_tensor_shape_str(k, s1, sizeof s1), lisa_tensor_shape_str(k_pages, s2, sizeof s2));
    const int64_t T = k->shape[0], n_slots = NP * PS;
    const int32_t *sl = slots->data;
    for (int64_t t = 0; t < T; t++)
        if (sl[t] < -1 || sl[t] >= n_slots)
            return lisa_fail(LISA_ERR_INVALID_ARG, "kv_append: slot %d of row %lld is outside the pool of %lld slots",
                             sl[t], (long long)t, (long long)n_slots);
    float *kp = k_pages->data, *vp = v_pages->data;
    for (int64_t t = 0; t < T; t++) {
        if (sl[t] < 0) continue;
        for (int64_t h = 0; h < HKV; h++) {
            float *kd = kp + ((int64_t)sl[t] * HKV + h) * D, *vd = vp + ((int64_t)sl[t] * HKV + h) * D;
            const float *ks = (const float *)k->data + t * k->stride[0] + h * k->stride[1];
            const float *vs = (const float *)v->data + t * v->stride[0] + h * v->stride[1];
            for (int64_t d = 0; d < D; d++) {
                kd[d] = ks[d * k->stride[2]];
                vd[d] = vs[d * v->stride[2]];
            }
        }
    }
    return LISA_OK;
}

lisa_status lisa_cpu_paged_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k_pages,
                                     const lisa_tensor *v_pages, const lisa_paged_params *p) {
    char s1[96], s2[96];
    int64_t NP = 0, PS = 0, HKV = 0, D = 0, NP2 = 0, PS2 = 0, HKV2 = 0, D2 = 0;
    if (!p || !p->host_qo_indptr || !p->host_kv_indptr || !p->host_kv_indices || !p->host_kv_len)
        return lisa_fail(LISA_ERR_INVALID_ARG, "paged_attention: the plan's host index arrays are required");
    LISA_TRY(check_pool("paged_attention", "k_pages", k_pages, &NP, &PS, &HKV, &D));
    LISA_TRY(check_pool("paged_attention", "v_pages", v_pages, &NP2, &PS2, &HKV2, &D2));
    LISA_TRY(lisa_cpu_check_f32("paged_attention", "q", q, false));
    LISA_TRY(lisa_cpu_check_f32("paged_attention", "y", y, true));
    if (NP != NP2 || PS != PS2 || HKV != HKV2 || D != D2 || PS != p->page_size || q->n_dims != 3 ||
        q->shape[2] != D || HKV == 0 || q->shape[1] % HKV != 0 || !lisa_tensor_same_shape(y, q))
        return lisa_fail(LISA_ERR_SHAPE,
                         "paged_attention: q %s and pool %s do not agree (want q = y [T, Hq, D], Hq %% Hkv == 0, "
                         "page_size %d)",
                         lisa_tensor_shape_str(q, s1, sizeof s1), lisa_tensor_shape_str(k_pages, s2, sizeof s2),
                         p->page_size);
    LISA_TRY(lisa_cpu_check_no_overlap("paged_attention", "q", y, q));
    const int64_t T = q->shape[0], HQ = q->shape[1], G = HQ / HKV, B = p->batch;
    const int32_t *qo = p->host_qo_indptr, *kvp = p->host_kv_indptr, *idx = p->host_kv_indices, *kvl = p->host_kv_len;
    if (B < 0 || qo[0] != 0 || qo[B] != T)
        return lisa_fail(LISA_ERR_SHAPE, "paged_attention: qo_indptr covers [%d, %d) but q has %lld rows", qo[0],
                         B >= 0 ? qo[B] : -1, (long long)T);
    int64_t max_tk = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t qlen = qo[b + 1] - qo[b], tk = kvl[b], npg = kvp[b + 1] - kvp[b];
        if (qlen < 0 || tk < qlen || (tk + PS - 1) / PS > npg)
            return lisa_fail(LISA_ERR_SHAPE,
                             "paged_attention: sequence %lld has %lld queries, %lld keys and %lld pages (page_size %lld)",
                             (long long)b, (long long)qlen, (long long)tk, (long long)npg, (long long)PS);
        for (int64_t j = kvp[b]; j < kvp[b + 1]; j++)
            if (idx[j] < 0 || idx[j] >= NP)
                return lisa_fail(LISA_ERR_INVALID_ARG, "paged_attention: page id %d outside the pool of %lld pages",
                                 idx[j], (long long)NP);
        if (tk > max_tk) max_tk = tk;
    }
    if (T == 0 || max_tk == 0) return LISA_OK;

    size_t mark = lisa_arena_mark(&be->scratch);
    float *kb = NULL, *vb = NULL, *qb = NULL, *sb = NULL;
    lisa_status st = lisa_cpu_scratch_f32(be, "paged_attention (K, V)", 2 * max_tk * D, &kb);
    if (st != LISA_OK) goto out;
    vb = kb + max_tk * D;
    /* Query block: a function of the sequence's own key count only (batch invariance). */
    const size_t free_bytes = lisa_cpu_scratch_free(be);
    int64_t bq_max = (int64_t)(free_bytes / ((size_t)(max_tk + D) * sizeof(float) + 64));
    if (bq_max > 256) bq_max = 256;
    if (bq_max < 1) {
        st = lisa_fail(LISA_ERR_OOM, "paged_attention: %lld keys do not fit the scratch arena", (long long)max_tk);
        goto out;
    }
    st = lisa_cpu_scratch_f32(be, "paged_attention (query block)", bq_max * D, &qb);
    if (st == LISA_OK) st = lisa_cpu_scratch_f32(be, "paged_attention (score tile)", bq_max * max_tk, &sb);
    if (st != LISA_OK) goto out;

    const float *kp = k_pages->data, *vp = v_pages->data;
    for (int64_t b = 0; b < B; b++) {
        const int64_t q0s = qo[b], qlen = qo[b + 1] - qo[b], Tk = kvl[b];
        if (qlen == 0) continue;
        /* Query blocks depend on this sequence alone (and the scratch size), never on the batch. */
        const int64_t bq = qlen < bq_max ? qlen : bq_max;
        for (int64_t kh = 0; kh < HKV; kh++) {
            for (int64_t j = 0; j < Tk; j++) { /* gather this sequence's keys/values for head kh */
                const int64_t page = idx[kvp[b] + j / PS], off = j % PS;
                memcpy(kb + j * D, kp + ((page * PS + off) * HKV + kh) * D, (size_t)D * sizeof(float));
                memcpy(vb + j * D, vp + ((page * PS + off) * HKV + kh) * D, (size_t)D * sizeof(float));
            }
            for (int64_t h = kh * G; h < (kh + 1) * G; h++) {
                for (int64_t i0 = 0; i0 < qlen; i0 += bq) {
                    const int64_t nq = qlen - i0 < bq ? qlen - i0 : bq;
                    for (int64_t r = 0; r < nq; r++) {
                        const float *qr = (const float *)q->data + (q0s + i0 + r) * q->stride[0] + h * q->stride[1];
                        for (int64_t d = 0; d < D; d++) qb[r * D + d] = qr[d * q->stride[2]];
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)Tk, (int)D, p->scale, qb, (int)D,
                                kb, (int)D, 0.0f, sb, (int)Tk);
                    for (int64_t r = 0; r < nq; r++) {
                        float *s = sb + r * Tk;
                        lisa_cpu_softmax_row(s, p->causal ? Tk - qlen + i0 + r + 1 : Tk, Tk);
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)Tk, 1.0f, sb, (int)Tk, vb,
                                (int)D, 0.0f, (float *)y->data + (q0s + i0) * HQ * D + h * D, (int)(HQ * D));
                }
            }
        }
    }
out:
    lisa_arena_reset(&be->scratch, mark);
    return st;
}
