/* kernels/cuda/elementwise.cu — ops COPY, ADD, MUL, SCALE, GELU, QUICK_GELU, RELU, SILU_MUL,
 * ROPE, ROPE_QK (q and k in one launch), EMBEDDING, ARGMAX on the GPU. Kernel bodies: ew_kernels.cuh. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/ew_kernels.cuh"

#include <stdint.h>

namespace {

const int kThreads = 256;

/* y's iteration space padded to 4 dims, a (same shape as y) and b (NumPy-broadcast against y,
 * right-aligned; size-1 dims get stride 0) strided. */
static lisa_status make_desc(const char *op, lk_ew_desc *d, const lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b) {
    char s1[96], s2[96];
    *d = lk_ew_desc{};
    int64_t n = lisa_tensor_numel(y);
    if (n >= INT32_MAX)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: %lld elements (the cuda elementwise kernels take < 2^31)", op,
                         (long long)n);
    d->n = (int32_t)n;
    const int off = 4 - y->n_dims;
    for (int i = 0; i < 4; i++) {
        int sd = i - off;
        d->shape[i] = sd >= 0 ? (int32_t)y->shape[sd] : 1;
        d->ys[i] = sd >= 0 ? y->stride[sd] : 0;
        d->as[i] = sd >= 0 && a ? a->stride[sd] : 0;
        d->bs[i] = 0;
    }
    if (a && !lisa_tensor_same_shape(a, y))
        return lisa_fail(LISA_ERR_SHAPE, "%s: input %s does not match output %s", op, lisa_tensor_shape_str(a, s1, sizeof s1),
                         lisa_tensor_shape_str(y, s2, sizeof s2));
    if (b) {
        if (b->n_dims > y->n_dims)
            return lisa_fail(LISA_ERR_SHAPE, "%s: b %s has more dims than a %s", op, lisa_tensor_shape_str(b, s1, sizeof s1),
                             lisa_tensor_shape_str(y, s2, sizeof s2));
        for (int k = 1; k <= b->n_dims; k++) {
            int64_t bd = b->shape[b->n_dims - k], yd = y->shape[y->n_dims - k];
            if (bd != yd && bd != 1)
                return lisa_fail(LISA_ERR_SHAPE, "%s: b %s does not broadcast against %s (dim -%d)", op,
                                 lisa_tensor_shape_str(b, s1, sizeof s1), lisa_tensor_shape_str(y, s2, sizeof s2), k);
            d->bs[4 - k] = bd == 1 ? 0 : b->stride[b->n_dims - k];
        }
    }
    return LISA_OK;
}

