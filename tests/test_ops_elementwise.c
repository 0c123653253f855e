/* tests/test_ops_elementwise.c — ADD, MUL (broadcasting, strided inputs, in-place), SCALE, GELU,
 * QUICK_GELU, RELU, SILU_MUL against double-precision formulas written out here.
 *
 * Tolerances (|got − ref| <= atol + rtol·|ref|):
 *  add/mul: one F32 rounding of the exact double result: atol 0, rtol 2^-24 (6e-8).
 *  scale (two F32 roundings): atol 1e-7·|c|-ish, use atol 1e-6, rtol 2e-7.
 *  gelu, quick_gelu, silu_mul: atol 1e-7, rtol 1e-6 (F32 output of a double formula).
 *  relu: exact. */
#include "ops_testutil.h"

#include <math.h>

static const int64_t ROWS[] = {1, 3, 7, 19, 733};
static const int64_t WIDTHS[] = {37, 769};
#define NR (sizeof ROWS / sizeof *ROWS)
#define NW (sizeof WIDTHS / sizeof *WIDTHS)
#define EPS32 5.9604644775390625e-08 /* 2^-24 */

typedef enum { OP_ADD, OP_MUL } binop;

static lisa_status run_bin(lisa_backend *be, binop op, lisa_tensor *y, const lisa_tensor *a, const lisa_tensor *b) {
    return op == OP_ADD ? lisa_op_add(be, y, a, b) : lisa_op_mul(be, y, a, b);
}

/* ref[i] over a's logical index; b right-aligned with broadcast dims. */
static double *ref_bin(binop op, const lisa_tensor *a, const lisa_tensor *b) {
    const int64_t n = lisa_tensor_numel(a);
    double *ref = malloc(sizeof(double) * (size_t)n);
    int64_t ia[4], ib[4];
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i;
        for (int d = a->n_dims - 1; d >= 0; d--) {
            ia[d] = rem % a->shape[d];
            rem /= a->shape[d];
        }
        for (int d = 0; d < b->n_dims; d++) {
            int da = d + a->n_dims - b->n_dims;
            ib[d] = b->shape[d] == 1 ? 0 : ia[da];
        }
        double x = lisa_tensor_get(a, ia), z = lisa_tensor_get(b, ib);
        ref[i] = op == OP_ADD ? x + z : x * z;
    }
    return ref;
}

static void check_bin(lisa_backend *be, binop op, const char *what, lisa_tensor *a, lisa_tensor *b) {
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, a->n_dims, a->shape[0], a->shape[1], a->shape[2], a->shape[3]);
    tu_poison(&y);
    double *ref = ref_bin(op, a, b);
    OT_OK(run_bin(be, op, &y, a, b));
    cr_expect(tu_check_close(what, &y, ref, 0, EPS32), "%s", what);
    free(ref);
    lisa_tensor_free(&y);
}

Test(ops_elementwise, add_mul_same_shape_and_broadcast) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(20);
    for (int op = OP_ADD; op <= OP_MUL; op++)
        for (size_t i = 0; i < NR; i++)
            for (size_t j = 0; j < NW; j++) {
                const int64_t R = ROWS[i], W = WIDTHS[j];
                lisa_tensor a = ot_rand(&r, LISA_DTYPE_F32, 2, R, W, 0, 0, -3, 3);
                lisa_tensor b = ot_rand(&r, LISA_DTYPE_F32, 2, R, W, 0, 0, -3, 3);
                lisa_tensor brow = ot_rand(&r, LISA_DTYPE_F32, 1, W, 0, 0, 0, -3, 3);    /* [W] */
                lisa_tensor bcol = ot_rand(&r, LISA_DTYPE_F32, 2, R, 1, 0, 0, -3, 3);    /* [R, 1] */
                check_bin(be, (binop)op, op == OP_ADD ? "add same" : "mul same", &a, &b);
                check_bin(be, (binop)op, op == OP_ADD ? "add [W]" : "mul [W]", &a, &brow);
                check_bin(be, (binop)op, op == OP_ADD ? "add [R,1]" : "mul [R,1]", &a, &bcol);
                lisa_tensor_free(&a);
                lisa_tensor_free(&b);
                lisa_tensor_free(&brow);
                lisa_tensor_free(&bcol);
            }
    /* 4-D with a middle broadcast: [2, 3, 19, 37] + [2, 1, 19, 37] and + [3, 1, 1] */
    lisa_tensor a4 = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 3, 19, 37, -1, 1);
    lisa_tensor b4 = ot_rand(&r, LISA_DTYPE_F32, 4, 2, 1, 19, 37, -1, 1);
    lisa_tensor b3 = ot_rand(&r, LISA_DTYPE_F32, 3, 3, 1, 1, 0, -1, 1);
    check_bin(be, OP_ADD, "add 4-D broadcast", &a4, &b4);
    check_bin(be, OP_MUL, "mul 4-D broadcast", &a4, &b3);
    lisa_tensor_free(&a4);
    lisa_tensor_free(&b4);
    lisa_tensor_free(&b3);
    lisa_backend_free(be);
}

