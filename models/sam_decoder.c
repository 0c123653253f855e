/* models/sam_decoder.c — SAM's prompt-conditioned mask decoder as LISA runs it (spec §5.2–5.4).
 * ref: segment_anything/modeling/mask_decoder.py (MaskDecoder.predict_masks, MLP),
 *      segment_anything/modeling/transformer.py (TwoWayTransformer, TwoWayAttentionBlock, Attention),
 *      LISA model/segment_anything/modeling/prompt_encoder.py (text_embeds as the sparse prompt),
 *      segment_anything/modeling/sam.py (postprocess_masks). */
#include "models/sam.h"

#include "core/error.h"

#include <math.h>
#include <string.h>

#define DEC_LN_EPS 1e-5f /* nn.LayerNorm default in the two-way transformer */
#define UP_LN_EPS 1e-6f  /* LayerNorm2d in output_upscaling */

/* ---- the decoder graph ---------------------------------------------------------------------- */

/* Attention.forward: out_proj(softmax(q kᵀ / sqrt(c)) v) over heads, q [N, Tq, C], k/v [N, Tk, C]. */
static T *dec_attention(lisa_graph *g, const lisa_sam_attention *a, const T *q_in, const T *k_in, const T *v_in) {
    const int64_t N = q_in->shape[0], Tq = q_in->shape[1], Tk = k_in->shape[1];
    const int64_t H = a->heads, D = a->internal_dim / a->heads;
    T *q = lisa_g_reshape(g, lisa_g_linear(g, q_in, &a->q_w, &a->q_b), 4, N, Tq, H, D);
    T *k = lisa_g_reshape(g, lisa_g_linear(g, k_in, &a->k_w, &a->k_b), 4, N, Tk, H, D);
    T *v = lisa_g_reshape(g, lisa_g_linear(g, v_in, &a->v_w, &a->v_b), 4, N, Tk, H, D);
    lisa_attn_params p = {.scale = 1.0f / sqrtf((float)D)};
    T *o = lisa_g_attention(g, q, k, v, &p);
    return lisa_g_linear(g, lisa_g_reshape(g, o, 3, N, Tq, H * D, 0), &a->out_w, &a->out_b);
}

/* MLP with ReLU between layers (in the GEMM epilogues), none after the last (mask_decoder.MLP). */
static T *dec_mlp3(lisa_graph *g, const T *x, const T *w, const T *b) {
    T *h = lisa_g_linear_ex(g, x, &w[0], &b[0], NULL, LISA_ACT_RELU);
    h = lisa_g_linear_ex(g, h, &w[1], &b[1], NULL, LISA_ACT_RELU);
    return lisa_g_linear(g, h, &w[2], &b[2]);
}

/* One TwoWayAttentionBlock on the generic ops (the unfused reference graph); updates *queries and
 * *keys (new tensors). */
static void twoway_layer(lisa_graph *g, const lisa_sam_twoway_layer *L, T **queries, T **keys, const T *qpe,
                         const T *kpe) {
    T *q = *queries, *k = *keys;
    /* (1) self-attention: layer 0 has no PE and no residual; each residual add is fused with the
     * norm after it (ADD_LAYERNORM) */
    if (L->skip_first_layer_pe) {
        q = lisa_g_layernorm(g, dec_attention(g, &L->self_attn, q, q, q), &L->norm1_w, &L->norm1_b, DEC_LN_EPS);
    } else {
        T *qq = lisa_g_add(g, q, qpe);
        q = lisa_g_add_layernorm(g, NULL, NULL, q, dec_attention(g, &L->self_attn, qq, qq, q), &L->norm1_w, &L->norm1_b,
                                 DEC_LN_EPS);
    }
    /* (2) tokens attend to the image: queries = norm2(queries + CA(q+qpe, k+kpe, k)) */
    T *kk = lisa_g_add(g, k, kpe);
    q = lisa_g_add_layernorm(g, NULL, NULL, q, dec_attention(g, &L->t2i, lisa_g_add(g, q, qpe), kk, k), &L->norm2_w,
                             &L->norm2_b, DEC_LN_EPS);
    /* (3) MLP (ReLU in lin1's epilogue) */
    T *mlp = lisa_g_linear(g, lisa_g_linear_ex(g, q, &L->mlp1_w, &L->mlp1_b, NULL, LISA_ACT_RELU), &L->mlp2_w, &L->mlp2_b);
    q = lisa_g_add_layernorm(g, NULL, NULL, q, mlp, &L->norm3_w, &L->norm3_b, DEC_LN_EPS);
    /* (4) image attends to tokens: keys = norm4(keys + CA(k+kpe, q+qpe, q)) */
    T *qq = lisa_g_add(g, q, qpe);
    kk = lisa_g_add(g, k, kpe);
    k = lisa_g_add_layernorm(g, NULL, NULL, k, dec_attention(g, &L->i2t, kk, qq, q), &L->norm4_w, &L->norm4_b,
                             DEC_LN_EPS);
    *queries = q;
    *keys = k;
}

