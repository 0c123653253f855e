/* kernels/cpu/resize.c — BILINEAR (ops.def): torch CPU F.interpolate(mode="bilinear",
 * align_corners=False, antialias=False) on float32, reproduced bit for bit (checked against torch
 * 1.13.1 in tests/test_ops_resize.c). Per axis (docs/parity.md §3; ATen/native/UpSample.h
 * compute_source_index_and_lambda):
 *   scale = (float)in / out                     (F32 division)
 *   src   = scale·(d + 0.5) − 0.5, in double, clamped below at 0
 *   i0 = (int64)src, i1 = i0 + (i0 < in − 1), λ1 = (float)(src − i0), λ0 = 1 − λ1 (F32)
 *   an axis with in == out uses i0 = i1 = d, λ0 = 1, λ1 = 0
 * Per output pixel, what torch 1.13.1 (Debian python3-torch) actually computes — established by
 * matching ~10^4 of its outputs exactly; docs/parity.md §3 says "the sum in float", which misses ~30%
 * of them by an ulp:
 *   w_ab = λa_h · λb_w                          (F32 products)
 *   out  = (float)(w00·x[i0h][i0w] + w01·x[i0h][i1w] + w10·x[i1h][i0w] + w11·x[i1h][i1w])
 *          with the four products and the sum in double, left to right.
 * Dimension letters: N planes (all leading dims), H × W input, Ho × Wo output.
 */
#include "kernels/cpu/cpu.h"

#include <string.h>

typedef struct axis_tap {
    int64_t i0, i1;
    float l0, l1;
} axis_tap;

static void axis_taps(axis_tap *t, int64_t in, int64_t out) {
    if (in == out) {
        for (int64_t d = 0; d < out; d++) t[d] = (axis_tap){d, d, 1.0f, 0.0f};
        return;
    }
    const float scale = (float)in / (float)out;
    for (int64_t d = 0; d < out; d++) {
        double src = (double)scale * ((double)d + 0.5) - 0.5;
        if (src < 0) src = 0;
        const int64_t i0 = (int64_t)src;
        const float l1 = (float)(src - (double)i0);
        t[d] = (axis_tap){i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
    }
}

lisa_status lisa_cpu_bilinear(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    char s1[96], s2[96];
    LISA_TRY(lisa_cpu_check_f32("bilinear", "x", x, true));
    LISA_TRY(lisa_cpu_check_f32("bilinear", "y", y, true));
    bool ok = x->n_dims >= 2 && y->n_dims == x->n_dims;
    for (int d = 0; ok && d < x->n_dims - 2; d++) ok = x->shape[d] == y->shape[d];
    const int64_t H = ok ? x->shape[x->n_dims - 2] : 0, W = ok ? x->shape[x->n_dims - 1] : 0;
    const int64_t Ho = ok ? y->shape[y->n_dims - 2] : 0, Wo = ok ? y->shape[y->n_dims - 1] : 0;
    if (!ok || ((H == 0 || W == 0) && Ho * Wo > 0))
        return lisa_fail(LISA_ERR_SHAPE, "bilinear: x %s -> y %s; want [..., H, W] -> [..., Ho, Wo] with equal leading dims",
                         lisa_tensor_shape_str(x, s1, sizeof s1), lisa_tensor_shape_str(y, s2, sizeof s2));
    LISA_TRY(lisa_cpu_check_no_overlap("bilinear", "x", y, x));
    const int64_t N = lisa_tensor_numel(y) / (Ho * Wo > 0 ? Ho * Wo : 1);
    if (lisa_tensor_numel(y) == 0) return LISA_OK;
    if (H == Ho && W == Wo) {
        memcpy(y->data, x->data, lisa_tensor_nbytes(x));
        return LISA_OK;
    }

    size_t mark = lisa_arena_mark(&be->scratch);
    void *mem = NULL;
    lisa_status st = lisa_arena_alloc(&be->scratch, (size_t)(Ho + Wo) * sizeof(axis_tap), &mem);
    if (st != LISA_OK) {
        lisa_arena_reset(&be->scratch, mark);
        return lisa_fail_context(st, "bilinear");
    }
    axis_tap *th = mem, *tw = th + Ho;
    axis_taps(th, H, Ho);
    axis_taps(tw, W, Wo);
    const float *xd = x->data;
    float *yd = y->data;
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, N * Ho * Wo))
    for (int64_t row = 0; row < N * Ho; row++) {
        const int64_t n = row / Ho, oy = row % Ho;
        const axis_tap ty = th[oy];
        const float *r0 = xd + (n * H + ty.i0) * W, *r1 = xd + (n * H + ty.i1) * W;
        float *out = yd + row * Wo;
        for (int64_t ox = 0; ox < Wo; ox++) {
            const axis_tap tx = tw[ox];
            const float w00 = ty.l0 * tx.l0, w01 = ty.l0 * tx.l1, w10 = ty.l1 * tx.l0, w11 = ty.l1 * tx.l1;
            const double acc = (double)w00 * r0[tx.i0] + (double)w01 * r0[tx.i1] + (double)w10 * r1[tx.i0] +
                               (double)w11 * r1[tx.i1];
            out[ox] = (float)acc;
        }
    }
    lisa_arena_reset(&be->scratch, mark);
    return LISA_OK;
}
