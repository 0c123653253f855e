/* models/graph.c — graph helpers: output allocation, shape inference, checked op dispatch. */
#include "models/graph.h"

#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void lisa_graph_init(lisa_graph *g, lisa_backend *be, lisa_arena *act, lisa_arena *meta, lisa_dtype act_dtype) {
    memset(g, 0, sizeof *g);
    g->be = be;
    g->act = act;
    g->meta = meta;
    g->act_dtype = act_dtype;
    g->status = LISA_OK;
    g->error_tensor = lisa_tensor_view(NULL, act_dtype, 0, NULL);
}

T *lisa_g_fail(lisa_graph *g, lisa_status s) {
    if (g->status == LISA_OK) g->status = s;
    return &g->error_tensor;
}

lisa_graph_mark lisa_g_mark(const lisa_graph *g) {
    lisa_graph_mark m = {lisa_arena_mark(g->act), lisa_arena_mark(g->meta)};
    return m;
}

void lisa_g_tap(lisa_graph *g, const T *t, const char *fmt, ...) {
    if (!g->tap || !g_ok(g) || g_measuring(g)) return;
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    g->tap(g->tap_ctx, name, t);
}

void lisa_g_reset(lisa_graph *g, lisa_graph_mark m) {
    lisa_arena_reset(g->act, m.act);
    lisa_arena_reset(g->meta, m.meta);
}

/* Runs an op unless the graph already failed or only measures. */
#define G_RUN(g, call)                                                                             \
    do {                                                                                           \
        if (g_ok(g) && !g_measuring(g)) {                                                          \
            lisa_status g_run_s_ = (call);                                                         \
            if (g_run_s_ != LISA_OK) lisa_g_fail(g, g_run_s_);                                          \
        }                                                                                          \
    } while (0)

#define G_LIVE(g)                                                                                  \
    do {                                                                                           \
        if (!g_ok(g)) return &(g)->error_tensor;                                                   \
    } while (0)

static T *new_desc(lisa_graph *g) {
    void *p = NULL;
    lisa_status s = lisa_arena_alloc(g->meta, sizeof(T), &p);
    if (s != LISA_OK) return lisa_g_fail(g, s);
    LISA_ASSERT(p != NULL); /* the descriptor arena is host memory and never measuring */
    return p;
}

static T *alloc_shape(lisa_graph *g, lisa_dtype dt, int32_t n_dims, const int64_t *shape) {
    G_LIVE(g);
    T *t = new_desc(g);
    G_LIVE(g);
    *t = lisa_tensor_view(NULL, dt, n_dims, shape);
    t->device = g->be->device;
    t->device_id = g->be->device_id;
    void *data = NULL;
    lisa_status s = lisa_arena_alloc(g->act, lisa_tensor_nbytes(t), &data);
    if (s != LISA_OK) return lisa_g_fail(g, s);
    t->data = data;
    return t;
}

T *lisa_g_new(lisa_graph *g, lisa_dtype dt, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    for (int i = 0; i < n_dims; i++)
        if (shape[i] < 0) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "graph: negative dimension %lld", (long long)shape[i]));
    return alloc_shape(g, dt, n_dims, shape);
}

T *lisa_g_new_like(lisa_graph *g, const T *x) {
    G_LIVE(g);
    return alloc_shape(g, g->act_dtype, x->n_dims, x->shape);
}

T *lisa_g_wrap(lisa_graph *g, const T *x) {
    G_LIVE(g);
    T *t = new_desc(g);
    G_LIVE(g);
    *t = *x;
    t->owner = false;
    return t;
}

T *lisa_g_reshape(lisa_graph *g, const T *x, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    G_LIVE(g);
    const int64_t shape[4] = {d0, d1, d2, d3};
    T *t = new_desc(g);
    G_LIVE(g);
    lisa_status s = lisa_tensor_reshape(t, x, n_dims, shape);
    if (s != LISA_OK) return lisa_g_fail(g, s);
    t->device = x->device;
    return t;
}

