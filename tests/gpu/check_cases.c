/* tests/gpu/check_cases.c — lisa-check's cases: every op of kernels/ops.def (CUDA vs CPU backend),
 * the fused ones included, and the attention kernels at real LISA shapes.
 *
 * Tolerances (|got − ref| <= atol + rtol·|ref|; BF16 runs also within 2x the naive bf16 error):
 * - F32 elementwise/copy/window ops: exact or 1e-6 (one fp32 rounding vs a double reference).
 * - F32 norms/softmax: 1e-5 (fp32 tree sums vs double sums). F32 GEMMs: 1e-4·sqrt(K)/32 abs +
 *   1e-4 rel (fp32 accumulation order differs from OpenBLAS/double). F32 attention: 2e-5.
 * - F32 RoPE: atol 3e-4 — HF computes the angle pos·inv_freq in fp32 (the CUDA kernel does too),
 *   an error of up to ulp(2047)/2 = 1.2e-4 rad at the largest LLaMA position, while the CPU
 *   reference may use a double angle. ROPE_QK reads one host-computed cos/sin table on both
 *   backends: atol 2e-6 (the products' roundings).
 * - BF16: outputs are bf16 (8 significant bits): rtol 1/64 plus an atol scaled to the op's
 *   magnitude; the binding check is "no worse than 2x the naive bf16 version".
 */
#include "check_util.h"

#include "core/error.h"
#include "core/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SH(...) {__VA_ARGS__}
#define T_ACT(n, lo_, hi_, ...) {CK_ACT, n, SH(__VA_ARGS__), lo_, hi_}
#define T_PAR(n, lo_, hi_, ...) {CK_PARAM, n, SH(__VA_ARGS__), lo_, hi_}
#define T_OUT(n, ...) {CK_ACT, n, SH(__VA_ARGS__), 0, 0}

/* ---- callbacks: one per op (or fused launcher); branch on the backend where the GPU call is a
 *      fused launcher and the CPU reference is a composition of ops ------------------------------ */

static lisa_status c_copy(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_copy(be, &o[0], &i[0]);
}
static lisa_status c_linear(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_linear(be, &o[0], &i[0], &i[1], a ? NULL : &i[2]);
}
/* LINEAR_EX with an activation (arg = lisa_act*), or a residual (act NONE, input 3) */
static lisa_status c_linear_ex(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    lisa_act act = *(const lisa_act *)a;
    return lisa_op_linear_ex(be, &o[0], &i[0], &i[1], &i[2], act == LISA_ACT_NONE ? &i[3] : NULL, act);
}
static lisa_status c_matmul(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_matmul(be, &o[0], &i[0], &i[1], a != NULL);
}
static lisa_status c_add(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_add(be, &o[0], &i[0], &i[1]);
}
static lisa_status c_mul(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_mul(be, &o[0], &i[0], &i[1]);
}
static lisa_status c_scale(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_scale(be, &o[0], &i[0], 0.125f, -1.5f);
}
static lisa_status c_layernorm(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_layernorm(be, &o[0], &i[0], &i[1], &i[2], 1e-6f);
}
static lisa_status c_layernorm2d(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_layernorm2d(be, &o[0], &i[0], &i[1], &i[2], 1e-6f);
}
static lisa_status c_rmsnorm(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_rmsnorm(be, &o[0], &i[0], &i[1], 1e-6f);
}
static lisa_status c_softmax(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_softmax(be, &o[0], &i[0]);
}
static lisa_status c_gelu(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_gelu(be, &o[0], &i[0]);
}
static lisa_status c_quick_gelu(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_quick_gelu(be, &o[0], &i[0]);
}
static lisa_status c_relu(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_relu(be, &o[0], &i[0]);
}
static lisa_status c_silu_mul(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_silu_mul(be, &o[0], &i[0], &i[1]);
}
static lisa_status c_rope(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_rope(be, &o[0], &i[0], &i[1], 10000.0f);
}

typedef struct attn_arg {
    float scale;
    bool causal, bias, rel;
    lisa_cuda_attn_path path;
} attn_arg;

/* inputs: q, k, v [, bias] [, rel_h, rel_w] */
static lisa_status c_attention(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    const attn_arg *aa = a;
    lisa_attn_params p = {.scale = aa->scale, .causal = aa->causal};
    int k = 3;
    if (aa->bias) p.bias = &i[k++];
    if (aa->rel) {
        p.rel_h = &i[k++];
        p.rel_w = &i[k++];
    }
    if (be->device == LISA_DEVICE_CUDA) return lisa_cuda_attention_path(be, &o[0], &i[0], &i[1], &i[2], &p, aa->path);
    return lisa_op_attention(be, &o[0], &i[0], &i[1], &i[2], &p);
}

typedef struct relpos_arg {
    int32_t qh, qw;
} relpos_arg;
static lisa_status c_rel_pos(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    const relpos_arg *r = a;
    return lisa_op_rel_pos(be, &o[0], &o[1], &i[0], &i[1], &i[2], r->qh, r->qw);
}
static lisa_status c_window_partition(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_window_partition(be, &o[0], &i[0], *(const int32_t *)a);
}
static lisa_status c_window_unpartition(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_window_unpartition(be, &o[0], &i[0], *(const int32_t *)a);
}
typedef struct conv_arg {
    int32_t stride, pad;
    bool bias;
} conv_arg;
static lisa_status c_conv2d(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    const conv_arg *c = a;
    return lisa_op_conv2d(be, &o[0], &i[0], &i[1], c->bias ? &i[2] : NULL, c->stride, c->pad);
}
static lisa_status c_convt(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_conv_transpose2d_k2s2(be, &o[0], &i[0], &i[1], &i[2]);
}
static lisa_status c_bilinear(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_bilinear(be, &o[0], &i[0]);
}
static lisa_status c_embedding(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_embedding(be, &o[0], &i[0], &i[1]);
}
static lisa_status c_argmax(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_argmax(be, &o[0], &i[0]);
}

/* fused ops: the CUDA kernels vs the CPU backend's compositions of its ops */
static lisa_status c_add_layernorm(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_add_layernorm(be, &o[0], &o[1], &i[0], &i[1], &i[2], &i[3], 1e-6f);
}
static lisa_status c_add_rmsnorm(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_add_rmsnorm(be, &o[0], &o[1], &i[0], &i[1], &i[2], 1e-6f);
}
static lisa_status c_ln_window(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_layernorm_window_partition(be, &o[0], &i[0], &i[1], &i[2], 1e-6f, *(const int32_t *)a);
}
static lisa_status c_unpartition_add(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    return lisa_op_window_unpartition_add(be, &o[0], &i[0], &i[1], *(const int32_t *)a);
}
/* TWOWAY_ATTENTION: in = xq, qpe, xk, kpe, xv, q/k/v/out weights, q/k/v/out biases, norm g, b. */
typedef struct twoway_arg {
    int32_t heads;
    bool residual, qpe, kpe, self; /* self: xk = xv = xq, kpe = qpe (the tokens' self-attention) */
    bool v_is_k;                   /* xv = xk (the decoder's cross attentions) */
} twoway_arg;
static lisa_status c_twoway(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    const twoway_arg *t = a;
    const lisa_twoway_attn w = {.q_w = &i[5], .k_w = &i[6], .v_w = &i[7], .out_w = &i[8], .q_b = &i[9], .k_b = &i[10],
                                .v_b = &i[11], .out_b = &i[12], .heads = t->heads};
    const lisa_tensor *qpe = t->qpe ? &i[1] : NULL;
    if (t->self) return lisa_op_twoway_attention(be, &o[0], &i[0], qpe, &i[0], qpe, &i[0], &w, t->residual, &i[13], &i[14], 1e-5f);
    return lisa_op_twoway_attention(be, &o[0], &i[0], qpe, &i[2], t->kpe ? &i[3] : NULL, t->v_is_k ? &i[2] : &i[4], &w,
                                    t->residual, &i[13], &i[14], 1e-5f);
}
static lisa_status c_twoway_mlp(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    (void)a;
    return lisa_op_twoway_mlp(be, &o[0], &i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6], 1e-5f);
}
/* MLP3 on token row 1 of x [N, 6, C] (strided rows, as the decoder's heads read them) */
static lisa_status c_mlp3(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    (void)a;
    lisa_tensor row;
    LISA_TRY(lisa_tensor_narrow(&row, &i[0], 1, 1, 1));
    return lisa_op_mlp3(be, &o[0], &row, &i[1], &i[2], &i[3], &i[4], &i[5], &i[6]);
}
static lisa_status c_rope_qk(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    /* inputs: q [T, Hq, D], k [T, Hk, D], pos [T]; outputs q', k' (copies roped in place); the
     * cos/sin table of 2048 positions is the same host-computed table on both backends */
    const int64_t shape[2] = {2048, i[0].shape[2]};
    const size_t bytes = (size_t)(shape[0] * shape[1]) * sizeof(float);
    float *host = malloc(bytes);
    if (!host) return lisa_fail(LISA_ERR_OOM, "rope_qk case: out of memory");
    lisa_rope_table(host, shape[0], shape[1], 10000.0f);
    void *mem = NULL;
    lisa_status s = be->mem_alloc(be, bytes, &mem);
    if (s == LISA_OK) s = be->upload(be, mem, host, bytes);
    lisa_tensor cs = lisa_tensor_view(mem, LISA_DTYPE_F32, 2, shape);
    cs.device = be->device, cs.device_id = be->device_id;
    if (s == LISA_OK) s = lisa_op_copy(be, &o[0], &i[0]);
    if (s == LISA_OK) s = lisa_op_copy(be, &o[1], &i[1]);
    if (s == LISA_OK) s = lisa_op_rope_qk(be, &o[0], &o[1], &i[2], &cs);
    if (s == LISA_OK && be->synchronize) s = be->synchronize(be); /* the kernel reads the table */
    if (mem) be->mem_free(be, mem);
    free(host);
    return s;
}

/* ROPE_QK_KV_APPEND: inputs q [T, Hq, D], k, v [T, Hkv, D], pos [T]; outputs the k and v pools
 * [T / 8, 8, Hkv, D] (the rows' slots a permutation of the pool, so every slot is written) and q';
 * k is roped in a copy; the cos/sin table is host-computed, as in c_rope_qk. */
static lisa_status c_rope_qk_kv_append(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    (void)a;
    const int64_t T = i[0].shape[0], shape[2] = {2048, i[0].shape[2]};
    const size_t bytes = (size_t)(shape[0] * shape[1]) * sizeof(float), kbytes = lisa_tensor_nbytes(&i[1]);
    float *host = malloc(bytes);
    int32_t *sl = malloc((size_t)T * sizeof(int32_t));
    if (!host || !sl) {
        free(host), free(sl);
        return lisa_fail(LISA_ERR_OOM, "rope_qk_kv_append case: out of memory");
    }
    lisa_rope_table(host, shape[0], shape[1], 10000.0f);
    for (int64_t t = 0; t < T; t++) sl[t] = (int32_t)((t * 5 + 3) % T); /* T a power of two: a permutation */
    void *mem = NULL, *kmem = NULL, *smem = NULL;
    lisa_status s = be->mem_alloc(be, bytes, &mem);
    if (s == LISA_OK) s = be->mem_alloc(be, kbytes, &kmem);
    if (s == LISA_OK) s = be->mem_alloc(be, (size_t)T * sizeof(int32_t), &smem);
    if (s == LISA_OK) s = be->upload(be, mem, host, bytes);
    if (s == LISA_OK) s = be->upload(be, smem, sl, (size_t)T * sizeof(int32_t));
    lisa_tensor cs = lisa_tensor_view(mem, LISA_DTYPE_F32, 2, shape), k = i[1];
    lisa_tensor slots = lisa_tensor_view4(smem, LISA_DTYPE_I32, 1, T, 0, 0, 0);
    cs.device = slots.device = be->device, cs.device_id = slots.device_id = be->device_id;
    k.data = kmem, k.owner = false;
    if (s == LISA_OK) s = lisa_op_copy(be, &o[2], &i[0]);
    if (s == LISA_OK) s = lisa_op_copy(be, &k, &i[1]);
    if (s == LISA_OK) s = lisa_op_rope_qk_kv_append(be, &o[2], &k, &i[2], &i[3], &cs, &o[0], &o[1], &slots);
    if (s == LISA_OK && be->synchronize) s = be->synchronize(be);
    if (mem) be->mem_free(be, mem);
    if (kmem) be->mem_free(be, kmem);
    if (smem) be->mem_free(be, smem);
    free(host), free(sl);
    return s;
}

