/* kernels/compose.c — TWOWAY_ATTENTION, TWOWAY_MLP and MLP3 as the compositions ops.def names (see
 * compose.h), issued through the backend's ops table: on the CPU backend exactly the op calls the
 * mask decoder graph made before these ops existed (models/sam_decoder.c), so its bits are
 * unchanged (tests/test_ops_fused.c compares the two bit for bit). */
#include "kernels/compose.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define ALIGN_UP(n) (((n) + LISA_ARENA_ALIGN - 1) & ~(size_t)(LISA_ARENA_ALIGN - 1))

/* [data, data + nbytes) of two contiguous tensors intersect. */
static bool spans_overlap(const lisa_tensor *a, const lisa_tensor *b) {
    if (!a || !b || !a->data || !b->data) return false;
    const uintptr_t a0 = (uintptr_t)a->data, a1 = a0 + lisa_tensor_nbytes(a);
    const uintptr_t b0 = (uintptr_t)b->data, b1 = b0 + lisa_tensor_nbytes(b);
    return a0 < b1 && b0 < a1 && a1 > a0 && b1 > b0;
}

static lisa_status need3(const char *op, const char *what, const lisa_tensor *t) {
    char s[96];
    if (!t) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: %s is required", op, what);
    if (t->n_dims != 3 || !lisa_tensor_is_contiguous(t))
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s %s must be a contiguous [N, T, C]", op, what,
                         lisa_tensor_shape_str(t, s, sizeof s));
    return LISA_OK;
}

/* w is [rows, cols]; b (optional) has `rows` elements. */
static lisa_status need_w(const char *op, const char *what, const lisa_tensor *w, const lisa_tensor *b, int64_t rows,
                          int64_t cols) {
    char s[96];
    if (!w) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: weight %s is required", op, what);
    if (w->n_dims != 2 || w->shape[0] != rows || w->shape[1] != cols)
        return lisa_fail(LISA_ERR_SHAPE, "%s: weight %s %s, want [%lld, %lld]", op, what,
                         lisa_tensor_shape_str(w, s, sizeof s), (long long)rows, (long long)cols);
    if (b && lisa_tensor_numel(b) != rows)
        return lisa_fail(LISA_ERR_SHAPE, "%s: bias of %s %s, want %lld elements", op, what,
                         lisa_tensor_shape_str(b, s, sizeof s), (long long)rows);
    return LISA_OK;
}

/* pe is NULL or x's shape with a batch of N or 1. */
static lisa_status need_pe(const char *op, const char *what, const lisa_tensor *pe, const lisa_tensor *x, bool *bcast) {
    char s1[96], s2[96];
    *bcast = false;
    if (!pe) return LISA_OK;
    LISA_TRY(need3(op, what, pe));
    if (pe->shape[1] != x->shape[1] || pe->shape[2] != x->shape[2] || (pe->shape[0] != x->shape[0] && pe->shape[0] != 1))
        return lisa_fail(LISA_ERR_SHAPE, "%s: %s %s does not fit its input %s (batch N or 1)", op, what,
                         lisa_tensor_shape_str(pe, s1, sizeof s1), lisa_tensor_shape_str(x, s2, sizeof s2));
    *bcast = pe->shape[0] == 1 && x->shape[0] != 1;
    return LISA_OK;
}

