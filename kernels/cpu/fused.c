/* kernels/cpu/fused.c — the fused ops of ops.def (LINEAR_EX, ADD_RMSNORM, ADD_LAYERNORM,
 * LAYERNORM_WINDOW_PARTITION, WINDOW_UNPARTITION_ADD, ROPE_QK, ROPE_QK_KV_APPEND, ATTENTION_RELPOS, and
 * TWOWAY_ATTENTION / TWOWAY_MLP / MLP3 through kernels/compose.c) as the compositions of this
 * backend's own ops that ops.def names, so that a model graph calling a fused op gets the very bits
 * of the unfused ops (docs/architecture.md "Numerics": the CPU backend is the reference). ROPE_QK
 * is ROPE's arithmetic on a table of ROPE's own angles (kernels/cpu/rope.c fills both).
 *
 * Temporaries: the ops that need one (a residual GEMM whose output is its residual, the norm or
 * unpartition before a copy) take it per band of rows that the composed ops treat independently
 * (norms and copies are row-wise), from the scratch arena; except LINEAR_EX's, which holds the
 * whole GEMM output: OpenBLAS gives a row different bits depending on the rows of its call
 * (models/graph.h), so the GEMM runs once over the caller's rows, into heap memory (the scratch
 * arena's free space sizes LINEAR's weight-widening blocks, which must not change either); and
 * ATTENTION_RELPOS's rel-pos terms, on the heap per group of batch entries for the same reason
 * (ATTENTION sizes its query blocks, and so its GEMM calls, by the free scratch).
 */
#include "kernels/cpu/cpu.h"

#include "kernels/compose.h"

#include <stdlib.h>
#include <string.h>

static lisa_tensor host_view(void *data, int32_t n_dims, const int64_t *shape) {
    return lisa_tensor_view(data, LISA_DTYPE_F32, n_dims, shape);
}

/* Whether a and b span common bytes (what aliasing rules are about). */
static bool overlaps(const lisa_tensor *a, const lisa_tensor *b) {
    if (!a->data || !b->data || !lisa_tensor_numel(a) || !lisa_tensor_numel(b)) return false;
    return lisa_cpu_check_no_overlap("", "", a, b) != LISA_OK;
}

static lisa_status act_in_place(lisa_backend *be, lisa_tensor *y, lisa_act act) {
    switch (act) {
    case LISA_ACT_NONE: return LISA_OK;
    case LISA_ACT_RELU: return lisa_cpu_relu(be, y, y);
    case LISA_ACT_GELU: return lisa_cpu_gelu(be, y, y);
    case LISA_ACT_QUICK_GELU: return lisa_cpu_quick_gelu(be, y, y);
    }
    return lisa_fail(LISA_ERR_INVALID_ARG, "linear_ex: unknown activation %d", (int)act);
}

lisa_status lisa_cpu_linear_ex(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w,
                               const lisa_tensor *b, const lisa_tensor *residual, lisa_act act) {
    char s1[96], s2[96];
    if ((unsigned)act > LISA_ACT_QUICK_GELU)
        return lisa_fail(LISA_ERR_INVALID_ARG, "linear_ex: unknown activation %d", (int)act);
    if (!residual) {
        LISA_TRY(lisa_cpu_linear(be, y, x, w, b));
        return act_in_place(be, y, act);
    }
    if (act != LISA_ACT_NONE)
        return lisa_fail(LISA_ERR_INVALID_ARG, "linear_ex: a residual cannot follow an activation");
    LISA_TRY(lisa_cpu_check_f32("linear_ex", "residual", residual, false));
    if (!lisa_tensor_same_shape(residual, y))
        return lisa_fail(LISA_ERR_SHAPE, "linear_ex: residual %s does not match y %s",
                         lisa_tensor_shape_str(residual, s1, sizeof s1), lisa_tensor_shape_str(y, s2, sizeof s2));
    if (!overlaps(y, residual)) {
        LISA_TRY(lisa_cpu_linear(be, y, x, w, b));
        return lisa_cpu_add(be, y, residual, y);
    }
    if (!(residual->data == y->data && lisa_tensor_is_contiguous(residual)))
        return lisa_fail(LISA_ERR_INVALID_ARG, "linear_ex: residual partially overlaps y");
    LISA_TRY(lisa_cpu_check_f32("linear_ex", "y", y, true));
    float *tmp = malloc((size_t)(lisa_tensor_numel(y) > 0 ? lisa_tensor_numel(y) : 1) * sizeof(float));
    if (!tmp) return lisa_fail(LISA_ERR_OOM, "linear_ex: out of memory for a %s temporary", lisa_tensor_shape_str(y, s1, sizeof s1));
    lisa_tensor t = host_view(tmp, y->n_dims, y->shape);
    lisa_status s = lisa_cpu_linear(be, &t, x, w, b);
    if (s == LISA_OK) s = lisa_cpu_add(be, y, residual, &t);
    free(tmp);
    return s;
}