T *lisa_g_permute(lisa_graph *g, const T *x, int32_t p0, int32_t p1, int32_t p2, int32_t p3) {
    G_LIVE(g);
    const int32_t perm[4] = {p0, p1, p2, p3};
    T *t = new_desc(g);
    G_LIVE(g);
    lisa_status s = lisa_tensor_permute(t, x, perm);
    if (s != LISA_OK) return lisa_g_fail(g, s);
    return t;
}

T *lisa_g_narrow(lisa_graph *g, const T *x, int32_t dim, int64_t start, int64_t len) {
    G_LIVE(g);
    T *t = new_desc(g);
    G_LIVE(g);
    lisa_status s = lisa_tensor_narrow(t, x, dim, start, len);
    if (s != LISA_OK) return lisa_g_fail(g, s);
    return t;
}

T *lisa_g_cast(lisa_graph *g, const T *x, lisa_dtype dt) {
    G_LIVE(g);
    T *y = alloc_shape(g, dt, x->n_dims, x->shape);
    G_RUN(g, lisa_op_copy(g->be, y, x));
    return y;
}

T *lisa_g_contiguous(lisa_graph *g, const T *x) {
    G_LIVE(g);
    return lisa_g_cast(g, x, x->dtype);
}

void lisa_g_copy_to(lisa_graph *g, T *y, const T *x) { G_RUN(g, lisa_op_copy(g->be, y, x)); }

static bool is_float_dtype(lisa_dtype t) {
    return t == LISA_DTYPE_F32 || t == LISA_DTYPE_BF16 || t == LISA_DTYPE_F16;
}

T *lisa_g_upload(lisa_graph *g, const T *host) {
    G_LIVE(g);
    /* float inputs enter the graph in its activation dtype (spec §8: "f32 preprocessing -> bf16") */
    const bool cast = is_float_dtype(host->dtype) && host->dtype != g->act_dtype;
    if (g->be->device == LISA_DEVICE_CPU) return cast ? lisa_g_cast(g, host, g->act_dtype) : lisa_g_wrap(g, host);
    if (!lisa_tensor_is_contiguous(host))
        return lisa_g_fail(g, lisa_fail(LISA_ERR_INVALID_ARG, "upload: host tensor must be contiguous"));
    T *t = alloc_shape(g, host->dtype, host->n_dims, host->shape);
    G_RUN(g, g->be->upload(g->be, t->data, host->data, lisa_tensor_nbytes(host)));
    return cast ? lisa_g_cast(g, t, g->act_dtype) : t;
}

void lisa_g_download(lisa_graph *g, T *host_dst, const T *x) {
    if (!g_ok(g)) return;
    if (g->be->device == LISA_DEVICE_CPU) {
        G_RUN(g, lisa_op_copy(g->be, host_dst, x));
        return;
    }
    if (!lisa_tensor_is_contiguous(host_dst)) {
        lisa_g_fail(g, lisa_fail(LISA_ERR_INVALID_ARG, "download: host tensor must be contiguous"));
        return;
    }
    T *tmp = lisa_g_cast(g, x, host_dst->dtype);
    G_RUN(g, g->be->download(g->be, host_dst->data, tmp->data, lisa_tensor_nbytes(host_dst)));
}

/* ---- ops ----------------------------------------------------------------------------------- */

static T *like_with_last(lisa_graph *g, const T *x, int64_t last) {
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof shape);
    if (x->n_dims == 0) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "graph: scalar input where a vector is needed"));
    shape[x->n_dims - 1] = last;
    return alloc_shape(g, g->act_dtype, x->n_dims, shape);
}

/* One LINEAR_EX (LINEAR when plain), or one per row group (see lisa_graph.row_indptr): the CPU
 * backend's GEMM rows then see only their own group, whatever else is in the batch. */