lisa_status lisa_twoway_attention_check(lisa_twoway_dims *d, const lisa_tensor *y, const lisa_tensor *xq,
                                        const lisa_tensor *qpe, const lisa_tensor *xk, const lisa_tensor *kpe,
                                        const lisa_tensor *xv, const lisa_twoway_attn *a, const lisa_tensor *g,
                                        const lisa_tensor *b) {
    const char *op = "twoway_attention";
    char s1[96], s2[96];
    memset(d, 0, sizeof *d);
    if (!a) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: the attention weights are required", op);
    LISA_TRY(need3(op, "y", y));
    LISA_TRY(need3(op, "xq", xq));
    LISA_TRY(need3(op, "xk", xk));
    LISA_TRY(need3(op, "xv", xv));
    if (!lisa_tensor_same_shape(y, xq) || !lisa_tensor_same_shape(xk, xv) || xk->shape[0] != xq->shape[0] ||
        xk->shape[2] != xq->shape[2])
        return lisa_fail(LISA_ERR_SHAPE, "%s: xq %s and xk %s (= xv, y = xq) must share N and C", op,
                         lisa_tensor_shape_str(xq, s1, sizeof s1), lisa_tensor_shape_str(xk, s2, sizeof s2));
    LISA_TRY(need_pe(op, "qpe", qpe, xq, &d->qpe_bcast));
    LISA_TRY(need_pe(op, "kpe", kpe, xk, &d->kpe_bcast));
    d->N = xq->shape[0], d->Tq = xq->shape[1], d->Tk = xk->shape[1], d->C = xq->shape[2];
    if (!a->q_w) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: weight q_w is required", op);
    d->Ci = a->q_w->n_dims == 2 ? a->q_w->shape[0] : 0;
    if (a->heads <= 0 || d->Ci <= 0 || d->Ci % a->heads != 0)
        return lisa_fail(LISA_ERR_SHAPE, "%s: internal dim %lld does not split into %d heads", op, (long long)d->Ci,
                         a->heads);
    d->H = a->heads, d->D = d->Ci / a->heads;
    LISA_TRY(need_w(op, "q_w", a->q_w, a->q_b, d->Ci, d->C));
    LISA_TRY(need_w(op, "k_w", a->k_w, a->k_b, d->Ci, d->C));
    LISA_TRY(need_w(op, "v_w", a->v_w, a->v_b, d->Ci, d->C));
    LISA_TRY(need_w(op, "out_w", a->out_w, a->out_b, d->C, d->Ci));
    if ((g && lisa_tensor_numel(g) != d->C) || (b && lisa_tensor_numel(b) != d->C))
        return lisa_fail(LISA_ERR_SHAPE, "%s: the norm's g / b must have C = %lld elements", op, (long long)d->C);
    const lisa_tensor *ins[5] = {xq, qpe, xk, kpe, xv};
    static const char *const names[5] = {"xq", "qpe", "xk", "kpe", "xv"};
    for (int i = 0; i < 5; i++)
        if (spans_overlap(y, ins[i])) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: y overlaps %s", op, names[i]);
    return LISA_OK;
}

size_t lisa_twoway_attention_tmp_bytes(const lisa_twoway_dims *d, bool has_qpe, bool has_kpe, bool residual,
                                       lisa_dtype dt) {
    const size_t es = lisa_dtype_size(dt);
    const size_t q_c = (size_t)(d->N * d->Tq * d->C) * es, k_c = (size_t)(d->N * d->Tk * d->C) * es;
    const size_t q_i = (size_t)(d->N * d->Tq * d->Ci) * es, k_i = (size_t)(d->N * d->Tk * d->Ci) * es;
    return (has_qpe ? ALIGN_UP(q_c) : 0) + (has_kpe ? ALIGN_UP(k_c) : 0) + 2 * ALIGN_UP(q_i) + 2 * ALIGN_UP(k_i) +
           ALIGN_UP(q_c) + (residual ? ALIGN_UP(q_c) : 0);
}

/* A contiguous temporary of tmp's backend carved from *cursor. */
static lisa_tensor carve(char **cursor, lisa_dtype dt, const lisa_tensor *like, int32_t n_dims, int64_t d0, int64_t d1,
                         int64_t d2, int64_t d3) {
    lisa_tensor t = lisa_tensor_view4(*cursor, dt, n_dims, d0, d1, d2, d3);
    t.device = like->device;
    t.device_id = like->device_id;
    *cursor += ALIGN_UP(lisa_tensor_nbytes(&t));
    return t;
}

lisa_status lisa_compose_twoway_attention(lisa_backend *be, void *tmp, lisa_dtype dt, lisa_tensor *y,
                                          const lisa_tensor *xq, const lisa_tensor *qpe, const lisa_tensor *xk,
                                          const lisa_tensor *kpe, const lisa_tensor *xv, const lisa_twoway_attn *a,
                                          bool residual, const lisa_tensor *g, const lisa_tensor *b, float eps) {
    lisa_twoway_dims d;
    LISA_TRY(lisa_twoway_attention_check(&d, y, xq, qpe, xk, kpe, xv, a, g, b));
    const int64_t N = d.N, Tq = d.Tq, Tk = d.Tk, C = d.C, Ci = d.Ci, H = d.H, D = d.D;
    char *cur = tmp;
    /* the order of the old graph (models/sam_decoder.c dec_attention): q+pe, k+pe, then the
     * projections, attention, output projection, residual + norm */
    lisa_tensor tq = *xq, tk = *xk;
    if (qpe) {
        tq = carve(&cur, dt, y, 3, N, Tq, C, 0);
        LISA_TRY(lisa_op_add(be, &tq, xq, qpe));
    }
    if (kpe) {
        tk = carve(&cur, dt, y, 3, N, Tk, C, 0);
        LISA_TRY(lisa_op_add(be, &tk, xk, kpe));
    }
    lisa_tensor Q = carve(&cur, dt, y, 3, N, Tq, Ci, 0), K = carve(&cur, dt, y, 3, N, Tk, Ci, 0);
    lisa_tensor V = carve(&cur, dt, y, 3, N, Tk, Ci, 0), O = carve(&cur, dt, y, 4, N, Tq, H, D);
    lisa_tensor A = carve(&cur, dt, y, 3, N, Tq, C, 0);
    LISA_TRY(lisa_op_linear(be, &Q, &tq, a->q_w, a->q_b));
    LISA_TRY(lisa_op_linear(be, &K, &tk, a->k_w, a->k_b));
    LISA_TRY(lisa_op_linear(be, &V, xv, a->v_w, a->v_b));
    lisa_tensor Q4 = lisa_tensor_view4(Q.data, dt, 4, N, Tq, H, D), K4 = lisa_tensor_view4(K.data, dt, 4, N, Tk, H, D);
    lisa_tensor V4 = lisa_tensor_view4(V.data, dt, 4, N, Tk, H, D), O3 = lisa_tensor_view4(O.data, dt, 3, N, Tq, Ci, 0);
    Q4.device = K4.device = V4.device = O3.device = y->device;
    Q4.device_id = K4.device_id = V4.device_id = O3.device_id = y->device_id;
    const lisa_attn_params p = {.scale = 1.0f / sqrtf((float)D)};
    LISA_TRY(lisa_op_attention(be, &O, &Q4, &K4, &V4, &p));
    LISA_TRY(lisa_op_linear(be, &A, &O3, a->out_w, a->out_b));
    if (!residual) return lisa_op_layernorm(be, y, &A, g, b, eps);
    lisa_tensor sum = carve(&cur, dt, y, 3, N, Tq, C, 0);
    return lisa_op_add_layernorm(be, &sum, y, xq, &A, g, b, eps);
}