/* ---- the op table ------------------------------------------------------------------------------ */

static const lisa_act act_relu = LISA_ACT_RELU, act_gelu = LISA_ACT_GELU, act_quick = LISA_ACT_QUICK_GELU,
                      act_none = LISA_ACT_NONE;
static const int32_t win14 = 14, win4 = 4;
static const int no_bias = 1;
static const int trans_b = 1;

static double gemm_atol32(int64_t K) { return 1e-4 * sqrt((double)K) / 4; }
static double gemm_atol16(int64_t K) { return 0.02 * sqrt((double)K); }

static void linear_case(ck_ctx *c, const char *label, int64_t M, int64_t K, int64_t N, bool bias, bool strided) {
    ck_case cs = {.op = "linear", .label = label, .call = c_linear, .arg = bias ? NULL : &no_bias, .n_in = bias ? 3 : 2,
                  .n_out = 1, .in = {T_ACT(2, -1, 1, M, K), T_PAR(2, -1, 1, N, K), T_PAR(1, -1, 1, N)},
                  .out = {T_OUT(2, M, N)}, .strided_in0 = strided, .atol32 = gemm_atol32(K), .rtol32 = 1e-4,
                  .atol16 = gemm_atol16(K) / 8, .rtol16 = 1.0 / 64};
    ck_run_case(c, &cs);
}

static void linear_ex_case(ck_ctx *c, const char *label, const lisa_act *act, int64_t M, int64_t K, int64_t N) {
    ck_case cs = {.op = "linear_ex", .label = label, .call = c_linear_ex, .arg = act, .n_in = 4, .n_out = 1,
                  .in = {T_ACT(2, -1, 1, M, K), T_PAR(2, -1, 1, N, K), T_PAR(1, -1, 1, N), T_ACT(2, -2, 2, M, N)},
                  .out = {T_OUT(2, M, N)}, .atol32 = gemm_atol32(K), .rtol32 = 1e-4,
                  .atol16 = gemm_atol16(K) / 8, .rtol16 = 1.0 / 64};
    ck_run_case(c, &cs);
}