static lisa_status linear_grouped(lisa_graph *g, T *y, const T *x, const T *w, const T *b, const T *res, lisa_act act) {
    const int64_t K = x->shape[x->n_dims - 1], N = y->shape[y->n_dims - 1];
    const int64_t R = K ? lisa_tensor_numel(x) / K : 0;
    const int32_t *ip = g->row_indptr;
    const bool plain = !res && act == LISA_ACT_NONE;
    const bool by_indptr = ip && g->n_row_groups > 0 && R == ip[g->n_row_groups];
    const bool by_split = !by_indptr && g->row_split > 1 && R % g->row_split == 0;
    if ((!by_indptr && !by_split) || !lisa_tensor_is_contiguous(x) || !lisa_tensor_is_contiguous(y) ||
        (res && !lisa_tensor_is_contiguous(res)))
        return plain ? lisa_op_linear(g->be, y, x, w, b) : lisa_op_linear_ex(g->be, y, x, w, b, res, act);
    const int32_t n = by_indptr ? g->n_row_groups : g->row_split;
    lisa_tensor x2 = lisa_tensor_view(x->data, x->dtype, 2, (int64_t[]){R, K});
    lisa_tensor y2 = lisa_tensor_view(y->data, y->dtype, 2, (int64_t[]){R, N});
    lisa_tensor r2 = lisa_tensor_view(res ? res->data : NULL, res ? res->dtype : y->dtype, 2, (int64_t[]){R, N});
    x2.device = y2.device = r2.device = x->device;
    x2.device_id = y2.device_id = r2.device_id = x->device_id;
    for (int32_t i = 0; i < n; i++) {
        const int64_t r0 = by_indptr ? ip[i] : (R / n) * i, r1 = by_indptr ? ip[i + 1] : (R / n) * (i + 1);
        if (r1 == r0) continue;
        lisa_tensor xs, ys, rs;
        LISA_TRY(lisa_tensor_narrow(&xs, &x2, 0, r0, r1 - r0));
        LISA_TRY(lisa_tensor_narrow(&ys, &y2, 0, r0, r1 - r0));
        LISA_TRY(lisa_tensor_narrow(&rs, &r2, 0, r0, r1 - r0));
        LISA_TRY(plain ? lisa_op_linear(g->be, &ys, &xs, w, b)
                       : lisa_op_linear_ex(g->be, &ys, &xs, w, b, res ? &rs : NULL, act));
    }
    return LISA_OK;
}

T *lisa_g_linear(lisa_graph *g, const T *x, const T *w, const T *b) {
    return lisa_g_linear_ex(g, x, w, b, NULL, LISA_ACT_NONE);
}

void lisa_g_linear_to(lisa_graph *g, T *y, const T *x, const T *w, const T *b) {
    G_RUN(g, linear_grouped(g, y, x, w, b, NULL, LISA_ACT_NONE));
}

T *lisa_g_linear_ex(lisa_graph *g, const T *x, const T *w, const T *b, const T *residual, lisa_act act) {
    G_LIVE(g);
    if (w->n_dims != 2) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "linear: weight must be 2-D"));
    T *y = like_with_last(g, x, w->shape[0]);
    G_RUN(g, linear_grouped(g, y, x, w, b, residual, act));
    return y;
}

void lisa_g_linear_ex_to(lisa_graph *g, T *y, const T *x, const T *w, const T *b, const T *residual, lisa_act act) {
    G_RUN(g, linear_grouped(g, y, x, w, b, residual, act));
}

T *lisa_g_twoway_attention(lisa_graph *g, const T *xq, const T *qpe, const T *xk, const T *kpe, const T *xv,
                           const lisa_twoway_attn *a, bool residual, const T *norm_w, const T *norm_b, float eps) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, xq);
    G_RUN(g, lisa_op_twoway_attention(g->be, y, xq, qpe, xk, kpe, xv, a, residual, norm_w, norm_b, eps));
    return y;
}

