/* kernels/cpu/attention.c — ATTENTION and REL_POS (ops.def).
 *
 * Dimension letters: B batch, Tq queries, Tk keys, Hq query heads, Hkv kv heads (GQA group
 * G = Hq/Hkv), D head dim; q_h × q_w the SAM token grid (Tq = q_h·q_w), k_h × k_w the key grid.
 *
 * Attention, per (b, h) and per block of queries sized to fit the scratch arena:
 *   S = scale · Q Kᵀ           (cblas_sgemm, F32 accumulation like torch's CPU bmm)
 *   S += bias + rel_h + rel_w  (F32 adds, in the order SAM / HF add them)
 *   S[i, j] = −inf where causal and j > i + Tk − Tq
 *   P = softmax(S)             (max-subtracted; exp and row sums in double)
 *   Y = P V                    (cblas_sgemm straight into y's rows)
 * A row whose scores are all −inf (e.g. fully masked by the bias) comes out NaN, like
 * torch.softmax; causal attention with Tk < Tq, which would create such rows, is rejected.
 * ref: segment_anything/modeling/image_encoder.py Attention.forward and add_decomposed_rel_pos;
 * transformers 4.31 modeling_llama.py LlamaAttention.forward.
 */
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <math.h>

/* A strided F32 view of one (b, h) slice of a [B, T, H, D] tensor, gathered densely: dst[T, D]. */
static void gather_head(float *dst, const lisa_tensor *t, int64_t b, int64_t h, int64_t t0, int64_t nt) {
    const float *base = (const float *)t->data + b * t->stride[0] + h * t->stride[2];
    const int64_t D = t->shape[3], st = t->stride[1], sd = t->stride[3];
    for (int64_t i = 0; i < nt; i++) {
        const float *row = base + (t0 + i) * st;
        for (int64_t d = 0; d < D; d++) dst[i * D + d] = row[d * sd];
    }
}

/* Checks an optional additive term (bias [.., .., Tq, Tk], rel_h/rel_w [B, H, Tq, k]) and returns
 * its broadcast strides over (b, h, i, j) — 0 along broadcast dims. */
static lisa_status check_term(const char *what, const lisa_tensor *t, int64_t B, int64_t H, int64_t Tq, int64_t K,
                              bool may_broadcast, int64_t st[4]) {
    char s[96];
    LISA_TRY(lisa_cpu_check_f32("attention", what, t, false));
    const int64_t want[4] = {B, H, Tq, K};
    bool ok = may_broadcast ? (t->n_dims >= 2 && t->n_dims <= 4) : t->n_dims == 4;
    for (int d = 0; d < 4 && ok; d++) {
        int id = d - (4 - t->n_dims);
        int64_t n = id >= 0 ? t->shape[id] : 1;
        ok = n == want[d] || (may_broadcast && d < 2 && n == 1);
        st[d] = (id >= 0 && n != 1) ? t->stride[id] : 0;
    }
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "attention: %s %s, want [%lld, %lld, %lld, %lld]%s", what,
                         lisa_tensor_shape_str(t, s, sizeof s), (long long)B, (long long)H, (long long)Tq, (long long)K,
                         may_broadcast ? " (first two dims may be 1)" : "");
    return LISA_OK;
}