void ck_cases_ops(ck_ctx *c) {
    const bool q = c->quick;
    /* COPY: strided 2-D, 4-D, and dtype casts (separately below) */
    {
        ck_case cs = {.op = "copy", .label = "[733,37]", .call = c_copy, .n_in = 1, .n_out = 1,
                      .in = {T_ACT(2, -9, 9, 733, 37)}, .out = {T_OUT(2, 733, 37)}, .strided_in0 = true};
        ck_run_case(c, &cs);
        ck_case c4 = {.op = "copy", .label = "[3,7,19,5]", .call = c_copy, .n_in = 1, .n_out = 1,
                      .in = {T_ACT(4, -9, 9, 3, 7, 19, 5)}, .out = {T_OUT(4, 3, 7, 19, 5)}};
        ck_run_case(c, &c4);
    }
    /* LINEAR: rows 1/7/733, widths 37/769/5125, a SAM-qkv-like shape, strided x */
    linear_case(c, "M1 K5125 N37", 1, 5125, 37, true, false);
    linear_case(c, "M7 K769 N769", 7, 769, 769, true, false);
    linear_case(c, "M733 K37 N5125", 733, 37, 5125, true, false);
    linear_case(c, "M19 K1280 N3840 nobias", 19, 1280, 3840, false, false);
    linear_case(c, "M3 K769 N37", 3, 769, 37, true, true);
    linear_ex_case(c, "relu M19 K256 N2048", &act_relu, 19, 256, 2048);
    linear_ex_case(c, "gelu-erf M7 K1280 N5120", &act_gelu, 7, 1280, 5120);
    linear_ex_case(c, "quick-gelu M7 K769 N37", &act_quick, 7, 769, 37);
    linear_ex_case(c, "residual M19 K769 N1280", &act_none, 19, 769, 1280);
    /* MATMUL */
    {
        ck_case cs = {.op = "matmul", .label = "[3,7,37]x[3,37,19]", .call = c_matmul, .n_in = 2, .n_out = 1,
                      .in = {T_ACT(3, -1, 1, 3, 7, 37), T_ACT(3, -1, 1, 3, 37, 19)}, .out = {T_OUT(3, 3, 7, 19)},
                      .atol32 = gemm_atol32(37), .rtol32 = 1e-4, .atol16 = gemm_atol16(37) / 8, .rtol16 = 1.0 / 64};
        ck_run_case(c, &cs);
        ck_case ct = {.op = "matmul", .label = "[1,733,769]x[4,19,769]T bcast", .call = c_matmul, .arg = &trans_b, .n_in = 2,
                      .n_out = 1, .in = {T_ACT(3, -1, 1, 1, 733, 769), T_ACT(3, -1, 1, 4, 19, 769)},
                      .out = {T_OUT(3, 4, 733, 19)}, .atol32 = gemm_atol32(769), .rtol32 = 1e-4,
                      .atol16 = gemm_atol16(769) / 8, .rtol16 = 1.0 / 64};
        ck_run_case(c, &ct);
        ck_case c2 = {.op = "matmul", .label = "[6,16]x[16,4096] 2-D", .call = c_matmul, .n_in = 2, .n_out = 1,
                      .in = {T_ACT(2, -1, 1, 6, 16), T_ACT(2, -1, 1, 16, 4096)}, .out = {T_OUT(2, 6, 4096)},
                      .atol32 = gemm_atol32(16), .rtol32 = 1e-4, .atol16 = gemm_atol16(16) / 8, .rtol16 = 1.0 / 64};
        ck_run_case(c, &c2);
    }
    /* ADD / MUL: broadcast rows, strided a, in place, 4-D broadcast */
    {
        ck_case a1 = {.op = "add", .label = "[733,769]+[769]", .call = c_add, .n_in = 2, .n_out = 1,
                      .in = {T_ACT(2, -2, 2, 733, 769), T_ACT(1, -2, 2, 769)}, .out = {T_OUT(2, 733, 769)},
                      .strided_in0 = true, .atol32 = 1e-6, .rtol32 = 1e-6, .atol16 = 1e-6, .rtol16 = 1.0 / 128};
        ck_run_case(c, &a1);
        ck_case a2 = a1;
        a2.label = "[3,7,19,37]+[7,1,37]", a2.in[0] = (ck_tspec)T_ACT(4, -2, 2, 3, 7, 19, 37);
        a2.in[1] = (ck_tspec)T_ACT(3, -2, 2, 7, 1, 37), a2.out[0] = (ck_tspec)T_OUT(4, 3, 7, 19, 37);
        a2.strided_in0 = false, a2.inplace = true;
        ck_run_case(c, &a2);
        ck_case m1 = a1;
        m1.op = "mul", m1.call = c_mul, m1.label = "[19,5125]*[19,5125]";
        m1.in[0] = (ck_tspec)T_ACT(2, -2, 2, 19, 5125), m1.in[1] = (ck_tspec)T_ACT(2, -2, 2, 19, 5125);
        m1.out[0] = (ck_tspec)T_OUT(2, 19, 5125), m1.strided_in0 = false, m1.inplace = true;
        ck_run_case(c, &m1);
        ck_case m2 = a1;
        m2.op = "mul", m2.call = c_mul, m2.label = "[733,769]*[769]";
        ck_run_case(c, &m2);
    }
    /* SCALE and the activations (in place and strided) */
    {
        ck_case s = {.op = "scale", .label = "[7,769]", .call = c_scale, .n_in = 1, .n_out = 1,
                     .in = {T_ACT(2, -4, 4, 7, 769)}, .out = {T_OUT(2, 7, 769)}, .inplace = true, .atol32 = 1e-6,
                     .rtol32 = 1e-6, .atol16 = 1e-6, .rtol16 = 1.0 / 128};
        ck_run_case(c, &s);
        ck_call_fn fns[3] = {c_gelu, c_quick_gelu, c_relu};
        const char *names[3] = {"gelu", "quick_gelu", "relu"};
        for (int k = 0; k < 3; k++) {
            ck_case a = s;
            a.op = names[k], a.call = fns[k], a.label = "[733,769]";
            a.in[0] = (ck_tspec)T_ACT(2, -6, 6, 733, 769), a.out[0] = (ck_tspec)T_OUT(2, 733, 769);
            a.inplace = false, a.strided_in0 = true;
            ck_run_case(c, &a);
            a.label = "[1,5125]", a.in[0] = (ck_tspec)T_ACT(2, -6, 6, 1, 5125), a.out[0] = (ck_tspec)T_OUT(2, 1, 5125);
            a.inplace = true, a.strided_in0 = false;
            ck_run_case(c, &a);
        }
        ck_case sm = {.op = "silu_mul", .label = "[19,11008]", .call = c_silu_mul, .n_in = 2, .n_out = 1,
                      .in = {T_ACT(2, -6, 6, 19, 11008), T_ACT(2, -2, 2, 19, 11008)}, .out = {T_OUT(2, 19, 11008)},
                      .atol32 = 1e-6, .rtol32 = 1e-6, .atol16 = 1e-6, .rtol16 = 1.0 / 64};
        ck_run_case(c, &sm);
    }
    /* Norms and softmax */
    {
        struct {
            int64_t R, C;
            bool strided, inplace;
        } sh[] = {{7, 769, false, false}, {1, 5125, false, true}, {733, 37, true, false}, {19, 1280, false, false}};
        for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++) {
            char label[32];
            snprintf(label, sizeof label, "[%lld,%lld]", (long long)sh[k].R, (long long)sh[k].C);
            ck_case ln = {.op = "layernorm", .label = label, .call = c_layernorm, .n_in = 3, .n_out = 1,
                          .in = {T_ACT(2, -3, 5, sh[k].R, sh[k].C), T_PAR(1, 0.5, 1.5, sh[k].C), T_PAR(1, -1, 1, sh[k].C)},
                          .out = {T_OUT(2, sh[k].R, sh[k].C)}, .strided_in0 = sh[k].strided, .inplace = sh[k].inplace,
                          .atol32 = 1e-5, .rtol32 = 1e-5, .atol16 = 1e-2, .rtol16 = 1.0 / 64};
            ck_run_case(c, &ln);
            ck_case rn = ln;
            rn.op = "rmsnorm", rn.call = c_rmsnorm, rn.n_in = 2;
            ck_run_case(c, &rn);
            ck_case sm = {.op = "softmax", .label = label, .call = c_softmax, .n_in = 1, .n_out = 1,
                          .in = {T_ACT(2, -10, 10, sh[k].R, sh[k].C)}, .out = {T_OUT(2, sh[k].R, sh[k].C)},
                          .strided_in0 = sh[k].strided, .inplace = sh[k].inplace, .atol32 = 1e-7, .rtol32 = 1e-5,
                          .atol16 = 1e-5, .rtol16 = 1.0 / 64};
            ck_run_case(c, &sm);
        }
        ck_case vocab = {.op = "softmax", .label = "[3,32004] vocab", .call = c_softmax, .n_in = 1, .n_out = 1,
                         .in = {T_ACT(2, -10, 10, 3, 32004)}, .out = {T_OUT(2, 3, 32004)}, .atol32 = 1e-8,
                         .rtol32 = 1e-5, .atol16 = 1e-6, .rtol16 = 1.0 / 64};
        ck_run_case(c, &vocab);
        ck_case l2 = {.op = "layernorm2d", .label = "[2,256,13,11]", .call = c_layernorm2d, .n_in = 3, .n_out = 1,
                      .in = {T_ACT(4, -3, 5, 2, 256, 13, 11), T_PAR(1, 0.5, 1.5, 256), T_PAR(1, -1, 1, 256)},
                      .out = {T_OUT(4, 2, 256, 13, 11)}, .atol32 = 1e-5, .rtol32 = 1e-5, .atol16 = 1e-2,
                      .rtol16 = 1.0 / 64};
        ck_run_case(c, &l2);
        l2.label = "[37,19,1] 3-D in-place", l2.in[0] = (ck_tspec)T_ACT(3, -3, 5, 37, 19, 1);
        l2.in[1] = (ck_tspec)T_PAR(1, 0.5, 1.5, 37), l2.in[2] = (ck_tspec)T_PAR(1, -1, 1, 37);
        l2.out[0] = (ck_tspec)T_OUT(3, 37, 19, 1), l2.inplace = true;
        ck_run_case(c, &l2);
        /* fused: residual + LN / RMSNorm, LN + window partition, unpartition + residual */
        ck_case al = {.op = "add_layernorm", .label = "[19,1280]", .call = c_add_layernorm, .n_in = 4, .n_out = 2,
                      .in = {T_ACT(2, -2, 2, 19, 1280), T_ACT(2, -2, 2, 19, 1280), T_PAR(1, 0.5, 1.5, 1280),
                             T_PAR(1, -1, 1, 1280)},
                      .out = {T_OUT(2, 19, 1280), T_OUT(2, 19, 1280)}, .atol32 = 1e-5, .rtol32 = 1e-5, .atol16 = 2e-2,
                      .rtol16 = 1.0 / 64};
        ck_run_case(c, &al);
        ck_case ar = al;
        ar.op = "add_rmsnorm", ar.call = c_add_rmsnorm, ar.label = "[7,4096]", ar.n_in = 3;
        ar.in[0] = (ck_tspec)T_ACT(2, -2, 2, 7, 4096), ar.in[1] = (ck_tspec)T_ACT(2, -2, 2, 7, 4096);
        ar.in[2] = (ck_tspec)T_PAR(1, 0.5, 1.5, 4096), ar.out[0] = (ck_tspec)T_OUT(2, 7, 4096);
        ar.out[1] = (ck_tspec)T_OUT(2, 7, 4096);
        ck_run_case(c, &ar);
        ck_case lw = {.op = "layernorm_window_partition", .label = "[2,64,64,80] S14", .call = c_ln_window, .arg = &win14, .n_in = 3,
                      .n_out = 1, .in = {T_ACT(4, -3, 3, 2, 64, 64, 80), T_PAR(1, 0.5, 1.5, 80), T_PAR(1, -1, 1, 80)},
                      .out = {T_OUT(4, 50, 14, 14, 80)}, .atol32 = 1e-5, .rtol32 = 1e-5, .atol16 = 2e-2,
                      .rtol16 = 1.0 / 64};
        ck_run_case(c, &lw);
        ck_case ua = {.op = "window_unpartition_add", .label = "[50,14,14,37]->[2,64,64,37]", .call = c_unpartition_add,
                      .arg = &win14, .n_in = 2, .n_out = 1,
                      .in = {T_ACT(4, -2, 2, 50, 14, 14, 37), T_ACT(4, -2, 2, 2, 64, 64, 37)},
                      .out = {T_OUT(4, 2, 64, 64, 37)}, .atol32 = 1e-6, .rtol32 = 1e-6, .atol16 = 1e-6, .rtol16 = 1.0 / 128};
        ck_run_case(c, &ua);
    }
    /* SAM's two-way transformer at the mask decoder's dims (C 256, 8 heads; cross attentions at
     * 128), as models/sam_decoder.c calls it: BF16 runs take the fused kernels
     * (kernels/cuda/twoway.cu), F32 runs the composition. The LayerNorm'd outputs are O(1). */
    {
        static const twoway_arg self_pe = {.heads = 8, .residual = true, .qpe = true, .self = true};
        static const twoway_arg self0 = {.heads = 8, .self = true};
        static const twoway_arg cross = {.heads = 8, .residual = true, .qpe = true, .kpe = true, .v_is_k = true};
        const double ws = 1.7 / 16, wo = 1.7 / sqrt(128.0);
        ck_case tw = {.op = "twoway_attention", .label = "self [2,6,256] PE", .call = c_twoway, .arg = &self_pe,
                      .n_in = 15, .n_out = 1,
                      .in = {T_ACT(3, -2, 2, 2, 6, 256), T_ACT(3, -1, 1, 2, 6, 256), T_ACT(3, -2, 2, 1, 1, 256),
                             T_ACT(3, -1, 1, 1, 1, 256), T_ACT(3, -2, 2, 1, 1, 256), T_PAR(2, -ws, ws, 256, 256),
                             T_PAR(2, -ws, ws, 256, 256), T_PAR(2, -ws, ws, 256, 256), T_PAR(2, -ws, ws, 256, 256),
                             T_PAR(1, -0.3, 0.3, 256), T_PAR(1, -0.3, 0.3, 256), T_PAR(1, -0.3, 0.3, 256),
                             T_PAR(1, -0.3, 0.3, 256), T_PAR(1, 0.5, 1.5, 256), T_PAR(1, -1, 1, 256)},
                      .out = {T_OUT(3, 2, 6, 256)}, .atol32 = 1e-4, .rtol32 = 1e-4, .atol16 = 3e-2, .rtol16 = 1.0 / 64};
        ck_run_case(c, &tw);
        tw.label = "self [1,6,256] layer 0 (no PE, no residual)", tw.arg = &self0;
        tw.in[0] = (ck_tspec)T_ACT(3, -2, 2, 1, 6, 256), tw.out[0] = (ck_tspec)T_OUT(3, 1, 6, 256);
        ck_run_case(c, &tw);
        /* tokens -> image: q [2,6,256] against the 4096 image rows, the image PE F32 and broadcast */
        ck_case t2i = tw;
        t2i.label = "tokens->image [2,6,256] x [2,4096,256] Ci 128", t2i.arg = &cross;
        t2i.in[0] = (ck_tspec)T_ACT(3, -2, 2, 2, 6, 256), t2i.in[1] = (ck_tspec)T_ACT(3, -1, 1, 2, 6, 256);
        t2i.in[2] = (ck_tspec)T_ACT(3, -2, 2, 2, 4096, 256), t2i.in[3] = (ck_tspec){CK_PARAM_F32, 3, {1, 4096, 256}, -1, 1};
        for (int k = 5; k < 8; k++) t2i.in[k] = (ck_tspec)T_PAR(2, -ws, ws, 128, 256);
        t2i.in[8] = (ck_tspec)T_PAR(2, -wo, wo, 256, 128);
        for (int k = 9; k < 12; k++) t2i.in[k] = (ck_tspec)T_PAR(1, -0.3, 0.3, 128);
        t2i.out[0] = (ck_tspec)T_OUT(3, 2, 6, 256);
        ck_run_case(c, &t2i);
        /* image -> tokens: the 4096 image rows against the 6 tokens */
        ck_case i2t = t2i;
        i2t.label = "image->tokens [2,4096,256] x [2,6,256] Ci 128";
        i2t.in[0] = (ck_tspec)T_ACT(3, -2, 2, 2, 4096, 256), i2t.in[1] = (ck_tspec){CK_PARAM_F32, 3, {1, 4096, 256}, -1, 1};
        i2t.in[2] = (ck_tspec)T_ACT(3, -2, 2, 2, 6, 256), i2t.in[3] = (ck_tspec)T_ACT(3, -1, 1, 2, 6, 256);
        i2t.out[0] = (ck_tspec)T_OUT(3, 2, 4096, 256);
        ck_run_case(c, &i2t);
        /* the tiny LISA's decoder dims: head dim 2, an internal dim below one weight chunk */
        ck_case tiny = t2i;
        tiny.label = "tokens->image [3,6,32] x [3,4096,32] Ci 16 (tiny)";
        tiny.in[0] = (ck_tspec)T_ACT(3, -2, 2, 3, 6, 32), tiny.in[1] = (ck_tspec)T_ACT(3, -1, 1, 3, 6, 32);
        tiny.in[2] = (ck_tspec)T_ACT(3, -2, 2, 3, 4096, 32), tiny.in[3] = (ck_tspec){CK_PARAM_F32, 3, {1, 4096, 32}, -1, 1};
        for (int k = 5; k < 8; k++) tiny.in[k] = (ck_tspec)T_PAR(2, -0.3, 0.3, 16, 32);
        tiny.in[8] = (ck_tspec)T_PAR(2, -0.4, 0.4, 32, 16);
        for (int k = 9; k < 12; k++) tiny.in[k] = (ck_tspec)T_PAR(1, -0.3, 0.3, 16);
        tiny.in[12] = (ck_tspec)T_PAR(1, -0.3, 0.3, 32), tiny.in[13] = (ck_tspec)T_PAR(1, 0.5, 1.5, 32);
        tiny.in[14] = (ck_tspec)T_PAR(1, -1, 1, 32), tiny.out[0] = (ck_tspec)T_OUT(3, 3, 6, 32);
        ck_run_case(c, &tiny);
        ck_case mlp = {.op = "twoway_mlp", .label = "[2,6,256] hidden 2048", .call = c_twoway_mlp, .n_in = 7, .n_out = 1,
                       .in = {T_ACT(3, -2, 2, 2, 6, 256), T_PAR(2, -ws, ws, 2048, 256), T_PAR(1, -0.3, 0.3, 2048),
                              T_PAR(2, -0.04, 0.04, 256, 2048), T_PAR(1, -0.3, 0.3, 256), T_PAR(1, 0.5, 1.5, 256),
                              T_PAR(1, -1, 1, 256)},
                       .out = {T_OUT(3, 2, 6, 256)}, .atol32 = 1e-4, .rtol32 = 1e-4, .atol16 = 3e-2, .rtol16 = 1.0 / 64};
        ck_run_case(c, &mlp);
        ck_case m3 = {.op = "mlp3", .label = "token row of [3,6,256]: 256->256->256->32", .call = c_mlp3, .n_in = 7,
                      .n_out = 1,
                      .in = {T_ACT(3, -2, 2, 3, 6, 256), T_PAR(2, -ws, ws, 256, 256), T_PAR(1, -0.3, 0.3, 256),
                             T_PAR(2, -ws, ws, 256, 256), T_PAR(1, -0.3, 0.3, 256), T_PAR(2, -ws, ws, 32, 256),
                             T_PAR(1, -0.3, 0.3, 32)},
                      .out = {T_OUT(3, 3, 1, 32)}, .atol32 = 1e-4, .rtol32 = 1e-4, .atol16 = 3e-2, .rtol16 = 1.0 / 64};
        ck_run_case(c, &m3);
    }
    /* RoPE */
    {
        ck_case r1 = {.op = "rope", .label = "[7,32,128] pos<2048", .call = c_rope, .n_in = 2, .n_out = 1,
                      .in = {T_ACT(3, -2, 2, 7, 32, 128), {CK_INT32, 1, {7}, 0, 2048}}, .out = {T_OUT(3, 7, 32, 128)},
                      .atol32 = 3e-4, .rtol32 = 1e-5, .atol16 = 2e-2, .rtol16 = 1.0 / 64};
        ck_run_case(c, &r1);
        ck_case r2 = r1;
        r2.label = "[2,19,4,128] pos[B,T]", r2.in[0] = (ck_tspec)T_ACT(4, -2, 2, 2, 19, 4, 128);
        r2.in[1] = (ck_tspec){CK_INT32, 2, {2, 19}, 0, 600}, r2.out[0] = (ck_tspec)T_OUT(4, 2, 19, 4, 128);
        r2.strided_in0 = true;
        ck_run_case(c, &r2);
        /* the angles come from one table on both sides: F32 differs by the products' roundings only */
        ck_case qk = {.op = "rope_qk", .label = "q[19,32,128] k[19,8,128]", .call = c_rope_qk, .n_in = 3, .n_out = 2,
                      .in = {T_ACT(3, -2, 2, 19, 32, 128), T_ACT(3, -2, 2, 19, 8, 128), {CK_INT32, 1, {19}, 0, 2048}},
                      .out = {T_OUT(3, 19, 32, 128), T_OUT(3, 19, 8, 128)}, .atol32 = 2e-6, .rtol32 = 1e-6,
                      .atol16 = 2e-2, .rtol16 = 1.0 / 64};
        ck_run_case(c, &qk);
        ck_case qa = {.op = "rope_qk_kv_append", .label = "q[32,32,128] k=v[32,8,128] -> pools [4,8,8,128]",
                      .call = c_rope_qk_kv_append, .n_in = 4, .n_out = 3,
                      .in = {T_ACT(3, -2, 2, 32, 32, 128), T_ACT(3, -2, 2, 32, 8, 128), T_ACT(3, -2, 2, 32, 8, 128),
                             {CK_INT32, 1, {32}, 0, 2048}},
                      .out = {T_OUT(4, 4, 8, 8, 128), T_OUT(4, 4, 8, 8, 128), T_OUT(3, 32, 32, 128)},
                      .atol32 = 2e-6, .rtol32 = 1e-6, .atol16 = 2e-2, .rtol16 = 1.0 / 64};
        ck_run_case(c, &qa);
    }
    /* ATTENTION (small; the real shapes are in ck_cases_attention) */
    {
        static const attn_arg causal_gqa = {.scale = 0.1643989873f, .causal = true}; /* 37^-0.5 */
        ck_case a = {.op = "attention", .label = "[2,19,4,37] kv[2,19,2,37] causal", .call = c_attention,
                     .arg = &causal_gqa, .n_in = 3, .n_out = 1,
                     .in = {T_ACT(4, -1, 1, 2, 19, 4, 37), T_ACT(4, -1, 1, 2, 19, 2, 37), T_ACT(4, -1, 1, 2, 19, 2, 37)},
                     .out = {T_OUT(4, 2, 19, 4, 37)}, .atol32 = 2e-5, .rtol32 = 2e-5, .atol16 = 1e-2, .rtol16 = 1.0 / 64};
        ck_run_case(c, &a);
        static const attn_arg with_bias = {.scale = 0.125f, .bias = true};
        ck_case b = a;
        b.label = "[1,7,2,64] bias[1,2,7,33]", b.arg = &with_bias, b.n_in = 4;
        b.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 7, 2, 64), b.in[1] = (ck_tspec)T_ACT(4, -1, 1, 1, 33, 2, 64);
        b.in[2] = (ck_tspec)T_ACT(4, -1, 1, 1, 33, 2, 64), b.in[3] = (ck_tspec){CK_PARAM_F32, 4, {1, 2, 7, 33}, -3, 3};
        b.out[0] = (ck_tspec)T_OUT(4, 1, 7, 2, 64);
        ck_run_case(c, &b);
        static const attn_arg clip = {.scale = 0.125f};
        ck_case f = a;
        f.label = "[2,257,16,64] (CLIP; flash in bf16)", f.arg = &clip;
        f.in[0] = (ck_tspec)T_ACT(4, -1, 1, 2, 257, 16, 64), f.in[1] = f.in[0], f.in[2] = f.in[0];
        f.out[0] = (ck_tspec)T_OUT(4, 2, 257, 16, 64);
        ck_run_case(c, &f);
        static const attn_arg dec = {.scale = 0.08838834764f, .causal = true};
        ck_case d = a;
        d.label = "[2,7,4,128] kv 300 causal (split-KV)", d.arg = &dec;
        d.in[0] = (ck_tspec)T_ACT(4, -1, 1, 2, 7, 4, 128), d.in[1] = (ck_tspec)T_ACT(4, -1, 1, 2, 300, 4, 128);
        d.in[2] = d.in[1], d.out[0] = (ck_tspec)T_OUT(4, 2, 7, 4, 128);
        ck_run_case(c, &d);
        static const attn_arg rel = {.scale = 0.1118033989f, .rel = true};
        ck_case r = a;
        r.label = "[2,35,2,80] rel-pos 5x7", r.arg = &rel, r.n_in = 5;
        r.in[0] = (ck_tspec)T_ACT(4, -1, 1, 2, 35, 2, 80), r.in[1] = r.in[0], r.in[2] = r.in[0];
        r.in[3] = (ck_tspec)T_ACT(4, -2, 2, 2, 2, 35, 5), r.in[4] = (ck_tspec)T_ACT(4, -2, 2, 2, 2, 35, 7);
        r.out[0] = (ck_tspec)T_OUT(4, 2, 35, 2, 80);
        ck_run_case(c, &r);
        static const attn_arg rel_ref = {.scale = 0.1118033989f, .rel = true, .path = LISA_CUDA_ATTN_REFERENCE};
        r.label = "[2,35,2,80] rel-pos 5x7 (reference kernel)", r.arg = &rel_ref;
        ck_run_case(c, &r);
        /* the sm_90a (wgmma) kernel on the same kinds of problems: CLIP, rel-pos, causal with a KV
         * prefix and GQA (skipped off Hopper: the self-test runs them on the CPU) */
        if (c->self_test || lisa_cuda_attn_wgmma_available(c->gpu)) {
            static const attn_arg clip_w = {.scale = 0.125f, .path = LISA_CUDA_ATTN_WGMMA};
            f.label = "[2,257,16,64] (CLIP; wgmma)", f.arg = &clip_w;
            ck_run_case(c, &f);
            static const attn_arg rel_w = {.scale = 0.1118033989f, .rel = true, .path = LISA_CUDA_ATTN_WGMMA};
            r.label = "[2,35,2,80] rel-pos 5x7 (wgmma)", r.arg = &rel_w;
            ck_run_case(c, &r);
            static const attn_arg causal_w = {.scale = 0.08838834764f, .causal = true, .path = LISA_CUDA_ATTN_WGMMA};
            ck_case w = a;
            w.label = "[2,20,4,128] kv[2,100,2,128] causal (wgmma)", w.arg = &causal_w;
            w.in[0] = (ck_tspec)T_ACT(4, -1, 1, 2, 20, 4, 128), w.in[1] = (ck_tspec)T_ACT(4, -1, 1, 2, 100, 2, 128);
            w.in[2] = w.in[1], w.out[0] = (ck_tspec)T_OUT(4, 2, 20, 4, 128);
            ck_run_case(c, &w);
        } else {
            ck_record(c, "attention", "wgmma (sm_90a) cases", "-", 2, 0, 0, -1, "device cannot run the sm_90a kernel");
        }
    }
    /* REL_POS: SAM window grid, strided q */
    {
        static const relpos_arg rp = {14, 14};
        ck_case cs = {.op = "rel_pos", .label = "q[2,196,16,80] 14x14", .call = c_rel_pos, .arg = &rp, .n_in = 3, .n_out = 2,
                      .in = {T_ACT(4, -1, 1, 2, 196, 16, 80), T_PAR(2, -1, 1, 27, 80), T_PAR(2, -1, 1, 27, 80)},
                      .out = {T_OUT(4, 2, 16, 196, 14), T_OUT(4, 2, 16, 196, 14)}, .strided_in0 = true, .atol32 = 1e-5,
                      .rtol32 = 1e-5, .atol16 = 0.1, .rtol16 = 1.0 / 64};
        ck_run_case(c, &cs);
        static const relpos_arg rp2 = {5, 7};
        ck_case c2 = cs;
        c2.label = "q[1,35,3,37] 5x7", c2.arg = &rp2, c2.strided_in0 = false;
        c2.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 35, 3, 37), c2.in[1] = (ck_tspec)T_PAR(2, -1, 1, 9, 37);
        c2.in[2] = (ck_tspec)T_PAR(2, -1, 1, 13, 37);
        c2.out[0] = (ck_tspec)T_OUT(4, 1, 3, 35, 5), c2.out[1] = (ck_tspec)T_OUT(4, 1, 3, 35, 7);
        ck_run_case(c, &c2);
    }
    /* WINDOW_PARTITION / UNPARTITION */
    {
        ck_case wp = {.op = "window_partition", .label = "[2,64,64,37] S14", .call = c_window_partition, .arg = &win14,
                      .n_in = 1, .n_out = 1, .in = {T_ACT(4, -2, 2, 2, 64, 64, 37)}, .out = {T_OUT(4, 50, 14, 14, 37)}};
        ck_run_case(c, &wp);
        wp.label = "[1,9,10,19] S4", wp.arg = &win4, wp.in[0] = (ck_tspec)T_ACT(4, -2, 2, 1, 9, 10, 19);
        wp.out[0] = (ck_tspec)T_OUT(4, 9, 4, 4, 19);
        ck_run_case(c, &wp);
        ck_case wu = {.op = "window_unpartition", .label = "[50,14,14,37] S14", .call = c_window_unpartition, .arg = &win14,
                      .n_in = 1, .n_out = 1, .in = {T_ACT(4, -2, 2, 50, 14, 14, 37)}, .out = {T_OUT(4, 2, 64, 64, 37)}};
        ck_run_case(c, &wu);
    }
    /* CONV2D: patch embed (k = s), 3x3/p1 neck, 1x1 without bias */
    {
        static const conv_arg pe = {16, 0, true}, c33 = {1, 1, true}, c11 = {1, 0, false}, c32 = {2, 1, true};
        ck_case cv = {.op = "conv2d", .label = "patch16 [1,3,64,96]->37", .call = c_conv2d, .arg = &pe, .n_in = 3,
                      .n_out = 1, .in = {T_ACT(4, -1, 1, 1, 3, 64, 96), T_PAR(4, -1, 1, 37, 3, 16, 16), T_PAR(1, -1, 1, 37)},
                      .out = {T_OUT(4, 1, 37, 4, 6)}, .atol32 = gemm_atol32(768), .rtol32 = 1e-4,
                      .atol16 = gemm_atol16(768) / 8, .rtol16 = 1.0 / 64};
        ck_run_case(c, &cv);
        cv.label = "3x3/p1 [2,19,13,11]->7", cv.arg = &c33;
        cv.in[0] = (ck_tspec)T_ACT(4, -1, 1, 2, 19, 13, 11), cv.in[1] = (ck_tspec)T_PAR(4, -1, 1, 7, 19, 3, 3);
        cv.in[2] = (ck_tspec)T_PAR(1, -1, 1, 7), cv.out[0] = (ck_tspec)T_OUT(4, 2, 7, 13, 11);
        ck_run_case(c, &cv);
        cv.label = "3x3/s2/p1 [1,5,9,8]->3", cv.arg = &c32;
        cv.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 5, 9, 8), cv.in[1] = (ck_tspec)T_PAR(4, -1, 1, 3, 5, 3, 3);
        cv.in[2] = (ck_tspec)T_PAR(1, -1, 1, 3), cv.out[0] = (ck_tspec)T_OUT(4, 1, 3, 5, 4);
        ck_run_case(c, &cv);
        cv.label = "1x1 [1,256,9,9]->64 nobias", cv.arg = &c11, cv.n_in = 2;
        cv.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 256, 9, 9), cv.in[1] = (ck_tspec)T_PAR(4, -1, 1, 64, 256, 1, 1);
        cv.out[0] = (ck_tspec)T_OUT(4, 1, 64, 9, 9), cv.atol32 = gemm_atol32(256), cv.atol16 = gemm_atol16(256) / 8;
        ck_run_case(c, &cv);
        ck_case ct = {.op = "conv_transpose2d_k2s2", .label = "[2,19,7,5]->7", .call = c_convt, .n_in = 3, .n_out = 1,
                      .in = {T_ACT(4, -1, 1, 2, 19, 7, 5), T_PAR(4, -1, 1, 19, 7, 2, 2), T_PAR(1, -1, 1, 7)},
                      .out = {T_OUT(4, 2, 7, 14, 10)}, .atol32 = gemm_atol32(19), .rtol32 = 1e-4,
                      .atol16 = gemm_atol16(19) / 8, .rtol16 = 1.0 / 64};
        ck_run_case(c, &ct);
        ct.label = "[1,256,16,16]->64", ct.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 256, 16, 16);
        ct.in[1] = (ck_tspec)T_PAR(4, -1, 1, 256, 64, 2, 2), ct.in[2] = (ck_tspec)T_PAR(1, -1, 1, 64);
        ct.out[0] = (ck_tspec)T_OUT(4, 1, 64, 32, 32), ct.atol32 = gemm_atol32(256), ct.atol16 = gemm_atol16(256) / 8;
        ck_run_case(c, &ct);
    }
    /* BILINEAR: the LISA postprocess 256 -> 1024, up/down awkward sizes */
    {
        ck_case bl = {.op = "bilinear", .label = "[1,1,256,256]->1024", .call = c_bilinear, .n_in = 1, .n_out = 1,
                      .in = {T_ACT(4, -8, 8, 1, 1, 256, 256)}, .out = {T_OUT(4, 1, 1, 1024, 1024)}, .atol32 = 5e-6,
                      .rtol32 = 2e-6, .atol16 = 2e-2, .rtol16 = 1.0 / 64};
        if (!q) ck_run_case(c, &bl);
        bl.label = "[3,7,5]->[19,13]", bl.in[0] = (ck_tspec)T_ACT(3, -8, 8, 3, 7, 5), bl.out[0] = (ck_tspec)T_OUT(3, 3, 19, 13);
        ck_run_case(c, &bl);
        bl.label = "[1,733,37]->[17,19]", bl.in[0] = (ck_tspec)T_ACT(3, -8, 8, 1, 733, 37);
        bl.out[0] = (ck_tspec)T_OUT(3, 1, 17, 19);
        ck_run_case(c, &bl);
    }
    /* EMBEDDING (I32 and I64 ids), ARGMAX (bf16-exact values: ties resolved to the first index) */
    {
        ck_case em = {.op = "embedding", .label = "[1000,769] ids I32[7]", .call = c_embedding, .n_in = 2, .n_out = 1,
                      .in = {T_PAR(2, -1, 1, 1000, 769), {CK_INT32, 1, {7}, 0, 1000}}, .out = {T_OUT(2, 7, 769)}};
        ck_run_case(c, &em);
        em.label = "[32004,64] ids I64[19]", em.in[0] = (ck_tspec)T_PAR(2, -1, 1, 32004, 64);
        em.in[1] = (ck_tspec){CK_INT64, 1, {19}, 0, 32004}, em.out[0] = (ck_tspec)T_OUT(2, 19, 64);
        ck_run_case(c, &em);
        /* F32 only here: bf16 rounding creates ties the fp32 reference does not have (the bf16
         * argmax, ties included, is checked by ck_case_casts_and_errors) */
        ck_case am = {.op = "argmax", .label = "[7,32004]", .call = c_argmax, .n_in = 1, .n_out = 1,
                      .in = {T_ACT(2, -1, 1, 7, 32004)}, .out = {{CK_INT32, 1, {7}, 0, 0}}, .out_int = 1, .no_bf16 = true};
        ck_run_case(c, &am);
        am.label = "[733,37] strided", am.in[0] = (ck_tspec)T_ACT(2, -1, 1, 733, 37);
        am.out[0] = (ck_tspec){CK_INT32, 1, {733}, 0, 0}, am.strided_in0 = true;
        ck_run_case(c, &am);
    }
}