T *lisa_g_twoway_mlp(lisa_graph *g, const T *x, const T *w1, const T *b1, const T *w2, const T *b2, const T *norm_w,
                     const T *norm_b, float eps) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_twoway_mlp(g->be, y, x, w1, b1, w2, b2, norm_w, norm_b, eps));
    return y;
}

T *lisa_g_mlp3(lisa_graph *g, const T *x, const T w[3], const T b[3]) {
    G_LIVE(g);
    if (w[2].n_dims != 2) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "mlp3: the last weight must be 2-D"));
    T *y = like_with_last(g, x, w[2].shape[0]);
    G_RUN(g, lisa_op_mlp3(g->be, y, x, &w[0], &b[0], &w[1], &b[1], &w[2], &b[2]));
    return y;
}

void lisa_g_matmul_to(lisa_graph *g, T *y, const T *a, const T *b, bool trans_b) {
    G_RUN(g, lisa_op_matmul(g->be, y, a, b, trans_b));
}

T *lisa_g_matmul(lisa_graph *g, const T *a, const T *b, bool trans_b) {
    G_LIVE(g);
    if (a->n_dims < 2 || b->n_dims < 2 || a->n_dims > 3 || b->n_dims > 3)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "matmul: operands must be 2-D or 3-D"));
    int64_t m = a->shape[a->n_dims - 2];
    int64_t n = trans_b ? b->shape[b->n_dims - 2] : b->shape[b->n_dims - 1];
    int64_t ba = a->n_dims == 3 ? a->shape[0] : 1, bb = b->n_dims == 3 ? b->shape[0] : 1;
    int32_t nd = (a->n_dims == 3 || b->n_dims == 3) ? 3 : 2;
    const int64_t shape3[3] = {ba > bb ? ba : bb, m, n}, shape2[2] = {m, n};
    T *y = alloc_shape(g, g->act_dtype, nd, nd == 3 ? shape3 : shape2);
    G_RUN(g, lisa_op_matmul(g->be, y, a, b, trans_b));
    return y;
}

T *lisa_g_add(lisa_graph *g, const T *a, const T *b) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, a);
    G_RUN(g, lisa_op_add(g->be, y, a, b));
    return y;
}

void lisa_g_add_to(lisa_graph *g, T *y, const T *a, const T *b) { G_RUN(g, lisa_op_add(g->be, y, a, b)); }

T *lisa_g_mul(lisa_graph *g, const T *a, const T *b) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, a);
    G_RUN(g, lisa_op_mul(g->be, y, a, b));
    return y;
}

T *lisa_g_scale(lisa_graph *g, const T *x, float s, float c) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_scale(g->be, y, x, s, c));
    return y;
}

T *lisa_g_layernorm(lisa_graph *g, const T *x, const T *w, const T *b, float eps) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_layernorm(g->be, y, x, w, b, eps));
    return y;
}

void lisa_g_layernorm_to(lisa_graph *g, T *y, const T *x, const T *w, const T *b, float eps) {
    G_RUN(g, lisa_op_layernorm(g->be, y, x, w, b, eps));
}

T *lisa_g_layernorm2d(lisa_graph *g, const T *x, const T *w, const T *b, float eps) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_layernorm2d(g->be, y, x, w, b, eps));
    return y;
}

void lisa_g_rmsnorm_to(lisa_graph *g, T *y, const T *x, const T *w, float eps) {
    G_RUN(g, lisa_op_rmsnorm(g->be, y, x, w, eps));
}

T *lisa_g_split_heads(lisa_graph *g, const T *x, int64_t col0, int64_t heads, int64_t head_dim) {
    G_LIVE(g);
    if (x->n_dims != 2 || x->stride[1] != 1 || col0 < 0 || col0 + heads * head_dim > x->shape[1])
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "split_heads: columns %lld + %lld x %lld of a [R, N] matrix",
                                        (long long)col0, (long long)heads, (long long)head_dim));
    T *v = lisa_g_narrow(g, x, 1, col0, heads * head_dim); /* [R, heads·D], x's row stride */
    if (!g_ok(g)) return v;
    const int64_t rs = v->stride[0];
    v->n_dims = 3;
    v->shape[1] = heads, v->shape[2] = head_dim, v->shape[3] = 1;
    v->stride[0] = rs, v->stride[1] = head_dim, v->stride[2] = 1, v->stride[3] = 1;
    return v;
}