Test(ops_elementwise, add_mul_strided_inputs) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(21);
    /* a: a permuted [769, 19] buffer seen as [19, 769]; b: a narrowed [19, 769] view */
    lisa_tensor abuf = ot_rand(&r, LISA_DTYPE_F32, 2, 769, 19, 0, 0, -2, 2), a, bbk;
    const int32_t perm[2] = {1, 0};
    cr_assert(lisa_tensor_permute(&a, &abuf, perm) == LISA_OK);
    const int64_t shape[2] = {19, 769};
    lisa_tensor b = ot_rand_narrowed(&r, &bbk, 2, shape, 6, -2, 2);
    check_bin(be, OP_ADD, "add strided", &a, &b);
    check_bin(be, OP_MUL, "mul strided", &a, &b);
    /* strided broadcast operand: every other element of a [2·769] row */
    lisa_tensor wide = ot_rand(&r, LISA_DTYPE_F32, 1, 2 * 769, 0, 0, 0, -2, 2), bs = wide;
    bs.shape[0] = 769;
    bs.stride[0] = 2;
    check_bin(be, OP_ADD, "add strided broadcast", &a, &bs);
    lisa_tensor_free(&abuf);
    lisa_tensor_free(&bbk);
    lisa_tensor_free(&wide);
    lisa_backend_free(be);
}

Test(ops_elementwise, add_mul_in_place_and_errors) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(22);
    for (int op = OP_ADD; op <= OP_MUL; op++) {
        lisa_tensor a = ot_rand(&r, LISA_DTYPE_F32, 3, 7, 19, 37, 0, -3, 3);
        lisa_tensor b = ot_rand(&r, LISA_DTYPE_F32, 1, 37, 0, 0, 0, -3, 3);
        double *ref = ref_bin((binop)op, &a, &b);
        OT_OK(run_bin(be, (binop)op, &a, &a, &b)); /* y == a */
        cr_expect(tu_check_close("in-place", &a, ref, 0, EPS32));
        free(ref);
        lisa_tensor bad = tu_tensor(LISA_DTYPE_F32, 1, 36, 0, 0, 0);
        lisa_tensor big = tu_tensor(LISA_DTYPE_F32, 4, 2, 7, 19, 37);
        lisa_tensor y_bad = tu_tensor(LISA_DTYPE_F32, 3, 7, 19, 36, 0);
        const char *name = op == OP_ADD ? "add" : "mul";
        OT_FAILS(run_bin(be, (binop)op, &a, &a, &bad), LISA_ERR_SHAPE, name);
        OT_FAILS(run_bin(be, (binop)op, &a, &a, &big), LISA_ERR_SHAPE, name);
        OT_FAILS(run_bin(be, (binop)op, &y_bad, &a, &b), LISA_ERR_SHAPE, name);
        lisa_tensor_free(&a);
        lisa_tensor_free(&b);
        lisa_tensor_free(&bad);
        lisa_tensor_free(&big);
        lisa_tensor_free(&y_bad);
    }
    lisa_backend_free(be);
}

/* ---- unary --------------------------------------------------------------------------------- */

typedef enum { U_SCALE, U_GELU, U_QUICK_GELU, U_RELU } unop;
static const float S_SCALE = 0.1118034f, C_SHIFT = -0.75f;

static double ref_unary(unop op, double x) {
    switch (op) {
    case U_SCALE: return x * (double)S_SCALE + (double)C_SHIFT;
    case U_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case U_QUICK_GELU: return x * (1.0 / (1.0 + exp(-1.702 * x)));
    default: return x > 0 ? x : 0.0;
    }
}

static lisa_status run_unary(lisa_backend *be, unop op, lisa_tensor *y, const lisa_tensor *x) {
    switch (op) {
    case U_SCALE: return lisa_op_scale(be, y, x, S_SCALE, C_SHIFT);
    case U_GELU: return lisa_op_gelu(be, y, x);
    case U_QUICK_GELU: return lisa_op_quick_gelu(be, y, x);
    default: return lisa_op_relu(be, y, x);
    }
}

static const char *const UNAME[] = {"scale", "gelu", "quick_gelu", "relu"};
static const double UATOL[] = {1e-6, 1e-7, 1e-7, 0};
static const double URTOL[] = {2e-7, 1e-6, 1e-6, 0};