static lisa_status launch_ew(lisa_backend *be, const char *op, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b,
                      int ew_op, float s, float c) {
    LISA_TRY(lisa_cuda_check_float(op, "y", y));
    LISA_TRY(lisa_cuda_check_float(op, "x", a));
    if (b) LISA_TRY(lisa_cuda_check_float(op, "b", b));
    lk_ew_desc d;
    LISA_TRY(make_desc(op, &d, y, a, b));
    if (d.n == 0) return LISA_OK;
    lk_ew<<<lisa_cuda_grid_1d(be, d.n, kThreads), kThreads, 0, lisa_cuda_impl_of(be)->stream>>>(
        d, y->data, (int)y->dtype, a->data, (int)a->dtype, b ? b->data : nullptr, b ? (int)b->dtype : 0, ew_op, s, c);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

static bool is_float(lisa_dtype t) { return t == LISA_DTYPE_F32 || t == LISA_DTYPE_BF16 || t == LISA_DTYPE_F16; }

static lisa_status check_device(const char *op, const char *what, const lisa_tensor *t) {
    if (!t) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s is NULL", op, what);
    if (t->device != LISA_DEVICE_CUDA) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s is not a device tensor", op, what);
    if (!t->data && lisa_tensor_numel(t) > 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s has no data", op, what);
    return LISA_OK;
}

/* Fills one RoPE slot from x/y [T, H, D] or [B, T, H, D]. */
static lisa_status rope_slot(const char *op, lk_rope_slot *s, const lisa_tensor *y, const lisa_tensor *x, int32_t *B,
                      int32_t *T, int32_t *D) {
    char b1[96];
    LISA_TRY(lisa_cuda_check_float(op, "x", x));
    LISA_TRY(lisa_cuda_check_float(op, "y", y));
    LISA_TRY(lisa_cuda_check_same_shape(op, y, x));
    if (x->n_dims != 3 && x->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s must be [T, H, D] or [B, T, H, D]", op, lisa_tensor_shape_str(x, b1, sizeof b1));
    const int o = x->n_dims - 3;
    int64_t D_ = x->shape[o + 2];
    if (D_ % 2 || (D_ > 1 && (x->stride[o + 2] != 1 || y->stride[o + 2] != 1)))
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s needs an even, contiguous head dim", op,
                         lisa_tensor_shape_str(x, b1, sizeof b1));
    *B = o ? (int32_t)x->shape[0] : 1;
    *T = (int32_t)x->shape[o];
    *D = (int32_t)D_;
    s->x = x->data;
    s->y = y->data;
    s->x_bs = o ? x->stride[0] : 0, s->x_ts = x->stride[o], s->x_hs = x->stride[o + 1];
    s->y_bs = o ? y->stride[0] : 0, s->y_ts = y->stride[o], s->y_hs = y->stride[o + 1];
    s->H = (int32_t)x->shape[o + 1];
    s->xdt = (int)x->dtype, s->ydt = (int)y->dtype;
    return LISA_OK;
}

static lisa_status rope_pos(const char *op, lk_rope_params *p, const lisa_tensor *pos) {
    char b1[96];
    LISA_TRY(check_device(op, "pos", pos));
    bool ok = pos->dtype == LISA_DTYPE_I32 && lisa_tensor_is_contiguous(pos) &&
              ((pos->n_dims == 1 && pos->shape[0] == p->T) ||
               (pos->n_dims == 2 && pos->shape[0] == p->B && pos->shape[1] == p->T));
    if (!ok)
        return lisa_fail(LISA_ERR_SHAPE, "%s: pos %s must be contiguous I32 [T] or [B, T] with B=%d T=%d", op,
                         lisa_tensor_shape_str(pos, b1, sizeof b1), p->B, p->T);
    p->pos = (const int32_t *)pos->data;
    p->pos_bs = pos->n_dims == 2 ? p->T : 0;
    return LISA_OK;
}

static lisa_status launch_rope(lisa_backend *be, const lk_rope_params &p) {
    int64_t n = 0;
    for (int i = 0; i < p.n_slots; i++) n += (int64_t)p.B * p.T * p.s[i].H * (p.D / 2);
    if (n == 0) return LISA_OK;
    lk_rope<<<lisa_cuda_grid_1d(be, n, kThreads), kThreads, 0, lisa_cuda_impl_of(be)->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

/* Byte range [lo, hi) a strided tensor touches (non-negative strides). */
static void byte_range(const lisa_tensor *t, uintptr_t *lo, uintptr_t *hi) {
    int64_t last = 0;
    for (int d = 0; d < t->n_dims; d++) last += (t->shape[d] - 1) * t->stride[d];
    *lo = (uintptr_t)t->data;
    *hi = *lo + (uintptr_t)((last + 1) * (int64_t)lisa_dtype_size(t->dtype));
}

} // namespace

extern "C" {

lisa_status lisa_cuda_copy(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    char a[96], b[96];
    LISA_TRY(check_device("copy", "y", y));
    LISA_TRY(check_device("copy", "x", x));
    const bool xf = is_float(x->dtype), yf = is_float(y->dtype);
    if (xf != yf)
        return lisa_fail(LISA_ERR_SHAPE, "copy: cannot convert %s to %s (float <-> integer)",
                         lisa_tensor_shape_str(x, a, sizeof a), lisa_tensor_shape_str(y, b, sizeof b));
    lk_ew_desc d;
    LISA_TRY(make_desc("copy", &d, y, x, nullptr));
    if (d.n == 0) return LISA_OK;
    bool same = x->data == y->data && x->dtype == y->dtype;
    for (int k = 0; same && k < x->n_dims; k++) same = x->shape[k] == 1 || x->stride[k] == y->stride[k];
    if (same) return LISA_OK; /* y is x */
    uintptr_t xl, xh, yl, yh;
    byte_range(x, &xl, &xh);
    byte_range(y, &yl, &yh);
    if (yl < xh && xl < yh) return lisa_fail(LISA_ERR_INVALID_ARG, "copy: output overlaps the input");
    cudaStream_t st = lisa_cuda_impl_of(be)->stream;
    const unsigned grid = lisa_cuda_grid_1d(be, d.n, kThreads);
    if (y->dtype == x->dtype) /* bit copy: NaN payloads and integers unchanged */
        lk_copy_raw<<<grid, kThreads, 0, st>>>(d, y->data, x->data, (int)lisa_dtype_size(x->dtype));
    else if (xf)
        lk_ew<<<grid, kThreads, 0, st>>>(d, y->data, (int)y->dtype, x->data, (int)x->dtype, nullptr, 0, LK_EW_COPY, 0.f, 0.f);
    else
        lk_copy_int<<<grid, kThreads, 0, st>>>(d, y->data, (int)y->dtype, x->data, (int)x->dtype);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_add(lisa_backend *be, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b) {
    return launch_ew(be, "add", y, a, b, LK_EW_ADD, 0.f, 0.f);
}

lisa_status lisa_cuda_mul(lisa_backend *be, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b) {
    return launch_ew(be, "mul", y, a, b, LK_EW_MUL, 0.f, 0.f);
}

lisa_status lisa_cuda_scale(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, float s, float c) {
    return launch_ew(be, "scale", y, x, nullptr, LK_EW_SCALE, s, c);
}

lisa_status lisa_cuda_gelu(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    return launch_ew(be, "gelu", y, x, nullptr, LK_EW_GELU, 0.f, 0.f);
}

lisa_status lisa_cuda_quick_gelu(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    return launch_ew(be, "quick_gelu", y, x, nullptr, LK_EW_QUICK_GELU, 0.f, 0.f);
}

lisa_status lisa_cuda_relu(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    return launch_ew(be, "relu", y, x, nullptr, LK_EW_RELU, 0.f, 0.f);
}

lisa_status lisa_cuda_silu_mul(lisa_backend *be, lisa_tensor *y, const lisa_tensor *gate, const lisa_tensor *up) {
    char a[96], b[96];
    if (gate && up && !lisa_tensor_same_shape(gate, up))
        return lisa_fail(LISA_ERR_SHAPE, "silu_mul: gate %s and up %s differ", lisa_tensor_shape_str(gate, a, sizeof a),
                         lisa_tensor_shape_str(up, b, sizeof b));
    return launch_ew(be, "silu_mul", y, gate, up, LK_EW_SILU_MUL, 0.f, 0.f);
}

lisa_status lisa_cuda_rope(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *pos, float theta) {
    lk_rope_params p = {};
    p.n_slots = 1;
    p.theta = theta;
    LISA_TRY(rope_slot("rope", &p.s[0], y, x, &p.B, &p.T, &p.D));
    LISA_TRY(rope_pos("rope", &p, pos));
    return launch_rope(be, p);
}

lisa_status lisa_cuda_rope_qk(lisa_backend *be, lisa_tensor *q, lisa_tensor *k, const lisa_tensor *pos,
                              const lisa_tensor *cos_sin) {
    char b1[96];
    lk_rope_params p = {};
    p.n_slots = 2;
    int32_t B2 = 0, T2 = 0, D2 = 0; /* set by rope_slot; zero-initialized for -O3 maybe-uninitialized */
    LISA_TRY(rope_slot("rope_qk", &p.s[0], q, q, &p.B, &p.T, &p.D));
    LISA_TRY(rope_slot("rope_qk", &p.s[1], k, k, &B2, &T2, &D2));
    if (B2 != p.B || T2 != p.T || D2 != p.D)
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk: k (B=%d T=%d D=%d) does not match q (B=%d T=%d D=%d)", B2, T2, D2, p.B,
                         p.T, p.D);
    LISA_TRY(rope_pos("rope_qk", &p, pos));
    LISA_TRY(lisa_cuda_check_dense("rope_qk", "cos_sin", cos_sin));
    if (cos_sin->dtype != LISA_DTYPE_F32 || cos_sin->n_dims != 2 || cos_sin->shape[1] != p.D)
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk: cos_sin %s must be F32 [positions, %d]",
                         lisa_tensor_shape_str(cos_sin, b1, sizeof b1), p.D);
    p.cs = (const float *)cos_sin->data;
    p.cs_rows = cos_sin->shape[0];
    return launch_rope(be, p);
}

/* ROPE_QK and KV_APPEND in one launch (lk_rope with its append stage): the slots are checked on the
 * device first, as KV_APPEND's are (a bad slot raises the flag, the rotation and append write
 * nothing, the next wait reports it: cuda.h). */
lisa_status lisa_cuda_rope_qk_kv_append(lisa_backend *be, lisa_tensor *q, lisa_tensor *k, const lisa_tensor *v,
                                        const lisa_tensor *pos, const lisa_tensor *cos_sin, lisa_tensor *k_pages,
                                        lisa_tensor *v_pages, const lisa_tensor *slots) {
    const char *op = "rope_qk_kv_append";
    char b1[96], b2[96];
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    if (!q || !k || !v || !pos || !cos_sin || !k_pages || !v_pages || !slots)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: every tensor is required", op);
    lk_rope_params p = {};
    p.n_slots = 2;
    int32_t B2, T2, D2;
    LISA_TRY(rope_slot(op, &p.s[0], q, q, &p.B, &p.T, &p.D));
    LISA_TRY(rope_slot(op, &p.s[1], k, k, &B2, &T2, &D2));
    if (q->n_dims != 3 || k->n_dims != 3 || T2 != p.T || D2 != p.D)
        return lisa_fail(LISA_ERR_SHAPE, "%s: q %s and k %s must be [T, H, D] sharing T and D", op,
                         lisa_tensor_shape_str(q, b1, sizeof b1), lisa_tensor_shape_str(k, b2, sizeof b2));
    LISA_TRY(rope_pos(op, &p, pos));
    LISA_TRY(lisa_cuda_check_dense(op, "cos_sin", cos_sin));
    if (cos_sin->dtype != LISA_DTYPE_F32 || cos_sin->n_dims != 2 || cos_sin->shape[1] != p.D)
        return lisa_fail(LISA_ERR_SHAPE, "%s: cos_sin %s must be F32 [positions, %d]", op,
                         lisa_tensor_shape_str(cos_sin, b1, sizeof b1), p.D);
    LISA_TRY(lisa_cuda_check_float(op, "v", v));
    LISA_TRY(lisa_cuda_check_dense(op, "k_pages", k_pages));
    LISA_TRY(lisa_cuda_check_dense(op, "v_pages", v_pages));
    LISA_TRY(check_device(op, "slots", slots));
    if (!lisa_tensor_same_shape(v, k) || (p.D > 1 && v->stride[2] != 1) || k_pages->n_dims != 4 ||
        !lisa_tensor_same_shape(k_pages, v_pages) || k_pages->dtype != v_pages->dtype ||
        k_pages->shape[2] != k->shape[1] || k_pages->shape[3] != p.D)
        return lisa_fail(LISA_ERR_SHAPE, "%s: k = v %s and the pools %s do not agree (pools [n_pages, page_size, Hkv, D])",
                         op, lisa_tensor_shape_str(k, b1, sizeof b1), lisa_tensor_shape_str(k_pages, b2, sizeof b2));
    if (slots->dtype != LISA_DTYPE_I32 || slots->n_dims != 1 || slots->shape[0] != p.T || !lisa_tensor_is_contiguous(slots))
        return lisa_fail(LISA_ERR_SHAPE, "%s: slots %s must be contiguous I32 [%d]", op,
                         lisa_tensor_shape_str(slots, b1, sizeof b1), p.T);
    p.cs = (const float *)cos_sin->data, p.cs_rows = cos_sin->shape[0];
    p.kp = k_pages->data, p.vp = v_pages->data, p.pdt = k_pages->dtype, p.v = v->data, p.vdt = v->dtype;
    p.v_ts = v->stride[0], p.v_hs = v->stride[1], p.pool_slots = k_pages->shape[0] * k_pages->shape[1];
    p.slots = (const int32_t *)slots->data;
    if (p.T == 0) return LISA_OK;
    lk_kv_slots_check<<<lisa_cuda_grid_1d(be, p.T, kThreads), kThreads, 0, im->stream>>>(p.slots, p.T, p.pool_slots,
                                                                                       im->flag);
    CUDA_CHECK_LAUNCH();
    lisa_cuda_flag_armed(be);
    p.flag = im->flag;
    const int64_t n = (int64_t)p.T * (p.s[0].H + p.s[1].H) * (p.D / 2) + (int64_t)p.T * p.s[1].H * p.D;
    lk_rope<<<lisa_cuda_grid_1d(be, n, kThreads), kThreads, 0, im->stream>>>(p);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_embedding(lisa_backend *be, lisa_tensor *y, const lisa_tensor *table, const lisa_tensor *ids) {
    char b1[96], b2[96], b3[96];
    lisa_cuda_impl *im = lisa_cuda_impl_of(be);
    LISA_TRY(lisa_cuda_check_dense("embedding", "y", y));
    LISA_TRY(lisa_cuda_check_dense("embedding", "table", table));
    LISA_TRY(check_device("embedding", "ids", ids));
    if (ids->n_dims != 1 || (ids->dtype != LISA_DTYPE_I32 && ids->dtype != LISA_DTYPE_I64) || !lisa_tensor_is_contiguous(ids) ||
        table->n_dims != 2 || y->n_dims != 2 || y->shape[0] != ids->shape[0] || y->shape[1] != table->shape[1])
        return lisa_fail(LISA_ERR_SHAPE, "embedding: need y[T, C], table[rows, C], ids I32/I64 [T]; got y %s table %s ids %s",
                         lisa_tensor_shape_str(y, b1, sizeof b1), lisa_tensor_shape_str(table, b2, sizeof b2),
                         lisa_tensor_shape_str(ids, b3, sizeof b3));
    const int64_t T = y->shape[0], C = y->shape[1];
    if (T == 0 || C == 0) return LISA_OK;
    const bool i64 = ids->dtype == LISA_DTYPE_I64;
    /* validate every id on the device first (no host wait): a bad id raises the flag, the gather
     * then writes nothing and the error surfaces at the next wait (cuda.h) */
    lk_embedding_check<<<lisa_cuda_grid_1d(be, T, kThreads), kThreads, 0, im->stream>>>(ids->data, i64, (int32_t)T,
                                                                                       table->shape[0], im->flag);
    CUDA_CHECK_LAUNCH();
    lisa_cuda_flag_armed(be);
    lk_embedding<<<lisa_cuda_grid_1d(be, T * C, kThreads), kThreads, 0, im->stream>>>(
        y->data, (int)y->dtype, table->data, (int)table->dtype, ids->data, i64, (int32_t)T, (int32_t)C, table->shape[0],
        im->flag);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

lisa_status lisa_cuda_argmax(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x) {
    char b1[96], b2[96];
    LISA_TRY(lisa_cuda_check_float("argmax", "x", x));
    LISA_TRY(check_device("argmax", "y", y));
    int64_t R, rs;
    LISA_TRY(lisa_cuda_rows("argmax", "x", x, &R, &rs));
    if (y->dtype != LISA_DTYPE_I32 || lisa_tensor_numel(y) != R || !lisa_tensor_is_contiguous(y) || x->n_dims < 1)
        return lisa_fail(LISA_ERR_SHAPE, "argmax: y %s must be contiguous I32 with one entry per row of x %s",
                         lisa_tensor_shape_str(y, b1, sizeof b1), lisa_tensor_shape_str(x, b2, sizeof b2));
    const int64_t N = x->shape[x->n_dims - 1];
    if (R == 0) return LISA_OK;
    if (N == 0) return lisa_fail(LISA_ERR_SHAPE, "argmax: rows of x %s are empty", lisa_tensor_shape_str(x, b2, sizeof b2));
    if (R > INT32_MAX || N > INT32_MAX) return lisa_fail(LISA_ERR_UNSUPPORTED, "argmax: x too large");
    lk_argmax<<<(unsigned)R, kThreads, 0, lisa_cuda_impl_of(be)->stream>>>((int32_t *)y->data, x->data, (int)x->dtype, rs,
                                                                           (int32_t)N);
    CUDA_CHECK_LAUNCH();
    return LISA_OK;
}

} /* extern "C" */