lisa_status lisa_twoway_mlp_check(int64_t *R, int64_t *C, int64_t *Hm, const lisa_tensor *y, const lisa_tensor *x,
                                  const lisa_tensor *w1, const lisa_tensor *b1, const lisa_tensor *w2,
                                  const lisa_tensor *b2, const lisa_tensor *g, const lisa_tensor *b) {
    const char *op = "twoway_mlp";
    char s1[96], s2[96];
    *R = *C = *Hm = 0;
    if (!y || !x) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: x and y are required", op);
    if (x->n_dims < 1 || !lisa_tensor_same_shape(x, y) || !lisa_tensor_is_contiguous(x) || !lisa_tensor_is_contiguous(y))
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s and y %s must be contiguous and of one shape", op,
                         lisa_tensor_shape_str(x, s1, sizeof s1), lisa_tensor_shape_str(y, s2, sizeof s2));
    *C = x->shape[x->n_dims - 1];
    *R = *C ? lisa_tensor_numel(x) / *C : 0;
    *Hm = w1 && w1->n_dims == 2 ? w1->shape[0] : 0;
    LISA_TRY(need_w(op, "w1", w1, b1, *Hm, *C));
    LISA_TRY(need_w(op, "w2", w2, b2, *C, *Hm));
    if ((g && lisa_tensor_numel(g) != *C) || (b && lisa_tensor_numel(b) != *C))
        return lisa_fail(LISA_ERR_SHAPE, "%s: the norm's g / b must have C = %lld elements", op, (long long)*C);
    if (spans_overlap(y, x)) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: y overlaps x", op);
    return LISA_OK;
}

size_t lisa_twoway_mlp_tmp_bytes(int64_t R, int64_t C, int64_t Hm, lisa_dtype dt) {
    const size_t es = lisa_dtype_size(dt);
    return ALIGN_UP((size_t)(R * Hm) * es) + 2 * ALIGN_UP((size_t)(R * C) * es);
}

lisa_status lisa_compose_twoway_mlp(lisa_backend *be, void *tmp, lisa_dtype dt, lisa_tensor *y, const lisa_tensor *x,
                                    const lisa_tensor *w1, const lisa_tensor *b1, const lisa_tensor *w2,
                                    const lisa_tensor *b2, const lisa_tensor *g, const lisa_tensor *b, float eps) {
    int64_t R, C, Hm;
    LISA_TRY(lisa_twoway_mlp_check(&R, &C, &Hm, y, x, w1, b1, w2, b2, g, b));
    char *cur = tmp;
    /* hidden and output keep x's leading dims (the old graph's shapes) */
    lisa_tensor h = *x, m = *x, sum = *x;
    h.shape[x->n_dims - 1] = Hm;
    h = lisa_tensor_view(cur, dt, x->n_dims, h.shape);
    h.device = y->device, h.device_id = y->device_id;
    cur += ALIGN_UP(lisa_tensor_nbytes(&h));
    m = lisa_tensor_view(cur, dt, x->n_dims, x->shape);
    m.device = y->device, m.device_id = y->device_id;
    cur += ALIGN_UP(lisa_tensor_nbytes(&m));
    sum = lisa_tensor_view(cur, dt, x->n_dims, x->shape);
    sum.device = y->device, sum.device_id = y->device_id;
    LISA_TRY(lisa_op_linear_ex(be, &h, x, w1, b1, NULL, LISA_ACT_RELU));
    LISA_TRY(lisa_op_linear(be, &m, &h, w2, b2));
    return lisa_op_add_layernorm(be, &sum, y, x, &m, g, b, eps);
}

