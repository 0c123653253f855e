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
/* ATTENTION_RELPOS: inputs q, k, v, rel_pos_h, rel_pos_w; CUDA on a forced path (AUTO: the op) */
typedef struct attn_relpos_arg {
    int32_t qh, qw;
    float scale;
    lisa_cuda_attn_path path;
} attn_relpos_arg;
static lisa_status c_attention_relpos(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    const attn_relpos_arg *r = a;
    if (be->device == LISA_DEVICE_CUDA && r->path != LISA_CUDA_ATTN_AUTO)
        return lisa_cuda_attention_relpos_path(be, &o[0], &i[0], &i[1], &i[2], &i[3], &i[4], r->qh, r->qw, r->scale, r->path);
    return lisa_op_attention_relpos(be, &o[0], &i[0], &i[1], &i[2], &i[3], &i[4], r->qh, r->qw, r->scale);
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
/* the same on the GPU through cuDNN (kernels/cuda/conv_cudnn.c); the CPU runs the op */
static lisa_status c_conv2d_cudnn(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    const conv_arg *c = a;
    if (be->device != LISA_DEVICE_CUDA) return lisa_op_conv2d(be, &o[0], &i[0], &i[1], c->bias ? &i[2] : NULL, c->stride, c->pad);
    return lisa_cuda_conv2d_cudnn(be, &o[0], &i[0], &i[1], c->bias ? &i[2] : NULL, c->stride, c->pad);
}
static lisa_status c_convt_cudnn(lisa_backend *be, lisa_tensor *o, lisa_tensor *i, const void *a) {
    if (be->device != LISA_DEVICE_CUDA) return lisa_op_conv_transpose2d_k2s2(be, &o[0], &i[0], &i[1], &i[2]);
    return lisa_cuda_convt_k2s2_cudnn(be, &o[0], &i[0], &i[1], &i[2]);
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
    /* the small-M kernel (kernels/cuda/gemv_kernels.cuh) in the BF16 runs: decode shapes, split-K
     * with a short last split, 16 rows, strided x */
    linear_case(c, "gemv M1 K4096 N11008", 1, 4096, 11008, false, false);
    if (!(c->self_test && q)) linear_case(c, "gemv M16 K11008 N4096", 16, 11008, 4096, false, false);
    linear_case(c, "gemv M3 K2056 N1000 strided", 3, 2056, 1000, true, true);
    linear_ex_case(c, "gemv residual M5 K1024 N777", &act_none, 5, 1024, 777);
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
    /* ATTENTION_RELPOS: the op (F32: the composition on the GPU; BF16: the mma.sync kernel computing
     * the rel-pos terms from its Q tile), the composition forced (REL_POS + ATTENTION on the GPU),
     * and on Hopper the sm_90a fused kernel; SAM windows with a strided q, an odd grid at head dim
     * 64, a 64x64 global grid (two chunks of table rows per block) */
    {
        static const attn_relpos_arg win = {14, 14, 0.1118033989f, LISA_CUDA_ATTN_AUTO};
        ck_case ar = {.op = "attention_relpos", .label = "[2,196,2,80] 14x14 (SAM windows)", .call = c_attention_relpos,
                      .arg = &win, .n_in = 5, .n_out = 1,
                      .in = {T_ACT(4, -1, 1, 2, 196, 2, 80), T_ACT(4, -1, 1, 2, 196, 2, 80), T_ACT(4, -1, 1, 2, 196, 2, 80),
                             T_PAR(2, -0.3, 0.3, 27, 80), T_PAR(2, -0.3, 0.3, 27, 80)},
                      .out = {T_OUT(4, 2, 196, 2, 80)}, .strided_in0 = true, .atol32 = 2e-5, .rtol32 = 2e-5, .atol16 = 1e-2,
                      .rtol16 = 1.0 / 64};
        ck_run_case(c, &ar);
        static const attn_relpos_arg win_unfused = {14, 14, 0.1118033989f, LISA_CUDA_ATTN_UNFUSED};
        ck_case au = ar;
        au.label = "[2,196,2,80] 14x14 (REL_POS + ATTENTION on the gpu)", au.arg = &win_unfused;
        ck_run_case(c, &au);
        static const attn_relpos_arg odd = {5, 7, 0.125f, LISA_CUDA_ATTN_AUTO};
        ck_case ao = ar;
        ao.label = "[2,35,3,64] 5x7 (odd grid, D 64)", ao.arg = &odd, ao.strided_in0 = false;
        ao.in[0] = (ck_tspec)T_ACT(4, -1, 1, 2, 35, 3, 64), ao.in[1] = ao.in[0], ao.in[2] = ao.in[0];
        ao.in[3] = (ck_tspec)T_PAR(2, -0.3, 0.3, 9, 64), ao.in[4] = (ck_tspec)T_PAR(2, -0.3, 0.3, 13, 64);
        ao.out[0] = (ck_tspec)T_OUT(4, 2, 35, 3, 64);
        ck_run_case(c, &ao);
        static const attn_relpos_arg glob = {64, 64, 0.1118033989f, LISA_CUDA_ATTN_AUTO};
        ck_case ag = ar;
        ag.label = "[1,4096,1,80] 64x64 (SAM global)", ag.arg = &glob, ag.strided_in0 = false;
        ag.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 4096, 1, 80), ag.in[1] = ag.in[0], ag.in[2] = ag.in[0];
        ag.in[3] = (ck_tspec)T_PAR(2, -0.3, 0.3, 127, 80), ag.in[4] = ag.in[3];
        ag.out[0] = (ck_tspec)T_OUT(4, 1, 4096, 1, 80);
        if (!(c->self_test && c->quick)) ck_run_case(c, &ag); /* the CPU twice at 4096 tokens: slow for the quick self-test */
        if (c->self_test || lisa_cuda_attn_wgmma_available(c->gpu)) {
            static const attn_relpos_arg win_w = {14, 14, 0.1118033989f, LISA_CUDA_ATTN_WGMMA};
            ck_case aw = ar;
            aw.label = "[2,196,2,80] 14x14 (sm_90a fused)", aw.arg = &win_w, aw.no_f32 = true;
            ck_run_case(c, &aw);
        } else {
            ck_record(c, "attention_relpos", "sm_90a fused case", "-", 2, 0, 0, -1, "device cannot run the sm_90a kernel");
        }
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
        /* cuDNN (kernels/cuda/conv_cudnn.c, BF16 only): SAM's neck 3x3 conv and the mask decoder's
         * two transposed convs at their real shapes (batch 2 / 3 masks), and an awkward one */
        if (!c->self_test && ck_selected(c, "conv2d", "cudnn")) {
            if (lisa_cuda_set_conv_path(c->gpu, false, LISA_CUDA_CONV_CUDNN) != LISA_OK) {
                ck_record(c, "conv2d", "cudnn", "-", 2, 0, 0, -1, "cuDNN not available: %s", lisa_last_error());
            } else {
                lisa_cuda_set_conv_path(c->gpu, false, LISA_CUDA_CONV_IM2COL);
                static const conv_arg neck = {1, 1, false}, c33b = {1, 1, true};
                ck_case cd = {.op = "conv2d", .label = "cudnn neck 3x3 [2,256,64,64]->256", .call = c_conv2d_cudnn,
                              .arg = &neck, .n_in = 2, .n_out = 1,
                              .in = {T_ACT(4, -1, 1, 2, 256, 64, 64), T_PAR(4, -1, 1, 256, 256, 3, 3)},
                              .out = {T_OUT(4, 2, 256, 64, 64)}, .no_f32 = true, .atol32 = gemm_atol32(2304),
                              .rtol32 = 1e-4, .atol16 = gemm_atol16(2304) / 8, .rtol16 = 1.0 / 64};
                ck_run_case(c, &cd);
                cd.label = "cudnn 3x3/p1 [2,19,13,11]->7 +bias", cd.arg = &c33b, cd.n_in = 3;
                cd.in[0] = (ck_tspec)T_ACT(4, -1, 1, 2, 19, 13, 11), cd.in[1] = (ck_tspec)T_PAR(4, -1, 1, 7, 19, 3, 3);
                cd.in[2] = (ck_tspec)T_PAR(1, -1, 1, 7), cd.out[0] = (ck_tspec)T_OUT(4, 2, 7, 13, 11);
                cd.atol16 = gemm_atol16(171) / 8;
                ck_run_case(c, &cd);
                ck_case cdt = {.op = "conv_transpose2d_k2s2", .label = "cudnn [3,256,64,64]->64", .call = c_convt_cudnn,
                               .n_in = 3, .n_out = 1,
                               .in = {T_ACT(4, -1, 1, 3, 256, 64, 64), T_PAR(4, -1, 1, 256, 64, 2, 2), T_PAR(1, -1, 1, 64)},
                               .out = {T_OUT(4, 3, 64, 128, 128)}, .atol32 = gemm_atol32(256), .rtol32 = 1e-4,
                               .atol16 = gemm_atol16(256) / 8, .rtol16 = 1.0 / 64, .no_f32 = true};
                ck_run_case(c, &cdt);
                cdt.label = "cudnn [3,64,128,128]->32", cdt.in[0] = (ck_tspec)T_ACT(4, -1, 1, 3, 64, 128, 128);
                cdt.in[1] = (ck_tspec)T_PAR(4, -1, 1, 64, 32, 2, 2), cdt.in[2] = (ck_tspec)T_PAR(1, -1, 1, 32);
                cdt.out[0] = (ck_tspec)T_OUT(4, 3, 32, 256, 256), cdt.atol16 = gemm_atol16(64) / 8;
                ck_run_case(c, &cdt);
            }
        }
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
    /* How each backend runs the fused ops (kernels/ops.h lisa_backend_fuses): the CPU reference as
     * the compositions ops.def names, the CUDA backend natively. A CUDA backend that composes one is
     * a failure (its models would pay the unfused ops' memory traffic). */
    if (ck_selected(c, "fused_ops", "native")) {
        for (int op = LISA_OP_FIRST_FUSED; op < LISA_OP_COUNT; op++) {
            const bool native = lisa_backend_fuses(c->gpu, (lisa_op)op), cpu_native = lisa_backend_fuses(c->cpu, (lisa_op)op);
            const bool want = c->gpu->device == LISA_DEVICE_CUDA;
            ck_record(c, "fused_ops", lisa_op_name((lisa_op)op), "-", native == want && !cpu_native ? 0 : 1, 0, 0, -1,
                      "%s: %s; cpu: %s", c->gpu->name, native ? "native (one kernel)" : "composed",
                      cpu_native ? "native" : "composed (the unfused ops, bit for bit)");
        }
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
        /* the CUDA backend checks ids on the device without a host wait: the error comes from the op
         * or from the next wait (kernels/cuda/cuda.h), and clears after it is reported */
        lisa_status s = lisa_op_embedding(c->gpu, &y, &dtab, &dids);
        if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
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
    /* The small-M kernel's batch invariance and determinism on the device: row 0 of a 16-row call is
     * bit-identical to the same row alone and to a second run (kernels/cuda/gemv_kernels.cuh). */
    if (ck_selected(c, "linear", "gemv bits")) {
        const int64_t K = 4096, N = 4104, xs[2] = {16, K}, ws[2] = {N, K};
        lisa_tensor hx = ck_host(LISA_DTYPE_F32, 2, xs), hw = ck_host(LISA_DTYPE_F32, 2, ws);
        ck_fill(c, &hx, -1, 1, false), ck_fill(c, &hw, -1, 1, false);
        lisa_tensor dx = ck_dev_from(c, &hx, LISA_DTYPE_BF16, false), dw = ck_dev_from(c, &hw, LISA_DTYPE_BF16, false);
        lisa_tensor x1 = dx;
        x1.shape[0] = 1;
        const int64_t y16s[2] = {16, N}, y1s[2] = {1, N};
        lisa_tensor y16 = ck_dev_poison(c, LISA_DTYPE_F32, 2, y16s), y1 = ck_dev_poison(c, LISA_DTYPE_F32, 2, y1s),
                    y1b = ck_dev_poison(c, LISA_DTYPE_F32, 2, y1s);
        lisa_status s = lisa_op_linear(c->gpu, &y16, &dx, &dw, NULL);
        if (s == LISA_OK) s = lisa_op_linear(c->gpu, &y1, &x1, &dw, NULL);
        if (s == LISA_OK) s = lisa_op_linear(c->gpu, &y1b, &x1, &dw, NULL);
        if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
        if (s != LISA_OK) {
            ck_record(c, "linear", "gemv bits: row 0 of M16 = M1 = M1 again", "BF16", 1, NAN, 0, -1, "%s", lisa_last_error());
        } else {
            lisa_tensor g16 = ck_download(c, &y16), g1 = ck_download(c, &y1), g1b = ck_download(c, &y1b);
            int64_t diff = 0;
            for (int64_t n = 0; n < N; n++)
                diff += memcmp((float *)g16.data + n, (float *)g1.data + n, 4) != 0 ||
                        memcmp((float *)g1b.data + n, (float *)g1.data + n, 4) != 0;
            ck_record(c, "linear", "gemv bits: row 0 of M16 = M1 = M1 again", "BF16", diff ? 1 : 0, (double)diff, 0, -1,
                      "%lld of %lld outputs differ in some bit", (long long)diff, (long long)N);
            lisa_tensor_free(&g16), lisa_tensor_free(&g1), lisa_tensor_free(&g1b);
        }
        ck_free_case(c);
        lisa_tensor_free(&hx), lisa_tensor_free(&hw);
    }
    /* No host wait inside a step (tools/check_syncs.py checks the code; this counts on the device):
     * the ops a prefill layer issues with their checks (embedding ids, KV slots), then one wait. */
    if (ck_selected(c, "kv_append", "no host wait")) {
        const int64_t ts[2] = {100, 64}, is[1] = {7}, ps[4] = {6, 4, 2, 32}, ks[3] = {7, 2, 32}, ss[1] = {7};
        lisa_tensor tab = ck_host(LISA_DTYPE_F32, 2, ts), ids = ck_host(LISA_DTYPE_I32, 1, is), kn = ck_host(LISA_DTYPE_F32, 3, ks),
                    sl = ck_host(LISA_DTYPE_I32, 1, ss);
        ck_fill(c, &tab, -1, 1, false), ck_fill(c, &kn, -1, 1, false), ck_fill(c, &ids, 0, 100, true);
        for (int t = 0; t < 7; t++) ((int32_t *)sl.data)[t] = t == 3 ? -1 : 3 * t;
        lisa_tensor dtab = ck_dev_from(c, &tab, LISA_DTYPE_BF16, false), dids = ck_dev_from(c, &ids, LISA_DTYPE_I32, false);
        lisa_tensor dk = ck_dev_from(c, &kn, LISA_DTYPE_BF16, false), dsl = ck_dev_from(c, &sl, LISA_DTYPE_I32, false);
        lisa_tensor kp = ck_dev_poison(c, LISA_DTYPE_BF16, 4, ps), vp = ck_dev_poison(c, LISA_DTYPE_BF16, 4, ps);
        const int64_t ys[2] = {7, 64};
        lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 2, ys);
        lisa_status s = c->gpu->synchronize(c->gpu);
        const int64_t w0 = lisa_cuda_host_waits(c->gpu);
        for (int rep = 0; rep < 4 && s == LISA_OK; rep++) { /* a few layers' worth */
            s = lisa_op_embedding(c->gpu, &y, &dtab, &dids);
            if (s == LISA_OK) s = lisa_op_kv_append(c->gpu, &kp, &vp, &dk, &dk, &dsl);
        }
        const int64_t w1 = lisa_cuda_host_waits(c->gpu);
        if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
        const int64_t w2 = lisa_cuda_host_waits(c->gpu);
        const bool ok = s == LISA_OK && w1 == w0 && w2 == w0 + 1;
        ck_record(c, "kv_append", "no host wait in 4 x (embedding + kv_append)", "BF16", ok ? 0 : 1, (double)(w1 - w0), 0, -1,
                  "%lld waits inside, %lld for the synchronize (want 0 and 1)%s%s", (long long)(w1 - w0), (long long)(w2 - w1),
                  s == LISA_OK ? "" : "; ", s == LISA_OK ? "" : lisa_last_error());
        ck_free_case(c);
        lisa_tensor_free(&tab), lisa_tensor_free(&ids), lisa_tensor_free(&kn), lisa_tensor_free(&sl);
    }
}


/* ---- smoke: one small case of every kernel family ---------------------------------------------
 * bench/gpu/suite.sh's first step (a ~20 s budget): it shows within seconds whether the binaries
 * start, the device answers and each family of kernels launches and computes (copy, cuBLASLt GEMM
 * and the small-M path, a norm, softmax, embedding, RoPE, the three attention kernels), before the
 * long sections spend the lease. */
void ck_cases_smoke(ck_ctx *c) {
    ck_case cp = {.op = "copy", .label = "smoke [733,37]", .call = c_copy, .n_in = 1, .n_out = 1,
                  .in = {T_ACT(2, -9, 9, 733, 37)}, .out = {T_OUT(2, 733, 37)}, .strided_in0 = true};
    ck_run_case(c, &cp);
    linear_case(c, "smoke M7 K769 N769", 7, 769, 769, true, false);
    linear_case(c, "smoke M1 K4096 N1000", 1, 4096, 1000, false, false);
    ck_case ln = {.op = "layernorm", .label = "smoke [7,769]", .call = c_layernorm, .n_in = 3, .n_out = 1,
                  .in = {T_ACT(2, -3, 5, 7, 769), T_PAR(1, 0.5, 1.5, 769), T_PAR(1, -1, 1, 769)},
                  .out = {T_OUT(2, 7, 769)}, .atol32 = 1e-5, .rtol32 = 1e-5, .atol16 = 1e-2, .rtol16 = 1.0 / 64};
    ck_run_case(c, &ln);
    ck_case sm = {.op = "softmax", .label = "smoke [3,32004]", .call = c_softmax, .n_in = 1, .n_out = 1,
                  .in = {T_ACT(2, -10, 10, 3, 32004)}, .out = {T_OUT(2, 3, 32004)}, .atol32 = 1e-8, .rtol32 = 1e-5,
                  .atol16 = 1e-6, .rtol16 = 1.0 / 64};
    ck_run_case(c, &sm);
    ck_case em = {.op = "embedding", .label = "smoke [1000,769] ids I32[7]", .call = c_embedding, .n_in = 2, .n_out = 1,
                  .in = {T_PAR(2, -1, 1, 1000, 769), {CK_INT32, 1, {7}, 0, 1000}}, .out = {T_OUT(2, 7, 769)}};
    ck_run_case(c, &em);
    ck_case r1 = {.op = "rope", .label = "smoke [7,32,128]", .call = c_rope, .n_in = 2, .n_out = 1,
                  .in = {T_ACT(3, -2, 2, 7, 32, 128), {CK_INT32, 1, {7}, 0, 2048}}, .out = {T_OUT(3, 7, 32, 128)},
                  .atol32 = 3e-4, .rtol32 = 1e-5, .atol16 = 2e-2, .rtol16 = 1.0 / 64};
    ck_run_case(c, &r1);
    /* attention: reference kernel (odd head dim, causal), flash (CLIP-like, bf16 only on the flash
     * path), split-KV (decode-like), flash with rel-pos */
    static const attn_arg causal = {.scale = 0.1643989873f, .causal = true}, clip = {.scale = 0.125f},
                          dec = {.scale = 0.08838834764f, .causal = true}, rel = {.scale = 0.1118033989f, .rel = true};
    ck_case a = {.op = "attention", .label = "smoke [2,19,4,37] causal", .call = c_attention, .arg = &causal, .n_in = 3,
                 .n_out = 1,
                 .in = {T_ACT(4, -1, 1, 2, 19, 4, 37), T_ACT(4, -1, 1, 2, 19, 4, 37), T_ACT(4, -1, 1, 2, 19, 4, 37)},
                 .out = {T_OUT(4, 2, 19, 4, 37)}, .atol32 = 2e-5, .rtol32 = 2e-5, .atol16 = 1e-2, .rtol16 = 1.0 / 64};
    ck_run_case(c, &a);
    a.label = "smoke [1,130,4,64] (flash in bf16)", a.arg = &clip;
    a.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 130, 4, 64), a.in[1] = a.in[0], a.in[2] = a.in[0];
    a.out[0] = (ck_tspec)T_OUT(4, 1, 130, 4, 64);
    ck_run_case(c, &a);
    a.label = "smoke [1,1,4,128] kv 700 (split-KV)", a.arg = &dec;
    a.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 1, 4, 128), a.in[1] = (ck_tspec)T_ACT(4, -1, 1, 1, 700, 4, 128);
    a.in[2] = a.in[1], a.out[0] = (ck_tspec)T_OUT(4, 1, 1, 4, 128);
    ck_run_case(c, &a);
    a.label = "smoke [1,35,2,80] rel-pos 5x7", a.arg = &rel, a.n_in = 5;
    a.in[0] = (ck_tspec)T_ACT(4, -1, 1, 1, 35, 2, 80), a.in[1] = a.in[0], a.in[2] = a.in[0];
    a.in[3] = (ck_tspec)T_ACT(4, -2, 2, 1, 2, 35, 5), a.in[4] = (ck_tspec)T_ACT(4, -2, 2, 1, 2, 35, 7);
    a.out[0] = (ck_tspec)T_OUT(4, 1, 35, 2, 80);
    ck_run_case(c, &a);
}
