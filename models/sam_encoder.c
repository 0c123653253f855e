/* models/sam_encoder.c — SAM's ViT image encoder (spec §5.1) and the model loader.
 * ref: segment_anything/modeling/image_encoder.py (ImageEncoderViT, Block, Attention,
 *      window_partition, window_unpartition, add_decomposed_rel_pos). */
#include "models/sam.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAM_LN_EPS 1e-6f /* norm_layer = partial(nn.LayerNorm, eps=1e-6); LayerNorm2d eps 1e-6 */

void lisa_sam_load_decoder(lisa_weights *w, lisa_sam *m); /* sam_decoder.c */

/* ---- loading -------------------------------------------------------------------------------- */

static void load_encoder(lisa_weights *w, lisa_sam *m) {
    lisa_sam_encoder_params *p = &m->enc;
    /* Shapes first from the checkpoint (inference), then every tensor bound with its full shape. */
    T pw;
    if (!lisa_w_get(w, &pw, 4, -1, 3, -1, -1, "image_encoder.patch_embed.proj.weight")) return;
    p->embed = (int32_t)pw.shape[0];
    p->patch = (int32_t)pw.shape[2];
    if (pw.shape[3] != p->patch) lisa_w_error(w, LISA_ERR_SHAPE, "image_encoder.patch_embed.proj.weight: non-square patch");
    T pos;
    if (!lisa_w_get_act(w, &pos, 4, 1, -1, -1, p->embed, "image_encoder.pos_embed")) return;
    p->grid = (int32_t)pos.shape[1];
    if (pos.shape[2] != p->grid) lisa_w_error(w, LISA_ERR_SHAPE, "image_encoder.pos_embed: non-square grid");
    p->img_size = p->grid * p->patch;
    p->depth = 0;
    while (lisa_w_has(w, "image_encoder.blocks.%d.attn.qkv.weight", p->depth)) p->depth++;
    if (p->depth == 0) {
        lisa_w_error(w, LISA_ERR_NOT_FOUND, "no image_encoder.blocks.0.* tensors");
        return;
    }
    T r0;
    if (!lisa_w_get(w, &r0, 2, -1, -1, -1, -1, "image_encoder.blocks.0.attn.rel_pos_h")) return;
    p->head_dim = (int32_t)r0.shape[1];
    if (p->head_dim <= 0 || p->embed % p->head_dim) {
        lisa_w_error(w, LISA_ERR_SHAPE, "rel_pos head dim %d does not divide embed dim %d", p->head_dim, p->embed);
        return;
    }
    p->heads = p->embed / p->head_dim;
    T l1;
    if (!lisa_w_get(w, &l1, 2, -1, p->embed, -1, -1, "image_encoder.blocks.0.mlp.lin1.weight")) return;
    p->mlp = (int32_t)l1.shape[0];
    T n0;
    if (!lisa_w_get(w, &n0, 4, -1, p->embed, 1, 1, "image_encoder.neck.0.weight")) return;
    p->out_chans = (int32_t)n0.shape[0];

    m->blocks = calloc((size_t)p->depth, sizeof *m->blocks);
    if (!m->blocks) {
        lisa_w_error(w, LISA_ERR_OOM, "out of memory");
        return;
    }
    const int64_t E = p->embed, D = p->head_dim;
    m->patch_w = pw;
    lisa_w_get(w, &m->patch_b, 1, E, 0, 0, 0, "image_encoder.patch_embed.proj.bias");
    m->pos_embed = pos;
    for (int i = 0; i < p->depth; i++) {
        lisa_sam_block *b = &m->blocks[i];
        T rh;
        if (!lisa_w_get(w, &rh, 2, -1, D, 0, 0, "image_encoder.blocks.%d.attn.rel_pos_h", i)) continue;
        /* rel_pos length 2*size-1: size == grid -> global block, else the window size. */
        int64_t size = (rh.shape[0] + 1) / 2;
        if (rh.shape[0] != 2 * size - 1 || size > p->grid) {
            lisa_w_error(w, LISA_ERR_SHAPE, "image_encoder.blocks.%d.attn.rel_pos_h: length %lld is not 2*window-1", i,
                         (long long)rh.shape[0]);
            continue;
        }
        b->window = size == p->grid ? 0 : (int32_t)size;
        b->rel_pos_h = rh;
        lisa_w_get(w, &b->rel_pos_w, 2, 2 * size - 1, D, 0, 0, "image_encoder.blocks.%d.attn.rel_pos_w", i);
        lisa_w_get(w, &b->norm1_w, 1, E, 0, 0, 0, "image_encoder.blocks.%d.norm1.weight", i);
        lisa_w_get(w, &b->norm1_b, 1, E, 0, 0, 0, "image_encoder.blocks.%d.norm1.bias", i);
        lisa_w_get(w, &b->qkv_w, 2, 3 * E, E, 0, 0, "image_encoder.blocks.%d.attn.qkv.weight", i);
        lisa_w_get(w, &b->qkv_b, 1, 3 * E, 0, 0, 0, "image_encoder.blocks.%d.attn.qkv.bias", i);
        lisa_w_get(w, &b->proj_w, 2, E, E, 0, 0, "image_encoder.blocks.%d.attn.proj.weight", i);
        lisa_w_get(w, &b->proj_b, 1, E, 0, 0, 0, "image_encoder.blocks.%d.attn.proj.bias", i);
        lisa_w_get(w, &b->norm2_w, 1, E, 0, 0, 0, "image_encoder.blocks.%d.norm2.weight", i);
        lisa_w_get(w, &b->norm2_b, 1, E, 0, 0, 0, "image_encoder.blocks.%d.norm2.bias", i);
        lisa_w_get(w, &b->lin1_w, 2, p->mlp, E, 0, 0, "image_encoder.blocks.%d.mlp.lin1.weight", i);
        lisa_w_get(w, &b->lin1_b, 1, p->mlp, 0, 0, 0, "image_encoder.blocks.%d.mlp.lin1.bias", i);
        lisa_w_get(w, &b->lin2_w, 2, E, p->mlp, 0, 0, "image_encoder.blocks.%d.mlp.lin2.weight", i);
        lisa_w_get(w, &b->lin2_b, 1, E, 0, 0, 0, "image_encoder.blocks.%d.mlp.lin2.bias", i);
    }
    const int64_t O = p->out_chans;
    m->neck0_w = n0;
    lisa_w_get(w, &m->neck1_w, 1, O, 0, 0, 0, "image_encoder.neck.1.weight");
    lisa_w_get(w, &m->neck1_b, 1, O, 0, 0, 0, "image_encoder.neck.1.bias");
    lisa_w_get(w, &m->neck2_w, 4, O, O, 3, 3, "image_encoder.neck.2.weight");
    lisa_w_get(w, &m->neck3_w, 1, O, 0, 0, 0, "image_encoder.neck.3.weight");
    lisa_w_get(w, &m->neck3_b, 1, O, 0, 0, 0, "image_encoder.neck.3.bias");
}

