/* models/manifest.c — expected tensor lists for LISA, LLaMA and CLIP checkpoints (see manifest.h).
 *
 * Names and shapes follow the module trees of the reference code: transformers 4.31
 * LlamaForCausalLM / CLIPVisionModel, LLaVA's mm_projector builder (llava/model/multimodal_projector
 * `build_vision_projector`: "linear" or "mlp{N}x_gelu" = Linear, GELU, Linear, ...), LISA's
 * text_hidden_fcs (model/LISA.py: Sequential(Linear(C,C), ReLU, Linear(C,out_dim), Dropout)), and
 * segment_anything 1.0 (modeling/image_encoder.py, prompt_encoder.py, mask_decoder.py,
 * transformer.py). tests/test_manifest.c checks them against checkpoints saved from those modules. */
#include "models/manifest.h"

#include "models/llama.h"
#include "loader/json.h"
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *lisa_mf_part_name(lisa_mf_part p) {
    static const char *const n[] = {"llm", "projector", "text_hidden_fcs", "sam", "clip"};
    return p < LISA_PART_COUNT ? n[p] : "?";
}

const char *lisa_model_family_name(lisa_model_family f) {
    switch (f) {
    case LISA_FAMILY_LISA: return "LISA (LLaVA-LLaMA + SAM)";
    case LISA_FAMILY_LLAMA: return "LLaMA";
    case LISA_FAMILY_CLIP: return "CLIP vision tower";
    }
    return "?";
}

void lisa_manifest_free(lisa_manifest *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_entries; i++) free(m->entries[i].name);
    free(m->entries);
    memset(m, 0, sizeof *m);
}

enum { REQ = 0, OPT = 1, BUF = 2, ANYDT = 4 };

/* Appends one entry; flags: OPT (may be absent), BUF (not a parameter), ANYDT (integer allowed). */
static lisa_status add(lisa_manifest *m, lisa_mf_part part, int flags, lisa_dtype released, int n_dims, int64_t d0,
                       int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...) __attribute__((format(printf, 10, 11)));
static lisa_status add(lisa_manifest *m, lisa_mf_part part, int flags, lisa_dtype released, int n_dims, int64_t d0,
                       int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...) {
    if (m->n_entries == m->cap_entries) {
        int64_t cap = m->cap_entries ? m->cap_entries * 2 : 256;
        lisa_manifest_entry *ne = realloc(m->entries, (size_t)cap * sizeof *ne);
        if (!ne) return lisa_fail(LISA_ERR_OOM, "manifest: out of memory");
        m->entries = ne;
        m->cap_entries = cap;
    }
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    lisa_manifest_entry *e = &m->entries[m->n_entries];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return lisa_fail(LISA_ERR_OOM, "manifest: out of memory");
    e->n_dims = n_dims;
    int64_t d[4] = {d0, d1, d2, d3};
    for (int i = 0; i < LISA_MAX_DIMS; i++) e->shape[i] = i < n_dims ? d[i] : 1;
    e->part = part;
    e->optional = flags & OPT;
    e->param = !(flags & BUF);
    e->any_dtype = flags & ANYDT;
    e->released = released;
    m->n_entries++;
    return LISA_OK;
}

#define ADD1(part, fl, dt, a, ...) LISA_TRY(add(m, part, fl, dt, 1, a, 0, 0, 0, __VA_ARGS__))
#define ADD2(part, fl, dt, a, b, ...) LISA_TRY(add(m, part, fl, dt, 2, a, b, 0, 0, __VA_ARGS__))
#define ADD4(part, fl, dt, a, b, c, d, ...) LISA_TRY(add(m, part, fl, dt, 4, a, b, c, d, __VA_ARGS__))

/* ---- config fields ------------------------------------------------------------------------------ */

static lisa_status dim(const cJSON *o, const char *file, const char *key, bool required, int64_t def, int64_t max,
                       int64_t *out) {
    return lisa_json_int_range(o, file, key, required, def, 1, max, out);
}

/* The LLM fields go through lisa_llama_config_parse, the validation loading uses (issue 18: inspect
 * and segment accept and refuse the same configs, with the same messages). */
