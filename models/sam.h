/* models/sam.h — Segment Anything as LISA uses it (spec §5): the ViT image encoder, the prompt
 * encoder's dense positional encoding and no-mask embedding, the two-way-transformer mask decoder,
 * and mask postprocessing.
 *
 * Weight names: LISA checkpoints hold SAM under `model.visual_model.` (spec §7.3); stock
 * segment-anything checkpoints use the bare names (`image_encoder.*`, ...). Both load. All
 * hyper-parameters are inferred from tensor shapes (embed dim from the patch embed, head dim and
 * window sizes from the rel_pos tables, global blocks from a 2*grid-1 rel_pos length, depth from
 * the block count), so ViT-B/L/H and tiny test models load with no config.
 *
 * Ownership: a lisa_sam owns its weight bindings (views into the borrowed checkpoint on the CPU;
 * one device block otherwise), its block array and the dense positional encoding; it borrows the
 * backend and the checkpoint, which must outlive it.
 */
#ifndef LISA_MODELS_SAM_H
#define LISA_MODELS_SAM_H

#include "models/graph.h"
#include "models/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_sam_block {
    T norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, rel_pos_h, rel_pos_w;
    T norm2_w, norm2_b, lin1_w, lin1_b, lin2_w, lin2_b;
    int32_t window; /* 0 = global attention over the whole grid */
} lisa_sam_block;

typedef struct lisa_sam_encoder_params {
    int32_t img_size;  /* 1024 */
    int32_t patch;     /* 16 */
    int32_t grid;      /* img_size / patch = 64 */
    int32_t embed;     /* 1280 for ViT-H */
    int32_t depth;     /* 32 */
    int32_t heads;     /* 16 */
    int32_t head_dim;  /* 80 */
    int32_t mlp;       /* 5120 */
    int32_t out_chans; /* 256 */
} lisa_sam_encoder_params;

typedef struct lisa_sam_attention { /* segment_anything.modeling.transformer.Attention */
    T q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
    int32_t heads, internal_dim;
} lisa_sam_attention;

typedef struct lisa_sam_twoway_layer {
    lisa_sam_attention self_attn, t2i, i2t;
    T norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm3_b, norm4_w, norm4_b;
    T mlp1_w, mlp1_b, mlp2_w, mlp2_b;
    bool skip_first_layer_pe;
} lisa_sam_twoway_layer;

#define LISA_SAM_MAX_DECODER_DEPTH 4
#define LISA_SAM_MAX_MASK_TOKENS 8

typedef struct lisa_sam_decoder {
    int32_t dim, heads, depth, n_mask_tokens;
    T iou_token, mask_tokens;
    lisa_sam_twoway_layer layers[LISA_SAM_MAX_DECODER_DEPTH];
    lisa_sam_attention final_t2i;
    T norm_final_w, norm_final_b;
    T up0_w, up0_b, up_ln_w, up_ln_b, up3_w, up3_b;
    T hyper_w[LISA_SAM_MAX_MASK_TOKENS][3], hyper_b[LISA_SAM_MAX_MASK_TOKENS][3];
    T iou_w[3], iou_b[3];
} lisa_sam_decoder;

typedef struct lisa_sam {
    lisa_weights weights;
    lisa_sam_encoder_params enc;
    lisa_sam_block *blocks; /* [enc.depth], owned */
    T patch_w, patch_b, pos_embed;
    T neck0_w, neck1_w, neck1_b, neck2_w, neck3_w, neck3_b;
    T pe_gaussian;   /* [2, dim/2] */
    T no_mask_embed; /* [1, dim] */
    lisa_sam_decoder dec;
    T dense_pe;      /* [1, dim, grid, grid] in the backend's memory, owned (dense_pe_mem) */
    T dense_pe_rows; /* the same values as the decoder's key PE rows [1, grid², dim], owned likewise */
    void *dense_pe_mem; /* device backends: one block behind dense_pe and dense_pe_rows (CPU: NULL, the
                         * two tensors own their host memory) */
    lisa_backend *be;
} lisa_sam;

/* Loads SAM from a checkpoint (LISA or stock names, detected). All shape problems are reported
 * together. */
lisa_status lisa_sam_load(lisa_sam **out, lisa_backend *be, const lisa_checkpoint *ck);
/* Same, with the storage dtype of weight matrices on device backends (BF16 above; F32 for exact
 * checks). The CPU backend ignores it. */
lisa_status lisa_sam_load_ex(lisa_sam **out, lisa_backend *be, const lisa_checkpoint *ck, lisa_dtype weight_dtype);
void lisa_sam_free(lisa_sam *m);

/* Image encoder: px [B, 3, S, S] (normalized, padded; S = enc.img_size) -> [B, out, grid, grid].
 * Taps: "enc.patch_embed" [B, grid, grid, E] (after pos_embed), "enc.block.%d", "enc.neck". */
T *lisa_sam_encode(lisa_graph *g, const lisa_sam *m, const T *px);

/* Mask decoder for N prompts on one image (spec §5.3, multimask_output=False):
 * image_emb [1, dim, grid, grid], sparse [N, n_sparse, dim] (LISA: the text embedding, n_sparse=1).
 * *lowres = mask logits of mask token 0 [N, 1, 4*grid, 4*grid]; *iou = [N, 1] (may be NULL).
 * Taps: "decoder_hs" [N, 5+n_sparse, dim], "lowres_logits". */
void lisa_sam_decode(lisa_graph *g, const lisa_sam *m, const T *image_emb, const T *sparse, T **lowres, T **iou);

/* How the decoder graph is issued. Default (zeroed): the two-way transformer on the fused ops
 * TWOWAY_ATTENTION / TWOWAY_MLP (a few kernels per layer on CUDA; on the CPU the very op calls of
 * the unfused graph). unfused: the graph as the generic ops, one op per term (the reference the
 * fused path is checked against: bit for bit on the CPU, tests/test_sam_decoder.c; within
 * tolerance on CUDA, lisa-check). A graph with row groups (lisa_graph.row_split / row_indptr)
 * always runs unfused, so that its GEMMs keep their per-group rows. */
typedef struct lisa_sam_decode_opts {
    bool unfused;
} lisa_sam_decode_opts;

/* lisa_sam_decode with options (o may be NULL); image_emb may also be [N, dim, grid, grid]: one
 * embedding per prompt (prompts of several images decoded together). */
void lisa_sam_decode_ex(lisa_graph *g, const lisa_sam *m, const T *image_emb, const T *sparse, T **lowres, T **iou,
                        const lisa_sam_decode_opts *o);

/* Postprocess (spec §5.4): logits [N, 1, h, w] (any float dtype, cast to F32 first as the
 * reference does) -> bilinear to img_size², crop to (h_r, w_r), bilinear to (H0, W0) -> F32
 * [N, H0, W0]. Threshold > 0 gives the mask. */
T *lisa_sam_postprocess(lisa_graph *g, const lisa_sam *m, const T *lowres, int32_t h_r, int32_t w_r, int32_t H0,
                        int32_t W0);

#ifdef __cplusplus
}
#endif

#endif