T *lisa_g_rmsnorm(lisa_graph *g, const T *x, const T *w, float eps) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_rmsnorm(g->be, y, x, w, eps));
    return y;
}

T *lisa_g_add_rmsnorm(lisa_graph *g, T *sum, T *y, const T *x, const T *r, const T *w, float eps) {
    G_LIVE(g);
    if (!sum) sum = lisa_g_new_like(g, x);
    if (!y) y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_add_rmsnorm(g->be, sum, y, x, r, w, eps));
    return y;
}

T *lisa_g_add_layernorm(lisa_graph *g, T *sum, T *y, const T *x, const T *r, const T *w, const T *b, float eps) {
    G_LIVE(g);
    if (!sum) sum = lisa_g_new_like(g, x);
    if (!y) y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_add_layernorm(g->be, sum, y, x, r, w, b, eps));
    return y;
}

#define UNARY_HELPER(fn, op)                                                                       \
    T *fn(lisa_graph *g, const T *x) {                                                             \
        G_LIVE(g);                                                                                 \
        T *y = lisa_g_new_like(g, x);                                                                   \
        G_RUN(g, op(g->be, y, x));                                                                 \
        return y;                                                                                  \
    }
UNARY_HELPER(lisa_g_softmax, lisa_op_softmax)
UNARY_HELPER(lisa_g_gelu, lisa_op_gelu)
UNARY_HELPER(lisa_g_quick_gelu, lisa_op_quick_gelu)
UNARY_HELPER(lisa_g_relu, lisa_op_relu)

T *lisa_g_silu_mul(lisa_graph *g, const T *gate, const T *up) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, gate);
    G_RUN(g, lisa_op_silu_mul(g->be, y, gate, up));
    return y;
}

T *lisa_g_rope(lisa_graph *g, const T *x, const T *pos, float theta) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, x);
    G_RUN(g, lisa_op_rope(g->be, y, x, pos, theta));
    return y;
}

void lisa_g_rope_qk(lisa_graph *g, T *q, T *k, const T *pos, const T *cos_sin) {
    G_RUN(g, lisa_op_rope_qk(g->be, q, k, pos, cos_sin));
}

void lisa_g_rope_qk_kv_append(lisa_graph *g, T *q, T *k, const T *v, const T *pos, const T *cos_sin, T *k_pages,
                              T *v_pages, const T *slots) {
    G_RUN(g, lisa_op_rope_qk_kv_append(g->be, q, k, v, pos, cos_sin, k_pages, v_pages, slots));
}

T *lisa_g_attention(lisa_graph *g, const T *q, const T *k, const T *v, const lisa_attn_params *p) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, q);
    G_RUN(g, lisa_op_attention(g->be, y, q, k, v, p));
    return y;
}

T *lisa_g_attention_relpos(lisa_graph *g, const T *q, const T *k, const T *v, const T *rel_pos_h, const T *rel_pos_w,
                          int32_t q_h, int32_t q_w, float scale) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, q);
    G_RUN(g, lisa_op_attention_relpos(g->be, y, q, k, v, rel_pos_h, rel_pos_w, q_h, q_w, scale));
    return y;
}

void lisa_g_kv_append(lisa_graph *g, T *k_pages, T *v_pages, const T *k, const T *v, const T *slots) {
    G_RUN(g, lisa_op_kv_append(g->be, k_pages, v_pages, k, v, slots));
}

