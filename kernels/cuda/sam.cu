/* kernels/cuda/sam.cu — ops REL_POS, WINDOW_PARTITION, WINDOW_UNPARTITION, WINDOW_UNPARTITION_ADD
 * and BILINEAR on the GPU. Kernel bodies: sam_kernels.cuh. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/sam_kernels.cuh"

namespace {

const int kThreads = 256;

static lisa_status window_common(const char *op, lk_window_params *p, const lisa_tensor *img, const lisa_tensor *win,
                          int32_t window) {
    char b1[96], b2[96];
    LISA_TRY(lisa_cuda_check_dense(op, "image", img));
    LISA_TRY(lisa_cuda_check_dense(op, "windows", win));
    if (window <= 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: window %d", op, window);
    if (img->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "%s: image %s must be [B, H, W, C]", op, lisa_tensor_shape_str(img, b1, sizeof b1));
    const int64_t B = img->shape[0], H = img->shape[1], W = img->shape[2], C = img->shape[3];
    const int64_t nh = (H + window - 1) / window, nw = (W + window - 1) / window;
    if (win->n_dims != 4 || win->shape[0] != B * nh * nw || win->shape[1] != window || win->shape[2] != window ||
        win->shape[3] != C)
        return lisa_fail(LISA_ERR_SHAPE, "%s: windows %s must be [%lld, %d, %d, %lld] for image %s", op,
                         lisa_tensor_shape_str(win, b1, sizeof b1), (long long)(B * nh * nw), window, window, (long long)C,
                         lisa_tensor_shape_str(img, b2, sizeof b2));
    *p = lk_window_params{};
    p->B = (int32_t)B, p->H = (int32_t)H, p->W = (int32_t)W, p->C = (int32_t)C, p->S = window;
    p->nh = (int32_t)nh, p->nw = (int32_t)nw;
    return LISA_OK;
}

/* y = unpartition(x) (+ residual when given); y may be residual. */
static lisa_status unpartition(lisa_backend *be, const char *op, lisa_tensor *y, const lisa_tensor *x,
                               const lisa_tensor *residual, int32_t window) {
    lk_window_params p;
    LISA_TRY(window_common(op, &p, y, x, window));
    if (residual) {
        LISA_TRY(lisa_cuda_check_dense(op, "residual", residual));
        LISA_TRY(lisa_cuda_check_same_shape(op, y, residual));
    }
    p.x = x->data, p.xdt = x->dtype, p.y = y->data, p.ydt = y->dtype;
    p.res = residual ? residual->data : nullptr, p.resdt = residual ? residual->dtype : 0;
    const int64_t n = lisa_tensor_numel(y);
    if (n == 0) return LISA_OK;
    lk_window_unpartition<<<lisa_cuda_grid_1d(be, n, kThreads), kThreads, 0, lisa_cuda_impl_of(be)->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

} // namespace

