/* models/sam_encoder.c — SAM's ViT image encoder (spec §5.1) and the model loader.
 * ref: segment_anything/modeling/image_encoder.py (ImageEncoderViT, Block, Attention,
 *      window_partition, window_unpartition, add_decomposed_rel_pos). */
#include "models/sam.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAM_LN_EPS 1e-6f /* norm_layer = partial(nn.LayerNorm, eps=1e-6); LayerNorm2d eps 1e-6 */

/* ---- loading -------------------------------------------------------------------------------- */

/* The dims are read off the checkpoint (models/tensors.h, lisa_sam_dims_infer), checked for what
 * the graphs need, and every row of models/sam_tensors.def is bound with its full shape, so a
 * tensor that disagrees with the others is reported by name. */
static void load_all(lisa_weights *w, void *ctx) {
    lisa_sam *m = ctx;
    free(m->blocks); /* the device path runs this twice */
    m->blocks = NULL;
    if (!lisa_w_has(w, "image_encoder.patch_embed.proj.weight")) {
        lisa_w_error(w, LISA_ERR_NOT_FOUND, "missing tensor '%simage_encoder.patch_embed.proj.weight'", w->prefix);
        return;
    }
    lisa_sam_dims d;
    lisa_sam_dims_infer(&d, w->ck, w->prefix);
    if (d.head_dim <= 0 || d.embed % d.head_dim) {
        lisa_w_error(w, LISA_ERR_SHAPE, "rel_pos head dim %lld does not divide embed dim %lld", (long long)d.head_dim,
                     (long long)d.embed);
        return;
    }
    /* SAM's decoder uses 8 heads at every size (build_sam: TwoWayTransformer(num_heads=8)); the
     * head count is not recoverable from shapes, so it is fixed here as in the reference. */
    const int32_t dec_heads = 8;
    if (d.dec_dim != d.out_chans || d.dec_dim % dec_heads || (d.dec_dim / d.dec_downsample) % dec_heads) {
        lisa_w_error(w, LISA_ERR_SHAPE, "mask_decoder: dim %lld (inner %lld) with the encoder's out_chans %lld and %d "
                     "heads", (long long)d.dec_dim, (long long)(d.dec_dim / d.dec_downsample), (long long)d.out_chans,
                     dec_heads);
        return;
    }
    if (d.n_mask_tokens < 1 || d.n_mask_tokens > LISA_SAM_MAX_MASK_TOKENS) {
        lisa_w_error(w, LISA_ERR_SHAPE, "mask_decoder.mask_tokens.weight: %lld tokens", (long long)d.n_mask_tokens);
        return;
    }
    if (d.dec_depth < 1 || d.dec_depth > LISA_SAM_MAX_DECODER_DEPTH) {
        lisa_w_error(w, LISA_ERR_SHAPE, "mask_decoder.transformer: %lld layers (1..%d supported)", (long long)d.dec_depth,
                     LISA_SAM_MAX_DECODER_DEPTH);
        return;
    }
    lisa_sam_encoder_params *p = &m->enc;
    p->img_size = (int32_t)d.img;
    p->patch = (int32_t)d.patch;
    p->grid = (int32_t)d.grid;
    p->embed = (int32_t)d.embed;
    p->depth = (int32_t)d.depth;
    p->head_dim = (int32_t)d.head_dim;
    p->heads = (int32_t)(d.embed / d.head_dim);
    p->mlp = (int32_t)d.mlp;
    p->out_chans = (int32_t)d.out_chans;
    m->blocks = calloc((size_t)p->depth, sizeof *m->blocks);
    if (!m->blocks) {
        lisa_w_error(w, LISA_ERR_OOM, "out of memory");
        return;
    }
    for (int i = 0; i < p->depth; i++) m->blocks[i].window = lisa_sam_dims_global(&d, i) ? 0 : (int32_t)d.window;
    lisa_sam_decoder *dec = &m->dec;
    memset(dec, 0, sizeof *dec);
    dec->dim = (int32_t)d.dec_dim;
    dec->heads = dec_heads;
    dec->depth = (int32_t)d.dec_depth;
    dec->n_mask_tokens = (int32_t)d.n_mask_tokens;
    const int32_t inner = (int32_t)(d.dec_dim / d.dec_downsample);
    for (int i = 0; i < dec->depth; i++) {
        lisa_sam_twoway_layer *L = &dec->layers[i];
        L->skip_first_layer_pe = i == 0;
        L->self_attn.internal_dim = dec->dim;
        L->t2i.internal_dim = L->i2t.internal_dim = inner;
        L->self_attn.heads = L->t2i.heads = L->i2t.heads = dec_heads;
    }
    dec->final_t2i.internal_dim = inner;
    dec->final_t2i.heads = dec_heads;
    (void)lisa_sam_tensors(&d, "", m, lisa_w_bind, w);
}