lisa_status lisa_cpu_add_rmsnorm(lisa_backend *be, lisa_tensor *sum, lisa_tensor *y, const lisa_tensor *x,
                                 const lisa_tensor *r, const lisa_tensor *g, float eps) {
    if (!sum || !r) return lisa_fail(LISA_ERR_INVALID_ARG, "add_rmsnorm: sum and residual are required");
    if (overlaps(y, sum) || overlaps(y, x) || overlaps(y, r))
        return lisa_fail(LISA_ERR_INVALID_ARG, "add_rmsnorm: y overlaps an input or sum");
    LISA_TRY(lisa_cpu_check_same_shape("add_rmsnorm", sum, x));
    LISA_TRY(lisa_cpu_add(be, sum, x, r));
    return lisa_cpu_rmsnorm(be, y, sum, g, eps);
}

lisa_status lisa_cpu_add_layernorm(lisa_backend *be, lisa_tensor *sum, lisa_tensor *y, const lisa_tensor *x,
                                   const lisa_tensor *r, const lisa_tensor *g, const lisa_tensor *b, float eps) {
    if (!sum || !r) return lisa_fail(LISA_ERR_INVALID_ARG, "add_layernorm: sum and residual are required");
    if (overlaps(y, sum) || overlaps(y, x) || overlaps(y, r))
        return lisa_fail(LISA_ERR_INVALID_ARG, "add_layernorm: y overlaps an input or sum");
    LISA_TRY(lisa_cpu_check_same_shape("add_layernorm", sum, x));
    LISA_TRY(lisa_cpu_add(be, sum, x, r));
    return lisa_cpu_layernorm(be, y, sum, g, b, eps);
}