static lisa_status parse_llm(lisa_llm_dims *d, const cJSON *c, const char *file, bool lisa) {
    lisa_llama_config lc;
    LISA_TRY(lisa_llama_config_parse(&lc, c, file));
    d->hidden = lc.hidden;
    d->intermediate = lc.intermediate;
    d->n_layers = lc.n_layers;
    d->n_heads = lc.n_heads;
    d->n_kv_heads = lc.n_kv_heads;
    d->vocab = lc.vocab;
    d->head_dim = lc.head_dim;
    d->projector_layers = 0;
    if (!lisa) return LISA_OK;
    /* LLaVA default: CLIP ViT-L; the same bounds as lisa_model_load's config parse */
    LISA_TRY(dim(c, file, "mm_hidden_size", false, 1024, LISA_LLAMA_MAX_WIDTH, &d->mm_hidden));
    LISA_TRY(dim(c, file, "out_dim", false, 256, LISA_LLAMA_MAX_WIDTH, &d->out_dim));
    const char *pt;
    LISA_TRY(lisa_json_string(c, file, "mm_projector_type", false, "linear", &pt));
    int n = 0, used = 0;
    if (strcmp(pt, "linear") == 0) d->projector_layers = 1;
    else if (strcmp(pt, "identity") == 0) d->projector_layers = 0;
    else if (sscanf(pt, "mlp%dx_gelu%n", &n, &used) == 1 && pt[used] == '\0' && n >= 1 && n <= 16)
        d->projector_layers = n;
    else
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: mm_projector_type '%s' (linear, identity, mlpNx_gelu)", file, pt);
    return LISA_OK;
}

/* ---- LLaMA + LISA heads ------------------------------------------------------------------------- */