/* ---- cases the generic runner cannot express --------------------------------------------------- */

/* COPY across dtypes through a transposed view (F32 -> BF16 / F16 and back), exact to RNE; argmax
 * over bf16 values (many ties: the first index must win); embedding ids out of range. */
void ck_cases_casts_and_errors(ck_ctx *c) {
    if (c->self_test) return; /* BF16/F16 device tensors and CUDA-only messages */
    if (ck_selected(c, "copy", "casts")) {
        const int64_t shp[2] = {37, 19};
        lisa_tensor h = ck_host(LISA_DTYPE_F32, 2, shp);
        ck_fill(c, &h, -300, 300, false);
        lisa_tensor d = ck_dev_from(c, &h, LISA_DTYPE_F32, false);
        lisa_tensor dt_;
        const int32_t perm[2] = {1, 0};
        lisa_tensor_permute(&dt_, &d, perm); /* [19, 37] view with strides (1, 19) */
        const lisa_dtype to[2] = {LISA_DTYPE_BF16, LISA_DTYPE_F16};
        for (int k = 0; k < 2; k++) {
            const int64_t so[2] = {19, 37};
            lisa_tensor y = ck_dev_poison(c, to[k], 2, so);
            lisa_tensor back = ck_dev_poison(c, LISA_DTYPE_F32, 2, so);
            lisa_status s = lisa_op_copy(c->gpu, &y, &dt_);
            if (s == LISA_OK) s = lisa_op_copy(c->gpu, &back, &y);
            char name[64];
            snprintf(name, sizeof name, "F32ᵀ[19,37] -> %s -> F32", lisa_dtype_name(to[k]));
            if (s != LISA_OK) {
                ck_record(c, "copy", name, "cast", 1, NAN, 0, -1, "%s", lisa_last_error());
                continue;
            }
            lisa_tensor got = ck_download(c, &back);
            lisa_tensor ht;
            lisa_tensor_permute(&ht, &h, perm);
            lisa_tensor want = ck_round_copy(&ht, to[k]);
            ck_compare(c, "copy", name, "cast", &got, &want, 0, 0, NULL, NULL);
            lisa_tensor_free(&got);
            lisa_tensor_free(&want);
        }
        ck_free_case(c);
        lisa_tensor_free(&h);
    }
    if (ck_selected(c, "argmax", "bf16 ties")) {
        const int64_t shp[2] = {7, 32004};
        lisa_tensor h = ck_host(LISA_DTYPE_F32, 2, shp);
        ck_fill(c, &h, -1, 1, false);
        lisa_tensor hr = ck_round_copy(&h, LISA_DTYPE_BF16); /* values exactly representable: ties */
        const int64_t so[1] = {7};
        lisa_tensor want = ck_host(LISA_DTYPE_I32, 1, so);
        lisa_status s = lisa_op_argmax(c->cpu, &want, &hr);
        if (s != LISA_OK) {
            ck_record(c, "argmax", "[7,32004] bf16 ties", "BF16", 2, 0, 0, -1, "cpu reference: %s", lisa_last_error());
        } else {
            lisa_tensor d = ck_dev_from(c, &hr, LISA_DTYPE_BF16, false);
            lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_I32, 1, so);
            s = lisa_op_argmax(c->gpu, &y, &d);
            if (s != LISA_OK) {
                ck_record(c, "argmax", "[7,32004] bf16 ties", "BF16", 1, NAN, 0, -1, "%s", lisa_last_error());
            } else {
                lisa_tensor got = ck_download(c, &y);
                ck_compare(c, "argmax", "[7,32004] bf16 ties", "BF16", &got, &want, 0, 0, NULL, NULL);
                lisa_tensor_free(&got);
            }
        }
        ck_free_case(c);
        lisa_tensor_free(&want);
        lisa_tensor_free(&hr);
        lisa_tensor_free(&h);
    }
    if (ck_selected(c, "embedding", "id out of range")) {
        const int64_t ts[2] = {10, 8}, is[1] = {3}, ys[2] = {3, 8};
        lisa_tensor tab = ck_host(LISA_DTYPE_F32, 2, ts), ids = ck_host(LISA_DTYPE_I32, 1, is);
        ck_fill(c, &tab, -1, 1, false);
        ((int32_t *)ids.data)[0] = 1, ((int32_t *)ids.data)[1] = 10, ((int32_t *)ids.data)[2] = 2;
        lisa_tensor dtab = ck_dev_from(c, &tab, LISA_DTYPE_F32, false), dids = ck_dev_from(c, &ids, LISA_DTYPE_I32, false);
        lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_F32, 2, ys);
        lisa_clear_error();
        lisa_status s = lisa_op_embedding(c->gpu, &y, &dtab, &dids);
        char msg[256];
        snprintf(msg, sizeof msg, "%s", lisa_last_error());
        bool ok = s == LISA_ERR_INVALID_ARG && strstr(msg, "10") != NULL;
        lisa_tensor got = ck_download(c, &y); /* ops.def: a bad id leaves y untouched (still NaN) */
        for (int64_t i = 0; i < lisa_tensor_numel(&got); i++) ok = ok && isnan(((float *)got.data)[i]);
        lisa_tensor_free(&got);
        ck_record(c, "embedding", "id 10 of 10 rows: error, y untouched", "F32", ok ? 0 : 1, 0, 0, -1, "got %s: %s",
                  lisa_status_name(s), msg);
        ck_free_case(c);
        lisa_tensor_free(&tab);
        lisa_tensor_free(&ids);
    }
}

