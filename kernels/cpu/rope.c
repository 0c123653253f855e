/* kernels/cpu/rope.c — ROPE (ops.def): rotary position embedding, rotate-half form.
 *
 * Dimension letters: B batch, T tokens, H heads, D head dim (even), D2 = D/2.
 * The angle is computed the way transformers 4.31 LlamaRotaryEmbedding does, because at large
 * positions the F32 rounding of the angle itself dominates (pos 4000: one F32 ulp is 2.4e-4 rad):
 *   inv_freq[i] = 1 / theta^((2i)/D)       (exponent divided in F32, pow and reciprocal in F32)
 *   freq        = pos · inv_freq[i]        (F32 product)
 *   cos, sin    = of that F32 angle, rounded to F32
 *   y[i]        = x[i]·cos − x[i+D2]·sin,  y[i+D2] = x[i+D2]·cos + x[i]·sin   (F32 ops)
 * ref: transformers/models/llama/modeling_llama.py (4.31) LlamaRotaryEmbedding, rotate_half,
 * apply_rotary_pos_emb (q*cos + rotate_half(q)*sin).
 */
#include "kernels/cpu/cpu.h"

#include <math.h>

/* inv_freq[i] = 1 / theta^((2i)/D) as transformers 4.31 builds it: the exponent divided in F32, the
 * power rounded to F32, then the reciprocal in F32. */
static void rope_inv_freq(float *inv_freq, int64_t D, float theta) {
    for (int64_t i = 0; i < D / 2; i++) {
        const float e = (float)(2 * i) / (float)D;         /* arange(0, D, 2).float() / D */
        const float p = (float)pow((double)theta, (double)e); /* base ** e, rounded to F32 */
        inv_freq[i] = 1.0f / p;
    }
}

/* cos and sin of the F32 angles pos·inv_freq[i], each rounded to F32. */
static void rope_angles(float *c, float *s, float pos, const float *inv_freq, int64_t D2) {
    for (int64_t i = 0; i < D2; i++) {
        const float ang = pos * inv_freq[i];
        c[i] = (float)cos((double)ang);
        s[i] = (float)sin((double)ang);
    }
}

void lisa_rope_table(float *cos_sin, int64_t n_pos, int64_t D, float theta) {
    const int64_t D2 = D / 2;
    float inv_freq[4096]; /* head dims are far below this (LLaMA: 128) */
    LISA_ASSERT(D2 <= 4096);
    rope_inv_freq(inv_freq, D, theta);
    for (int64_t p = 0; p < n_pos; p++) rope_angles(cos_sin + p * D, cos_sin + p * D + D2, (float)p, inv_freq, D2);
}

lisa_status lisa_cpu_rope(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, const lisa_tensor *pos, float theta) {
    char s1[96], s2[96];
    LISA_TRY(lisa_cpu_check_f32("rope", "x", x, true));
    LISA_TRY(lisa_cpu_check_f32("rope", "y", y, true));
    LISA_TRY(lisa_cpu_check_same_shape("rope", y, x));
    if (!pos || pos->dtype != LISA_DTYPE_I32 || !lisa_tensor_is_contiguous(pos) ||
        (lisa_tensor_numel(pos) > 0 && !pos->data))
        return lisa_fail(LISA_ERR_SHAPE, "rope: pos must be a contiguous I32 tensor%s%s", pos ? ", got " : "",
                         pos ? lisa_tensor_shape_str(pos, s1, sizeof s1) : "");
    if (x->n_dims != 3 && x->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "rope: x %s, want [T, H, D] or [B, T, H, D]", lisa_tensor_shape_str(x, s1, sizeof s1));
    const int64_t B = x->n_dims == 4 ? x->shape[0] : 1;
    const int64_t T = x->shape[x->n_dims - 3], H = x->shape[x->n_dims - 2], D = x->shape[x->n_dims - 1];
    if (D % 2 != 0)
        return lisa_fail(LISA_ERR_SHAPE, "rope: head dim of x %s must be even", lisa_tensor_shape_str(x, s1, sizeof s1));
    /* pos is [T] (shared by every batch row) or [B, T]. */
    const bool pos_batched = pos->n_dims == 2;
    bool pos_ok = (pos->n_dims == 1 && pos->shape[0] == T) ||
                  (pos->n_dims == 2 && pos->shape[0] == B && pos->shape[1] == T && x->n_dims == 4);
    if (!pos_ok)
        return lisa_fail(LISA_ERR_SHAPE, "rope: pos %s does not match x %s (want [T] or [B, T])",
                         lisa_tensor_shape_str(pos, s1, sizeof s1), lisa_tensor_shape_str(x, s2, sizeof s2));
    if (y->data != x->data) LISA_TRY(lisa_cpu_check_no_overlap("rope", "x", y, x));
    const int64_t BT = B * T, D2 = D / 2;
    if (BT == 0 || H == 0 || D == 0) return LISA_OK;

    size_t mark = lisa_arena_mark(&be->scratch);
    float *inv_freq = NULL, *tab = NULL;
    lisa_status st = lisa_cpu_scratch_f32(be, "rope", D2, &inv_freq);
    if (st != LISA_OK) goto out;
    rope_inv_freq(inv_freq, D, theta);
    /* cos/sin for a block of (b, t) rows: [rows, 2, D2]. */
    int64_t rows = (int64_t)(lisa_cpu_scratch_free(be) / (2 * (size_t)D2 * sizeof(float) + 16));
    if (rows > BT) rows = BT;
    if (rows < 1) rows = 1;
    st = lisa_cpu_scratch_f32(be, "rope", rows * 2 * D2, &tab);
    if (st != LISA_OK) goto out;
    const int32_t *pd = pos->data;
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t r0 = 0; r0 < BT; r0 += rows) {
        const int64_t nr = BT - r0 < rows ? BT - r0 : rows;
        LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, nr * D * 8))
        for (int64_t r = 0; r < nr; r++) {
            const int64_t bt = r0 + r;
            const float p = (float)pd[pos_batched ? bt : bt % T];
            float *c = tab + r * 2 * D2;
            rope_angles(c, c + D2, p, inv_freq, D2);
        }
        LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, nr * H * D))
        for (int64_t rh = 0; rh < nr * H; rh++) {
            const int64_t r = rh / H, bt = r0 + r, h = rh % H;
            const float *c = tab + r * 2 * D2, *s = c + D2;
            const float *xr = xd + (bt * H + h) * D;
            float *yr = yd + (bt * H + h) * D;
            for (int64_t i = 0; i < D2; i++) {
                const float x1 = xr[i], x2 = xr[i + D2]; /* both read before either is written */
                yr[i] = x1 * c[i] + (-x2) * s[i];
                yr[i + D2] = x2 * c[i] + x1 * s[i];
            }
        }
    }
out:
    lisa_arena_reset(&be->scratch, mark);
    return st;
}