T *lisa_g_paged_attention(lisa_graph *g, const T *q, const T *k_pages, const T *v_pages, const lisa_paged_params *p) {
    G_LIVE(g);
    T *y = lisa_g_new_like(g, q);
    G_RUN(g, lisa_op_paged_attention(g->be, y, q, k_pages, v_pages, p));
    return y;
}

T *lisa_g_window_partition(lisa_graph *g, const T *x, int32_t window) {
    G_LIVE(g);
    if (x->n_dims != 4 || window <= 0)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "window_partition: x must be [B, H, W, C], window > 0"));
    int64_t nh = (x->shape[1] + window - 1) / window, nw = (x->shape[2] + window - 1) / window;
    T *y = lisa_g_new(g, g->act_dtype, 4, x->shape[0] * nh * nw, window, window, x->shape[3]);
    G_RUN(g, lisa_op_window_partition(g->be, y, x, window));
    return y;
}

T *lisa_g_window_unpartition(lisa_graph *g, const T *x, int32_t window, int64_t h, int64_t w) {
    G_LIVE(g);
    int64_t nh = (h + window - 1) / window, nw = (w + window - 1) / window;
    if (x->n_dims != 4 || window <= 0 || x->shape[0] % (nh * nw) != 0)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "window_unpartition: x must be [B*%lld, S, S, C]", (long long)(nh * nw)));
    T *y = lisa_g_new(g, g->act_dtype, 4, x->shape[0] / (nh * nw), h, w, x->shape[3]);
    G_RUN(g, lisa_op_window_unpartition(g->be, y, x, window));
    return y;
}

T *lisa_g_layernorm_window_partition(lisa_graph *g, const T *x, const T *w, const T *b, float eps, int32_t window) {
    G_LIVE(g);
    if (x->n_dims != 4 || window <= 0)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "layernorm_window_partition: x must be [B, H, W, C], window > 0"));
    int64_t nh = (x->shape[1] + window - 1) / window, nw = (x->shape[2] + window - 1) / window;
    T *y = lisa_g_new(g, g->act_dtype, 4, x->shape[0] * nh * nw, window, window, x->shape[3]);
    G_RUN(g, lisa_op_layernorm_window_partition(g->be, y, x, w, b, eps, window));
    return y;
}

void lisa_g_window_unpartition_add_to(lisa_graph *g, T *y, const T *x, const T *residual, int32_t window) {
    G_RUN(g, lisa_op_window_unpartition_add(g->be, y, x, residual, window));
}

T *lisa_g_conv2d(lisa_graph *g, const T *x, const T *w, const T *b, int32_t stride, int32_t pad) {
    G_LIVE(g);
    if (x->n_dims != 4 || w->n_dims != 4 || stride <= 0)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "conv2d: x [B,C,H,W] and w [O,C,kh,kw] expected"));
    int64_t ho = (x->shape[2] + 2 * pad - w->shape[2]) / stride + 1;
    int64_t wo = (x->shape[3] + 2 * pad - w->shape[3]) / stride + 1;
    if (ho <= 0 || wo <= 0) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "conv2d: kernel larger than the padded input"));
    T *y = lisa_g_new(g, g->act_dtype, 4, x->shape[0], w->shape[0], ho, wo);
    G_RUN(g, lisa_op_conv2d(g->be, y, x, w, b, stride, pad));
    return y;
}

T *lisa_g_conv_transpose2d_k2s2(lisa_graph *g, const T *x, const T *w, const T *b) {
    G_LIVE(g);
    if (x->n_dims != 4 || w->n_dims != 4)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "conv_transpose2d: x [B,C,H,W] and w [C,O,2,2] expected"));
    T *y = lisa_g_new(g, g->act_dtype, 4, x->shape[0], w->shape[1], 2 * x->shape[2], 2 * x->shape[3]);
    G_RUN(g, lisa_op_conv_transpose2d_k2s2(g->be, y, x, w, b));
    return y;
}