/* ---- attention at the real LISA shapes --------------------------------------------------------- */

/* Double-precision attention for the rows of q[B, Tq, H, D] (contiguous host F32), used when the
 * CPU backend's op is not available: y[B, Tq, H, D]. rel_h/rel_w [B, H, Tq, k] or NULL. */
static void ref_attention(lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k, const lisa_tensor *v,
                          const lisa_tensor *rel_h, const lisa_tensor *rel_w, float scale, bool causal) {
    const int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3], Tk = k->shape[1], Hk = k->shape[2];
    const float *Q = q->data, *K = k->data, *V = v->data;
    float *Y = y->data;
    double *s = malloc((size_t)(Tk ? Tk : 1) * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t hk = h / (H / Hk);
                int64_t kmax = Tk;
                if (causal) kmax = i + Tk - Tq + 1 < kmax ? (i + Tk - Tq + 1 > 0 ? i + Tk - Tq + 1 : 0) : kmax;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < kmax; j++) {
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += (double)Q[((b * Tq + i) * H + h) * D + d] * K[((b * Tk + j) * Hk + hk) * D + d];
                    s[j] = dot * scale;
                    if (rel_h) {
                        const int64_t kh = rel_h->shape[3], kw = rel_w->shape[3];
                        s[j] += ((const float *)rel_h->data)[((b * H + h) * Tq + i) * kh + j / kw];
                        s[j] += ((const float *)rel_w->data)[((b * H + h) * Tq + i) * kw + j % kw];
                    }
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t j = 0; j < kmax; j++) sum += (s[j] = exp(s[j] - mx));
                for (int64_t d = 0; d < D; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < kmax; j++) o += s[j] * V[((b * Tk + j) * Hk + hk) * D + d];
                    Y[((b * Tq + i) * H + h) * D + d] = (float)(kmax ? o / sum : 0.0);
                }
            }
    free(s);
}

