/* kernels/cpu/conv.c — CONV2D (im2col + sgemm) and CONV_TRANSPOSE2D_K2S2 (sgemm + scatter).
 *
 * Dimension letters: B batch, Ci/Co input/output channels, H × W input, Ho × Wo output,
 * kh × kw kernel, s stride, p zero padding, P = Ho·Wo output pixels, Kc = Ci·kh·kw.
 * Both are F32 GEMMs (cblas_sgemm) over blocks of output pixels sized to fit the scratch arena;
 * BF16/F16 weights are widened into scratch once per call when they fit in half of it, else per
 * block of output channels.
 * ref: torch.nn.Conv2d / ConvTranspose2d (kernel 2, stride 2: segment_anything mask_decoder.py
 * output_upscaling), cross-correlation semantics.
 */
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <string.h>

static lisa_status load_bias(lisa_backend *be, const char *op, const lisa_tensor *b, int64_t Co, const float **out) {
    char s[96];
    *out = NULL;
    if (!b) return LISA_OK;
    LISA_TRY(lisa_cpu_check_param(op, "b", b));
    if (b->n_dims != 1 || b->shape[0] != Co)
        return lisa_fail(LISA_ERR_SHAPE, "%s: b %s, want [%lld]", op, lisa_tensor_shape_str(b, s, sizeof s), (long long)Co);
    if (b->dtype == LISA_DTYPE_F32) {
        *out = b->data;
        return LISA_OK;
    }
    float *v;
    LISA_TRY(lisa_cpu_scratch_f32(be, op, Co, &v));
    lisa_cpu_load_f32(v, b, 0, Co);
    *out = v;
    return LISA_OK;
}

lisa_status lisa_cpu_conv2d(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                            const lisa_tensor *b, int32_t stride, int32_t pad) {
    char s1[96], s2[96], s3[96];
    LISA_TRY(lisa_cpu_check_f32("conv2d", "x", x, true));
    LISA_TRY(lisa_cpu_check_f32("conv2d", "y", y, true));
    LISA_TRY(lisa_cpu_check_param("conv2d", "w", w));
    if (stride <= 0 || pad < 0)
        return lisa_fail(LISA_ERR_INVALID_ARG, "conv2d: stride %d / padding %d out of range", stride, pad);
    if (x->n_dims != 4 || w->n_dims != 4 || w->shape[1] != x->shape[1] || x->shape[2] + 2 * pad < w->shape[2] ||
        x->shape[3] + 2 * pad < w->shape[3] || w->shape[2] == 0 || w->shape[3] == 0)
        return lisa_fail(LISA_ERR_SHAPE, "conv2d: x %s and w %s do not agree (want x[B, Ci, H, W], w[Co, Ci, kh, kw], pad %d)",
                         lisa_tensor_shape_str(x, s1, sizeof s1), lisa_tensor_shape_str(w, s2, sizeof s2), pad);
    const int64_t B = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    if (y->n_dims != 4 || y->shape[0] != B || y->shape[1] != Co || y->shape[2] != Ho || y->shape[3] != Wo)
        return lisa_fail(LISA_ERR_SHAPE, "conv2d: y %s, want [%lld, %lld, %lld, %lld] for x %s, w %s, stride %d, pad %d",
                         lisa_tensor_shape_str(y, s1, sizeof s1), (long long)B, (long long)Co, (long long)Ho, (long long)Wo,
                         lisa_tensor_shape_str(x, s2, sizeof s2), lisa_tensor_shape_str(w, s3, sizeof s3), stride, pad);
    LISA_TRY(lisa_cpu_check_no_overlap("conv2d", "x", y, x));
    const int64_t P = Ho * Wo, Kc = Ci * kh * kw;
    if (B == 0 || Co == 0 || P == 0) return LISA_OK;

    size_t mark = lisa_arena_mark(&be->scratch);
    const float *bias = NULL;
    float *col = NULL;
    lisa_status st = load_bias(be, "conv2d", b, Co, &bias);
    if (st != LISA_OK) goto out;
    /* Weights as an F32 [Co, Kc] matrix: in place, widened whole, or widened per channel block. */
    const float *wf = w->dtype == LISA_DTYPE_F32 ? w->data : NULL;
    float *wbuf = NULL;
    int64_t cob = Co;
    if (!wf) {
        int64_t fit = (int64_t)(lisa_cpu_scratch_free(be) / 2 / ((size_t)Kc * sizeof(float)));
        if (fit < cob) cob = fit < 1 ? 1 : fit;
        st = lisa_cpu_scratch_f32(be, "conv2d (weight block)", cob * Kc, &wbuf);
        if (st != LISA_OK) goto out;
        if (cob == Co) lisa_cpu_load_f32(wbuf, w, 0, Co * Kc);
    }
    /* im2col block: col[Kc, np] for np output pixels. */
    int64_t pb = (int64_t)(lisa_cpu_scratch_free(be) / ((size_t)Kc * sizeof(float) + 64));
    if (pb > P) pb = P;
    if (pb < 1) pb = 1;
    st = lisa_cpu_scratch_f32(be, "conv2d (im2col block)", Kc * pb, &col);
    if (st != LISA_OK) goto out;
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t bi = 0; bi < B; bi++) {
        const float *xb = xd + bi * Ci * H * W;
        for (int64_t p0 = 0; p0 < P; p0 += pb) {
            const int64_t np = P - p0 < pb ? P - p0 : pb;
            LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, Kc * np))
            for (int64_t r = 0; r < Kc; r++) { /* col row r = (ci, ky, kx) */
                const int64_t ci = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
                float *cr = col + r * np;
                for (int64_t j = 0; j < np; j++) {
                    const int64_t oy = (p0 + j) / Wo, ox = (p0 + j) % Wo;
                    const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                    cr[j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xb[(ci * H + iy) * W + ix] : 0.0f;
                }
            }
            for (int64_t co0 = 0; co0 < Co; co0 += cob) {
                const int64_t nco = Co - co0 < cob ? Co - co0 : cob;
                const float *wblk = wf ? wf + co0 * Kc : wbuf;
                if (!wf && cob < Co) lisa_cpu_load_f32(wbuf, w, co0 * Kc, nco * Kc);
                float *yblk = yd + (bi * Co + co0) * P + p0;
                for (int64_t o = 0; o < nco; o++) {
                    const float bv = bias ? bias[co0 + o] : 0.0f;
                    for (int64_t j = 0; j < np; j++) yblk[o * P + j] = bv;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nco, (int)np, (int)Kc, 1.0f, wblk, (int)Kc, col,
                            (int)np, 1.0f, yblk, (int)P);
            }
        }
    }