static lisa_status add_llm(lisa_manifest *m) {
    const lisa_llm_dims *d = &m->llm;
    const lisa_mf_part P = LISA_PART_LLM;
    const lisa_dtype B = LISA_DTYPE_BF16;
    int64_t C = d->hidden, I = d->intermediate, q = d->n_heads * d->head_dim, kv = d->n_kv_heads * d->head_dim;
    ADD2(P, REQ, B, d->vocab, C, "model.embed_tokens.weight");
    for (int64_t l = 0; l < d->n_layers; l++) {
        ADD2(P, REQ, B, q, C, "model.layers.%lld.self_attn.q_proj.weight", (long long)l);
        ADD2(P, REQ, B, kv, C, "model.layers.%lld.self_attn.k_proj.weight", (long long)l);
        ADD2(P, REQ, B, kv, C, "model.layers.%lld.self_attn.v_proj.weight", (long long)l);
        ADD2(P, REQ, B, C, q, "model.layers.%lld.self_attn.o_proj.weight", (long long)l);
        /* transformers 4.31 saves the rotary table (a persistent buffer), later versions do not;
         * its stored dtype is not known for the released files (spec §11 U3) */
        ADD1(P, OPT | BUF, LISA_DTYPE_F32, d->head_dim / 2, "model.layers.%lld.self_attn.rotary_emb.inv_freq", (long long)l);
        ADD2(P, REQ, B, I, C, "model.layers.%lld.mlp.gate_proj.weight", (long long)l);
        ADD2(P, REQ, B, I, C, "model.layers.%lld.mlp.up_proj.weight", (long long)l);
        ADD2(P, REQ, B, C, I, "model.layers.%lld.mlp.down_proj.weight", (long long)l);
        ADD1(P, REQ, B, C, "model.layers.%lld.input_layernorm.weight", (long long)l);
        ADD1(P, REQ, B, C, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
    }
    ADD1(P, REQ, B, C, "model.norm.weight");
    ADD2(P, REQ, B, d->vocab, C, "lm_head.weight");
    return LISA_OK;
}

static lisa_status add_heads(lisa_manifest *m) {
    const lisa_llm_dims *d = &m->llm;
    int64_t C = d->hidden;
    /* LLaVA build_vision_projector: linear -> model.mm_projector.{weight,bias}; mlpNx_gelu ->
     * Sequential(Linear(mm,C), GELU, Linear(C,C), ...): Linear layers at indices 0, 2, 4, ... */
    if (d->projector_layers == 1) {
        ADD2(LISA_PART_PROJECTOR, REQ, LISA_DTYPE_BF16, C, d->mm_hidden, "model.mm_projector.weight");
        ADD1(LISA_PART_PROJECTOR, REQ, LISA_DTYPE_BF16, C, "model.mm_projector.bias");
    } else {
        for (int32_t i = 0; i < d->projector_layers && d->projector_layers > 1; i++) {
            ADD2(LISA_PART_PROJECTOR, REQ, LISA_DTYPE_BF16, C, i == 0 ? d->mm_hidden : C, "model.mm_projector.%d.weight",
                 2 * i);
            ADD1(LISA_PART_PROJECTOR, REQ, LISA_DTYPE_BF16, C, "model.mm_projector.%d.bias", 2 * i);
        }
    }
    const lisa_dtype F = LISA_DTYPE_F32;
    ADD2(LISA_PART_FCS, REQ, F, C, C, "model.text_hidden_fcs.0.0.weight");
    ADD1(LISA_PART_FCS, REQ, F, C, "model.text_hidden_fcs.0.0.bias");
    ADD2(LISA_PART_FCS, REQ, F, d->out_dim, C, "model.text_hidden_fcs.0.2.weight");
    ADD1(LISA_PART_FCS, REQ, F, d->out_dim, "model.text_hidden_fcs.0.2.bias");
    return LISA_OK;
}

/* ---- SAM ------------------------------------------------------------------------------------------ */

#define SAM_PREFIX "model.visual_model."
#define SAM_MAX_DEPTH 256

static void sam_defaults_vit_h(lisa_sam_dims *s) {
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

/* shape[k] of a tensor with exactly nd dims, or `def` when absent/odd. */
static int64_t shape_of(const lisa_checkpoint *ck, const char *name, int32_t nd, int k, int64_t def) {
    const lisa_ckpt_tensor *t = ck ? lisa_checkpoint_find(ck, name) : NULL;
    return t && t->n_dims == nd && t->shape[k] > 0 && t->shape[k] < (1 << 24) ? t->shape[k] : def;
}

/* 1 + the largest N of `<prefix>N.<suffix>` names present (0 if none), capped. */
static int64_t count_indexed(const lisa_checkpoint *ck, const char *prefix, const char *suffix) {
    int64_t n = 0;
    size_t pl = strlen(prefix);
    for (int64_t i = 0; i < lisa_checkpoint_count(ck); i++) {
        const char *name = lisa_checkpoint_at(ck, i)->name;
        if (strncmp(name, prefix, pl) != 0) continue;
        char *end;
        long v = strtol(name + pl, &end, 10);
        if (end == name + pl || *end != '.' || strcmp(end + 1, suffix) != 0 || v < 0 || v >= SAM_MAX_DEPTH) continue;
        if (v + 1 > n) n = v + 1;
    }
    return n;
}

static bool is_global(const lisa_sam_dims *s, int64_t b) { return (s->global_mask[b / 64] >> (b % 64)) & 1u; }

/* First usable dim among alternative anchors, so that one missing tensor does not throw every
 * other SAM shape back to the ViT-H defaults (and bury the real problem under false ones). */
typedef struct anchor {
    const char *name;
    int32_t nd;
    int k;
} anchor;

static int64_t first_dim(const lisa_checkpoint *ck, const anchor *a, int n, int64_t def) {
    for (int i = 0; i < n; i++) {
        int64_t v = shape_of(ck, a[i].name, a[i].nd, a[i].k, 0);
        if (v > 0) return v;
    }
    return def;
}

static bool has_prefix(const lisa_checkpoint *ck, const char *prefix) {
    size_t n = strlen(prefix);
    for (int64_t i = 0; i < lisa_checkpoint_count(ck); i++)
        if (strncmp(lisa_checkpoint_at(ck, i)->name, prefix, n) == 0) return true;
    return false;
}

#define ENC SAM_PREFIX "image_encoder."
#define DEC SAM_PREFIX "mask_decoder."

static void sam_infer(lisa_sam_dims *s, const lisa_checkpoint *ck) {
    sam_defaults_vit_h(s);
    if (!ck || !has_prefix(ck, SAM_PREFIX)) return;
    s->inferred = true;
    static const anchor embed[] = {{ENC "patch_embed.proj.weight", 4, 0}, {ENC "pos_embed", 4, 3},
                                   {ENC "blocks.0.norm1.weight", 1, 0}, {ENC "neck.0.weight", 4, 1}};
    static const anchor patch[] = {{ENC "patch_embed.proj.weight", 4, 2}, {ENC "patch_embed.proj.weight", 4, 3}};
    static const anchor grid[] = {{ENC "pos_embed", 4, 1}, {ENC "pos_embed", 4, 2}};
    static const anchor mlp[] = {{ENC "blocks.0.mlp.lin1.weight", 2, 0}, {ENC "blocks.0.mlp.lin2.weight", 2, 1},
                                 {ENC "blocks.1.mlp.lin1.weight", 2, 0}};
    static const anchor out[] = {{ENC "neck.0.weight", 4, 0}, {ENC "neck.2.weight", 4, 0}, {ENC "neck.1.weight", 1, 0}};
    static const anchor dd[] = {{DEC "iou_token.weight", 2, 1}, {DEC "mask_tokens.weight", 2, 1},
                                {SAM_PREFIX "prompt_encoder.no_mask_embed.weight", 2, 1},
                                {DEC "transformer.norm_final_attn.weight", 1, 0}};
    static const anchor tok[] = {{DEC "mask_tokens.weight", 2, 0}};
    static const anchor dmlp[] = {{DEC "transformer.layers.0.mlp.lin1.weight", 2, 0},
                                  {DEC "transformer.layers.0.mlp.lin2.weight", 2, 1}};
    static const anchor inner[] = {{DEC "transformer.layers.0.cross_attn_token_to_image.q_proj.weight", 2, 0},
                                   {DEC "transformer.final_attn_token_to_image.q_proj.weight", 2, 0}};
    static const anchor iou[] = {{DEC "iou_prediction_head.layers.0.weight", 2, 0}};
    static const anchor mic[] = {{SAM_PREFIX "prompt_encoder.mask_downscaling.3.weight", 4, 0}};
    s->embed = first_dim(ck, embed, 4, s->embed);
    s->patch = first_dim(ck, patch, 2, s->patch);
    s->grid = first_dim(ck, grid, 2, s->grid);
    s->img = s->grid * s->patch;
    int64_t depth = count_indexed(ck, ENC "blocks.", "norm1.weight");
    if (depth > 0) s->depth = depth;
    s->mlp = first_dim(ck, mlp, 3, s->mlp);
    s->out_chans = first_dim(ck, out, 3, s->out_chans);
    /* Global-attention blocks carry rel-pos tables of the whole grid (2*grid-1 rows); windowed
     * blocks of one window (2*window-1). */
    memset(s->global_mask, 0, sizeof s->global_mask);
    int64_t window = 0, head_dim = 0;
    for (int64_t b = 0; b < s->depth; b++) {
        char name[256];
        for (int hw = 0; hw < 2; hw++) {
            snprintf(name, sizeof name, ENC "blocks.%lld.attn.rel_pos_%c", (long long)b, hw ? 'w' : 'h');
            int64_t len = shape_of(ck, name, 2, 0, 0);
            if (!len) continue;
            if (!head_dim) head_dim = shape_of(ck, name, 2, 1, 0);
            if (len == 2 * s->grid - 1) s->global_mask[b / 64] |= 1ull << (b % 64);
            else if (!window) window = (len + 1) / 2;
            break;
        }
    }
    if (window) s->window = window;
    if (head_dim) s->head_dim = head_dim;
    s->dec_dim = first_dim(ck, dd, 4, s->dec_dim);
    s->n_mask_tokens = first_dim(ck, tok, 1, s->n_mask_tokens);
    int64_t ddepth = count_indexed(ck, DEC "transformer.layers.", "norm1.weight");
    if (ddepth > 0) s->dec_depth = ddepth;
    s->dec_mlp = first_dim(ck, dmlp, 2, s->dec_mlp);
    int64_t in = first_dim(ck, inner, 2, 0);
    if (in > 0 && s->dec_dim % in == 0) s->dec_downsample = s->dec_dim / in;
    s->iou_hidden = first_dim(ck, iou, 1, s->iou_hidden);
    s->mask_in_chans = first_dim(ck, mic, 1, s->mask_in_chans);
}

static lisa_status add_attention(lisa_manifest *m, const char *base, int64_t D, int64_t inner) {
    const lisa_mf_part P = LISA_PART_SAM;
    const lisa_dtype F = LISA_DTYPE_F32;
    static const char *const qkv[] = {"q_proj", "k_proj", "v_proj"};
    for (int i = 0; i < 3; i++) {
        ADD2(P, REQ, F, inner, D, "%s.%s.weight", base, qkv[i]);
        ADD1(P, REQ, F, inner, "%s.%s.bias", base, qkv[i]);
    }
    ADD2(P, REQ, F, D, inner, "%s.out_proj.weight", base);
    ADD1(P, REQ, F, D, "%s.out_proj.bias", base);
    return LISA_OK;
}

static lisa_status add_sam(lisa_manifest *m) {
    const lisa_sam_dims *s = &m->sam;
    const lisa_mf_part P = LISA_PART_SAM;
    const lisa_dtype F = LISA_DTYPE_F32;
    const char *E_ = SAM_PREFIX "image_encoder.";
    int64_t E = s->embed, O = s->out_chans, D = s->dec_dim;
    /* image encoder (ImageEncoderViT) */
    ADD4(P, REQ, F, E, 3, s->patch, s->patch, "%spatch_embed.proj.weight", E_);
    ADD1(P, REQ, F, E, "%spatch_embed.proj.bias", E_);
    ADD4(P, REQ, F, 1, s->grid, s->grid, E, "%spos_embed", E_);
    for (int64_t b = 0; b < s->depth; b++) {
        long long n = (long long)b;
        int64_t rel = is_global(s, b) ? 2 * s->grid - 1 : 2 * s->window - 1;
        ADD1(P, REQ, F, E, "%sblocks.%lld.norm1.weight", E_, n);
        ADD1(P, REQ, F, E, "%sblocks.%lld.norm1.bias", E_, n);
        ADD2(P, REQ, F, 3 * E, E, "%sblocks.%lld.attn.qkv.weight", E_, n);
        ADD1(P, REQ, F, 3 * E, "%sblocks.%lld.attn.qkv.bias", E_, n);
        ADD2(P, REQ, F, E, E, "%sblocks.%lld.attn.proj.weight", E_, n);
        ADD1(P, REQ, F, E, "%sblocks.%lld.attn.proj.bias", E_, n);
        ADD2(P, REQ, F, rel, s->head_dim, "%sblocks.%lld.attn.rel_pos_h", E_, n);
        ADD2(P, REQ, F, rel, s->head_dim, "%sblocks.%lld.attn.rel_pos_w", E_, n);
        ADD1(P, REQ, F, E, "%sblocks.%lld.norm2.weight", E_, n);
        ADD1(P, REQ, F, E, "%sblocks.%lld.norm2.bias", E_, n);
        ADD2(P, REQ, F, s->mlp, E, "%sblocks.%lld.mlp.lin1.weight", E_, n);
        ADD1(P, REQ, F, s->mlp, "%sblocks.%lld.mlp.lin1.bias", E_, n);
        ADD2(P, REQ, F, E, s->mlp, "%sblocks.%lld.mlp.lin2.weight", E_, n);
        ADD1(P, REQ, F, E, "%sblocks.%lld.mlp.lin2.bias", E_, n);
    }
    ADD4(P, REQ, F, O, E, 1, 1, "%sneck.0.weight", E_);
    ADD1(P, REQ, F, O, "%sneck.1.weight", E_);
    ADD1(P, REQ, F, O, "%sneck.1.bias", E_);
    ADD4(P, REQ, F, O, O, 3, 3, "%sneck.2.weight", E_);
    ADD1(P, REQ, F, O, "%sneck.3.weight", E_);
    ADD1(P, REQ, F, O, "%sneck.3.bias", E_);
    /* prompt encoder (PromptEncoder, embed_dim = decoder dim) */
    const char *P_ = SAM_PREFIX "prompt_encoder.";
    int64_t mic = s->mask_in_chans;
    ADD2(P, REQ, F, 2, D / 2, "%spe_layer.positional_encoding_gaussian_matrix", P_); /* a buffer, stored */
    for (int i = 0; i < 4; i++) ADD2(P, OPT, F, 1, D, "%spoint_embeddings.%d.weight", P_, i);
    ADD2(P, OPT, F, 1, D, "%snot_a_point_embed.weight", P_);
    ADD4(P, OPT, F, mic / 4, 1, 2, 2, "%smask_downscaling.0.weight", P_);
    ADD1(P, OPT, F, mic / 4, "%smask_downscaling.0.bias", P_);
    ADD1(P, OPT, F, mic / 4, "%smask_downscaling.1.weight", P_);
    ADD1(P, OPT, F, mic / 4, "%smask_downscaling.1.bias", P_);
    ADD4(P, OPT, F, mic, mic / 4, 2, 2, "%smask_downscaling.3.weight", P_);
    ADD1(P, OPT, F, mic, "%smask_downscaling.3.bias", P_);
    ADD1(P, OPT, F, mic, "%smask_downscaling.4.weight", P_);
    ADD1(P, OPT, F, mic, "%smask_downscaling.4.bias", P_);
    ADD4(P, OPT, F, D, mic, 1, 1, "%smask_downscaling.6.weight", P_);
    ADD1(P, OPT, F, D, "%smask_downscaling.6.bias", P_);
    ADD2(P, REQ, F, 1, D, "%sno_mask_embed.weight", P_);
    /* mask decoder (MaskDecoder + TwoWayTransformer) */
    const char *M_ = SAM_PREFIX "mask_decoder.";
    char base[256];
    int64_t inner = D / s->dec_downsample, T = s->n_mask_tokens;
    ADD2(P, REQ, F, 1, D, "%siou_token.weight", M_);
    ADD2(P, REQ, F, T, D, "%smask_tokens.weight", M_);
    for (int64_t l = 0; l < s->dec_depth; l++) {
        long long n = (long long)l;
        snprintf(base, sizeof base, "%stransformer.layers.%lld.self_attn", M_, n);
        LISA_TRY(add_attention(m, base, D, D));
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm1.weight", M_, n);
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm1.bias", M_, n);
        snprintf(base, sizeof base, "%stransformer.layers.%lld.cross_attn_token_to_image", M_, n);
        LISA_TRY(add_attention(m, base, D, inner));
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm2.weight", M_, n);
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm2.bias", M_, n);
        ADD2(P, REQ, F, s->dec_mlp, D, "%stransformer.layers.%lld.mlp.lin1.weight", M_, n);
        ADD1(P, REQ, F, s->dec_mlp, "%stransformer.layers.%lld.mlp.lin1.bias", M_, n);
        ADD2(P, REQ, F, D, s->dec_mlp, "%stransformer.layers.%lld.mlp.lin2.weight", M_, n);
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.mlp.lin2.bias", M_, n);
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm3.weight", M_, n);
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm3.bias", M_, n);
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm4.weight", M_, n);
        ADD1(P, REQ, F, D, "%stransformer.layers.%lld.norm4.bias", M_, n);
        snprintf(base, sizeof base, "%stransformer.layers.%lld.cross_attn_image_to_token", M_, n);
        LISA_TRY(add_attention(m, base, D, inner));
    }
    snprintf(base, sizeof base, "%stransformer.final_attn_token_to_image", M_);
    LISA_TRY(add_attention(m, base, D, inner));
    ADD1(P, REQ, F, D, "%stransformer.norm_final_attn.weight", M_);
    ADD1(P, REQ, F, D, "%stransformer.norm_final_attn.bias", M_);
    ADD4(P, REQ, F, D, D / 4, 2, 2, "%soutput_upscaling.0.weight", M_);
    ADD1(P, REQ, F, D / 4, "%soutput_upscaling.0.bias", M_);
    ADD1(P, REQ, F, D / 4, "%soutput_upscaling.1.weight", M_);
    ADD1(P, REQ, F, D / 4, "%soutput_upscaling.1.bias", M_);
    ADD4(P, REQ, F, D / 4, D / 8, 2, 2, "%soutput_upscaling.3.weight", M_);
    ADD1(P, REQ, F, D / 8, "%soutput_upscaling.3.bias", M_);
    for (int64_t t = 0; t < T; t++) {
        long long n = (long long)t;
        ADD2(P, REQ, F, D, D, "%soutput_hypernetworks_mlps.%lld.layers.0.weight", M_, n);
        ADD1(P, REQ, F, D, "%soutput_hypernetworks_mlps.%lld.layers.0.bias", M_, n);
        ADD2(P, REQ, F, D, D, "%soutput_hypernetworks_mlps.%lld.layers.1.weight", M_, n);
        ADD1(P, REQ, F, D, "%soutput_hypernetworks_mlps.%lld.layers.1.bias", M_, n);
        ADD2(P, REQ, F, D / 8, D, "%soutput_hypernetworks_mlps.%lld.layers.2.weight", M_, n);
        ADD1(P, REQ, F, D / 8, "%soutput_hypernetworks_mlps.%lld.layers.2.bias", M_, n);
    }
    int64_t H = s->iou_hidden;
    ADD2(P, OPT, F, H, D, "%siou_prediction_head.layers.0.weight", M_);
    ADD1(P, OPT, F, H, "%siou_prediction_head.layers.0.bias", M_);
    ADD2(P, OPT, F, H, H, "%siou_prediction_head.layers.1.weight", M_);
    ADD1(P, OPT, F, H, "%siou_prediction_head.layers.1.bias", M_);
    ADD2(P, OPT, F, T, H, "%siou_prediction_head.layers.2.weight", M_);
    ADD1(P, OPT, F, T, "%siou_prediction_head.layers.2.bias", M_);
    return LISA_OK;
}

/* ---- CLIP ---------------------------------------------------------------------------------------- */

static lisa_status add_clip(lisa_manifest *m, const cJSON *config, const char *file) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, "vision_config");
    if (!cJSON_IsObject(v)) v = config; /* a CLIPVisionModel config holds the fields at top level */
    lisa_clip_dims *c = &m->clip;
    /* absent fields take transformers' CLIPVisionConfig defaults, as from_pretrained would */
    LISA_TRY(dim(v, file, "hidden_size", false, 768, 1 << 16, &c->hidden));
    LISA_TRY(dim(v, file, "intermediate_size", false, 3072, 1 << 18, &c->intermediate));
    LISA_TRY(dim(v, file, "num_hidden_layers", false, 12, 1024, &c->n_layers));
    LISA_TRY(dim(v, file, "image_size", false, 224, 1 << 14, &c->image));
    LISA_TRY(dim(v, file, "patch_size", false, 32, 1 << 14, &c->patch));
    if (c->image % c->patch)
        return lisa_fail(LISA_ERR_FORMAT, "%s: image_size %lld is not a multiple of patch_size %lld", file,
                         (long long)c->image, (long long)c->patch);
    const lisa_mf_part P = LISA_PART_CLIP;
    const lisa_dtype F = LISA_DTYPE_F32;
    int64_t H = c->hidden, I = c->intermediate, n_pos = (c->image / c->patch) * (c->image / c->patch) + 1;
    ADD1(P, REQ, F, H, "vision_model.embeddings.class_embedding");
    ADD4(P, REQ, F, H, 3, c->patch, c->patch, "vision_model.embeddings.patch_embedding.weight");
    ADD2(P, REQ, F, n_pos, H, "vision_model.embeddings.position_embedding.weight");
    ADD2(P, OPT | BUF | ANYDT, LISA_DTYPE_I64, 1, n_pos, "vision_model.embeddings.position_ids");
    ADD1(P, REQ, F, H, "vision_model.pre_layrnorm.weight");
    ADD1(P, REQ, F, H, "vision_model.pre_layrnorm.bias");
    static const char *const proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int64_t l = 0; l < c->n_layers; l++) {
        long long n = (long long)l;
        for (int i = 0; i < 4; i++) {
            ADD2(P, REQ, F, H, H, "vision_model.encoder.layers.%lld.self_attn.%s.weight", n, proj[i]);
            ADD1(P, REQ, F, H, "vision_model.encoder.layers.%lld.self_attn.%s.bias", n, proj[i]);
        }
        ADD1(P, REQ, F, H, "vision_model.encoder.layers.%lld.layer_norm1.weight", n);
        ADD1(P, REQ, F, H, "vision_model.encoder.layers.%lld.layer_norm1.bias", n);
        ADD2(P, REQ, F, I, H, "vision_model.encoder.layers.%lld.mlp.fc1.weight", n);
        ADD1(P, REQ, F, I, "vision_model.encoder.layers.%lld.mlp.fc1.bias", n);
        ADD2(P, REQ, F, H, I, "vision_model.encoder.layers.%lld.mlp.fc2.weight", n);
        ADD1(P, REQ, F, H, "vision_model.encoder.layers.%lld.mlp.fc2.bias", n);
        ADD1(P, REQ, F, H, "vision_model.encoder.layers.%lld.layer_norm2.weight", n);
        ADD1(P, REQ, F, H, "vision_model.encoder.layers.%lld.layer_norm2.bias", n);
    }
    ADD1(P, OPT, F, H, "vision_model.post_layernorm.weight");
    ADD1(P, OPT, F, H, "vision_model.post_layernorm.bias");
    return LISA_OK;
}