static lisa_twoway_attn tw_attn(const lisa_sam_attention *a) {
    lisa_twoway_attn t = {.q_w = &a->q_w, .q_b = &a->q_b, .k_w = &a->k_w, .k_b = &a->k_b, .v_w = &a->v_w,
                          .v_b = &a->v_b, .out_w = &a->out_w, .out_b = &a->out_b, .heads = a->heads};
    return t;
}

/* The same block on the fused ops: the four steps of TwoWayAttentionBlock.forward are one
 * TWOWAY_ATTENTION each (the MLP one TWOWAY_MLP), each with its residual add and norm. */
static void twoway_layer_fused(lisa_graph *g, const lisa_sam_twoway_layer *L, T **queries, T **keys, const T *qpe,
                               const T *kpe) {
    T *q = *queries, *k = *keys;
    const lisa_twoway_attn self = tw_attn(&L->self_attn), t2i = tw_attn(&L->t2i), i2t = tw_attn(&L->i2t);
    if (L->skip_first_layer_pe) /* layer 0: queries = norm1(self_attn(q, q, q)), no PE, no residual */
        q = lisa_g_twoway_attention(g, q, NULL, q, NULL, q, &self, false, &L->norm1_w, &L->norm1_b, DEC_LN_EPS);
    else
        q = lisa_g_twoway_attention(g, q, qpe, q, qpe, q, &self, true, &L->norm1_w, &L->norm1_b, DEC_LN_EPS);
    q = lisa_g_twoway_attention(g, q, qpe, k, kpe, k, &t2i, true, &L->norm2_w, &L->norm2_b, DEC_LN_EPS);
    q = lisa_g_twoway_mlp(g, q, &L->mlp1_w, &L->mlp1_b, &L->mlp2_w, &L->mlp2_b, &L->norm3_w, &L->norm3_b, DEC_LN_EPS);
    k = lisa_g_twoway_attention(g, k, kpe, q, qpe, q, &i2t, true, &L->norm4_w, &L->norm4_b, DEC_LN_EPS);
    *queries = q;
    *keys = k;
}

/* x [1, ...] seen as [n, ...] with a zero batch stride (a broadcast source for COPY / ADD). */
static T *bcast0(lisa_graph *g, const T *x, int64_t n) {
    T *v = lisa_g_wrap(g, x);
    if (!g_ok(g)) return v;
    v->shape[0] = n;
    v->stride[0] = 0;
    return v;
}

void lisa_sam_decode(lisa_graph *g, const lisa_sam *m, const T *image_emb, const T *sparse, T **lowres, T **iou) {
    lisa_sam_decode_ex(g, m, image_emb, sparse, lowres, iou, NULL);
}