out:
    lisa_arena_reset(&be->scratch, mark);
    return st;
}

/* T[(o, di, dj), p] = Σ_c w[c, o, di, dj] · x[c, p]  (w viewed as [Ci, Co·4], so op(A) = wᵀ),
 * then y[o, 2i + di, 2j + dj] = T[(o, di, dj), (i, j)] + b[o]. */
lisa_status lisa_cpu_conv_transpose2d_k2s2(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                                           const lisa_tensor *b) {
    char s1[96], s2[96];
    LISA_TRY(lisa_cpu_check_f32("conv_transpose2d_k2s2", "x", x, true));
    LISA_TRY(lisa_cpu_check_f32("conv_transpose2d_k2s2", "y", y, true));
    LISA_TRY(lisa_cpu_check_param("conv_transpose2d_k2s2", "w", w));
    if (x->n_dims != 4 || w->n_dims != 4 || w->shape[0] != x->shape[1] || w->shape[2] != 2 || w->shape[3] != 2)
        return lisa_fail(LISA_ERR_SHAPE, "conv_transpose2d_k2s2: x %s and w %s do not agree (want x[B, Ci, H, W], w[Ci, Co, 2, 2])",
                         lisa_tensor_shape_str(x, s1, sizeof s1), lisa_tensor_shape_str(w, s2, sizeof s2));
    const int64_t B = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3], Co = w->shape[1];
    if (y->n_dims != 4 || y->shape[0] != B || y->shape[1] != Co || y->shape[2] != 2 * H || y->shape[3] != 2 * W)
        return lisa_fail(LISA_ERR_SHAPE, "conv_transpose2d_k2s2: y %s, want [%lld, %lld, %lld, %lld] for x %s",
                         lisa_tensor_shape_str(y, s1, sizeof s1), (long long)B, (long long)Co, (long long)(2 * H),
                         (long long)(2 * W), lisa_tensor_shape_str(x, s2, sizeof s2));
    LISA_TRY(lisa_cpu_check_no_overlap("conv_transpose2d_k2s2", "x", y, x));
    const int64_t P = H * W, R = Co * 4;
    if (B == 0 || R == 0 || P == 0) return LISA_OK;

    size_t mark = lisa_arena_mark(&be->scratch);
    const float *bias = NULL;
    float *wbuf = NULL, *tb = NULL;
    lisa_status st = load_bias(be, "conv_transpose2d_k2s2", b, Co, &bias);
    if (st != LISA_OK) goto out;
    const float *wf = w->data;
    if (w->dtype != LISA_DTYPE_F32) {
        st = lisa_cpu_scratch_f32(be, "conv_transpose2d_k2s2 (weights)", Ci * R, &wbuf);
        if (st != LISA_OK) goto out;
        lisa_cpu_load_f32(wbuf, w, 0, Ci * R);
        wf = wbuf;
    }
    int64_t pb = (int64_t)(lisa_cpu_scratch_free(be) / ((size_t)R * sizeof(float) + 64));
    if (pb > P) pb = P;
    if (pb < 1) pb = 1;
    st = lisa_cpu_scratch_f32(be, "conv_transpose2d_k2s2 (pixel block)", R * pb, &tb);
    if (st != LISA_OK) goto out;
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t bi = 0; bi < B; bi++) {
        for (int64_t p0 = 0; p0 < P; p0 += pb) {
            const int64_t np = P - p0 < pb ? P - p0 : pb;
            if (Ci > 0)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)R, (int)np, (int)Ci, 1.0f, wf, (int)R,
                            xd + bi * Ci * P + p0, (int)P, 0.0f, tb, (int)np);
            else
                memset(tb, 0, (size_t)(R * np) * sizeof(float));
            LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, R * np))
            for (int64_t r = 0; r < R; r++) {
                const int64_t o = r / 4, di = (r / 2) % 2, dj = r % 2;
                const float bv = bias ? bias[o] : 0.0f;
                float *yo = yd + (bi * Co + o) * 4 * P;
                for (int64_t j = 0; j < np; j++) {
                    const int64_t i = (p0 + j) / W, jj = (p0 + j) % W;
                    yo[(2 * i + di) * 2 * W + 2 * jj + dj] = tb[r * np + j] + bv;
                }
            }
        }
    }
out:
    lisa_arena_reset(&be->scratch, mark);
    return st;
}