T *lisa_g_bilinear(lisa_graph *g, const T *x, int64_t out_h, int64_t out_w) {
    G_LIVE(g);
    if (x->n_dims < 2) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "bilinear: input needs >= 2 dims"));
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->n_dims - 2] = out_h;
    shape[x->n_dims - 1] = out_w;
    T *y = alloc_shape(g, x->dtype, x->n_dims, shape); /* x's dtype: the mask postprocess is F32 (spec §8) */
    G_RUN(g, lisa_op_bilinear(g->be, y, x));
    return y;
}

T *lisa_g_embedding(lisa_graph *g, const T *table, const T *ids) {
    G_LIVE(g);
    if (table->n_dims != 2 || ids->n_dims != 1)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "embedding: table [V, C] and ids [T] expected"));
    T *y = lisa_g_new(g, g->act_dtype, 2, ids->shape[0], table->shape[1], 0, 0);
    G_RUN(g, lisa_op_embedding(g->be, y, table, ids));
    return y;
}

T *lisa_g_argmax(lisa_graph *g, const T *x) {
    G_LIVE(g);
    if (x->n_dims < 1) return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "argmax: input needs >= 1 dim"));
    int64_t rows = lisa_tensor_numel(x) / (x->shape[x->n_dims - 1] ? x->shape[x->n_dims - 1] : 1);
    T *y = lisa_g_new(g, LISA_DTYPE_I32, 1, rows, 0, 0, 0);
    G_RUN(g, lisa_op_argmax(g->be, y, x));
    return y;
}

lisa_status lisa_graph_measure(lisa_backend *be, lisa_dtype act_dtype, lisa_graph_fn fn, void *ctx, size_t *act_bytes,
                               size_t *meta_bytes) {
    lisa_arena act, meta;
    lisa_arena_init_measure(&act, "activations (measure)");
    LISA_TRY(lisa_arena_init(&meta, "descriptors (measure)", LISA_GRAPH_MEASURE_META_BYTES));
    lisa_graph g;
    lisa_graph_init(&g, be, &act, &meta, act_dtype);
    fn(&g, ctx);
    *act_bytes = act.peak;
    *meta_bytes = meta.peak;
    lisa_arena_free(&meta);
    return g.status;
}

lisa_status lisa_graph_run_in(lisa_backend *be, lisa_dtype act_dtype, lisa_graph_fn fn, void *ctx,
                              void (*tap)(void *tap_ctx, const char *name, const T *t), void *tap_ctx, void **mem,
                              size_t *cap) {
    size_t act_bytes = 0, meta_bytes = 0;
    LISA_TRY(lisa_graph_measure(be, act_dtype, fn, ctx, &act_bytes, &meta_bytes));
    if (!act_bytes) act_bytes = 1;
    if (!*mem || act_bytes > *cap) { /* grows only: a smaller run reuses the buffer */
        if (*mem) be->mem_free(be, *mem);
        *mem = NULL;
        *cap = 0;
        LISA_TRY(be->mem_alloc(be, act_bytes, mem));
        *cap = act_bytes;
    }
    lisa_arena act, meta;
    lisa_arena_init_external(&act, "activations", *mem, act_bytes);
    LISA_TRY(lisa_arena_init(&meta, "descriptors", meta_bytes));
    lisa_graph g;
    lisa_graph_init(&g, be, &act, &meta, act_dtype);
    g.tap = tap;
    g.tap_ctx = tap_ctx;
    fn(&g, ctx);
    lisa_arena_free(&meta);
    return g.status;
}

lisa_status lisa_graph_run_once(lisa_backend *be, lisa_dtype act_dtype, lisa_graph_fn fn, void *ctx,
                                void (*tap)(void *tap_ctx, const char *name, const T *t), void *tap_ctx) {
    void *mem = NULL;
    size_t cap = 0;
    const lisa_status s = lisa_graph_run_in(be, act_dtype, fn, ctx, tap, tap_ctx, &mem, &cap);
    if (mem) be->mem_free(be, mem);
    return s;
}