lisa_status lisa_cpu_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                               const lisa_tensor *v, const lisa_attn_params *p) {
    char s1[96], s2[96], s3[96];
    if (!p) return lisa_fail(LISA_ERR_INVALID_ARG, "attention: params are required");
    LISA_TRY(lisa_cpu_check_f32("attention", "q", q, false));
    LISA_TRY(lisa_cpu_check_f32("attention", "k", k, false));
    LISA_TRY(lisa_cpu_check_f32("attention", "v", v, false));
    LISA_TRY(lisa_cpu_check_f32("attention", "y", y, true));
    if (q->n_dims != 4 || k->n_dims != 4 || !lisa_tensor_same_shape(k, v) || k->shape[0] != q->shape[0] ||
        k->shape[3] != q->shape[3] || k->shape[2] == 0 || q->shape[2] % k->shape[2] != 0)
        return lisa_fail(LISA_ERR_SHAPE,
                         "attention: q %s, k %s, v %s; want q[B, Tq, Hq, D], k = v [B, Tk, Hkv, D], Hq %% Hkv == 0",
                         lisa_tensor_shape_str(q, s1, sizeof s1), lisa_tensor_shape_str(k, s2, sizeof s2),
                         lisa_tensor_shape_str(v, s3, sizeof s3));
    LISA_TRY(lisa_cpu_check_same_shape("attention", y, q));
    const int64_t B = q->shape[0], Tq = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    const int64_t Tk = k->shape[1], Hkv = k->shape[2], G = Hq / Hkv;
    if (p->causal && Tk < Tq)
        return lisa_fail(LISA_ERR_SHAPE, "attention: causal with q %s longer than k %s leaves queries without keys",
                         lisa_tensor_shape_str(q, s1, sizeof s1), lisa_tensor_shape_str(k, s2, sizeof s2));
    int64_t bs[4] = {0}, rhs[4] = {0}, rws[4] = {0}, k_h = 0, k_w = 0;
    if (p->bias) LISA_TRY(check_term("bias", p->bias, B, Hq, Tq, Tk, true, bs));
    if ((p->rel_h == NULL) != (p->rel_w == NULL))
        return lisa_fail(LISA_ERR_INVALID_ARG, "attention: rel_h and rel_w must be given together");
    if (p->rel_h) {
        k_h = p->rel_h->n_dims == 4 ? p->rel_h->shape[3] : 0;
        k_w = p->rel_w->n_dims == 4 ? p->rel_w->shape[3] : 0;
        if (k_h * k_w != Tk)
            return lisa_fail(LISA_ERR_SHAPE, "attention: rel_h %s and rel_w %s do not span the %lld keys of k %s",
                             lisa_tensor_shape_str(p->rel_h, s1, sizeof s1), lisa_tensor_shape_str(p->rel_w, s2, sizeof s2),
                             (long long)Tk, lisa_tensor_shape_str(k, s3, sizeof s3));
        LISA_TRY(check_term("rel_h", p->rel_h, B, Hq, Tq, k_h, false, rhs));
        LISA_TRY(check_term("rel_w", p->rel_w, B, Hq, Tq, k_w, false, rws));
    }
    LISA_TRY(lisa_cpu_check_no_overlap("attention", "q", y, q));
    LISA_TRY(lisa_cpu_check_no_overlap("attention", "k", y, k));
    LISA_TRY(lisa_cpu_check_no_overlap("attention", "v", y, v));
    if (B == 0 || Tq == 0 || Hq == 0 || D == 0) return LISA_OK;
    if (Tk == 0) {
        /* softmax over an empty set: NaN, as torch */
        float *yd = y->data;
        for (int64_t i = 0; i < lisa_tensor_numel(y); i++) yd[i] = NAN;
        return LISA_OK;
    }

    size_t mark = lisa_arena_mark(&be->scratch);
    float *kb = NULL, *vb = NULL, *qb = NULL, *sb = NULL;
    lisa_status st = lisa_cpu_scratch_f32(be, "attention (K, V)", 2 * Tk * D, &kb);
    if (st != LISA_OK) goto out;
    vb = kb + Tk * D;
    /* Query block: as many rows as the free scratch holds for [bq, D] + [bq, Tk], at most 1024. */
    int64_t bq = (int64_t)(lisa_cpu_scratch_free(be) / ((size_t)(Tk + D) * sizeof(float) + 64));
    if (bq > Tq) bq = Tq;
    if (bq > 1024) bq = 1024;
    if (bq < 1) bq = 1;
    st = lisa_cpu_scratch_f32(be, "attention (query block)", bq * D, &qb);
    if (st == LISA_OK) st = lisa_cpu_scratch_f32(be, "attention (score tile)", bq * Tk, &sb);
    if (st != LISA_OK) goto out;

    const int64_t ldy = Hq * D;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t kh = 0; kh < Hkv; kh++) {
            gather_head(kb, k, b, kh, 0, Tk);
            gather_head(vb, v, b, kh, 0, Tk);
            for (int64_t h = kh * G; h < (kh + 1) * G; h++) {
                for (int64_t q0 = 0; q0 < Tq; q0 += bq) {
                    const int64_t nq = Tq - q0 < bq ? Tq - q0 : bq;
                    gather_head(qb, q, b, h, q0, nq);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)Tk, (int)D, p->scale, qb, (int)D,
                                kb, (int)D, 0.0f, sb, (int)Tk);
                    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, nq * Tk * 8))
                    for (int64_t r = 0; r < nq; r++) {
                        const int64_t i = q0 + r;
                        float *s = sb + r * Tk;
                        if (p->bias) {
                            const float *bias = (const float *)p->bias->data + b * bs[0] + h * bs[1] + i * bs[2];
                            for (int64_t j = 0; j < Tk; j++) s[j] += bias[j * bs[3]];
                        }
                        if (p->rel_h) {
                            /* SAM: attn.view(B, q_h, q_w, k_h, k_w) + rel_h[..., None] + rel_w[..., None, :] */
                            const float *rh = (const float *)p->rel_h->data + b * rhs[0] + h * rhs[1] + i * rhs[2];
                            const float *rw = (const float *)p->rel_w->data + b * rws[0] + h * rws[1] + i * rws[2];
                            for (int64_t ky = 0; ky < k_h; ky++)
                                for (int64_t kx = 0; kx < k_w; kx++)
                                    s[ky * k_w + kx] = (s[ky * k_w + kx] + rh[ky * rhs[3]]) + rw[kx * rws[3]];
                        }
                        lisa_cpu_softmax_row(s, p->causal ? i + Tk - Tq + 1 : Tk, Tk);
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)Tk, 1.0f, sb, (int)Tk, vb,
                                (int)D, 0.0f, (float *)y->data + (b * Tq + q0) * ldy + h * D, (int)ldy);
                }
            }
        }
    }