/* The grid [B, H, W, C] and its windows [B·nh·nw, S, S, C] agree (as WINDOW_PARTITION checks). */
static lisa_status window_shapes(const char *op, const lisa_tensor *grid, const lisa_tensor *wins, int32_t S,
                                 int64_t *nh, int64_t *nw) {
    char s1[96], s2[96];
    if (S <= 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: window size %d must be positive", op, S);
    if (grid->n_dims != 4 || wins->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "%s: grid %s and windows %s must both be 4-D", op,
                         lisa_tensor_shape_str(grid, s1, sizeof s1), lisa_tensor_shape_str(wins, s2, sizeof s2));
    *nh = (grid->shape[1] + S - 1) / S;
    *nw = (grid->shape[2] + S - 1) / S;
    if (wins->shape[0] != grid->shape[0] * *nh * *nw || wins->shape[1] != S || wins->shape[2] != S ||
        wins->shape[3] != grid->shape[3])
        return lisa_fail(LISA_ERR_SHAPE, "%s: windows %s do not tile grid %s with window %d", op,
                         lisa_tensor_shape_str(wins, s1, sizeof s1), lisa_tensor_shape_str(grid, s2, sizeof s2), S);
    return LISA_OK;
}

/* Band (b, wy) of a grid: its rows wy·S .. min(H, (wy+1)·S) of image b, [1, rows, W, C] (a
 * contiguous view of a contiguous grid). */
static lisa_tensor grid_band(const lisa_tensor *grid, int64_t b, int64_t wy, int32_t S) {
    const int64_t H = grid->shape[1], W = grid->shape[2], C = grid->shape[3];
    const int64_t y0 = wy * S, rows = H - y0 < S ? H - y0 : S;
    const int64_t shape[4] = {1, rows, W, C};
    lisa_tensor t = host_view((float *)grid->data + ((b * H + y0) * W) * C, 4, shape);
    return t;
}

/* Windows (b, wy, 0 .. nw) of y [B·nh·nw, S, S, C]: the windows of one band. */
static lisa_tensor band_windows(const lisa_tensor *wins, int64_t b, int64_t wy, int64_t nh, int64_t nw) {
    const int64_t S = wins->shape[1], C = wins->shape[3];
    const int64_t shape[4] = {nw, S, S, C};
    return host_view((float *)wins->data + ((b * nh + wy) * nw) * S * S * C, 4, shape);
}

lisa_status lisa_cpu_layernorm_window_partition(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x,
                                                const lisa_tensor *g, const lisa_tensor *b, float eps, int32_t window) {
    const char *op = "layernorm_window_partition";
    int64_t nh, nw;
    LISA_TRY(lisa_cpu_check_f32(op, "x", x, true));
    LISA_TRY(lisa_cpu_check_f32(op, "y", y, true));
    LISA_TRY(window_shapes(op, x, y, window, &nh, &nw));
    LISA_TRY(lisa_cpu_check_no_overlap(op, "x", y, x));
    const int64_t B = x->shape[0], W = x->shape[2], C = x->shape[3];
    if (lisa_tensor_numel(y) == 0) return LISA_OK;
    /* per band of S grid rows: LAYERNORM into scratch, then WINDOW_PARTITION of the band (the
     * band's windows, zero-padded at the bottom and right as the whole grid's would be) */
    const size_t mark = lisa_arena_mark(&be->scratch);
    float *tmp = NULL;
    lisa_status s = lisa_cpu_scratch_f32(be, op, (int64_t)window * W * C, &tmp);
    for (int64_t bi = 0; s == LISA_OK && bi < B; bi++) {
        for (int64_t wy = 0; s == LISA_OK && wy < nh; wy++) {
            const lisa_tensor band = grid_band(x, bi, wy, window);
            lisa_tensor nb = host_view(tmp, 4, band.shape), wins = band_windows(y, bi, wy, nh, nw);
            s = lisa_cpu_layernorm(be, &nb, &band, g, b, eps);
            if (s == LISA_OK) s = lisa_cpu_window_partition(be, &wins, &nb, window);
        }
    }
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

lisa_status lisa_cpu_window_unpartition_add(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x,
                                            const lisa_tensor *residual, int32_t window) {
    const char *op = "window_unpartition_add";
    int64_t nh, nw;
    if (!residual) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: residual is required", op);
    LISA_TRY(lisa_cpu_check_f32(op, "x", x, true));
    LISA_TRY(lisa_cpu_check_f32(op, "y", y, true));
    LISA_TRY(lisa_cpu_check_f32(op, "residual", residual, true));
    LISA_TRY(lisa_cpu_check_same_shape(op, residual, y));
    LISA_TRY(window_shapes(op, y, x, window, &nh, &nw));
    LISA_TRY(lisa_cpu_check_no_overlap(op, "x", y, x));
    if (residual->data != y->data) LISA_TRY(lisa_cpu_check_no_overlap(op, "residual", y, residual));
    const int64_t B = y->shape[0], W = y->shape[2], C = y->shape[3];
    if (lisa_tensor_numel(y) == 0) return LISA_OK;
    /* per band of S grid rows: WINDOW_UNPARTITION of the band's windows into scratch, then ADD */
    const size_t mark = lisa_arena_mark(&be->scratch);
    float *tmp = NULL;
    lisa_status s = lisa_cpu_scratch_f32(be, op, (int64_t)window * W * C, &tmp);
    for (int64_t bi = 0; s == LISA_OK && bi < B; bi++) {
        for (int64_t wy = 0; s == LISA_OK && wy < nh; wy++) {
            lisa_tensor yb = grid_band(y, bi, wy, window), rb = grid_band(residual, bi, wy, window);
            lisa_tensor ub = host_view(tmp, 4, yb.shape), wins = band_windows(x, bi, wy, nh, nw);
            s = lisa_cpu_window_unpartition(be, &ub, &wins, window);
            if (s == LISA_OK) s = lisa_cpu_add(be, &yb, &rb, &ub);
        }
    }
    lisa_arena_reset(&be->scratch, mark);
    return s;
}

/* ROPE_QK: ROPE's rotation of each (q or k) head with the angles' cos/sin read from the table, which
 * lisa_rope_table fills with the very values ROPE computes per call (kernels/cpu/rope.c shares the
 * code), so the result is ROPE's, bit for bit (tests/test_ops_fused.c). */
static lisa_status rope_slot_check(const lisa_tensor *t, const char *what, int64_t *B, int64_t *T, int64_t *H,
                                   int64_t *D) {
    char s1[96];
    LISA_TRY(lisa_cpu_check_f32("rope_qk", what, t, false));
    if (t->n_dims != 3 && t->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk: %s %s, want [T, H, D] or [B, T, H, D]", what,
                         lisa_tensor_shape_str(t, s1, sizeof s1));
    const int o = t->n_dims - 3;
    *B = o ? t->shape[0] : 1, *T = t->shape[o], *H = t->shape[o + 1], *D = t->shape[o + 2];
    if (*D % 2 || (*D > 1 && t->stride[o + 2] != 1))
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk: %s %s needs an even, contiguous head dim", what,
                         lisa_tensor_shape_str(t, s1, sizeof s1));
    return LISA_OK;
}

static void rope_rows(lisa_backend *be, lisa_tensor *t, const int32_t *pd, bool pos_batched, const float *cs) {
    const int o = t->n_dims - 3;
    const int64_t B = o ? t->shape[0] : 1, T = t->shape[o], H = t->shape[o + 1], D = t->shape[o + 2], D2 = D / 2;
    const int64_t bs = o ? t->stride[0] : 0, ts = t->stride[o], hs = t->stride[o + 1];
    float *td = t->data;
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, B * T * H * D))
    for (int64_t bth = 0; bth < B * T * H; bth++) {
        const int64_t b = bth / (T * H), tt = (bth / H) % T, h = bth % H;
        const float *c = cs + (int64_t)pd[pos_batched ? b * T + tt : tt] * D, *s = c + D2;
        float *xr = td + b * bs + tt * ts + h * hs;
        for (int64_t i = 0; i < D2; i++) {
            const float x1 = xr[i], x2 = xr[i + D2]; /* both read before either is written */
            xr[i] = x1 * c[i] + (-x2) * s[i];
            xr[i + D2] = x2 * c[i] + x1 * s[i];
        }
    }
}