/* ---- building ------------------------------------------------------------------------------------ */

static bool has_string_in(const cJSON *arr, const char *s) {
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0) return true;
    return false;
}

lisa_status lisa_manifest_build(lisa_manifest *m, const cJSON *config, const char *config_path,
                                const lisa_checkpoint *ck) {
    memset(m, 0, sizeof *m);
    if (!cJSON_IsObject(config)) return lisa_fail(LISA_ERR_FORMAT, "%s: not a JSON object", config_path);
    const char *mt;
    LISA_TRY(lisa_json_string(config, config_path, "model_type", false, "", &mt));
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(config, "architectures");
    lisa_status s;
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(config, "vision_config")) || strcmp(mt, "clip") == 0 ||
        strcmp(mt, "clip_vision_model") == 0) {
        m->family = LISA_FAMILY_CLIP;
        s = add_clip(m, config, config_path);
    } else if (cJSON_GetObjectItemCaseSensitive(config, "out_dim") || has_string_in(arch, "LISAForCausalLM")) {
        m->family = LISA_FAMILY_LISA;
        s = parse_llm(&m->llm, config, config_path, true);
        if (s == LISA_OK) s = add_llm(m);
        if (s == LISA_OK) s = add_heads(m);
        if (s == LISA_OK) {
            sam_infer(&m->sam, ck);
            s = add_sam(m);
        }
    } else if (strcmp(mt, "llama") == 0 || has_string_in(arch, "LlamaForCausalLM")) {
        m->family = LISA_FAMILY_LLAMA;
        s = parse_llm(&m->llm, config, config_path, false);
        if (s == LISA_OK) s = add_llm(m);
    } else {
        s = lisa_fail(LISA_ERR_UNSUPPORTED,
                      "%s: neither a LISA (out_dim / LISAForCausalLM), LLaMA nor CLIP config (model_type '%s')",
                      config_path, mt);
    }
    if (s != LISA_OK) lisa_manifest_free(m);
    return s;
}