Test(ops_elementwise, unary_awkward_shapes_and_in_place) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(23);
    for (int op = U_SCALE; op <= U_RELU; op++)
        for (size_t i = 0; i < NR; i++)
            for (size_t j = 0; j < NW; j++) {
                const int64_t R = ROWS[i], W = WIDTHS[j];
                lisa_tensor x = ot_rand(&r, LISA_DTYPE_F32, 2, R, W, 0, 0, -8, 8);
                float *xd = x.data;
                const float edge[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, 88.0f, -88.0f, -200.0f, 200.0f};
                for (size_t e = 0; e < sizeof edge / sizeof *edge; e++) xd[e] = edge[e];
                double *ref = ot_values(&x);
                for (int64_t e = 0; e < R * W; e++) ref[e] = ref_unary((unop)op, ref[e]);
                lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, R, W, 0, 0);
                tu_poison(&y);
                OT_OK(run_unary(be, (unop)op, &y, &x));
                cr_expect(tu_check_close(UNAME[op], &y, ref, UATOL[op], URTOL[op]), "%s %lldx%lld", UNAME[op],
                          (long long)R, (long long)W);
                OT_OK(run_unary(be, (unop)op, &x, &x)); /* in place */
                cr_expect(tu_check_close(UNAME[op], &x, ref, UATOL[op], URTOL[op]), "%s in-place", UNAME[op]);
                free(ref);
                lisa_tensor_free(&x);
                lisa_tensor_free(&y);
            }
    lisa_backend_free(be);
}

Test(ops_elementwise, unary_special_values_and_errors) {
    lisa_backend *be = tu_cpu_backend();
    lisa_tensor x = tu_tensor(LISA_DTYPE_F32, 1, 4, 0, 0, 0);
    float *xd = x.data;
    xd[0] = NAN, xd[1] = -0.0f, xd[2] = INFINITY, xd[3] = -INFINITY;
    lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 1, 4, 0, 0, 0);
    OT_OK(lisa_op_relu(be, &y, &x));
    float *yd = y.data;
    cr_expect(isnan(yd[0]), "relu(nan) = nan like torch");
    cr_expect(yd[1] == 0.0f && signbit(yd[1]), "relu(-0.0) = -0.0 like torch");
    cr_expect(yd[2] == INFINITY && yd[3] == 0.0f);
    /* torch 1.13: gelu([nan, -0, inf, -inf]) = [nan, -0, inf, nan] (−inf·0 in the erf form) */
    OT_OK(lisa_op_gelu(be, &y, &x));
    cr_expect(isnan(yd[0]) && yd[1] == 0.0f && yd[2] == INFINITY && isnan(yd[3]));
    OT_OK(lisa_op_quick_gelu(be, &y, &x));
    cr_expect(isnan(yd[0]) && yd[2] == INFINITY && isnan(yd[3]));
    lisa_tensor bad = tu_tensor(LISA_DTYPE_F32, 1, 5, 0, 0, 0);
    lisa_tensor bf = tu_tensor(LISA_DTYPE_BF16, 1, 4, 0, 0, 0);
    for (int op = U_SCALE; op <= U_RELU; op++) {
        OT_FAILS(run_unary(be, (unop)op, &bad, &x), LISA_ERR_SHAPE, UNAME[op]);
        OT_FAILS(run_unary(be, (unop)op, &y, &bf), LISA_ERR_SHAPE, UNAME[op]);
    }
    lisa_tensor_free(&x);
    lisa_tensor_free(&y);
    lisa_tensor_free(&bad);
    lisa_tensor_free(&bf);
    lisa_backend_free(be);
}

Test(ops_elementwise, silu_mul) {
    lisa_backend *be = tu_cpu_backend();
    tu_rng r = tu_rng_seed(24);
    for (size_t i = 0; i < NR; i++)
        for (size_t j = 0; j < NW; j++) {
            const int64_t R = ROWS[i], W = WIDTHS[j];
            lisa_tensor g = ot_rand(&r, LISA_DTYPE_F32, 2, R, W, 0, 0, -10, 10);
            lisa_tensor u = ot_rand(&r, LISA_DTYPE_F32, 2, R, W, 0, 0, -3, 3);
            double *gv = ot_values(&g), *uv = ot_values(&u);
            for (int64_t e = 0; e < R * W; e++) gv[e] = gv[e] / (1.0 + exp(-gv[e])) * uv[e];
            lisa_tensor y = tu_tensor(LISA_DTYPE_F32, 2, R, W, 0, 0);
            tu_poison(&y);
            OT_OK(lisa_op_silu_mul(be, &y, &g, &u));
            cr_expect(tu_check_close("silu_mul", &y, gv, 1e-7, 1e-6));
            OT_OK(lisa_op_silu_mul(be, &u, &g, &u)); /* in place into up */
            cr_expect(tu_check_close("silu_mul in-place", &u, gv, 1e-7, 1e-6));
            free(gv);
            free(uv);
            lisa_tensor_free(&g);
            lisa_tensor_free(&u);
            lisa_tensor_free(&y);
        }
    lisa_tensor g = tu_tensor(LISA_DTYPE_F32, 2, 3, 37, 0, 0), u = tu_tensor(LISA_DTYPE_F32, 2, 3, 36, 0, 0);
    OT_FAILS(lisa_op_silu_mul(be, &g, &g, &u), LISA_ERR_SHAPE, "silu_mul");
    lisa_tensor_free(&g);
    lisa_tensor_free(&u);
    lisa_backend_free(be);
}