lisa_status lisa_cpu_rope_qk(lisa_backend *be, lisa_tensor *q, lisa_tensor *k, const lisa_tensor *pos,
                             const lisa_tensor *cos_sin) {
    char s1[96], s2[96];
    if (!q || !k || !pos || !cos_sin) return lisa_fail(LISA_ERR_INVALID_ARG, "rope_qk: q, k, pos and cos_sin are required");
    int64_t B = 0, T = 0, H = 0, D = 0, B2 = 0, T2 = 0, H2 = 0, D2 = 0;
    LISA_TRY(rope_slot_check(q, "q", &B, &T, &H, &D));
    LISA_TRY(rope_slot_check(k, "k", &B2, &T2, &H2, &D2));
    if (q->n_dims != k->n_dims || B2 != B || T2 != T || D2 != D)
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk: q %s and k %s must share B, T and D",
                         lisa_tensor_shape_str(q, s1, sizeof s1), lisa_tensor_shape_str(k, s2, sizeof s2));
    LISA_TRY(lisa_cpu_check_f32("rope_qk", "cos_sin", cos_sin, true));
    if (cos_sin->n_dims != 2 || cos_sin->shape[1] != D)
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk: cos_sin %s, want [positions, %lld]",
                         lisa_tensor_shape_str(cos_sin, s1, sizeof s1), (long long)D);
    const bool pos_batched = pos->n_dims == 2;
    if (pos->dtype != LISA_DTYPE_I32 || !lisa_tensor_is_contiguous(pos) ||
        !((pos->n_dims == 1 && pos->shape[0] == T) || (pos_batched && pos->shape[0] == B && pos->shape[1] == T &&
                                                         q->n_dims == 4)))
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk: pos %s must be contiguous I32 [T] or [B, T] with T = %lld",
                         lisa_tensor_shape_str(pos, s1, sizeof s1), (long long)T);
    const int32_t *pd = pos->data;
    for (int64_t i = 0; i < lisa_tensor_numel(pos); i++)
        if (pd[i] < 0 || pd[i] >= cos_sin->shape[0])
            return lisa_fail(LISA_ERR_INVALID_ARG, "rope_qk: position %d is outside the table's %lld rows", pd[i],
                             (long long)cos_sin->shape[0]);
    rope_rows(be, q, pd, pos_batched, cos_sin->data);
    rope_rows(be, k, pd, pos_batched, cos_sin->data);
    return LISA_OK;
}