lisa_status lisa_manifest_from_dir(lisa_manifest *m, const char *dir, const lisa_checkpoint *ck) {
    memset(m, 0, sizeof *m);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg;
    LISA_TRY(lisa_json_load_file(path, 0, &cfg));
    lisa_status s = lisa_manifest_build(m, cfg, path, ck);
    cJSON_Delete(cfg);
    return s;
}

uint64_t lisa_manifest_numel(const lisa_manifest *m, lisa_mf_part part, bool params_only) {
    uint64_t n = 0;
    for (int64_t i = 0; i < m->n_entries; i++) {
        const lisa_manifest_entry *e = &m->entries[i];
        if ((part != LISA_PART_COUNT && e->part != part) || (params_only && !e->param)) continue;
        uint64_t k = 1;
        for (int d = 0; d < e->n_dims; d++) k *= (uint64_t)e->shape[d];
        n += k;
    }
    return n;
}

int32_t lisa_manifest_allowed(const lisa_manifest *m, const char *const **patterns) {
    /* CLIP repos hold the text tower too; a LISA checkpoint saved with its vision tower holds CLIP
     * under model.vision_tower (the released ones drop it). Neither is used from there. */
    static const char *const clip[] = {"text_model.*", "text_projection.weight", "visual_projection.weight",
                                       "logit_scale"};
    static const char *const lisa[] = {"model.vision_tower.*"};
    switch (m->family) {
    case LISA_FAMILY_CLIP: *patterns = clip; return 4;
    case LISA_FAMILY_LISA: *patterns = lisa; return 1;
    default: *patterns = NULL; return 0;
    }
}