extern "C" {

lisa_status lisa_cuda_window_partition(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, int32_t window) {
    lk_window_params p;
    LISA_TRY(window_common("window_partition", &p, x, y, window));
    p.x = x->data, p.xdt = x->dtype, p.y = y->data, p.ydt = y->dtype;
    const int64_t n = lisa_tensor_numel(y);
    if (n == 0) return LISA_OK;
    lk_window_partition<<<lisa_cuda_grid_1d(be, n, kThreads), kThreads, 0, lisa_cuda_impl_of(be)->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_window_unpartition_add(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x,
                                             const lisa_tensor *residual, int32_t window) {
    if (!residual) return lisa_fail(LISA_ERR_INVALID_ARG, "window_unpartition_add: residual is required");
    return unpartition(be, "window_unpartition_add", y, x, residual, window);
}

lisa_status lisa_cuda_window_unpartition(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, int32_t window) {
    return unpartition(be, "window_unpartition", y, x, nullptr, window);
}

lisa_status lisa_cuda_rel_pos(lisa_backend *be, lisa_tensor *rel_h, lisa_tensor *rel_w, const lisa_tensor *q,
                              const lisa_tensor *rel_pos_h, const lisa_tensor *rel_pos_w, int32_t q_h, int32_t q_w) {
    const char *op = "rel_pos";
    char b1[96], b2[96], b3[96];
    LISA_TRY(lisa_cuda_check_float(op, "q", q));
    LISA_TRY(lisa_cuda_check_dense(op, "rel_pos_h", rel_pos_h));
    LISA_TRY(lisa_cuda_check_dense(op, "rel_pos_w", rel_pos_w));
    LISA_TRY(lisa_cuda_check_dense(op, "rel_h", rel_h));
    LISA_TRY(lisa_cuda_check_dense(op, "rel_w", rel_w));
    if (q->n_dims != 4 || q->shape[1] != (int64_t)q_h * q_w || (q->shape[3] > 1 && q->stride[3] != 1))
        return lisa_fail(LISA_ERR_SHAPE, "%s: q %s must be [B, %d·%d, H, D] with a contiguous D", op,
                         lisa_tensor_shape_str(q, b1, sizeof b1), q_h, q_w);
    const int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3];
    if (rel_pos_h->n_dims != 2 || rel_pos_h->shape[0] != 2 * q_h - 1 || rel_pos_h->shape[1] != D || rel_pos_w->n_dims != 2 ||
        rel_pos_w->shape[0] != 2 * q_w - 1 || rel_pos_w->shape[1] != D)
        return lisa_fail(LISA_ERR_SHAPE, "%s: rel_pos_h %s / rel_pos_w %s must be [2·%d−1, %lld] / [2·%d−1, %lld]", op,
                         lisa_tensor_shape_str(rel_pos_h, b1, sizeof b1), lisa_tensor_shape_str(rel_pos_w, b2, sizeof b2),
                         q_h, (long long)D, q_w, (long long)D);
    const int64_t want_h[4] = {B, H, T, q_h}, want_w[4] = {B, H, T, q_w};
    for (int d = 0; d < 4; d++)
        if (rel_h->n_dims != 4 || rel_w->n_dims != 4 || rel_h->shape[d] != want_h[d] || rel_w->shape[d] != want_w[d])
            return lisa_fail(LISA_ERR_SHAPE, "%s: rel_h %s / rel_w %s must be [B, H, Tq, k_h] / [B, H, Tq, k_w] for q %s", op,
                             lisa_tensor_shape_str(rel_h, b1, sizeof b1), lisa_tensor_shape_str(rel_w, b2, sizeof b2),
                             lisa_tensor_shape_str(q, b3, sizeof b3));
    lk_relpos_params p = {};
    p.q = q->data, p.rph = rel_pos_h->data, p.rpw = rel_pos_w->data, p.rel_h = rel_h->data, p.rel_w = rel_w->data;
    p.q_bs = q->stride[0], p.q_ts = q->stride[1], p.q_hs = q->stride[2];
    p.qdt = q->dtype, p.rphdt = rel_pos_h->dtype, p.rpwdt = rel_pos_w->dtype, p.rhdt = rel_h->dtype, p.rwdt = rel_w->dtype;
    p.B = (int32_t)B, p.H = (int32_t)H, p.D = (int32_t)D, p.qh = q_h, p.qw = q_w;
    const int64_t n = B * H * T * (q_h + q_w);
    if (n == 0) return LISA_OK;
    lk_rel_pos<<<lisa_cuda_grid_1d(be, n, kThreads), kThreads, 0, lisa_cuda_impl_of(be)->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_bilinear(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    char b1[96], b2[96];
    LISA_TRY(lisa_cuda_check_dense("bilinear", "x", x));
    LISA_TRY(lisa_cuda_check_dense("bilinear", "y", y));
    bool ok = x->n_dims >= 2 && x->n_dims == y->n_dims;
    for (int d = 0; ok && d < x->n_dims - 2; d++) ok = x->shape[d] == y->shape[d];
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "bilinear: x %s and y %s must be [..., H, W] with equal leading dims",
                         lisa_tensor_shape_str(x, b1, sizeof b1), lisa_tensor_shape_str(y, b2, sizeof b2));
    const int n = x->n_dims;
    const int64_t H = x->shape[n - 2], W = x->shape[n - 1], Ho = y->shape[n - 2], Wo = y->shape[n - 1];
    const int64_t N = lisa_tensor_numel(y) / (Ho * Wo > 0 ? Ho * Wo : 1);
    if (lisa_tensor_numel(y) == 0) return LISA_OK;
    if (H == 0 || W == 0) return lisa_fail(LISA_ERR_SHAPE, "bilinear: empty input %s", lisa_tensor_shape_str(x, b1, sizeof b1));
    lk_bilinear<<<lisa_cuda_grid_1d(be, N * Ho * Wo, kThreads), kThreads, 0, lisa_cuda_impl_of(be)->stream>>>(
        y->data, y->dtype, x->data, x->dtype, N, (int32_t)H, (int32_t)W, (int32_t)Ho, (int32_t)Wo);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

} /* extern "C" */