void lisa_sam_decode_ex(lisa_graph *g, const lisa_sam *m, const T *image_emb, const T *sparse, T **lowres, T **iou,
                        const lisa_sam_decode_opts *o) {
    const lisa_sam_decoder *d = &m->dec;
    const int64_t C = d->dim, G = m->enc.grid, HW = G * G;
    *lowres = &g->error_tensor;
    if (iou) *iou = &g->error_tensor;
    if (!g_ok(g)) return;
    char sb[96];
    if (sparse->n_dims != 3 || sparse->shape[2] != C || sparse->shape[0] < 1) {
        lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "SAM decoder: sparse prompt %s, expected [N, n, %lld]",
                            lisa_tensor_shape_str(sparse, sb, sizeof sb), (long long)C));
        return;
    }
    const int64_t N = sparse->shape[0], NS = sparse->shape[1], NT = 1 + d->n_mask_tokens + NS;
    if (image_emb->n_dims != 4 || (image_emb->shape[0] != 1 && image_emb->shape[0] != N) || image_emb->shape[1] != C ||
        image_emb->shape[2] != G || image_emb->shape[3] != G) {
        lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "SAM decoder: image embedding %s, expected [1 or %lld, %lld, %lld, %lld]",
                            lisa_tensor_shape_str(image_emb, sb, sizeof sb), (long long)N, (long long)C, (long long)G,
                            (long long)G));
        return;
    }
    const int64_t B = image_emb->shape[0];
    const bool fused = !(o && o->unfused) && !g->row_indptr && g->row_split <= 1;

    /* Results first, so that the temporaries below can be released at the end. */
    T *out_masks = lisa_g_new(g, g->act_dtype, 4, N, 1, 4 * G, 4 * G);
    T *out_iou = iou ? lisa_g_new(g, g->act_dtype, 2, N, 1, 0, 0) : NULL;
    lisa_graph_mark m0 = lisa_g_mark(g);

    /* tokens = [iou_token, mask_tokens, sparse] per prompt: [N, NT, C]; keys = image_emb +
     * dense(no_mask_embed) flattened to rows [N, HW, C]; kpe = the dense PE's rows [1, HW, C]
     * (broadcast over prompts). */
    T *tokens = lisa_g_new(g, g->act_dtype, 3, N, NT, C, 0), *keys, *kpe;
    T *nomask = lisa_g_reshape(g, &m->no_mask_embed, 4, 1, C, 1, 1);
    if (fused) { /* broadcast sources: three copies and one add whatever N (the same values) */
        lisa_g_copy_to(g, lisa_g_narrow(g, tokens, 1, 0, 1), bcast0(g, lisa_g_reshape(g, &d->iou_token, 3, 1, 1, C, 0), N));
        lisa_g_copy_to(g, lisa_g_narrow(g, tokens, 1, 1, d->n_mask_tokens),
                       bcast0(g, lisa_g_reshape(g, &d->mask_tokens, 3, 1, d->n_mask_tokens, C, 0), N));
        lisa_g_copy_to(g, lisa_g_narrow(g, tokens, 1, 1 + d->n_mask_tokens, NS), sparse);
        /* ADD writes a's shape contiguously: the transpose to rows rides along */
        T *emb = lisa_g_permute(g, lisa_g_reshape(g, image_emb, 3, B, C, HW, 0), 0, 2, 1, 3); /* [B, HW, C] view */
        keys = lisa_g_add(g, B == N ? emb : bcast0(g, emb, N), lisa_g_reshape(g, nomask, 3, 1, 1, C, 0));
        kpe = lisa_g_wrap(g, &m->dense_pe_rows);
    } else {
        for (int64_t n = 0; n < N; n++) {
            T *row = lisa_g_narrow(g, tokens, 0, n, 1);
            lisa_g_copy_to(g, lisa_g_narrow(g, row, 1, 0, 1), lisa_g_reshape(g, &d->iou_token, 3, 1, 1, C, 0));
            lisa_g_copy_to(g, lisa_g_narrow(g, row, 1, 1, d->n_mask_tokens),
                           lisa_g_reshape(g, &d->mask_tokens, 3, 1, d->n_mask_tokens, C, 0));
        }
        lisa_g_copy_to(g, lisa_g_narrow(g, tokens, 1, 1 + d->n_mask_tokens, NS), sparse);
        T *src = lisa_g_add(g, image_emb, nomask);
        T *src_t = lisa_g_contiguous(g, lisa_g_permute(g, lisa_g_reshape(g, src, 3, B, C, HW, 0), 0, 2, 1, 3));
        keys = lisa_g_new(g, g->act_dtype, 3, N, HW, C, 0);
        for (int64_t n = 0; n < N; n++)
            lisa_g_copy_to(g, lisa_g_narrow(g, keys, 0, n, 1), lisa_g_narrow(g, src_t, 0, B == N ? n : 0, 1));
        kpe = lisa_g_contiguous(g, lisa_g_permute(g, lisa_g_reshape(g, &m->dense_pe, 3, 1, C, HW, 0), 0, 2, 1, 3));
    }

    T *queries = tokens;
    for (int l = 0; l < d->depth; l++)
        (fused ? twoway_layer_fused : twoway_layer)(g, &d->layers[l], &queries, &keys, tokens, kpe);
    /* final: queries = norm(queries + CA(q+qpe, k+kpe, k)) */
    T *hs;
    if (fused) {
        const lisa_twoway_attn fa = tw_attn(&d->final_t2i);
        hs = lisa_g_twoway_attention(g, queries, tokens, keys, kpe, keys, &fa, true, &d->norm_final_w, &d->norm_final_b,
                                     DEC_LN_EPS);
    } else {
        T *qf = dec_attention(g, &d->final_t2i, lisa_g_add(g, queries, tokens), lisa_g_add(g, keys, kpe), keys);
        hs = lisa_g_add_layernorm(g, NULL, NULL, queries, qf, &d->norm_final_w, &d->norm_final_b, DEC_LN_EPS);
    }
    lisa_g_tap(g, hs, "decoder_hs");

    /* upscale keys [N, HW, C] -> [N, C, G, G] -> [N, C/8, 4G, 4G] */
    T *img = lisa_g_reshape(g, lisa_g_contiguous(g, lisa_g_permute(g, keys, 0, 2, 1, 3)), 4, N, C, G, G);
    T *up = lisa_g_conv_transpose2d_k2s2(g, img, &d->up0_w, &d->up0_b);
    up = lisa_g_gelu(g, lisa_g_layernorm2d(g, up, &d->up_ln_w, &d->up_ln_b, UP_LN_EPS));
    up = lisa_g_gelu(g, lisa_g_conv_transpose2d_k2s2(g, up, &d->up3_w, &d->up3_b));            /* [N, C/8, 4G, 4G] */

    /* mask 0 only (multimask_output=False): hyper_0(mask_token_0) · upscaled */
    T *up_flat = lisa_g_reshape(g, up, 3, N, C / 8, 16 * HW, 0);
    if (fused) { /* the heads as one MLP3 each on the token rows; the logits straight into out_masks */
        T *hyper = lisa_g_mlp3(g, lisa_g_narrow(g, hs, 1, 1, 1), d->hyper_w[0], d->hyper_b[0]); /* [N, 1, C/8] */
        lisa_g_matmul_to(g, lisa_g_reshape(g, out_masks, 3, N, 1, 16 * HW, 0), hyper, up_flat, false);
        if (out_iou) {
            T *iou_all = lisa_g_mlp3(g, lisa_g_narrow(g, hs, 1, 0, 1), d->iou_w, d->iou_b); /* [N, 1, n_mask_tokens] */
            lisa_g_copy_to(g, lisa_g_reshape(g, out_iou, 3, N, 1, 1, 0), lisa_g_narrow(g, iou_all, 2, 0, 1));
        }
    } else {
        T *tok0 = lisa_g_contiguous(g, lisa_g_narrow(g, hs, 1, 1, 1));                         /* [N, 1, C] */
        T *hyper = dec_mlp3(g, tok0, d->hyper_w[0], d->hyper_b[0]);                           /* [N, 1, C/8] */
        T *masks = lisa_g_matmul(g, hyper, up_flat, false);                                    /* [N, 1, 16 HW] */
        lisa_g_copy_to(g, out_masks, lisa_g_reshape(g, masks, 4, N, 1, 4 * G, 4 * G));
        if (out_iou) {
            T *iou_tok = lisa_g_contiguous(g, lisa_g_narrow(g, hs, 1, 0, 1));
            T *iou_all = dec_mlp3(g, iou_tok, d->iou_w, d->iou_b);                            /* [N, 1, n_mask_tokens] */
            lisa_g_copy_to(g, out_iou,
                           lisa_g_reshape(g, lisa_g_contiguous(g, lisa_g_narrow(g, iou_all, 2, 0, 1)), 2, N, 1, 0, 0));
        }
    }
    lisa_g_reset(g, m0);
    if (!g_ok(g)) return;
    lisa_g_tap(g, out_masks, "lowres_logits");
    *lowres = out_masks;
    if (iou) *iou = out_iou;
}

