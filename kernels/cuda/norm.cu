/* kernels/cuda/norm.cu — ops LAYERNORM, LAYERNORM2D, RMSNORM, SOFTMAX and the fused ADD_LAYERNORM,
 * ADD_RMSNORM, LAYERNORM_WINDOW_PARTITION on the GPU (one row-norm kernel: residual add, norm and
 * window scatter in one pass). Kernel bodies: norm_kernels.cuh. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/norm_kernels.cuh"

namespace {

const int kRowThreads = 256;
const int64_t kMaxRowC = 12288; /* row cached in 48 KiB of shared memory */

static lisa_status check_param(const char *op, const char *what, const lisa_tensor *t, int64_t C) {
    char b[96];
    if (!t) return LISA_OK;
    LISA_TRY(lisa_cuda_check_dense(op, what, t));
    if (lisa_tensor_numel(t) != C)
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s %s must have %lld elements", op, what, lisa_tensor_shape_str(t, b, sizeof b),
                         (long long)C);
    return LISA_OK;
}

/* y = norm(x (+ r -> sum)) over rows; common to the ops and the fused launchers. */
static lisa_status rownorm(lisa_backend *be, const char *op, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *r,
                    lisa_tensor *sum, const lisa_tensor *g, const lisa_tensor *b, float eps, bool rms) {
    char b1[96], b2[96];
    LISA_TRY(lisa_cuda_check_float(op, "x", x));
    LISA_TRY(lisa_cuda_check_float(op, "y", y));
    LISA_TRY(lisa_cuda_check_same_shape(op, y, x));
    int64_t R, C = x->n_dims ? x->shape[x->n_dims - 1] : 1, xrs, yrs, rrs = 0, srs = 0, R2;
    LISA_TRY(lisa_cuda_rows(op, "x", x, &R, &xrs));
    LISA_TRY(lisa_cuda_rows(op, "y", y, &R2, &yrs));
    if (r) {
        LISA_TRY(lisa_cuda_check_float(op, "residual", r));
        LISA_TRY(lisa_cuda_check_float(op, "sum", sum));
        if (!lisa_tensor_same_shape(r, x) || !lisa_tensor_same_shape(sum, x))
            return lisa_fail(LISA_ERR_SHAPE, "%s: residual %s and sum %s must match x", op,
                             lisa_tensor_shape_str(r, b1, sizeof b1), lisa_tensor_shape_str(sum, b2, sizeof b2));
        LISA_TRY(lisa_cuda_rows(op, "residual", r, &R2, &rrs));
        LISA_TRY(lisa_cuda_rows(op, "sum", sum, &R2, &srs));
    }
    LISA_TRY(check_param(op, "g", g, C));
    LISA_TRY(check_param(op, "b", b, C));
    if (R == 0 || C == 0) return LISA_OK;
    if (C > kMaxRowC) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: rows of %lld (the cuda kernel caches <= %lld)", op, (long long)C, (long long)kMaxRowC);
    if (R > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: %lld rows", op, (long long)R);
    lk_rownorm_params p = {};
    p.x = x->data, p.res = r ? r->data : nullptr, p.sum_out = sum ? sum->data : nullptr, p.y = y->data;
    p.g = g ? g->data : nullptr, p.b = b ? b->data : nullptr;
    p.x_rs = xrs, p.res_rs = rrs, p.sum_rs = srs, p.y_rs = yrs;
    p.C = (int32_t)C, p.rows_out = (int32_t)R;
    p.xdt = x->dtype, p.resdt = r ? r->dtype : 0, p.sumdt = sum ? sum->dtype : 0, p.ydt = y->dtype;
    p.gdt = g ? g->dtype : 0, p.bdt = b ? b->dtype : 0;
    p.eps = eps, p.rms = rms;
    int threads = C >= 1024 ? kRowThreads : (C >= 256 ? 128 : 64);
    lk_rownorm<<<(unsigned)R, threads, (size_t)C * sizeof(float), lisa_cuda_impl_of(be)->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

} // namespace

extern "C" {

lisa_status lisa_cuda_layernorm(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *g,
                                const lisa_tensor *b, float eps) {
    return rownorm(be, "layernorm", y, x, nullptr, nullptr, g, b, eps, false);
}

lisa_status lisa_cuda_rmsnorm(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *g, float eps) {
    return rownorm(be, "rmsnorm", y, x, nullptr, nullptr, g, nullptr, eps, true);
}

lisa_status lisa_cuda_add_layernorm(lisa_backend *be, lisa_tensor *sum, lisa_tensor *y, const lisa_tensor *x,
                                    const lisa_tensor *r, const lisa_tensor *g, const lisa_tensor *b, float eps) {
    if (!r || !sum) return lisa_fail(LISA_ERR_INVALID_ARG, "add_layernorm: residual and sum are required");
    return rownorm(be, "add_layernorm", y, x, r, sum, g, b, eps, false);
}

lisa_status lisa_cuda_add_rmsnorm(lisa_backend *be, lisa_tensor *sum, lisa_tensor *y, const lisa_tensor *x,
                                  const lisa_tensor *r, const lisa_tensor *g, float eps) {
    if (!r || !sum) return lisa_fail(LISA_ERR_INVALID_ARG, "add_rmsnorm: residual and sum are required");
    return rownorm(be, "add_rmsnorm", y, x, r, sum, g, nullptr, eps, true);
}

lisa_status lisa_cuda_layernorm_window_partition(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x,
                                                 const lisa_tensor *g, const lisa_tensor *b, float eps, int32_t window) {
    const char *op = "layernorm_window_partition";
    char b1[96], b2[96];
    LISA_TRY(lisa_cuda_check_dense(op, "x", x));
    LISA_TRY(lisa_cuda_check_dense(op, "y", y));
    if (window <= 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: window %d", op, window);
    if (x->n_dims != 4) return lisa_fail(LISA_ERR_SHAPE, "%s: x %s must be [B, H, W, C]", op, lisa_tensor_shape_str(x, b1, sizeof b1));
    const int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    const int64_t nh = (H + window - 1) / window, nw = (W + window - 1) / window;
    if (y->n_dims != 4 || y->shape[0] != B * nh * nw || y->shape[1] != window || y->shape[2] != window || y->shape[3] != C)
        return lisa_fail(LISA_ERR_SHAPE, "%s: y %s must be [%lld, %d, %d, %lld] for x %s", op,
                         lisa_tensor_shape_str(y, b1, sizeof b1), (long long)(B * nh * nw), window, window, (long long)C,
                         lisa_tensor_shape_str(x, b2, sizeof b2));
    LISA_TRY(check_param(op, "g", g, C));
    LISA_TRY(check_param(op, "b", b, C));
    const int64_t rows = B * nh * nw * window * window;
    if (rows == 0 || C == 0) return LISA_OK;
    if (C > kMaxRowC || rows > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: too large", op);
    lk_rownorm_params p = {};
    p.x = x->data, p.y = y->data, p.g = g ? g->data : nullptr, p.b = b ? b->data : nullptr;
    p.x_rs = C, p.y_rs = C, p.C = (int32_t)C, p.rows_out = (int32_t)rows;
    p.xdt = x->dtype, p.ydt = y->dtype, p.gdt = g ? g->dtype : 0, p.bdt = b ? b->dtype : 0, p.eps = eps;
    p.win = window, p.H = (int32_t)H, p.W = (int32_t)W, p.nh = (int32_t)nh, p.nw = (int32_t)nw;
    int threads = C >= 1024 ? kRowThreads : (C >= 256 ? 128 : 64);
    lk_rownorm<<<(unsigned)rows, threads, (size_t)C * sizeof(float), lisa_cuda_impl_of(be)->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_layernorm2d(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *g,
                                  const lisa_tensor *b, float eps) {
    char b1[96];
    LISA_TRY(lisa_cuda_check_dense("layernorm2d", "x", x));
    LISA_TRY(lisa_cuda_check_dense("layernorm2d", "y", y));
    LISA_TRY(lisa_cuda_check_same_shape("layernorm2d", y, x));
    if (x->n_dims != 3 && x->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "layernorm2d: x %s must be [C, H, W] or [B, C, H, W]",
                         lisa_tensor_shape_str(x, b1, sizeof b1));
    const int o = x->n_dims - 3;
    const int64_t B = o ? x->shape[0] : 1, C = x->shape[o], P = x->shape[o + 1] * x->shape[o + 2];
    LISA_TRY(check_param("layernorm2d", "g", g, C));
    LISA_TRY(check_param("layernorm2d", "b", b, C));
    if (B * P == 0 || C == 0) return LISA_OK;
    lk_layernorm2d<<<lisa_cuda_grid_1d(be, B * P, 128), 128, 0, lisa_cuda_impl_of(be)->stream>>>(
        y->data, y->dtype, x->data, x->dtype, g ? g->data : nullptr, g ? g->dtype : 0, b ? b->data : nullptr,
        b ? b->dtype : 0, (int32_t)B, (int32_t)C, P, eps);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_softmax(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    LISA_TRY(lisa_cuda_check_float("softmax", "x", x));
    LISA_TRY(lisa_cuda_check_float("softmax", "y", y));
    LISA_TRY(lisa_cuda_check_same_shape("softmax", y, x));
    int64_t R, R2, xrs, yrs;
    LISA_TRY(lisa_cuda_rows("softmax", "x", x, &R, &xrs));
    LISA_TRY(lisa_cuda_rows("softmax", "y", y, &R2, &yrs));
    const int64_t N = x->n_dims ? x->shape[x->n_dims - 1] : 1;
    if (R == 0 || N == 0) return LISA_OK;
    if (R > INT32_MAX || N > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "softmax: too large");
    int threads = N >= 1024 ? 256 : (N >= 128 ? 128 : 32);
    lk_softmax<<<(unsigned)R, threads, 0, lisa_cuda_impl_of(be)->stream>>>(y->data, y->dtype, yrs, x->data, x->dtype, xrs,
                                                                          (int32_t)N);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

} /* extern "C" */