/* PositionEmbeddingRandom.forward((grid, grid)) in float32 (spec §5.2), [1, dim, grid, grid]:
 * u = ((j+0.5)/w, (i+0.5)/h); c = 2u-1; z = 2π (c·G); feature = [sin z, cos z]. The grid is built
 * as cumsum(ones)-0.5, which is exact, then divided in float32 as the reference does. */
static lisa_status compute_dense_pe(lisa_sam *m) {
    const int32_t n = m->enc.grid, F = (int32_t)m->pe_gaussian.shape[1], C = 2 * F;
    lisa_tensor host;
    LISA_TRY(lisa_tensor_alloc(&host, LISA_DTYPE_F32, 4, (int64_t[]){1, C, n, n}));
    float *G = malloc(2 * (size_t)F * sizeof(float));
    if (!G) {
        lisa_tensor_free(&host);
        return lisa_fail(LISA_ERR_OOM, "dense PE: out of memory");
    }
    /* On a device backend the gaussian matrix was uploaded; read it from the checkpoint instead. */
    const lisa_ckpt_tensor *e = lisa_checkpoint_find(
        m->weights.ck, m->weights.prefix[0] ? "model.visual_model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
                                            : "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix");
    LISA_ASSERT(e != NULL);
    lisa_tensor gt = lisa_ckpt_tensor_view(e);
    for (int64_t i = 0; i < 2 * F; i++) {
        int64_t idx[2] = {i / F, i % F};
        G[i] = (float)lisa_tensor_get(&gt, idx);
    }
    float *out = host.data;
    const float two_pi = (float)(2.0 * M_PI);
    for (int32_t i = 0; i < n; i++) {
        for (int32_t j = 0; j < n; j++) {
            float x = ((float)(j + 1) - 0.5f) / (float)n, y = ((float)(i + 1) - 0.5f) / (float)n;
            x = 2.0f * x - 1.0f;
            y = 2.0f * y - 1.0f;
            for (int32_t f = 0; f < F; f++) {
                float z = x * G[f] + y * G[F + f]; /* coords @ G, K = 2 */
                z = two_pi * z;
                out[((size_t)f * n + i) * n + j] = sinf(z);
                out[((size_t)(F + f) * n + i) * n + j] = cosf(z);
            }
        }
    }
    free(G);
    /* the decoder's key PE: the same values as rows [1, grid², dim] (a transposition, exact) */
    lisa_tensor rows;
    lisa_status s = lisa_tensor_alloc(&rows, LISA_DTYPE_F32, 3, (int64_t[]){1, (int64_t)n * n, C});
    if (s != LISA_OK) {
        lisa_tensor_free(&host);
        return s;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t p = 0; p < (int64_t)n * n; p++) ((float *)rows.data)[p * C + c] = out[c * n * n + p];
    if (m->be->device == LISA_DEVICE_CPU) {
        m->dense_pe = host; /* owners */
        m->dense_pe_rows = rows;
        return LISA_OK;
    }
    const size_t bytes = lisa_tensor_nbytes(&host);
    s = m->be->mem_alloc(m->be, 2 * bytes, &m->dense_pe_mem);
    if (s == LISA_OK) s = m->be->upload(m->be, m->dense_pe_mem, host.data, bytes);
    if (s == LISA_OK) s = m->be->upload(m->be, (char *)m->dense_pe_mem + bytes, rows.data, bytes);
    if (s == LISA_OK) {
        m->dense_pe = lisa_tensor_view(m->dense_pe_mem, LISA_DTYPE_F32, 4, host.shape);
        m->dense_pe_rows = lisa_tensor_view((char *)m->dense_pe_mem + bytes, LISA_DTYPE_F32, 3, rows.shape);
        m->dense_pe.device = m->dense_pe_rows.device = m->be->device;
        m->dense_pe.device_id = m->dense_pe_rows.device_id = m->be->device_id;
    }
    lisa_tensor_free(&host);
    lisa_tensor_free(&rows);
    return s;
}