T *lisa_sam_postprocess(lisa_graph *g, const lisa_sam *m, const T *lowres, int32_t h_r, int32_t w_r, int32_t H0,
                        int32_t W0) {
    const int64_t S = m->enc.img_size;
    if (!g_ok(g)) return &g->error_tensor;
    if (lowres->n_dims != 4 || h_r < 1 || w_r < 1 || h_r > S || w_r > S || H0 < 1 || W0 < 1)
        return lisa_g_fail(g, lisa_fail(LISA_ERR_INVALID_ARG, "SAM postprocess: bad sizes (resized %dx%d, original %dx%d)",
                                   h_r, w_r, H0, W0));
    const int64_t N = lowres->shape[0];
    /* postprocess_masks casts the logits to F32 first (spec §8): the resizes run in F32 whatever
     * the activation dtype */
    T *out = lisa_g_new(g, LISA_DTYPE_F32, 4, N, 1, H0, W0);
    lisa_graph_mark m0 = lisa_g_mark(g);
    const T *low32 = lowres->dtype == LISA_DTYPE_F32 ? lowres : lisa_g_cast(g, lowres, LISA_DTYPE_F32);
    /* F.interpolate(-> S x S) ; crop [:h_r, :w_r] ; F.interpolate(-> H0 x W0); two separate passes. */
    T *full = lisa_g_bilinear(g, low32, S, S);
    T *crop = lisa_g_contiguous(g, lisa_g_narrow(g, lisa_g_narrow(g, full, 2, 0, h_r), 3, 0, w_r));
    T *res = lisa_g_bilinear(g, crop, H0, W0);
    lisa_g_copy_to(g, out, res);
    lisa_g_reset(g, m0);
    return lisa_g_reshape(g, out, 3, N, H0, W0, 0);
}