/* TWOWAY_ATTENTION / TWOWAY_MLP: the shared composition (kernels/compose.c) on this backend's ops;
 * its temporaries live on the heap for the call, as LINEAR_EX's (the scratch arena's free space
 * sizes LINEAR's weight-widening blocks, which must stay as the unfused graph had them). */
lisa_status lisa_cpu_twoway_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *xq, const lisa_tensor *qpe,
                                      const lisa_tensor *xk, const lisa_tensor *kpe, const lisa_tensor *xv,
                                      const lisa_twoway_attn *a, bool residual, const lisa_tensor *g,
                                      const lisa_tensor *b, float eps) {
    lisa_twoway_dims d;
    LISA_TRY(lisa_twoway_attention_check(&d, y, xq, qpe, xk, kpe, xv, a, g, b));
    LISA_TRY(lisa_cpu_check_f32("twoway_attention", "y", y, true));
    const size_t bytes = lisa_twoway_attention_tmp_bytes(&d, qpe != NULL, kpe != NULL, residual, LISA_DTYPE_F32);
    void *tmp = aligned_alloc(LISA_ARENA_ALIGN, bytes ? bytes : LISA_ARENA_ALIGN);
    if (!tmp) return lisa_fail(LISA_ERR_OOM, "twoway_attention: out of memory for %zu bytes of temporaries", bytes);
    lisa_status s = lisa_compose_twoway_attention(be, tmp, LISA_DTYPE_F32, y, xq, qpe, xk, kpe, xv, a, residual, g, b, eps);
    free(tmp);
    return s;
}

lisa_status lisa_cpu_twoway_mlp(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w1,
                                const lisa_tensor *b1, const lisa_tensor *w2, const lisa_tensor *b2, const lisa_tensor *g,
                                const lisa_tensor *b, float eps) {
    int64_t R, C, Hm;
    LISA_TRY(lisa_twoway_mlp_check(&R, &C, &Hm, y, x, w1, b1, w2, b2, g, b));
    LISA_TRY(lisa_cpu_check_f32("twoway_mlp", "y", y, true));
    const size_t bytes = lisa_twoway_mlp_tmp_bytes(R, C, Hm, LISA_DTYPE_F32);
    void *tmp = aligned_alloc(LISA_ARENA_ALIGN, bytes ? bytes : LISA_ARENA_ALIGN);
    if (!tmp) return lisa_fail(LISA_ERR_OOM, "twoway_mlp: out of memory for %zu bytes of temporaries", bytes);
    lisa_status s = lisa_compose_twoway_mlp(be, tmp, LISA_DTYPE_F32, y, x, w1, b1, w2, b2, g, b, eps);
    free(tmp);
    return s;
}

lisa_status lisa_cpu_rope_qk_kv_append(lisa_backend *be, lisa_tensor *q, lisa_tensor *k, const lisa_tensor *v,
                                       const lisa_tensor *pos, const lisa_tensor *cos_sin, lisa_tensor *k_pages,
                                       lisa_tensor *v_pages, const lisa_tensor *slots) {
    if (!q || !k || !v || !k_pages || !v_pages || !slots)
        return lisa_fail(LISA_ERR_INVALID_ARG, "rope_qk_kv_append: q, k, v, the pools and slots are required");
    if (q->n_dims != 3 || k->n_dims != 3) {
        char s1[96], s2[96];
        return lisa_fail(LISA_ERR_SHAPE, "rope_qk_kv_append: q %s and k %s must be [T, H, D]",
                         lisa_tensor_shape_str(q, s1, sizeof s1), lisa_tensor_shape_str(k, s2, sizeof s2));
    }
    lisa_status s = lisa_cpu_rope_qk(be, q, k, pos, cos_sin);
    if (s == LISA_OK) s = lisa_cpu_kv_append(be, k_pages, v_pages, k, v, slots);
    return s == LISA_OK ? s : lisa_fail_context(s, "rope_qk_kv_append");
}