/* ---- checking ------------------------------------------------------------------------------------ */

typedef struct text {
    char *p;
    size_t n, cap;
    int64_t lines;
} text;

static void appendf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(text *t, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (t->p && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        size_t c = t->cap ? t->cap * 2 : 4096;
        while (c < t->n + (size_t)k + 1) c *= 2;
        char *np = realloc(t->p, c);
        if (!np) return; /* the report is best effort; the counts stay exact */
        t->p = np;
        t->cap = c;
    }
}

static void shape_str(char *buf, size_t cap, int32_t nd, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < nd && k < cap; d++) k += (size_t)snprintf(buf + k, cap - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static bool is_float(lisa_dtype t) { return t == LISA_DTYPE_F32 || t == LISA_DTYPE_BF16 || t == LISA_DTYPE_F16; }

lisa_status lisa_manifest_check(const lisa_manifest *m, const lisa_checkpoint *ck, lisa_manifest_report *report) {
    lisa_manifest_report r;
    memset(&r, 0, sizeof r);
    text t = {0};
    char a[128], b[128];
    const char **names = malloc((size_t)(m->n_entries ? m->n_entries : 1) * sizeof *names);
    if (!names) return lisa_fail(LISA_ERR_OOM, "manifest: out of memory");
    for (int64_t i = 0; i < m->n_entries; i++) {
        const lisa_manifest_entry *e = &m->entries[i];
        names[i] = e->name;
        const lisa_ckpt_tensor *c = lisa_checkpoint_find(ck, e->name);
        shape_str(a, sizeof a, e->n_dims, e->shape);
        if (!c) {
            if (!e->optional) {
                r.n_missing++;
                appendf(&t, "missing     %s  expected %s\n", e->name, a);
            }
            continue;
        }
        bool ok = c->n_dims == e->n_dims;
        for (int d = 0; ok && d < e->n_dims; d++) ok = c->shape[d] == e->shape[d];
        shape_str(b, sizeof b, c->n_dims, c->shape);
        if (!ok) {
            r.n_shape++;
            appendf(&t, "shape       %s  expected %s  found %s %s\n", e->name, a, b, lisa_dtype_name(c->dtype));
        } else if (!e->any_dtype && !is_float(c->dtype)) {
            r.n_dtype++;
            appendf(&t, "dtype       %s  expected a float dtype  found %s %s\n", e->name, b, lisa_dtype_name(c->dtype));
        }
    }
    if (m->n_entries > 1) qsort(names, (size_t)m->n_entries, sizeof *names, cmp_name);
    const char *const *allow;
    int32_t n_allow = lisa_manifest_allowed(m, &allow);
    for (int64_t i = 0; i < lisa_checkpoint_count(ck); i++) {
        const lisa_ckpt_tensor *c = lisa_checkpoint_at(ck, i);
        if (m->n_entries && bsearch(&c->name, names, (size_t)m->n_entries, sizeof *names, cmp_name)) continue;
        bool allowed = false;
        for (int32_t k = 0; k < n_allow && !allowed; k++) allowed = lisa_name_matches(allow[k], c->name);
        if (allowed) continue;
        r.n_unexpected++;
        shape_str(b, sizeof b, c->n_dims, c->shape);
        appendf(&t, "unexpected  %s  found %s %s\n", c->name, b, lisa_dtype_name(c->dtype));
    }
    free(names);
    r.text = t.p;
    int64_t total = r.n_missing + r.n_shape + r.n_dtype + r.n_unexpected;
    lisa_status s = LISA_OK;
    if (total) {
        /* lisa_last_error() holds ~8 kB: the summary and the first 40 problems */
        char head[6144];
        size_t k = 0, lines = 0;
        const char *p = t.p ? t.p : "";
        while (p[k] && lines < 40 && k < sizeof head - 256) {
            if (p[k] == '\n') lines++;
            k++;
        }
        memcpy(head, p, k);
        head[k] = '\0';
        s = lisa_fail(LISA_ERR_SHAPE,
                      "%s: does not match the %s manifest: %lld missing, %lld wrong shape, %lld wrong dtype, "
                      "%lld unexpected\n%s%s",
                      lisa_checkpoint_path(ck), lisa_model_family_name(m->family), (long long)r.n_missing,
                      (long long)r.n_shape, (long long)r.n_dtype, (long long)r.n_unexpected, head,
                      total > (int64_t)lines ? "...\n" : "");
    }
    if (report) *report = r;
    else free(r.text);
    return s;
}

void lisa_manifest_report_free(lisa_manifest_report *r) {
    if (!r) return;
    free(r->text);
    memset(r, 0, sizeof *r);
}