/* CPU reference: the CPU backend's attention op, or the double loop above when the op is missing. */
static const char *cpu_attention(ck_ctx *c, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k, const lisa_tensor *v,
                                 const lisa_tensor *rel_h, const lisa_tensor *rel_w, float scale, bool causal) {
    lisa_attn_params p = {.scale = scale, .causal = causal, .rel_h = rel_h, .rel_w = rel_w};
    if (lisa_op_attention(c->cpu, y, q, k, v, &p) == LISA_OK) return "vs cpu op";
    ref_attention(y, q, k, v, rel_h, rel_w, scale, causal);
    return "vs built-in double reference (cpu attention op unavailable)";
}

/* Host tensor rows [r0, r0+n) of dim `dim` as a new contiguous F32 tensor. */
static lisa_tensor host_slice(const lisa_tensor *t, int dim, int64_t r0, int64_t n) {
    lisa_tensor v, out;
    lisa_tensor_narrow(&v, t, dim, r0, n);
    out = ck_host(LISA_DTYPE_F32, v.n_dims, v.shape);
    int64_t idx[4] = {0, 0, 0, 0};
    if (lisa_tensor_numel(&v)) do {
            lisa_tensor_set(&out, idx, lisa_tensor_get(&v, idx));
            int d = v.n_dims - 1;
            for (; d >= 0; d--) {
                if (++idx[d] < v.shape[d]) break;
                idx[d] = 0;
            }
            if (d < 0) break;
        } while (1);
    return out;
}

/* Compares the GPU output rows [r0, r0+n) of dim `dim` against a CPU reference of those rows. */
static void compare_rows(ck_ctx *c, const char *name, const lisa_tensor *gpu_out, int dim, int64_t r0, int64_t n,
                         const lisa_tensor *ref, const char *how) {
    lisa_tensor got_all = ck_download(c, gpu_out);
    lisa_tensor got = host_slice(&got_all, dim, r0, n);
    char full[112];
    snprintf(full, sizeof full, "%s", name);
    /* bf16 inputs are exact in both; the kernel's error is P and the output in bf16 */
    if (!ck_compare(c, "attention", full, "BF16", &got, ref, 1e-2, 1.0 / 64, NULL, NULL))
        fprintf(stderr, "    (%s)\n", how);
    else
        printf("      %s\n", how);
    lisa_tensor_free(&got);
    lisa_tensor_free(&got_all);
}

/* Random bf16-exact host tensor (values already rounded, so CPU and GPU see the same inputs). */
static lisa_tensor rand16(ck_ctx *c, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3, double lo, double hi) {
    const int64_t shp[4] = {d0, d1, d2, d3};
    lisa_tensor h = ck_host(LISA_DTYPE_F32, n_dims, shp);
    ck_fill(c, &h, lo, hi, false);
    lisa_tensor r = ck_round_copy(&h, LISA_DTYPE_BF16);
    lisa_tensor_free(&h);
    return r;
}

/* The whole of y against the same call through the on-GPU reference kernel (one warp per row,
 * fp32, LISA_CUDA_ATTN_REFERENCE): y_ref is computed here from the same device inputs. */
static void compare_with_gpu_reference(ck_ctx *c, const char *name, const lisa_tensor *y, const lisa_tensor *dq,
                                       const lisa_tensor *dk, const lisa_tensor *dv, const lisa_attn_params *p) {
    lisa_tensor yr = ck_dev_poison(c, LISA_DTYPE_BF16, y->n_dims, y->shape);
    lisa_status s = lisa_cuda_attention_path(c->gpu, &yr, dq, dk, dv, p, LISA_CUDA_ATTN_REFERENCE);
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    char nm[240];
    snprintf(nm, sizeof nm, "%s, all rows vs the GPU reference kernel", name);
    if (s != LISA_OK) {
        ck_record(c, "attention", nm, "BF16", 1, NAN, 0, -1, "cuda reference kernel: %s", lisa_last_error());
        return;
    }
    lisa_tensor got = ck_download(c, y), ref = ck_download(c, &yr);
    ck_compare(c, "attention", nm, "BF16", &got, &ref, 1e-2, 1.0 / 64, NULL, NULL);
    lisa_tensor_free(&got), lisa_tensor_free(&ref);
}

/* SAM: windows [B·25, 196, 16, 80] with q/k/v as views of one packed qkv [B·25, 196, 3, 16, 80]
 * (the real layout after the qkv Linear), rel-pos 14x14; global [B, 4096, 16, 80], rel-pos 64x64.
 * path: FLASH (mma.sync) or WGMMA (sm_90a; also compared with the on-GPU reference kernel). fused
 * (WGMMA only): rel-pos from the tables rel_pos_h/w [2S-1, 80] inside the kernel
 * (lisa_cuda_attention_relpos_fused), the reference being the REL_POS op and then attention. */
static void sam_attention(ck_ctx *c, bool global, int64_t nb, lisa_cuda_attn_path path, bool fused) {
    const int64_t S = global ? 64 : 14, T = S * S, H = 16, D = 80;
    const int64_t check_b = global ? 1 : 2, check_rows = global ? 64 : T; /* CPU checks a slice */
    char name[112];
    snprintf(name, sizeof name, "SAM %s [%lld,%lld,16,80] rel-pos %lldx%lld%s", global ? "global" : "windows", (long long)nb,
             (long long)T, (long long)S, (long long)S, fused ? " fused (wgmma)" : path == LISA_CUDA_ATTN_WGMMA ? " (wgmma)" : "");
    if (!ck_selected(c, "attention", name)) return;
    if (path == LISA_CUDA_ATTN_WGMMA && !lisa_cuda_attn_wgmma_available(c->gpu)) {
        ck_record(c, "attention", name, "BF16", 2, 0, 0, -1, "device cannot run the sm_90a kernel");
        return;
    }
    /* host q/k/v (bf16-exact) only for the checked batch entries; the rest of the batch is random */
    lisa_tensor q = rand16(c, 4, check_b, T, H, D, -1, 1), k = rand16(c, 4, check_b, T, H, D, -1, 1),
                v = rand16(c, 4, check_b, T, H, D, -1, 1);
    lisa_tensor rh = rand16(c, 4, nb, H, T, S, -2, 2), rw = rand16(c, 4, nb, H, T, S, -2, 2);
    /* packed qkv on the host: [nb, T, 3, H, D], batch entries >= check_b random */
    const int64_t shp5[4] = {nb * T, 3, H, D};
    lisa_tensor qkv = ck_host(LISA_DTYPE_F32, 4, shp5);
    ck_fill(c, &qkv, -1, 1, false);
    float *P = qkv.data;
    for (int64_t b = 0; b < check_b; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t d = 0; d < D; d++) {
                    const int64_t src = ((b * T + t) * H + h) * D + d, dst = (((b * T + t) * 3) * H + h) * D + d;
                    P[dst] = ((float *)q.data)[src];
                    P[dst + H * D] = ((float *)k.data)[src];
                    P[dst + 2 * H * D] = ((float *)v.data)[src];
                }
    lisa_tensor dqkv = ck_dev_from(c, &qkv, LISA_DTYPE_BF16, false);
    lisa_tensor dq = lisa_tensor_view4(dqkv.data, LISA_DTYPE_BF16, 4, nb, T, H, D);
    dq.device = LISA_DEVICE_CUDA, dq.device_id = c->gpu->device_id;
    dq.stride[0] = T * 3 * H * D, dq.stride[1] = 3 * H * D, dq.stride[2] = D, dq.stride[3] = 1;
    lisa_tensor dk = dq, dv = dq;
    dk.data = (uint16_t *)dq.data + H * D;
    dv.data = (uint16_t *)dq.data + 2 * H * D;
    lisa_tensor drh = ck_dev_from(c, &rh, LISA_DTYPE_F32, false), drw = ck_dev_from(c, &rw, LISA_DTYPE_F32, false);
    const int64_t ys[4] = {nb, T, H, D};
    lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 4, ys);
    const float scale = 1.0f / sqrtf((float)D);
    lisa_attn_params p = {.scale = scale, .rel_h = &drh, .rel_w = &drw};
    /* fused: tables [2S-1, 80] (bf16); rel_h / rel_w become their products with q (REL_POS) */
    lisa_tensor tab_h = {0}, tab_w = {0}, dth = {0}, dtw = {0};
    lisa_status s = LISA_OK;
    if (fused) {
        tab_h = rand16(c, 2, 2 * S - 1, D, 0, 0, -0.3, 0.3), tab_w = rand16(c, 2, 2 * S - 1, D, 0, 0, -0.3, 0.3);
        dth = ck_dev_from(c, &tab_h, LISA_DTYPE_BF16, false), dtw = ck_dev_from(c, &tab_w, LISA_DTYPE_BF16, false);
        /* the GPU's REL_POS op fills drh / drw for the reference kernel below; the CPU's for the slice */
        s = lisa_op_rel_pos(c->gpu, &drh, &drw, &dq, &dth, &dtw, (int32_t)S, (int32_t)S);
        if (s == LISA_OK) {
            lisa_tensor hq = ck_download(c, &drh), hw = ck_download(c, &drw);
            memcpy(rh.data, hq.data, sizeof(float) * (size_t)lisa_tensor_numel(&rh));
            memcpy(rw.data, hw.data, sizeof(float) * (size_t)lisa_tensor_numel(&rw));
            lisa_tensor_free(&hq), lisa_tensor_free(&hw);
            /* the CPU's own REL_POS for the checked entries (so the reference does not trust the GPU op) */
            lisa_tensor rhc = ck_host(LISA_DTYPE_F32, 4, (const int64_t[4]){check_b, H, T, S});
            lisa_tensor rwc = ck_host(LISA_DTYPE_F32, 4, (const int64_t[4]){check_b, H, T, S});
            if (lisa_op_rel_pos(c->cpu, &rhc, &rwc, &q, &tab_h, &tab_w, (int32_t)S, (int32_t)S) == LISA_OK) {
                memcpy(rh.data, rhc.data, sizeof(float) * (size_t)lisa_tensor_numel(&rhc));
                memcpy(rw.data, rwc.data, sizeof(float) * (size_t)lisa_tensor_numel(&rwc));
            }
            lisa_tensor_free(&rhc), lisa_tensor_free(&rwc);
            s = lisa_cuda_attention_relpos_fused(c->gpu, &y, &dq, &dk, &dv, scale, &dth, &dtw);
        }
    } else {
        s = lisa_cuda_attention_path(c->gpu, &y, &dq, &dk, &dv, &p, path);
    }
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    if (s != LISA_OK) {
        ck_record(c, "attention", name, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
    } else {
        if (path == LISA_CUDA_ATTN_WGMMA) compare_with_gpu_reference(c, name, &y, &dq, &dk, &dv, &p);
        /* reference: batch entries [0, check_b), query rows [T − check_rows, T) (all for windows) */
        const int64_t r0 = T - check_rows;
        lisa_tensor qs = host_slice(&q, 1, r0, check_rows);
        lisa_tensor rhs0 = host_slice(&rh, 0, 0, check_b), rws0 = host_slice(&rw, 0, 0, check_b);
        lisa_tensor rhs = host_slice(&rhs0, 2, r0, check_rows), rws = host_slice(&rws0, 2, r0, check_rows);
        const int64_t rs[4] = {check_b, check_rows, H, D};
        lisa_tensor ref = ck_host(LISA_DTYPE_F32, 4, rs);
        const char *how = cpu_attention(c, &ref, &qs, &k, &v, &rhs, &rws, scale, false);
        lisa_tensor yb;
        lisa_tensor_narrow(&yb, &y, 0, 0, check_b);
        char nm[240];
        snprintf(nm, sizeof nm, "%s rows %lld..%lld", name, (long long)r0, (long long)T - 1);
        compare_rows(c, nm, &yb, 1, r0, check_rows, &ref, how);
        lisa_tensor_free(&ref), lisa_tensor_free(&qs), lisa_tensor_free(&rhs0), lisa_tensor_free(&rws0);
        lisa_tensor_free(&rhs), lisa_tensor_free(&rws);
    }
    ck_free_case(c);
    lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&v), lisa_tensor_free(&rh), lisa_tensor_free(&rw);
    lisa_tensor_free(&qkv);
    if (fused) lisa_tensor_free(&tab_h), lisa_tensor_free(&tab_w);
}

