/* models/sam_tensors.c — the walker of models/sam_tensors.def and SAM's dims (see models/tensors.h).
 * ref: segment_anything/build_sam.py (_build_sam: the builder arguments the dims come from),
 *      modeling/image_encoder.py, prompt_encoder.py, mask_decoder.py, transformer.py. */
#include "models/sam.h"
#include "models/tensor_walk.h"

#include <stdlib.h>

#define SAM_ROW(nm_fmt_args, slot, nd, a, b, c, e, dt, fl, init, arg)                                  \
    do {                                                                                                \
        LISA_TT_FORMAT nm_fmt_args;                                                                     \
        LISA_TRY(lisa_tt_visit(fn, ctx, name, nd, a, b, c, e, dt, (uint32_t)(fl), LISA_PART_SAM, init, arg,     \
                               LISA_TP_NONE, slot));                                                    \
    } while (0);

/* A group's row expansion: the name is prefix + pattern (with the group index when it has one). */
#define SAM_ONCE(slot, nm, nd, a, b, c, e, dt, fl, init, arg)                                           \
    SAM_ROW((name, "%s" nm, prefix), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#define SAM_INDEXED(slot, nm, nd, a, b, c, e, dt, fl, init, arg)                                        \
    SAM_ROW((name, "%s" nm, prefix, idx), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)

/* transformer.Attention under `base` (a full name), q/k/v D -> A, out A -> D. */
static lisa_status walk_attn(lisa_tensor_visit fn, void *ctx, const char *base, int64_t D, int64_t A,
                             lisa_sam_attention *at) {
    char name[LISA_TT_NAME_MAX];
#define M(x) (at ? &at->x : NULL)
#define LISA_SAM_ATTN(slot, nm, nd, a, b, c, e, dt, fl, init, arg)                                      \
    SAM_ROW((name, "%s." nm, base), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#include "models/sam_tensors.def"
#undef M
    return LISA_OK;
}

/* A LISA_SAM_*_ATTN row: the base name formatted like a row name, then the ATTN rows under it. */
#define SAM_ATTN_ROW(owner, member, nm, fmt_args, inner)                                                \
    do {                                                                                                \
        LISA_TT_FORMAT fmt_args;                                                                        \
        LISA_TRY(walk_attn(fn, ctx, name, D, inner, owner ? &owner->member : NULL));                    \
    } while (0);

lisa_status lisa_sam_tensors(const lisa_sam_dims *d, const char *prefix, lisa_sam *m, lisa_tensor_visit fn,
                             void *ctx) {
    const int64_t E = d->embed, PATCH = d->patch, G = d->grid, HD = d->head_dim, MLP = d->mlp, O = d->out_chans;
    const int64_t MIC = d->mask_in_chans, D = d->dec_dim, DS = d->dec_downsample, DMLP = d->dec_mlp;
    const int64_t NT = d->n_mask_tokens, IH = d->iou_hidden;
    char name[LISA_TT_NAME_MAX];
    {
#define M(x) (m ? &m->x : NULL)
#define LISA_SAM_ENC SAM_ONCE
#include "models/sam_tensors.def"
    }
    for (int32_t idx = 0; idx < (int32_t)d->depth; idx++) {
        lisa_sam_block *bl = m && m->blocks ? &m->blocks[idx] : NULL;
        const int64_t R = 2 * (lisa_sam_dims_global(d, idx) ? G : d->window) - 1;
#undef M
#define M(x) (bl ? &bl->x : NULL)
#define LISA_SAM_BLOCK SAM_INDEXED
#include "models/sam_tensors.def"
    }
    {
#undef M
#define M(x) (m ? &m->x : NULL)
#define LISA_SAM_NECK SAM_ONCE
#include "models/sam_tensors.def"
#define LISA_SAM_PROMPT SAM_ONCE
#include "models/sam_tensors.def"
    }
    for (int32_t idx = 0; idx < (int32_t)d->dec_depth; idx++) {
        lisa_sam_twoway_layer *ly = m && idx < LISA_SAM_MAX_DECODER_DEPTH ? &m->dec.layers[idx] : NULL;
#undef M
#define M(x) (ly ? &ly->x : NULL)
#define LISA_SAM_DEC_LAYER SAM_INDEXED
#define LISA_SAM_DEC_LAYER_ATTN(member, nm, inner) SAM_ATTN_ROW(ly, member, nm, (name, "%s" nm, prefix, idx), inner)
#include "models/sam_tensors.def"
    }
    lisa_sam_decoder *dec = m ? &m->dec : NULL;
    {
#undef M
#define M(x) (dec ? &dec->x : NULL)
#define LISA_SAM_DEC_ATTN(member, nm, inner) SAM_ATTN_ROW(dec, member, nm, (name, "%s" nm, prefix), inner)
#define LISA_SAM_DEC SAM_ONCE
#include "models/sam_tensors.def"
    }
    for (int32_t idx = 0; idx < (int32_t)NT; idx++) {
        const int32_t t = idx;
        lisa_sam_decoder *hd = t < LISA_SAM_MAX_MASK_TOKENS ? dec : NULL;
#undef M
#define M(x) (hd ? &hd->x : NULL)
#define LISA_SAM_HYPER SAM_INDEXED
#include "models/sam_tensors.def"
    }
    {
#undef M
#define M(x) (dec ? &dec->x : NULL)
#define LISA_SAM_IOU SAM_ONCE
#include "models/sam_tensors.def"
#undef M
    }
    return LISA_OK;
}

/* ---- dims ------------------------------------------------------------------------------------- */

void lisa_sam_dims_vit_h(lisa_sam_dims *s) {
    memset(s, 0, sizeof *s);
    s->img = 1024;
    s->patch = 16;
    s->grid = 64;
    s->embed = 1280;
    s->depth = 32;
    s->head_dim = 80;
    s->mlp = 5120;
    s->out_chans = 256;
    s->window = 14;
    for (int b = 7; b < 32; b += 8) s->global_mask[b / 64] |= 1ull << (b % 64); /* 7, 15, 23, 31 */
    s->dec_dim = 256;
    s->dec_depth = 2;
    s->dec_mlp = 2048;
    s->dec_downsample = 2;
    s->n_mask_tokens = 4;
    s->iou_hidden = 256;
    s->mask_in_chans = 16;
}

/* shape[k] of prefix+name when it has exactly nd dims, or `def` when absent/odd. */
static int64_t shape_of(const lisa_checkpoint *ck, const char *prefix, const char *name, int32_t nd, int k,
                        int64_t def) {
    char full[LISA_TT_NAME_MAX];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const lisa_ckpt_tensor *t = ck ? lisa_checkpoint_find(ck, full) : NULL;
    return t && t->n_dims == nd && t->shape[k] > 0 && t->shape[k] < (1 << 24) ? t->shape[k] : def;
}

/* 1 + the largest N of `<prefix><stem>N.<leaf>` names present (0 if none), capped: one missing
 * block does not hide the ones after it. */
static int64_t count_indexed(const lisa_checkpoint *ck, const char *prefix, const char *stem, const char *leaf) {
    char full[LISA_TT_NAME_MAX];
    snprintf(full, sizeof full, "%s%s", prefix, stem);
    const size_t pl = strlen(full);
    int64_t n = 0;
    for (int64_t i = 0; i < lisa_checkpoint_count(ck); i++) {
        const char *name = lisa_checkpoint_at(ck, i)->name;
        if (strncmp(name, full, pl) != 0) continue;
        char *end;
        long v = strtol(name + pl, &end, 10);
        if (end == name + pl || *end != '.' || strcmp(end + 1, leaf) != 0 || v < 0 || v >= LISA_SAM_MAX_DEPTH) continue;
        if (v + 1 > n) n = v + 1;
    }
    return n;
}

/* First usable dim among alternative anchors, so that one missing tensor does not throw every
 * other SAM shape back to the ViT-H defaults (and bury the real problem under false ones). */
typedef struct anchor {
    const char *name;
    int32_t nd;
    int k;
} anchor;

/* The first anchor's dim that is present, else def. */
static int64_t first_dim(const lisa_checkpoint *ck, const char *prefix, const anchor *a, int n, int64_t def) {
    for (int i = 0; i < n; i++) {
        int64_t v = shape_of(ck, prefix, a[i].name, a[i].nd, a[i].k, 0);
        if (v > 0) return v;
    }
    return def;
}

/* Whether ck holds a SAM tensor under prefix (any name under it when there is one, else the
 * three stock module names). */
static bool has_sam(const lisa_checkpoint *ck, const char *prefix) {
    static const char *const parts[] = {"image_encoder.", "prompt_encoder.", "mask_decoder."};
    const size_t n = strlen(prefix);
    for (int64_t i = 0; i < lisa_checkpoint_count(ck); i++) {
        const char *name = lisa_checkpoint_at(ck, i)->name;
        if (strncmp(name, prefix, n) != 0) continue;
        if (n) return true;
        for (int k = 0; k < 3; k++)
            if (strncmp(name, parts[k], strlen(parts[k])) == 0) return true;
    }
    return false;
}

#define ENC "image_encoder."
#define DEC "mask_decoder."

void lisa_sam_dims_infer(lisa_sam_dims *s, const lisa_checkpoint *ck, const char *prefix) {
    lisa_sam_dims_vit_h(s);
    if (!ck || !has_sam(ck, prefix)) return;
    s->inferred = true;
    static const anchor embed[] = {{ENC "patch_embed.proj.weight", 4, 0}, {ENC "pos_embed", 4, 3},
                                   {ENC "blocks.0.norm1.weight", 1, 0}, {ENC "neck.0.weight", 4, 1}};
    static const anchor patch[] = {{ENC "patch_embed.proj.weight", 4, 2}, {ENC "patch_embed.proj.weight", 4, 3}};
    static const anchor grid[] = {{ENC "pos_embed", 4, 1}, {ENC "pos_embed", 4, 2}};
    static const anchor mlp[] = {{ENC "blocks.0.mlp.lin1.weight", 2, 0}, {ENC "blocks.0.mlp.lin2.weight", 2, 1},
                                 {ENC "blocks.1.mlp.lin1.weight", 2, 0}};
    static const anchor out[] = {{ENC "neck.0.weight", 4, 0}, {ENC "neck.2.weight", 4, 0}, {ENC "neck.1.weight", 1, 0}};
    static const anchor dd[] = {{DEC "iou_token.weight", 2, 1}, {DEC "mask_tokens.weight", 2, 1},
                                {"prompt_encoder.no_mask_embed.weight", 2, 1},
                                {DEC "transformer.norm_final_attn.weight", 1, 0}};
    static const anchor tok[] = {{DEC "mask_tokens.weight", 2, 0}};
    static const anchor dmlp[] = {{DEC "transformer.layers.0.mlp.lin1.weight", 2, 0},
                                  {DEC "transformer.layers.0.mlp.lin2.weight", 2, 1}};
    static const anchor inner[] = {{DEC "transformer.layers.0.cross_attn_token_to_image.q_proj.weight", 2, 0},
                                   {DEC "transformer.final_attn_token_to_image.q_proj.weight", 2, 0}};
    static const anchor iou[] = {{DEC "iou_prediction_head.layers.0.weight", 2, 0}};
    static const anchor mic[] = {{"prompt_encoder.mask_downscaling.3.weight", 4, 0}};
    s->embed = first_dim(ck, prefix, embed, 4, s->embed);
    s->patch = first_dim(ck, prefix, patch, 2, s->patch);
    s->grid = first_dim(ck, prefix, grid, 2, s->grid);
    s->img = s->grid * s->patch;
    int64_t depth = count_indexed(ck, prefix, ENC "blocks.", "norm1.weight");
    if (depth > 0) s->depth = depth;
    s->mlp = first_dim(ck, prefix, mlp, 3, s->mlp);
    s->out_chans = first_dim(ck, prefix, out, 3, s->out_chans);
    /* Global-attention blocks carry rel-pos tables of the whole grid (2*grid-1 rows); windowed
     * blocks of one window (2*window-1). */
    memset(s->global_mask, 0, sizeof s->global_mask);
    int64_t window = 0, head_dim = 0;
    for (int64_t b = 0; b < s->depth; b++) {
        char name[LISA_TT_NAME_MAX];
        for (int hw = 0; hw < 2; hw++) {
            snprintf(name, sizeof name, ENC "blocks.%lld.attn.rel_pos_%c", (long long)b, hw ? 'w' : 'h');
            int64_t len = shape_of(ck, prefix, name, 2, 0, 0);
            if (!len) continue;
            if (!head_dim) head_dim = shape_of(ck, prefix, name, 2, 1, 0);
            if (len == 2 * s->grid - 1) s->global_mask[b / 64] |= 1ull << (b % 64);
            else if (!window) window = (len + 1) / 2;
            break;
        }
    }
    if (window) s->window = window;
    if (head_dim) s->head_dim = head_dim;
    s->dec_dim = first_dim(ck, prefix, dd, 4, s->dec_dim);
    s->n_mask_tokens = first_dim(ck, prefix, tok, 1, s->n_mask_tokens);
    int64_t ddepth = count_indexed(ck, prefix, DEC "transformer.layers.", "norm1.weight");
    if (ddepth > 0) s->dec_depth = ddepth;
    s->dec_mlp = first_dim(ck, prefix, dmlp, 2, s->dec_mlp);
    int64_t in = first_dim(ck, prefix, inner, 2, 0);
    if (in > 0 && s->dec_dim % in == 0) s->dec_downsample = s->dec_dim / in;
    s->iou_hidden = first_dim(ck, prefix, iou, 1, s->iou_hidden);
    s->mask_in_chans = first_dim(ck, prefix, mic, 1, s->mask_in_chans);
}