lisa_status lisa_cpu_mlp3(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *w0,
                          const lisa_tensor *b0, const lisa_tensor *w1, const lisa_tensor *b1, const lisa_tensor *w2,
                          const lisa_tensor *b2) {
    int64_t R, C, H0, H1, O;
    LISA_TRY(lisa_mlp3_check(&R, &C, &H0, &H1, &O, y, x, w0, b0, w1, b1, w2, b2));
    const size_t bytes = lisa_mlp3_tmp_bytes(R, C, H0, H1, LISA_DTYPE_F32);
    void *tmp = aligned_alloc(LISA_ARENA_ALIGN, bytes ? bytes : LISA_ARENA_ALIGN);
    if (!tmp) return lisa_fail(LISA_ERR_OOM, "mlp3: out of memory for %zu bytes of temporaries", bytes);
    lisa_status s = lisa_compose_mlp3(be, tmp, LISA_DTYPE_F32, y, x, w0, b0, w1, b1, w2, b2);
    free(tmp);
    return s;
}

/* ATTENTION_RELPOS: REL_POS into F32 terms, then ATTENTION with them, per group of batch entries
 * (every (b, h) of both ops is computed independently of the others, so the groups give the bits of
 * one call over the whole batch while the terms stay within LISA_CPU_RELPOS_GROUP_BYTES). */
#define LISA_CPU_RELPOS_GROUP_BYTES ((int64_t)16 << 20)

lisa_status lisa_cpu_attention_relpos(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                      const lisa_tensor *v, const lisa_tensor *rel_pos_h, const lisa_tensor *rel_pos_w,
                                      int32_t q_h, int32_t q_w, float scale) {
    const char *op = "attention_relpos";
    char s1[96], s2[96];
    LISA_TRY(lisa_cpu_check_f32(op, "q", q, false));
    LISA_TRY(lisa_cpu_check_f32(op, "k", k, false));
    LISA_TRY(lisa_cpu_check_f32(op, "v", v, false));
    LISA_TRY(lisa_cpu_check_f32(op, "y", y, true));
    if (q->n_dims != 4 || k->n_dims != 4 || !lisa_tensor_same_shape(k, v) || k->shape[0] != q->shape[0] || q_h <= 0 || q_w <= 0 || q->shape[1] != (int64_t)q_h * q_w ||
        k->shape[1] != q->shape[1])
        return lisa_fail(LISA_ERR_SHAPE, "%s: q %s and k = v %s must be [B, %d·%d, H, D] (the key grid is the query grid)", op,
                         lisa_tensor_shape_str(q, s1, sizeof s1), lisa_tensor_shape_str(k, s2, sizeof s2), q_h, q_w);
    LISA_TRY(lisa_cpu_check_same_shape(op, y, q));
    const int64_t B = q->shape[0], H = q->shape[2], T = q->shape[1];
    const int64_t per_b = H * T * ((int64_t)q_h + q_w) * (int64_t)sizeof(float);
    int64_t group = per_b > 0 ? LISA_CPU_RELPOS_GROUP_BYTES / per_b : B;
    group = group < 1 ? 1 : group > B ? B : group;
    float *terms = malloc((size_t)(group * per_b > 0 ? group * per_b : 1));
    if (!terms) return lisa_fail(LISA_ERR_OOM, "%s: out of memory for the rel-pos terms of %lld batch entries", op, (long long)group);
    lisa_status s = LISA_OK;
    int64_t b0 = 0;
    do { /* once with B = 0 too: the ops check their arguments */
        const int64_t nb = B - b0 < group ? B - b0 : group;
        lisa_tensor qb, kb, vb, yb;
        s = lisa_tensor_narrow(&qb, q, 0, b0, nb);
        if (s == LISA_OK) s = lisa_tensor_narrow(&kb, k, 0, b0, nb);
        if (s == LISA_OK) s = lisa_tensor_narrow(&vb, v, 0, b0, nb);
        if (s == LISA_OK) s = lisa_tensor_narrow(&yb, y, 0, b0, nb);
        if (s != LISA_OK) break;
        const int64_t sh[4] = {nb, H, T, q_h}, sw[4] = {nb, H, T, q_w};
        lisa_tensor rh = host_view(terms, 4, sh), rw = host_view(terms + nb * H * T * q_h, 4, sw);
        s = lisa_cpu_rel_pos(be, &rh, &rw, &qb, rel_pos_h, rel_pos_w, q_h, q_w);
        if (s != LISA_OK) break;
        const lisa_attn_params p = {.scale = scale, .rel_h = &rh, .rel_w = &rw};
        s = lisa_cpu_attention(be, &yb, &qb, &kb, &vb, &p);
        b0 += nb;
    } while (s == LISA_OK && b0 < B);
    free(terms);
    return s == LISA_OK ? s : lisa_fail_context(s, "%s", op);
}