static void load_all(lisa_weights *w, void *ctx) {
    lisa_sam *m = ctx;
    free(m->blocks); /* the device path runs this twice */
    m->blocks = NULL;
    load_encoder(w, m);
    if (m->enc.out_chans <= 0) return; /* the decoder's dims come from the neck */
    const int64_t O = m->enc.out_chans;
    lisa_w_get(w, &m->pe_gaussian, 2, 2, O / 2, 0, 0, "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix");
    lisa_w_get_act(w, &m->no_mask_embed, 2, 1, O, 0, 0, "prompt_encoder.no_mask_embed.weight");
    lisa_sam_load_decoder(w, m);
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
    lisa_status s = LISA_OK;
    if (m->be->device == LISA_DEVICE_CPU) {
        m->dense_pe = host; /* owner */
        return LISA_OK;
    }
    s = m->be->mem_alloc(m->be, lisa_tensor_nbytes(&host), &m->dense_pe_mem);
    if (s == LISA_OK) s = m->be->upload(m->be, m->dense_pe_mem, host.data, lisa_tensor_nbytes(&host));
    if (s == LISA_OK) {
        m->dense_pe = lisa_tensor_view(m->dense_pe_mem, LISA_DTYPE_F32, 4, host.shape);
        m->dense_pe.device = m->be->device;
        m->dense_pe.device_id = m->be->device_id;
    }
    lisa_tensor_free(&host);
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
    if (m->dense_pe_mem) m->be->mem_free(m->be, m->dense_pe_mem);
    else lisa_tensor_free(&m->dense_pe);
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
 * A = softmax((q·s)kᵀ + rel_h + rel_w) v, rel terms from the unscaled q; then proj. */
static T *sam_attention(lisa_graph *g, const lisa_sam *m, const lisa_sam_block *b, const T *x) {
    const int64_t B = x->shape[0], h = x->shape[1], w = x->shape[2], E = m->enc.embed;
    const int64_t H = m->enc.heads, D = m->enc.head_dim, N = h * w;
    T *qkv = lisa_g_linear(g, lisa_g_reshape(g, x, 3, B, N, E, 0), &b->qkv_w, &b->qkv_b);      /* [B, N, 3E] */
    /* q, k, v are strided views of the fused output ([3][H][D] per token); attention takes them
     * as they are (ops.def ATTENTION), rel_pos reads q the same way. */
    T *q = qkv_part(g, qkv, 0, B, N, H, D);
    T *k = qkv_part(g, qkv, 1, B, N, H, D);
    T *v = qkv_part(g, qkv, 2, B, N, H, D);
    T *rel_h, *rel_w;
    lisa_g_rel_pos(g, &rel_h, &rel_w, q, &b->rel_pos_h, &b->rel_pos_w, (int32_t)h, (int32_t)w);
    lisa_attn_params p = {.scale = 1.0f / sqrtf((float)D), .rel_h = rel_h, .rel_w = rel_w};
    T *o = lisa_g_attention(g, q, k, v, &p);                                               /* [B, N, H, D] */
    return lisa_g_linear(g, lisa_g_reshape(g, o, 4, B, h, w, E), &b->proj_w, &b->proj_b);
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
        /* x = x + Attn(window(LN1(x))) */
        T *n1 = lisa_g_layernorm(g, x, &b->norm1_w, &b->norm1_b, SAM_LN_EPS);
        T *a;
        if (b->window > 0) {
            T *win = lisa_g_window_partition(g, n1, b->window);                           /* [B*nw, S, S, E] */
            a = lisa_g_window_unpartition(g, sam_attention(g, m, b, win), b->window, G, G);
        } else {
            a = sam_attention(g, m, b, n1);
        }
        lisa_g_add_to(g, x, x, a);
        /* x = x + lin2(GELU(lin1(LN2(x)))) */
        T *n2 = lisa_g_layernorm(g, x, &b->norm2_w, &b->norm2_b, SAM_LN_EPS);
        T *mlp = lisa_g_linear(g, lisa_g_gelu(g, lisa_g_linear(g, n2, &b->lin1_w, &b->lin1_b)), &b->lin2_w, &b->lin2_b);
        lisa_g_add_to(g, x, x, mlp);
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