lisa_status lisa_sam_load(lisa_sam **out, lisa_backend *be, const lisa_checkpoint *ck) {
    return lisa_sam_load_ex(out, be, ck, LISA_DTYPE_BF16);
}

lisa_status lisa_sam_load_ex(lisa_sam **out, lisa_backend *be, const lisa_checkpoint *ck, lisa_dtype weight_dtype) {
    *out = NULL;
    lisa_sam *m = calloc(1, sizeof *m);
    if (!m) return lisa_fail(LISA_ERR_OOM, "SAM: out of memory");
    m->be = be;
    lisa_weights_init(&m->weights, be, ck, weight_dtype);
    if (lisa_checkpoint_find(ck, "model.visual_model.image_encoder.patch_embed.proj.weight"))
        m->weights.prefix = "model.visual_model.";
    else if (lisa_checkpoint_find(ck, "visual_model.image_encoder.patch_embed.proj.weight"))
        m->weights.prefix = "visual_model.";
    lisa_status s = lisa_weights_load(&m->weights, "SAM", load_all, m);
    if (s == LISA_OK) s = compute_dense_pe(m);
    if (s != LISA_OK) {
        lisa_sam_free(m);
        return s;
    }
    *out = m;
    return LISA_OK;
}

void lisa_sam_free(lisa_sam *m) {
    if (!m) return;
    lisa_weights_free(&m->weights);
    if (m->dense_pe_mem) {
        m->be->mem_free(m->be, m->dense_pe_mem);
    } else {
        lisa_tensor_free(&m->dense_pe);
        lisa_tensor_free(&m->dense_pe_rows);
    }
    free(m->blocks);
    free(m);
}

/* ---- the encoder graph ---------------------------------------------------------------------- */

/* View part `which` (0 q, 1 k, 2 v) of a fused qkv [B, N, 3·H·D] as [B, N, H, D] (strided). */
static T *qkv_part(lisa_graph *g, T *qkv, int which, int64_t B, int64_t N, int64_t H, int64_t D) {
    T *part = lisa_g_narrow(g, qkv, 2, which * H * D, H * D); /* [B, N, H·D], row stride 3·H·D */
    if (!g_ok(g)) return part;
    T *v = lisa_g_wrap(g, part);
    /* split the last dim into (H, D): a view with strides [N·3HD, 3HD, D, 1] */
    v->n_dims = 4;
    v->shape[0] = B, v->shape[1] = N, v->shape[2] = H, v->shape[3] = D;
    v->stride[3] = 1, v->stride[2] = D, v->stride[1] = part->stride[1], v->stride[0] = part->stride[0];
    return v;
}

/* Attention on a grid x [B, h, w, E] with decomposed relative positions (Attention.forward):
 * A = softmax((q·s)kᵀ + rel_h + rel_w) v, rel terms from the unscaled q; then proj, with the
 * block's residual added in the GEMM when `residual` (the [B, h, w, E] stream) is given. */
static T *sam_attention(lisa_graph *g, const lisa_sam *m, const lisa_sam_block *b, const T *x, T *residual) {
    const int64_t B = x->shape[0], h = x->shape[1], w = x->shape[2], E = m->enc.embed;
    const int64_t H = m->enc.heads, D = m->enc.head_dim, N = h * w;
    T *qkv = lisa_g_linear(g, lisa_g_reshape(g, x, 3, B, N, E, 0), &b->qkv_w, &b->qkv_b);      /* [B, N, 3E] */
    /* q, k, v are strided views of the fused output ([3][H][D] per token); the attention takes
     * them as they are (ops.def ATTENTION_RELPOS: REL_POS of q, then ATTENTION with the terms; one
     * kernel on a device backend, which never writes the [B, H, N, h + w] terms) */
    T *q = qkv_part(g, qkv, 0, B, N, H, D);
    T *k = qkv_part(g, qkv, 1, B, N, H, D);
    T *v = qkv_part(g, qkv, 2, B, N, H, D);
    T *a = lisa_g_attention_relpos(g, q, k, v, &b->rel_pos_h, &b->rel_pos_w, (int32_t)h, (int32_t)w, 1.0f / sqrtf((float)D));
    T *o = lisa_g_reshape(g, a, 4, B, h, w, E); /* [B, h, w, E] */
    if (!residual) return lisa_g_linear(g, o, &b->proj_w, &b->proj_b);
    lisa_g_linear_ex_to(g, residual, o, &b->proj_w, &b->proj_b, residual, LISA_ACT_NONE);
    return residual;
}