/* LLaMA prefill: packed varlen sequences, 32 heads x 128, causal, one launch; path FLASH (mma.sync)
 * or WGMMA (sm_90a). */
static void llama_prefill(ck_ctx *c, const int64_t *lens, int nseq, lisa_cuda_attn_path path) {
    const int64_t H = 32, D = 128;
    int64_t total = 0, maxlen = 0;
    for (int i = 0; i < nseq; i++) total += lens[i], maxlen = lens[i] > maxlen ? lens[i] : maxlen;
    char name[112];
    snprintf(name, sizeof name, "LLaMA prefill varlen %d seqs (max %lld) x 32 x 128 causal%s", nseq, (long long)maxlen,
             path == LISA_CUDA_ATTN_WGMMA ? " (wgmma)" : "");
    if (!ck_selected(c, "attention", name)) return;
    if (path == LISA_CUDA_ATTN_WGMMA && !lisa_cuda_attn_wgmma_available(c->gpu)) {
        ck_record(c, "attention", name, "BF16", 2, 0, 0, -1, "device cannot run the sm_90a kernel");
        return;
    }
    lisa_tensor q = rand16(c, 3, total, H, D, 0, -1, 1), k = rand16(c, 3, total, H, D, 0, -1, 1),
                v = rand16(c, 3, total, H, D, 0, -1, 1);
    const int64_t cs[1] = {nseq + 1};
    lisa_tensor cu = ck_host(LISA_DTYPE_I32, 1, cs);
    ((int32_t *)cu.data)[0] = 0;
    for (int i = 0; i < nseq; i++) ((int32_t *)cu.data)[i + 1] = ((int32_t *)cu.data)[i] + (int32_t)lens[i];
    lisa_tensor dq = ck_dev_from(c, &q, LISA_DTYPE_BF16, false), dk = ck_dev_from(c, &k, LISA_DTYPE_BF16, false),
                dv = ck_dev_from(c, &v, LISA_DTYPE_BF16, false), dcu = ck_dev_from(c, &cu, LISA_DTYPE_I32, false);
    const int64_t ys[3] = {total, H, D};
    lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 3, ys);
    const float scale = 1.0f / sqrtf((float)D);
    lisa_status s =
        lisa_cuda_flash_attn_varlen_path(c->gpu, &y, &dq, &dk, &dv, &dcu, &dcu, (int32_t)maxlen, scale, true, path);
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    if (s != LISA_OK) {
        ck_record(c, "attention", name, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
    } else {
        for (int i = 0; i < nseq; i++) {
            /* the last (up to 64) query rows of sequence i against all its keys: causal offset preserved */
            const int64_t off = ((int32_t *)cu.data)[i], n = lens[i] < 64 ? lens[i] : 64, r0 = off + lens[i] - n;
            lisa_tensor qs = host_slice(&q, 0, r0, n), ks = host_slice(&k, 0, off, lens[i]), vs = host_slice(&v, 0, off, lens[i]);
            lisa_tensor q4, k4, v4;
            const int64_t s4q[4] = {1, n, H, D}, s4k[4] = {1, lens[i], H, D};
            lisa_tensor_reshape(&q4, &qs, 4, s4q), lisa_tensor_reshape(&k4, &ks, 4, s4k), lisa_tensor_reshape(&v4, &vs, 4, s4k);
            lisa_tensor ref = ck_host(LISA_DTYPE_F32, 4, s4q);
            const char *how = cpu_attention(c, &ref, &q4, &k4, &v4, NULL, NULL, scale, true);
            lisa_tensor ref3;
            const int64_t s3[3] = {n, H, D};
            lisa_tensor_reshape(&ref3, &ref, 3, s3);
            char nm[240];
            snprintf(nm, sizeof nm, "%s seq %d (len %lld)", name, i, (long long)lens[i]);
            compare_rows(c, nm, &y, 0, r0, n, &ref3, how);
            lisa_tensor_free(&ref), lisa_tensor_free(&qs), lisa_tensor_free(&ks), lisa_tensor_free(&vs);
        }
    }
    ck_free_case(c);
    lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&v), lisa_tensor_free(&cu);
}

/* Decode: one query per request over a KV cache of kv_len tokens, contiguous (the op, split-K)
 * and paged (16-token pages, shuffled page ids). */
static void llama_decode(ck_ctx *c, int64_t B, int64_t kv_len) {
    const int64_t H = 32, D = 128, PS = 16;
    char name[112];
    snprintf(name, sizeof name, "LLaMA decode B%lld kv %lld x 32 x 128", (long long)B, (long long)kv_len);
    if (!ck_selected(c, "attention", name)) return;
    lisa_tensor q = rand16(c, 4, B, 1, H, D, -1, 1), k = rand16(c, 4, B, kv_len, H, D, -1, 1),
                v = rand16(c, 4, B, kv_len, H, D, -1, 1);
    const int64_t ys[4] = {B, 1, H, D};
    lisa_tensor ref = ck_host(LISA_DTYPE_F32, 4, ys);
    const float scale = 1.0f / sqrtf((float)D);
    const char *how = cpu_attention(c, &ref, &q, &k, &v, NULL, NULL, scale, false);
    lisa_tensor dq = ck_dev_from(c, &q, LISA_DTYPE_BF16, false), dk = ck_dev_from(c, &k, LISA_DTYPE_BF16, false),
                dv = ck_dev_from(c, &v, LISA_DTYPE_BF16, false);
    lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 4, ys);
    lisa_attn_params p = {.scale = scale};
    lisa_status s = lisa_cuda_attention_path(c->gpu, &y, &dq, &dk, &dv, &p, LISA_CUDA_ATTN_SPLITKV);
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    char nm[240];
    snprintf(nm, sizeof nm, "%s contiguous", name);
    if (s != LISA_OK)
        ck_record(c, "attention", nm, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
    else
        compare_rows(c, nm, &y, 0, 0, B, &ref, how);
    /* paged: the same K/V scattered into shuffled pages */
    const int64_t per = (kv_len + PS - 1) / PS, n_pages = B * per + 5;
    const int64_t pshape[4] = {n_pages, PS, H, D};
    lisa_tensor kp = ck_host(LISA_DTYPE_F32, 4, pshape), vp = ck_host(LISA_DTYPE_F32, 4, pshape);
    ck_fill(c, &kp, -1, 1, false), ck_fill(c, &vp, -1, 1, false);
    const int64_t s1[1] = {B * per}, s2[1] = {B + 1}, s3[1] = {B};
    lisa_tensor idx = ck_host(LISA_DTYPE_I32, 1, s1), indptr = ck_host(LISA_DTYPE_I32, 1, s2), lens = ck_host(LISA_DTYPE_I32, 1, s3);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_pages);
    for (int64_t i = 0; i < n_pages; i++) perm[i] = (int32_t)i;
    for (int64_t i = n_pages - 1; i > 0; i--) {
        int64_t j = (int64_t)(ck_next(&c->rng) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int64_t b = 0; b < B; b++) {
        ((int32_t *)indptr.data)[b] = (int32_t)(b * per);
        ((int32_t *)lens.data)[b] = (int32_t)kv_len;
        for (int64_t pg = 0; pg < per; pg++) ((int32_t *)idx.data)[b * per + pg] = perm[b * per + pg];
        for (int64_t t = 0; t < kv_len; t++) {
            const int64_t page = perm[b * per + t / PS], slot = t % PS;
            memcpy((float *)kp.data + ((page * PS + slot) * H) * D, (float *)k.data + ((b * kv_len + t) * H) * D,
                   sizeof(float) * (size_t)(H * D));
            memcpy((float *)vp.data + ((page * PS + slot) * H) * D, (float *)v.data + ((b * kv_len + t) * H) * D,
                   sizeof(float) * (size_t)(H * D));
        }
    }
    ((int32_t *)indptr.data)[B] = (int32_t)(B * per);
    free(perm);
    lisa_tensor dkp = ck_dev_from(c, &kp, LISA_DTYPE_BF16, false), dvp = ck_dev_from(c, &vp, LISA_DTYPE_BF16, false);
    lisa_tensor didx = ck_dev_from(c, &idx, LISA_DTYPE_I32, false), dptr = ck_dev_from(c, &indptr, LISA_DTYPE_I32, false),
                dlen = ck_dev_from(c, &lens, LISA_DTYPE_I32, false);
    /* one query row per sequence: qo_indptr = 0, 1, .., B (the decode step of PAGED_ATTENTION) */
    lisa_tensor q3, y3;
    const int64_t qs3[3] = {B, H, D}, sq[1] = {B + 1};
    lisa_tensor_reshape(&q3, &dq, 3, qs3);
    lisa_tensor yp = ck_dev_poison(c, LISA_DTYPE_BF16, 4, ys);
    lisa_tensor_reshape(&y3, &yp, 3, qs3);
    lisa_tensor qo = ck_host(LISA_DTYPE_I32, 1, sq);
    for (int64_t b = 0; b <= B; b++) ((int32_t *)qo.data)[b] = (int32_t)b;
    lisa_tensor dqo = ck_dev_from(c, &qo, LISA_DTYPE_I32, false);
    s = lisa_cuda_paged_attention_ex(c->gpu, &y3, &q3, &dkp, &dvp, (int32_t)B, (int32_t)PS, scale, true, &dqo, &dptr, &didx,
                                     &dlen, (const int32_t *)qo.data, (const int32_t *)indptr.data,
                                     (const int32_t *)idx.data, (const int32_t *)lens.data);
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    lisa_tensor_free(&qo);
    snprintf(nm, sizeof nm, "%s paged/16", name);
    if (s != LISA_OK)
        ck_record(c, "attention", nm, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
    else
        compare_rows(c, nm, &yp, 0, 0, B, &ref, how);
    ck_free_case(c);
    lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&v), lisa_tensor_free(&ref);
    lisa_tensor_free(&kp), lisa_tensor_free(&vp), lisa_tensor_free(&idx), lisa_tensor_free(&indptr), lisa_tensor_free(&lens);
}

/* Two-way transformer (8 heads): token->image q[N, 6, 8, 16] vs k/v[N, 4096, 8, 16] (split-KV),
 * image->token q[N, 4096, 8, 16] vs k/v[N, 6, 8, 16] (reference kernel), token self-attention
 * [N, 6, 8, 32]. */
static void two_way(ck_ctx *c, int64_t N) {
    struct {
        const char *what;
        int64_t Tq, Tk, D;
    } cases[3] = {{"token->image", 6, 4096, 16}, {"image->token", 4096, 6, 16}, {"token self", 6, 6, 32}};
    for (int i = 0; i < 3; i++) {
        char name[112];
        snprintf(name, sizeof name, "two-way %s N%lld Tq %lld Tk %lld x 8 x %lld", cases[i].what, (long long)N,
                 (long long)cases[i].Tq, (long long)cases[i].Tk, (long long)cases[i].D);
        if (!ck_selected(c, "attention", name)) continue;
        const int64_t H = 8, D = cases[i].D, Tq = cases[i].Tq, Tk = cases[i].Tk;
        lisa_tensor q = rand16(c, 4, N, Tq, H, D, -1, 1), k = rand16(c, 4, N, Tk, H, D, -1, 1), v = rand16(c, 4, N, Tk, H, D, -1, 1);
        const int64_t ys[4] = {N, Tq, H, D};
        lisa_tensor ref = ck_host(LISA_DTYPE_F32, 4, ys);
        const float scale = 1.0f / sqrtf((float)D);
        const char *how = cpu_attention(c, &ref, &q, &k, &v, NULL, NULL, scale, false);
        lisa_tensor dq = ck_dev_from(c, &q, LISA_DTYPE_BF16, false), dk = ck_dev_from(c, &k, LISA_DTYPE_BF16, false),
                    dv = ck_dev_from(c, &v, LISA_DTYPE_BF16, false);
        lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 4, ys);
        lisa_attn_params p = {.scale = scale};
        lisa_status s = lisa_op_attention(c->gpu, &y, &dq, &dk, &dv, &p);
        if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
        if (s != LISA_OK)
            ck_record(c, "attention", name, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
        else
            compare_rows(c, name, &y, 0, 0, N, &ref, how);
        ck_free_case(c);
        lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&v), lisa_tensor_free(&ref);
    }
}