lisa_status lisa_mlp3_check(int64_t *R, int64_t *C, int64_t *H0, int64_t *H1, int64_t *O, const lisa_tensor *y,
                            const lisa_tensor *x, const lisa_tensor *w0, const lisa_tensor *b0, const lisa_tensor *w1,
                            const lisa_tensor *b1, const lisa_tensor *w2, const lisa_tensor *b2) {
    const char *op = "mlp3";
    char s1[96], s2[96];
    *R = *C = *H0 = *H1 = *O = 0;
    if (!y || !x || !w0 || !w1 || !w2) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: y, x and the three weights are required", op);
    if (x->n_dims < 1 || y->n_dims != x->n_dims || !lisa_tensor_is_contiguous(y))
        return lisa_fail(LISA_ERR_SHAPE, "%s: x %s and y %s: need y contiguous with x's rank", op,
                         lisa_tensor_shape_str(x, s1, sizeof s1), lisa_tensor_shape_str(y, s2, sizeof s2));
    *C = x->shape[x->n_dims - 1];
    *R = *C ? lisa_tensor_numel(x) / *C : 0;
    *H0 = w0->n_dims == 2 ? w0->shape[0] : 0, *H1 = w1->n_dims == 2 ? w1->shape[0] : 0;
    *O = w2->n_dims == 2 ? w2->shape[0] : 0;
    LISA_TRY(need_w(op, "w0", w0, b0, *H0, *C));
    LISA_TRY(need_w(op, "w1", w1, b1, *H1, *H0));
    LISA_TRY(need_w(op, "w2", w2, b2, *O, *H1));
    bool lead = true;
    for (int d = 0; d < x->n_dims - 1; d++) lead &= x->shape[d] == y->shape[d];
    if (!lead || y->shape[y->n_dims - 1] != *O)
        return lisa_fail(LISA_ERR_SHAPE, "%s: y %s must be x's %s with its last dim %lld", op,
                         lisa_tensor_shape_str(y, s1, sizeof s1), lisa_tensor_shape_str(x, s2, sizeof s2), (long long)*O);
    return LISA_OK;
}

size_t lisa_mlp3_tmp_bytes(int64_t R, int64_t C, int64_t H0, int64_t H1, lisa_dtype dt) {
    const size_t es = lisa_dtype_size(dt);
    return ALIGN_UP((size_t)(R * C) * es) + ALIGN_UP((size_t)(R * H0) * es) + ALIGN_UP((size_t)(R * H1) * es);
}

lisa_status lisa_compose_mlp3(lisa_backend *be, void *tmp, lisa_dtype dt, lisa_tensor *y, const lisa_tensor *x,
                              const lisa_tensor *w0, const lisa_tensor *b0, const lisa_tensor *w1, const lisa_tensor *b1,
                              const lisa_tensor *w2, const lisa_tensor *b2) {
    int64_t R, C, H0, H1, O;
    LISA_TRY(lisa_mlp3_check(&R, &C, &H0, &H1, &O, y, x, w0, b0, w1, b1, w2, b2));
    char *cur = tmp;
    /* the old graph's shapes: x's leading dims, last dim C / H0 / H1 (models/sam_decoder.c dec_mlp3) */
    lisa_tensor t = lisa_tensor_view(cur, dt, x->n_dims, x->shape), h0, h1;
    t.device = y->device, t.device_id = y->device_id;
    cur += ALIGN_UP(lisa_tensor_nbytes(&t));
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->n_dims - 1] = H0;
    h0 = lisa_tensor_view(cur, dt, x->n_dims, shape);
    h0.device = y->device, h0.device_id = y->device_id;
    cur += ALIGN_UP(lisa_tensor_nbytes(&h0));
    shape[x->n_dims - 1] = H1;
    h1 = lisa_tensor_view(cur, dt, x->n_dims, shape);
    h1.device = y->device, h1.device_id = y->device_id;
    LISA_TRY(lisa_op_copy(be, &t, x));
    LISA_TRY(lisa_op_linear_ex(be, &h0, &t, w0, b0, NULL, LISA_ACT_RELU));
    LISA_TRY(lisa_op_linear_ex(be, &h1, &h0, w1, b1, NULL, LISA_ACT_RELU));
    return lisa_op_linear(be, y, &h1, w2, b2);
}