T *lisa_sam_encode(lisa_graph *g, const lisa_sam *m, const T *px) {
    const lisa_sam_encoder_params *p = &m->enc;
    const int64_t B = px->shape[0], G = p->grid, E = p->embed;
    if (px->n_dims != 4 || px->shape[1] != 3 || px->shape[2] != p->img_size || px->shape[3] != p->img_size) {
        char sb[96];
        return lisa_g_fail(g, lisa_fail(LISA_ERR_SHAPE, "SAM encoder: input %s, expected [B, 3, %d, %d]",
                                   lisa_tensor_shape_str(px, sb, sizeof sb), p->img_size, p->img_size));
    }
    /* The result is allocated first so that all temporaries above it can be released at the end. */
    T *emb = lisa_g_new(g, g->act_dtype, 4, B, p->out_chans, G, G);
    lisa_graph_mark m0 = lisa_g_mark(g);
    /* x = PatchEmbed(px) + pos_embed, channels last [B, G, G, E] */
    T *x = lisa_g_new(g, g->act_dtype, 4, B, G, G, E);
    lisa_graph_mark m1 = lisa_g_mark(g);
    T *pe = lisa_g_conv2d(g, px, &m->patch_w, &m->patch_b, p->patch, 0);                 /* [B, E, G, G] */
    lisa_g_copy_to(g, x, lisa_g_permute(g, pe, 0, 2, 3, 1));
    lisa_g_add_to(g, x, x, &m->pos_embed);
    lisa_g_reset(g, m1);
    lisa_g_tap(g, x, "enc.patch_embed");

    for (int i = 0; i < p->depth && g_ok(g); i++) {
        const lisa_sam_block *b = &m->blocks[i];
        lisa_graph_mark mb = lisa_g_mark(g);
        /* x = x + Attn(window(LN1(x))): the norm fused with the window partition, the shortcut
         * with the unpartition; global blocks add it in the proj GEMM */
        if (b->window > 0) {
            T *win = lisa_g_layernorm_window_partition(g, x, &b->norm1_w, &b->norm1_b, SAM_LN_EPS, b->window);
            lisa_g_window_unpartition_add_to(g, x, sam_attention(g, m, b, win, NULL), x, b->window);
        } else {
            sam_attention(g, m, b, lisa_g_layernorm(g, x, &b->norm1_w, &b->norm1_b, SAM_LN_EPS), x);
        }
        /* x = x + lin2(GELU(lin1(LN2(x)))): GELU in lin1's epilogue, the residual in lin2's */
        T *n2 = lisa_g_layernorm(g, x, &b->norm2_w, &b->norm2_b, SAM_LN_EPS);
        T *h = lisa_g_linear_ex(g, n2, &b->lin1_w, &b->lin1_b, NULL, LISA_ACT_GELU);
        lisa_g_linear_ex_to(g, x, h, &b->lin2_w, &b->lin2_b, x, LISA_ACT_NONE);
        lisa_g_reset(g, mb);
        lisa_g_tap(g, x, "enc.block.%d", i);
    }

    /* neck: Conv1x1 -> LayerNorm2d -> Conv3x3(pad 1) -> LayerNorm2d, on [B, E, G, G] */
    T *xc = lisa_g_contiguous(g, lisa_g_permute(g, x, 0, 3, 1, 2));
    T *y = lisa_g_conv2d(g, xc, &m->neck0_w, NULL, 1, 0);
    y = lisa_g_layernorm2d(g, y, &m->neck1_w, &m->neck1_b, SAM_LN_EPS);
    y = lisa_g_conv2d(g, y, &m->neck2_w, NULL, 1, 1);
    y = lisa_g_layernorm2d(g, y, &m->neck3_w, &m->neck3_b, SAM_LN_EPS);
    lisa_g_copy_to(g, emb, y);
    lisa_g_reset(g, m0);
    lisa_g_tap(g, emb, "enc.neck");
    return emb;
}