out:
    lisa_arena_reset(&be->scratch, mark);
    return st;
}

/* rel_h[b, h, (y, x), ky] = Σ_c q[b, (y, x), h, c] · rel_pos_h[y − ky + k_h − 1, c], and the same
 * for w with x / kx (ref: segment_anything image_encoder.py add_decomposed_rel_pos, einsum
 * "bhwc,hkc->bhwk" and "bhwc,wkc->bhwk"). Sums in double. */
lisa_status lisa_cpu_rel_pos(lisa_backend *be, lisa_tensor *rel_h, lisa_tensor *rel_w, const lisa_tensor *q,
                             const lisa_tensor *rel_pos_h, const lisa_tensor *rel_pos_w, int32_t q_h, int32_t q_w) {
    char s1[96], s2[96], s3[96];
    LISA_TRY(lisa_cpu_check_f32("rel_pos", "q", q, false));
    LISA_TRY(lisa_cpu_check_f32("rel_pos", "rel_h", rel_h, true));
    LISA_TRY(lisa_cpu_check_f32("rel_pos", "rel_w", rel_w, true));
    LISA_TRY(lisa_cpu_check_param("rel_pos", "rel_pos_h", rel_pos_h));
    LISA_TRY(lisa_cpu_check_param("rel_pos", "rel_pos_w", rel_pos_w));
    if (q->n_dims != 4 || q_h <= 0 || q_w <= 0 || q->shape[1] != (int64_t)q_h * q_w)
        return lisa_fail(LISA_ERR_SHAPE, "rel_pos: q %s is not [B, %d·%d, H, D]", lisa_tensor_shape_str(q, s1, sizeof s1),
                         q_h, q_w);
    const int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3];
    if (rel_h->n_dims != 4 || rel_w->n_dims != 4 || rel_h->shape[0] != B || rel_h->shape[1] != H ||
        rel_h->shape[2] != Tq || rel_w->shape[0] != B || rel_w->shape[1] != H || rel_w->shape[2] != Tq)
        return lisa_fail(LISA_ERR_SHAPE, "rel_pos: rel_h %s / rel_w %s, want [%lld, %lld, %lld, k] for q %s",
                         lisa_tensor_shape_str(rel_h, s1, sizeof s1), lisa_tensor_shape_str(rel_w, s2, sizeof s2),
                         (long long)B, (long long)H, (long long)Tq, lisa_tensor_shape_str(q, s3, sizeof s3));
    const int64_t k_h = rel_h->shape[3], k_w = rel_w->shape[3];
    /* SAM only ever has equal query and key grids with tables of length 2·size − 1, so the
     * interpolating branch of get_rel_pos is not implemented. */
    if (k_h != q_h || k_w != q_w || rel_pos_h->n_dims != 2 || rel_pos_w->n_dims != 2 ||
        rel_pos_h->shape[0] != 2 * k_h - 1 || rel_pos_w->shape[0] != 2 * k_w - 1)
        return lisa_fail(LISA_ERR_UNSUPPORTED,
                         "rel_pos: query grid %dx%d, key grid %lldx%lld, rel_pos_h %s, rel_pos_w %s: only equal grids "
                         "with tables of length 2*size-1 are supported (no interpolation)",
                         q_h, q_w, (long long)k_h, (long long)k_w, lisa_tensor_shape_str(rel_pos_h, s1, sizeof s1),
                         lisa_tensor_shape_str(rel_pos_w, s2, sizeof s2));
    if (rel_pos_h->shape[1] != D || rel_pos_w->shape[1] != D)
        return lisa_fail(LISA_ERR_SHAPE, "rel_pos: rel_pos_h %s / rel_pos_w %s do not have q's head dim %lld",
                         lisa_tensor_shape_str(rel_pos_h, s1, sizeof s1), lisa_tensor_shape_str(rel_pos_w, s2, sizeof s2),
                         (long long)D);
    LISA_TRY(lisa_cpu_check_no_overlap("rel_pos", "q", rel_h, q));
    LISA_TRY(lisa_cpu_check_no_overlap("rel_pos", "q", rel_w, q));
    LISA_TRY(lisa_cpu_check_no_overlap("rel_pos", "rel_h", rel_w, rel_h));
    if (B == 0 || H == 0) return LISA_OK;

    size_t mark = lisa_arena_mark(&be->scratch);
    float *rph = NULL, *rpw = NULL;
    lisa_status st = lisa_cpu_scratch_f32(be, "rel_pos", (2 * k_h - 1) * D + (2 * k_w - 1) * D, &rph);
    if (st != LISA_OK) goto out;
    rpw = rph + (2 * k_h - 1) * D;
    lisa_cpu_load_f32(rph, rel_pos_h, 0, (2 * k_h - 1) * D);
    lisa_cpu_load_f32(rpw, rel_pos_w, 0, (2 * k_w - 1) * D);
    const float *qd = q->data;
    float *hd = rel_h->data, *wd = rel_w->data;
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, B * H * Tq * (k_h + k_w) * D))
    for (int64_t job = 0; job < B * H * Tq; job++) {
        const int64_t b = job / (H * Tq), h = (job / Tq) % H, t = job % Tq;
        const int64_t yy = t / q_w, xx = t % q_w;
        const float *qr = qd + b * q->stride[0] + t * q->stride[1] + h * q->stride[2];
        const int64_t sd = q->stride[3];
        float *oh = hd + job * k_h, *ow = wd + job * k_w;
        for (int64_t ky = 0; ky < k_h; ky++) {
            const float *r = rph + (yy - ky + k_h - 1) * D;
            double acc = 0;
            for (int64_t c = 0; c < D; c++) acc += (double)qr[c * sd] * r[c];
            oh[ky] = (float)acc;
        }
        for (int64_t kx = 0; kx < k_w; kx++) {
            const float *r = rpw + (xx - kx + k_w - 1) * D;
            double acc = 0;
            for (int64_t c = 0; c < D; c++) acc += (double)qr[c * sd] * r[c];
            ow[kx] = (float)acc;
        }
    }
out:
    lisa_arena_reset(&be->scratch, mark);
    return st;
}