/* PAGED_ATTENTION over one layer's pool (LLaMA-7B heads, 16-token pages, shuffled page ids) for a
 * batch mixing a fresh 330-token prefill, a 64-row chunk after a 136-token cached prefix, and
 * decode rows at 1024 and 17 keys; then KV_APPEND of new rows into the pool. The reference gathers
 * each sequence's pages on the host and runs the dense attention (causal: the chunk's rows sit at
 * the end of its keys). */
static void paged(ck_ctx *c) {
    const int64_t H = 32, D = 128, PS = 16;
    const int B = 4;
    const int32_t qlen[4] = {330, 64, 1, 1}, kvlen[4] = {330, 200, 1024, 17};
    const char *name = "paged LLaMA-7B: prefill 330, chunk 64@200, decode @1024/@17";
    if (!ck_selected(c, "paged_attention", name)) return;
    int32_t qo[5] = {0}, ptr[5] = {0};
    for (int b = 0; b < B; b++) qo[b + 1] = qo[b] + qlen[b], ptr[b + 1] = ptr[b] + (kvlen[b] + (int32_t)PS - 1) / (int32_t)PS;
    const int64_t T = qo[B], n_pages = ptr[B] + 3;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_pages);
    for (int64_t i = 0; i < n_pages; i++) perm[i] = (int32_t)i;
    for (int64_t i = n_pages - 1; i > 0; i--) {
        int64_t j = (int64_t)(ck_next(&c->rng) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    lisa_tensor q = rand16(c, 3, T, H, D, 0, -1, 1), kp = rand16(c, 4, n_pages, PS, H, D, -1, 1),
                vp = rand16(c, 4, n_pages, PS, H, D, -1, 1);
    const int64_t sb1[1] = {B + 1}, sb[1] = {B}, sn[1] = {ptr[B]};
    lisa_tensor hqo = ck_host(LISA_DTYPE_I32, 1, sb1), hptr = ck_host(LISA_DTYPE_I32, 1, sb1), hlen = ck_host(LISA_DTYPE_I32, 1, sb),
                hidx = ck_host(LISA_DTYPE_I32, 1, sn);
    memcpy(hqo.data, qo, sizeof qo), memcpy(hptr.data, ptr, sizeof ptr), memcpy(hlen.data, kvlen, sizeof kvlen);
    memcpy(hidx.data, perm, sizeof(int32_t) * (size_t)ptr[B]);
    lisa_tensor dq = ck_dev_from(c, &q, LISA_DTYPE_BF16, false), dkp = ck_dev_from(c, &kp, LISA_DTYPE_BF16, false),
                dvp = ck_dev_from(c, &vp, LISA_DTYPE_BF16, false), dqo = ck_dev_from(c, &hqo, LISA_DTYPE_I32, false),
                dptr = ck_dev_from(c, &hptr, LISA_DTYPE_I32, false), dlen = ck_dev_from(c, &hlen, LISA_DTYPE_I32, false),
                didx = ck_dev_from(c, &hidx, LISA_DTYPE_I32, false);
    const int64_t ys[3] = {T, H, D};
    lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 3, ys);
    const float scale = 1.0f / sqrtf((float)D);
    lisa_status s = lisa_cuda_paged_attention_ex(c->gpu, &y, &dq, &dkp, &dvp, B, (int32_t)PS, scale, true, &dqo, &dptr, &didx,
                                                 &dlen, qo, ptr, perm, kvlen);
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    if (s != LISA_OK) {
        ck_record(c, "paged_attention", name, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
    } else {
        for (int b = 0; b < B; b++) {
            /* gather the sequence's keys, then its last (up to 64) query rows */
            const int64_t tk = kvlen[b], n = qlen[b] < 64 ? qlen[b] : 64, r0 = qo[b] + qlen[b] - n;
            const int64_t s4k[4] = {1, tk, H, D}, s4q[4] = {1, n, H, D};
            lisa_tensor k4 = ck_host(LISA_DTYPE_F32, 4, s4k), v4 = ck_host(LISA_DTYPE_F32, 4, s4k);
            for (int64_t j = 0; j < tk; j++) {
                const int64_t page = perm[ptr[b] + j / PS], slot = j % PS;
                memcpy((float *)k4.data + j * H * D, (float *)kp.data + (page * PS + slot) * H * D, sizeof(float) * (size_t)(H * D));
                memcpy((float *)v4.data + j * H * D, (float *)vp.data + (page * PS + slot) * H * D, sizeof(float) * (size_t)(H * D));
            }
            lisa_tensor qs = host_slice(&q, 0, r0, n), q4;
            lisa_tensor_reshape(&q4, &qs, 4, s4q);
            lisa_tensor ref = ck_host(LISA_DTYPE_F32, 4, s4q), ref3;
            const char *how = cpu_attention(c, &ref, &q4, &k4, &v4, NULL, NULL, scale, true);
            const int64_t s3[3] = {n, H, D};
            lisa_tensor_reshape(&ref3, &ref, 3, s3);
            char nm[240];
            snprintf(nm, sizeof nm, "paged seq %d: %d rows @ %d keys", b, qlen[b], kvlen[b]);
            lisa_tensor got_all = ck_download(c, &y), got = host_slice(&got_all, 0, r0, n);
            if (!ck_compare(c, "paged_attention", nm, "BF16", &got, &ref3, 1e-2, 1.0 / 64, NULL, NULL))
                fprintf(stderr, "    (%s)\n", how);
            lisa_tensor_free(&got), lisa_tensor_free(&got_all), lisa_tensor_free(&ref), lisa_tensor_free(&qs);
            lisa_tensor_free(&k4), lisa_tensor_free(&v4);
        }
    }
    /* KV_APPEND: three new F32 rows (one padding) into the BF16 pool, exact after rounding */
    if (ck_selected(c, "kv_append", "F32 rows into BF16 pages")) {
        const int64_t ss[1] = {3};
        lisa_tensor kn = rand16(c, 3, 3, H, D, 0, -1, 1), vn = rand16(c, 3, 3, H, D, 0, -1, 1), sl = ck_host(LISA_DTYPE_I32, 1, ss);
        const int32_t slots[3] = {perm[0] * (int32_t)PS + 5, -1, perm[ptr[B] - 1] * (int32_t)PS + 15};
        memcpy(sl.data, slots, sizeof slots);
        lisa_tensor dkn = ck_dev_from(c, &kn, LISA_DTYPE_F32, true), dvn = ck_dev_from(c, &vn, LISA_DTYPE_F32, true),
                    dsl = ck_dev_from(c, &sl, LISA_DTYPE_I32, false);
        s = lisa_cuda_kv_append(c->gpu, &dkp, &dvp, &dkn, &dvn, &dsl);
        if (s != LISA_OK) {
            ck_record(c, "kv_append", "F32 rows into BF16 pages", "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
        } else {
            for (int k = 0; k < 3; k += 2) { /* pool rows vs the new rows; row 1 was padding */
                const int64_t slot = slots[k];
                lisa_tensor pk = ck_download(c, &dkp), pv = ck_download(c, &dvp);
                lisa_tensor gk = host_slice(&pk, 0, slot / PS, 1), gv = host_slice(&pv, 0, slot / PS, 1);
                lisa_tensor gk1 = host_slice(&gk, 1, slot % PS, 1), gv1 = host_slice(&gv, 1, slot % PS, 1);
                lisa_tensor wk = host_slice(&kn, 0, k, 1), wv = host_slice(&vn, 0, k, 1), wk4, wv4;
                const int64_t s4[4] = {1, 1, H, D};
                lisa_tensor_reshape(&wk4, &wk, 4, s4), lisa_tensor_reshape(&wv4, &wv, 4, s4);
                char nm[64];
                snprintf(nm, sizeof nm, "F32 rows into BF16 pages, row %d (k)", k);
                ck_compare(c, "kv_append", nm, "BF16", &gk1, &wk4, 0, 0, NULL, NULL);
                snprintf(nm, sizeof nm, "F32 rows into BF16 pages, row %d (v)", k);
                ck_compare(c, "kv_append", nm, "BF16", &gv1, &wv4, 0, 0, NULL, NULL);
                lisa_tensor_free(&pk), lisa_tensor_free(&pv), lisa_tensor_free(&gk), lisa_tensor_free(&gv);
                lisa_tensor_free(&gk1), lisa_tensor_free(&gv1), lisa_tensor_free(&wk), lisa_tensor_free(&wv);
            }
            /* a slot past the pool: LISA_ERR_INVALID_ARG */
            ((int32_t *)sl.data)[1] = (int32_t)(n_pages * PS);
            lisa_tensor dsl2 = ck_dev_from(c, &sl, LISA_DTYPE_I32, false);
            lisa_clear_error();
            s = lisa_cuda_kv_append(c->gpu, &dkp, &dvp, &dkn, &dvn, &dsl2);
            ck_record(c, "kv_append", "slot past the pool is an error", "-", s == LISA_ERR_INVALID_ARG ? 0 : 1, 0, 0, -1,
                      "got %s: %s", lisa_status_name(s), lisa_last_error());
        }
        lisa_tensor_free(&kn), lisa_tensor_free(&vn), lisa_tensor_free(&sl);
    }
    ck_free_case(c);
    free(perm);
    lisa_tensor_free(&q), lisa_tensor_free(&kp), lisa_tensor_free(&vp);
    lisa_tensor_free(&hqo), lisa_tensor_free(&hptr), lisa_tensor_free(&hlen), lisa_tensor_free(&hidx);
}

void ck_cases_attention(ck_ctx *c) {
    const bool q = c->quick;
    if (c->self_test) return; /* the CUDA launchers (varlen, paged, forced paths) */
    sam_attention(c, false, q ? 25 : 50, LISA_CUDA_ATTN_FLASH, false); /* 1 or 2 images of 25 windows (the benchmark times batch 8) */
    sam_attention(c, true, q ? 1 : 2, LISA_CUDA_ATTN_FLASH, false);
    const int64_t lens_q[1] = {330}, lens[4] = {330, 1, 129, 64};
    llama_prefill(c, q ? lens_q : lens, q ? 1 : 4, LISA_CUDA_ATTN_FLASH);
    /* the sm_90a kernel at the same shapes (SKIPped off Hopper), rel-pos as terms and fused */
    sam_attention(c, false, q ? 25 : 50, LISA_CUDA_ATTN_WGMMA, false);
    sam_attention(c, false, q ? 25 : 50, LISA_CUDA_ATTN_WGMMA, true);
    sam_attention(c, true, q ? 1 : 2, LISA_CUDA_ATTN_WGMMA, false);
    sam_attention(c, true, q ? 1 : 2, LISA_CUDA_ATTN_WGMMA, true);
    llama_prefill(c, q ? lens_q : lens, q ? 1 : 4, LISA_CUDA_ATTN_WGMMA);
    llama_decode(c, 2, 1024);
    if (!q) llama_decode(c, 1, 4096);
    two_way(c, q ? 1 : 3);
    paged(c);
}
