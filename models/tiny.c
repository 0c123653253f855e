/* models/tiny.c — `lisa make-tiny`: random-weight LISA + CLIP checkpoints (see tiny.h).
 * ref: tests/golden/gen_golden.py (lisa_config_json, write_tokenizer, write_tiny_clip,
 *      lisa_state_dict, init_module_, shape_lm_head), transformers 4.31 modeling_utils.py
 *      shard_checkpoint, segment_anything/build_sam.py (_build_sam module layout). */
#include "models/tiny.h"

#include "loader/checkpoint.h"
#include "models/lisa_model.h"
#include "loader/json_write.h"
#include "core/error.h"
#include "core/half.h"
#include "core/path.h"
#include "core/tensor.h"
#include "models/tensors.h"
#include "models/tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef LISA_DEFAULT_SP_MODEL
#define LISA_DEFAULT_SP_MODEL "tests/data/tokenizer/llama-spm.model"
#endif

#define CLIP_IMAGE        224
#define CLIP_PATCH        14
#define CLIP_PROJ         16 /* projection_dim of the tiny CLIP config (unused by LISA) */
#define SAM_IMAGE         1024
#define SAM_PATCH         16
#define SAM_GRID          (SAM_IMAGE / SAM_PATCH)
#define SAM_MASK_IN_CHANS 16   /* PromptEncoder mask_in_chans (16 in every SAM) */
#define SAM_DEC_DEPTH     2    /* TwoWayTransformer depth (2 in every SAM) */
#define SAM_MASK_TOKENS   4    /* num_multimask_outputs 3 + 1 */
#define RESID_GAIN        0.35 /* o_proj / down_proj gain (gen_golden.py build_llm) */
#define TARGET_LOGIT      16.0 /* planned successor's logit at an expected state */
#define MIN_MARGIN        8.0  /* required top-1 minus top-2 at the expected states after BF16 rounding */
#define MAX_DIM           16384
#define MAX_LAYERS        256

lisa_tiny_params lisa_tiny_default_params(void) {
    lisa_tiny_params p = {
        .seed = 0,
        .llm_hidden = 32,
        .llm_layers = 2,
        .llm_heads = 4,
        .llm_kv_heads = 4,
        .llm_inter = 64,
        .llm_max_pos = 2048,
        .clip_hidden = 32,
        .clip_layers = 3,
        .clip_heads = 2,
        .clip_mlp = 64,
        .sam_embed = 16,
        .sam_depth = 4,
        .sam_heads = 2,
        .sam_window = 14,
        .sam_global = {1, 3},
        .n_sam_global = 2,
        .out_dim = 32,
        .answer = LISA_TINY_DEFAULT_ANSWER,
        .sp_model = NULL,
        .max_shard_bytes = 3000000,
        .write_clip = true,
    };
    return p;
}

/* ---- random numbers: identical on every machine ------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One stream per tensor: FNV-1a of the name mixed with the seed, so a tensor's values do not
 * depend on which other tensors exist. */
static rng rng_for(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    rng r = {h ^ (seed * 0xd1b54a32d192ed03ull)};
    rng_next(&r);
    return r;
}

/* ~N(0, 1): the sum of 12 uniform 16-bit integers (Irwin-Hall), centred and scaled; integer
 * arithmetic and one exact division, so no libm result can differ between machines. */
static double rng_normal(rng *r) {
    int64_t s = 0;
    for (int k = 0; k < 3; k++) {
        const uint64_t u = rng_next(r);
        s += (int64_t)(u & 0xffff) + (int64_t)((u >> 16) & 0xffff) + (int64_t)((u >> 32) & 0xffff) + (int64_t)(u >> 48);
    }
    return ((double)s - 393210.0) / 65536.0; /* mean 12 * 32767.5; sd sqrt(65536^2 - 1) */
}

/* ---- the tensor list ------------------------------------------------------------------------- */

/* Owns every tensor's name and values until tl_free. Values are F32 (I64 for position ids) and are
 * converted to the stored dtype when a shard is written. */
typedef struct tt {
    char *name;
    lisa_dtype dtype; /* stored dtype */
    lisa_tensor t;    /* owner; F32 or I64 (synthetic: shape only, no data) */
    double mean, std; /* the distribution it was drawn from (recorded for synthetic checkpoints) */
} tt;

typedef struct tlist {
    tt *v;
    int32_t n, cap;
    uint64_t seed;
    bool synthetic; /* shapes and distributions only: nothing is drawn (lisa_tiny_params.synthetic) */
    lisa_status st;
} tlist;

static void tl_free(tlist *L) {
    for (int32_t i = 0; i < L->n; i++) {
        free(L->v[i].name);
        lisa_tensor_free(&L->v[i].t);
    }
    free(L->v);
    memset(L, 0, sizeof *L);
}

static tt *tl_new(tlist *L, const char *name, lisa_dtype dtype, int nd, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3) {
    if (L->st != LISA_OK) return NULL;
    if (L->n == L->cap) {
        const int32_t cap = L->cap ? 2 * L->cap : 256;
        tt *nv = realloc(L->v, (size_t)cap * sizeof *nv);
        if (!nv) {
            L->st = lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
            return NULL;
        }
        L->v = nv;
        L->cap = cap;
    }
    tt *e = &L->v[L->n];
    memset(e, 0, sizeof *e);
    const int64_t shape[4] = {d0, d1, d2, d3};
    e->dtype = dtype;
    const lisa_dtype held = dtype == LISA_DTYPE_I64 ? LISA_DTYPE_I64 : LISA_DTYPE_F32;
    if (L->synthetic) e->t = lisa_tensor_view(NULL, held, nd, shape); /* shape only */
    if (!(e->name = strdup(name)) || (!L->synthetic && lisa_tensor_alloc(&e->t, held, nd, shape) != LISA_OK)) {
        free(e->name);
        L->st = lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory for %s", name);
        return NULL;
    }
    L->n++;
    return e;
}

static tt *tl_find(tlist *L, const char *name) {
    for (int32_t i = 0; i < L->n; i++)
        if (!strcmp(L->v[i].name, name)) return &L->v[i];
    return NULL;
}

static void fill_normal(tlist *L, tt *e, double mean, double std) {
    if (!e) return;
    e->mean = mean;
    e->std = std;
    if (!e->t.data) return; /* synthetic: drawn at load (models/weights.h) */
    rng r = rng_for(L->seed, e->name);
    float *x = e->t.data;
    const int64_t n = lisa_tensor_numel(&e->t);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * rng_normal(&r));
}

/* ---- the tensors: the networks' tables (models/tensors.h), in state_dict order ---------------- */

typedef struct tiny_gen {
    tlist *L;
    double resid_gain; /* o_proj / down_proj (LISA_INIT_RESID) */
} tiny_gen;

/* The tensor-table visitor: one tensor per row, drawn as the row's init says (gen_golden.py's
 * init_module_ scales, see tiny.h). */
static lisa_status gen_row(void *ctx, const lisa_tensor_spec *sp) {
    tiny_gen *g = ctx;
    tlist *L = g->L;
    const int64_t *d = sp->shape;
    tt *e = tl_new(L, sp->name, sp->dtype, sp->n_dims, d[0], d[1], d[2], d[3]);
    if (!e) return L->st;
    switch (sp->init) {
    case LISA_INIT_NORMAL: fill_normal(L, e, 0.0, sp->init_arg); break;
    case LISA_INIT_LINEAR: fill_normal(L, e, 0.0, sp->init_arg / sqrt((double)d[1])); break;
    case LISA_INIT_RESID: fill_normal(L, e, 0.0, g->resid_gain / sqrt((double)d[1])); break;
    case LISA_INIT_BIAS: fill_normal(L, e, 0.0, 0.05); break;
    case LISA_INIT_NORM: fill_normal(L, e, 1.0, 0.1); break;
    /* a Conv2d's fan is in·kh·kw; a k2 s2 ConvTranspose2d takes one tap per input channel, as
     * gen_golden.py scales it */
    case LISA_INIT_CONV: fill_normal(L, e, 0.0, 1.0 / sqrt((double)(d[1] * d[2] * d[3]))); break;
    case LISA_INIT_CONVT: fill_normal(L, e, 0.0, 1.0 / sqrt((double)d[0])); break;
    case LISA_INIT_ROTARY: /* 1 / 10000^(2j/hd) in f32 as torch builds it (the engine recomputes it) */
        for (int64_t j = 0; e->t.data && j < d[0]; j++) {
            const float x = (float)(2 * j) / (float)(2 * d[0]);
            ((float *)e->t.data)[j] = 1.0f / (float)pow(10000.0, (double)x);
        }
        break;
    case LISA_INIT_ARANGE:
        for (int64_t i = 0, n = lisa_tensor_numel(&e->t); e->t.data && i < n; i++) ((int64_t *)e->t.data)[i] = i;
        break;
    }
    return L->st;
}

/* The tables' dims for make-tiny's parameters: SAM image 1024, patch 16, encoder MLP 4·embed,
 * decoder dim = out_dim with MLP 2·out_dim, cross attentions at out_dim/2 and an IoU head of
 * out_dim (SAM: 2048 and 256 at out_dim 256; any width works, the engine reads them off shapes). */
static lisa_sam_dims tiny_sam_dims(const lisa_tiny_params *p) {
    lisa_sam_dims d;
    memset(&d, 0, sizeof d);
    d.img = SAM_IMAGE;
    d.patch = SAM_PATCH;
    d.grid = SAM_GRID;
    d.embed = p->sam_embed;
    d.depth = p->sam_depth;
    d.head_dim = p->sam_embed / p->sam_heads;
    d.mlp = 4 * (int64_t)p->sam_embed;
    d.out_chans = p->out_dim;
    d.window = p->sam_window;
    for (int32_t k = 0; k < p->n_sam_global; k++)
        d.global_mask[p->sam_global[k] / 64] |= 1ull << (p->sam_global[k] % 64);
    d.dec_dim = p->out_dim;
    d.dec_depth = SAM_DEC_DEPTH;
    d.dec_mlp = 2 * (int64_t)p->out_dim;
    d.dec_downsample = 2;
    d.n_mask_tokens = SAM_MASK_TOKENS;
    d.iou_hidden = p->out_dim;
    d.mask_in_chans = SAM_MASK_IN_CHANS;
    return d;
}

/* segment_anything's Sam minus pixel_mean/std (not persistent); `pre` = "" or "model.visual_model." */
static void gen_sam(tlist *L, const lisa_tiny_params *p, const char *pre) {
    const lisa_sam_dims d = tiny_sam_dims(p);
    tiny_gen g = {.L = L, .resid_gain = RESID_GAIN};
    (void)lisa_sam_tensors(&d, pre, NULL, gen_row, &g);
}

/* LISAForCausalLM.state_dict(): model.* (LLaMA, mm_projector, visual_model, text_hidden_fcs), lm_head */
static void gen_lisa(tlist *L, const lisa_tiny_params *p, int32_t vocab) {
    const lisa_llm_dims llm = {.hidden = p->llm_hidden, .intermediate = p->llm_inter, .n_layers = p->llm_layers,
                               .n_heads = p->llm_heads, .n_kv_heads = p->llm_kv_heads,
                               .head_dim = p->llm_hidden / p->llm_heads, .vocab = vocab,
                               .mm_hidden = p->clip_hidden, .out_dim = p->out_dim, .projector_layers = 1};
    const lisa_sam_dims sam = tiny_sam_dims(p);
    /* synthetic models keep the residual stream's layer contributions at the 2-layer level at any
     * depth (tiny.h); drawn models keep gen_golden.py's gain */
    tiny_gen g = {.L = L, .resid_gain = L->synthetic ? RESID_GAIN * sqrt(2.0 / p->llm_layers) : RESID_GAIN};
    (void)lisa_lisa_tensors(&llm, &sam, gen_row, &g);
}

/* CLIPVisionModel's tensors as CLIPModel.state_dict() names them (vision_model.*) */
static void gen_clip(tlist *L, const lisa_tiny_params *p) {
    const lisa_clip_dims d = {.hidden = p->clip_hidden, .intermediate = p->clip_mlp, .n_layers = p->clip_layers,
                              .image = CLIP_IMAGE, .patch = CLIP_PATCH};
    tiny_gen g = {.L = L, .resid_gain = RESID_GAIN};
    (void)lisa_clip_tensors(&d, NULL, gen_row, &g);
}

/* Rounds every BF16-stored tensor's values to BF16 (what the engine will read back). */
static void round_bf16(tlist *L) {
    for (int32_t i = 0; i < L->n; i++) {
        if (L->v[i].dtype != LISA_DTYPE_BF16) continue;
        float *x = L->v[i].t.data;
        for (int64_t j = 0, n = lisa_tensor_numel(&L->v[i].t); j < n; j++)
            x[j] = lisa_bf16_to_f32(lisa_f32_to_bf16(x[j]));
    }
}

/* ---- answer shaping ---------------------------------------------------------------------------- */

/* Solves G X = B in place for X (G [n, n] SPD-ish, B [n, m]) by Gaussian elimination with partial
 * pivoting. Returns false when G is singular. */
static bool solve(double *G, double *B, int n, int m) {
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(G[r * n + c]) > fabs(G[piv * n + c])) piv = r;
        if (fabs(G[piv * n + c]) < 1e-9) return false;
        if (piv != c) {
            for (int k = 0; k < n; k++) {
                double t = G[c * n + k];
                G[c * n + k] = G[piv * n + k];
                G[piv * n + k] = t;
            }
            for (int k = 0; k < m; k++) {
                double t = B[c * m + k];
                B[c * m + k] = B[piv * m + k];
                B[piv * m + k] = t;
            }
        }
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            const double f = G[r * n + c] / G[c * n + c];
            if (f == 0.0) continue;
            for (int k = 0; k < n; k++)
                G[r * n + k] -= f * G[c * n + k];
            for (int k = 0; k < m; k++)
                B[r * m + k] -= f * B[c * m + k];
        }
    }
    for (int r = 0; r < n; r++)
        for (int k = 0; k < m; k++)
            B[r * m + k] /= G[r * n + r];
    return true;
}

static void piece_name(char *buf, size_t cap, const lisa_tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *s = lisa_tokenizer_id_to_piece(tok, id, &len);
    snprintf(buf, cap, "'%.*s' (%d)", s ? (int)(len < 40 ? len : 40) : 0, s ? s : "", id);
}

/* See the file comment of tiny.h. L holds BF16-rounded values; lm_head rows are changed. */
static lisa_status shape_answer(tlist *L, const lisa_tiny_params *p, const lisa_tokenizer *tok, lisa_tiny_report *rep) {
    const int32_t C = p->llm_hidden;
    const int32_t eos = lisa_tokenizer_eos_id(tok);
    /* the prompt's last token: chat.py's llava_v1 prompt always ends in "ASSISTANT:" */
    char prompt[1024];
    int32_t pids[512], n_p = 0;
    LISA_TRY(lisa_prompt_llava_v1(prompt, sizeof prompt, "x", true, NULL));
    LISA_TRY(lisa_tokenizer_encode_image_prompt(tok, prompt, strlen(prompt), pids, 512, &n_p));
    /* plan: ":" -> answer ids -> </s> */
    int32_t plan[LISA_TINY_MAX_ANSWER + 2], n_a = 0;
    lisa_status s =
        lisa_tokenizer_encode(tok, p->answer, strlen(p->answer), false, plan + 1, LISA_TINY_MAX_ANSWER, &n_a);
    if (s == LISA_ERR_LIMIT)
        return lisa_fail(LISA_ERR_LIMIT, "make-tiny: answer of %d tokens; at most %d can be planned", n_a,
                         LISA_TINY_MAX_ANSWER);
    LISA_TRY(s);
    if (n_a == 0) return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: answer \"%s\" encodes to no tokens", p->answer);
    for (int32_t i = 1; i <= n_a; i++)
        if (plan[i] == eos) return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: the answer must not contain </s>");
    plan[0] = pids[n_p - 1];
    plan[n_a + 1] = eos;
    const int32_t n_plan = n_a + 2; /* decisions: plan[j] -> plan[j+1], j < n_plan - 1 */
    /* distinct decisions; one successor per token */
    int32_t cur[LISA_TINY_MAX_ANSWER + 1], nxt[LISA_TINY_MAX_ANSWER + 1], P = 0;
    for (int32_t j = 0; j + 1 < n_plan; j++) {
        int32_t k = 0;
        while (k < P && cur[k] != plan[j])
            k++;
        if (k < P) {
            if (nxt[k] != plan[j + 1]) {
                char a[64], b[64], c[64], a0[64];
                piece_name(a0, sizeof a0, tok, plan[0]);
                piece_name(a, sizeof a, tok, plan[j]);
                piece_name(b, sizeof b, tok, nxt[k]);
                piece_name(c, sizeof c, tok, plan[j + 1]);
                return lisa_fail(LISA_ERR_INVALID_ARG,
                                 "make-tiny: cannot shape the answer \"%s\": token %s is followed by both %s and %s; "
                                 "the shaping keys on the current token only, so each token (the prompt's last, %s, "
                                 "included) may appear once",
                                 p->answer, a, b, c, a0);
            }
            continue;
        }
        cur[P] = plan[j];
        nxt[P] = plan[j + 1];
        P++;
    }
    if (P > C)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "make-tiny: the answer needs %d independent decisions but llm_hidden is %d; use a shorter "
                         "answer or a wider model",
                         P, C);
    int32_t rows[LISA_TINY_MAX_ANSWER + 1], R = 0;
    for (int32_t k = 0; k < P; k++) {
        int32_t r = 0;
        while (r < R && rows[r] != nxt[k])
            r++;
        if (r == R) rows[R++] = nxt[k];
    }
    tt *emb = tl_find(L, "model.embed_tokens.weight"), *gw = tl_find(L, "model.norm.weight"),
       *head = tl_find(L, "lm_head.weight");
    LISA_ASSERT(emb && gw && head);
    const float *E = emb->t.data, *g = gw->t.data;
    float *W = head->t.data;
    const int64_t V = head->t.shape[0];
    /* expected final-normed states e_k = g * x / sqrt(mean(x^2) + eps), x = emb[cur_k] */
    double *S = calloc((size_t)P * C, sizeof *S), *G = calloc((size_t)P * P, sizeof *G),
           *B = calloc((size_t)P * R, sizeof *B);
    if (!S || !G || !B) {
        free(S), free(G), free(B);
        return lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
    }
    for (int32_t k = 0; k < P; k++) {
        const float *x = E + (size_t)cur[k] * C;
        double ms = 0;
        for (int32_t c = 0; c < C; c++)
            ms += (double)x[c] * x[c];
        const double inv = 1.0 / sqrt(ms / C + 1e-6);
        for (int32_t c = 0; c < C; c++)
            S[(size_t)k * C + c] = (double)g[c] * (x[c] * inv);
    }
    float margin = 0;
    s = LISA_OK;
    for (int iter = 0; iter < 4 && s == LISA_OK; iter++) {
        /* dW_R = (Y - W_R S^T) (S S^T)^-1 S : the minimum-norm change hitting the targets exactly */
        for (int32_t a = 0; a < P; a++)
            for (int32_t b = 0; b < P; b++) {
                double d = 0;
                for (int32_t c = 0; c < C; c++)
                    d += S[(size_t)a * C + c] * S[(size_t)b * C + c];
                G[a * P + b] = d;
            }
        for (int32_t k = 0; k < P; k++)
            for (int32_t r = 0; r < R; r++) {
                double d = 0;
                for (int32_t c = 0; c < C; c++)
                    d += (double)W[(size_t)rows[r] * C + c] * S[(size_t)k * C + c];
                B[k * R + r] = (nxt[k] == rows[r] ? TARGET_LOGIT : 0.0) - d;
            }
        if (!solve(G, B, P, R)) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: the answer's token embeddings are linearly dependent");
            break;
        }
        for (int32_t r = 0; r < R; r++)
            for (int32_t c = 0; c < C; c++) {
                double d = 0;
                for (int32_t k = 0; k < P; k++)
                    d += B[k * R + r] * S[(size_t)k * C + c];
                float *w = &W[(size_t)rows[r] * C + c];
                *w = lisa_bf16_to_f32(lisa_f32_to_bf16((float)(*w + d)));
            }
        /* margins over the whole vocabulary at each expected state */
        margin = INFINITY;
        for (int32_t k = 0; k < P; k++) {
            double best = -INFINITY, second = -INFINITY;
            int64_t arg = -1;
            for (int64_t v = 0; v < V; v++) {
                double d = 0;
                for (int32_t c = 0; c < C; c++)
                    d += (double)W[(size_t)v * C + c] * S[(size_t)k * C + c];
                if (d > best) {
                    second = best;
                    best = d;
                    arg = v;
                } else if (d > second) {
                    second = d;
                }
            }
            const float m = arg == nxt[k] ? (float)(best - second) : -(float)(best - second);
            if (m < margin) margin = m;
        }
        if (margin >= MIN_MARGIN) break;
    }
    free(S), free(G), free(B);
    LISA_TRY(s);
    if (margin < MIN_MARGIN)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "make-tiny: cannot shape the answer \"%s\": margin %.2f < %.1f at the expected states",
                         p->answer, margin, MIN_MARGIN);
    rep->n_answer = n_a + 1;
    memcpy(rep->answer_ids, plan + 1, (size_t)(n_a + 1) * sizeof(int32_t));
    rep->min_margin = margin;
    return LISA_OK;
}

/* ---- JSON files ----------------------------------------------------------------------------- */

#define J_INT(o, k, v)  cJSON_AddItemToObject(o, k, cJSON_CreateNumber((double)(v)))
#define J_FLT(o, k, v)  cJSON_AddItemToObject(o, k, lisa_json_float(v))
#define J_STR(o, k, v)  cJSON_AddItemToObject(o, k, cJSON_CreateString(v))
#define J_BOOL(o, k, v) cJSON_AddItemToObject(o, k, cJSON_CreateBool(v))
#define J_NULL(o, k)    cJSON_AddItemToObject(o, k, cJSON_CreateNull())

static lisa_status write_json(const char *dir, const char *name, cJSON *root) {
    char path[4096];
    lisa_status s;
    if (!root)
        s = lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
    else if (!lisa_path_join(path, sizeof path, dir, name))
        s = lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: path too long: %.200s", dir);
    else
        s = lisa_json_write_file(path, root);
    cJSON_Delete(root);
    return s;
}

/* LISA-7B-v1's config.json (LlavaConfig saved by transformers 4.31), tiny dims */
static cJSON *lisa_config(const lisa_tiny_params *p, int32_t vocab) {
    cJSON *o = cJSON_CreateObject();
    J_STR(o, "_name_or_path", "LLaVA-Lightning-7B-v1-1");
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("LISAForCausalLM"));
    cJSON_AddItemToObject(o, "architectures", arch);
    J_INT(o, "bos_token_id", 1);
    J_INT(o, "eos_token_id", 2);
    J_INT(o, "pad_token_id", 0);
    J_BOOL(o, "freeze_mm_mlp_adapter", true);
    J_STR(o, "hidden_act", "silu");
    J_INT(o, "hidden_size", p->llm_hidden);
    J_STR(o, "image_aspect_ratio", "square");
    J_NULL(o, "image_grid_pinpoints");
    J_FLT(o, "initializer_range", 0.02);
    J_INT(o, "intermediate_size", p->llm_inter);
    J_INT(o, "max_position_embeddings", p->llm_max_pos);
    J_INT(o, "max_sequence_length", p->llm_max_pos);
    J_INT(o, "mm_hidden_size", p->clip_hidden);
    J_BOOL(o, "mm_use_im_patch_token", false);
    J_BOOL(o, "mm_use_im_start_end", true);
    J_STR(o, "mm_vision_select_feature", "patch");
    J_INT(o, "mm_vision_select_layer", -2);
    J_STR(o, "mm_vision_tower", "openai/clip-vit-large-patch14");
    J_STR(o, "model_type", "llava");
    J_INT(o, "num_attention_heads", p->llm_heads);
    J_INT(o, "num_hidden_layers", p->llm_layers);
    J_INT(o, "num_key_value_heads", p->llm_kv_heads);
    J_INT(o, "out_dim", p->out_dim);
    J_NULL(o, "pretrain_mm_mlp_adapter");
    J_INT(o, "pretraining_tp", 1);
    J_FLT(o, "rms_norm_eps", 1e-6);
    J_NULL(o, "rope_scaling");
    J_BOOL(o, "sep_image_conv_front", false);
    J_BOOL(o, "tie_word_embeddings", false);
    J_STR(o, "torch_dtype", "bfloat16");
    J_BOOL(o, "train_mask_decoder", true);
    J_STR(o, "transformers_version", "4.31.0");
    J_BOOL(o, "tune_mm_mlp_adapter", false);
    J_BOOL(o, "use_cache", false);
    J_BOOL(o, "use_mm_proj", true);
    J_STR(o, "vision_tower", "openai/clip-vit-large-patch14");
    J_INT(o, "vocab_size", vocab);
    return o;
}

static cJSON *generation_config(void) {
    cJSON *o = cJSON_CreateObject();
    J_BOOL(o, "_from_model_config", true);
    J_INT(o, "bos_token_id", 1);
    J_INT(o, "eos_token_id", 2);
    J_INT(o, "pad_token_id", 0);
    J_STR(o, "transformers_version", "4.31.0");
    return o;
}

static cJSON *added_tokens(int32_t n_pieces) {
    cJSON *o = cJSON_CreateObject();
    J_INT(o, "<im_patch>", n_pieces);
    J_INT(o, "<im_start>", n_pieces + 1);
    J_INT(o, "<im_end>", n_pieces + 2);
    J_INT(o, "[SEG]", n_pieces + 3);
    return o;
}

/* an AddedToken as save_pretrained writes it (typed = tokenizer_config.json's "__type" form) */
static cJSON *added_token(const char *content, bool typed) {
    cJSON *o = cJSON_CreateObject();
    if (typed) J_STR(o, "__type", "AddedToken");
    J_STR(o, "content", content);
    J_BOOL(o, "lstrip", false);
    J_BOOL(o, "normalized", true);
    J_BOOL(o, "rstrip", false);
    J_BOOL(o, "single_word", false);
    return o;
}

static cJSON *special_tokens_map(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "bos_token", added_token("<s>", false));
    cJSON_AddItemToObject(o, "eos_token", added_token("</s>", false));
    J_STR(o, "pad_token", "<unk>");
    cJSON_AddItemToObject(o, "unk_token", added_token("<unk>", false));
    return o;
}

static cJSON *tokenizer_config(void) {
    cJSON *o = cJSON_CreateObject();
    J_BOOL(o, "add_bos_token", true);
    J_BOOL(o, "add_eos_token", false);
    cJSON_AddItemToObject(o, "bos_token", added_token("<s>", true));
    J_BOOL(o, "clean_up_tokenization_spaces", false);
    cJSON_AddItemToObject(o, "eos_token", added_token("</s>", true));
    J_BOOL(o, "legacy", true);
    J_INT(o, "model_max_length", 512);
    J_NULL(o, "pad_token");
    J_STR(o, "padding_side", "right");
    cJSON_AddItemToObject(o, "sp_model_kwargs", cJSON_CreateObject());
    J_STR(o, "tokenizer_class", "LlamaTokenizer");
    cJSON_AddItemToObject(o, "unk_token", added_token("<unk>", true));
    return o;
}

/* The PretrainedConfig fields transformers 4.16 wrote into both CLIP sub-configs. */
static void clip_sub_common(cJSON *o) {
    J_STR(o, "_name_or_path", "");
    J_BOOL(o, "add_cross_attention", false);
    J_NULL(o, "architectures");
    J_FLT(o, "attention_dropout", 0.0);
    J_NULL(o, "bad_words_ids");
    J_NULL(o, "begin_suppress_tokens");
    J_INT(o, "chunk_size_feed_forward", 0);
    J_NULL(o, "cross_attention_hidden_size");
    J_NULL(o, "decoder_start_token_id");
    J_FLT(o, "diversity_penalty", 0.0);
    J_BOOL(o, "do_sample", false);
    J_BOOL(o, "early_stopping", false);
    J_INT(o, "encoder_no_repeat_ngram_size", 0);
    J_NULL(o, "exponential_decay_length_penalty");
    J_NULL(o, "finetuning_task");
    J_NULL(o, "forced_bos_token_id");
    J_NULL(o, "forced_eos_token_id");
    J_STR(o, "hidden_act", "quick_gelu");
    cJSON *id2label = cJSON_CreateObject(), *label2id = cJSON_CreateObject();
    J_STR(id2label, "0", "LABEL_0");
    J_STR(id2label, "1", "LABEL_1");
    J_INT(label2id, "LABEL_0", 0);
    J_INT(label2id, "LABEL_1", 1);
    cJSON_AddItemToObject(o, "id2label", id2label);
    cJSON_AddItemToObject(o, "label2id", label2id);
    J_FLT(o, "initializer_factor", 1.0);
    J_FLT(o, "initializer_range", 0.02);
    J_BOOL(o, "is_decoder", false);
    J_BOOL(o, "is_encoder_decoder", false);
    J_FLT(o, "layer_norm_eps", 1e-5);
    J_FLT(o, "length_penalty", 1.0);
    J_INT(o, "max_length", 20);
    J_INT(o, "min_length", 0);
    J_INT(o, "no_repeat_ngram_size", 0);
    J_INT(o, "num_beam_groups", 1);
    J_INT(o, "num_beams", 1);
    J_INT(o, "num_return_sequences", 1);
    J_BOOL(o, "output_attentions", false);
    J_BOOL(o, "output_hidden_states", false);
    J_BOOL(o, "output_scores", false);
    J_NULL(o, "prefix");
    J_NULL(o, "problem_type");
    J_INT(o, "projection_dim", CLIP_PROJ);
    cJSON_AddItemToObject(o, "pruned_heads", cJSON_CreateObject());
    J_BOOL(o, "remove_invalid_values", false);
    J_FLT(o, "repetition_penalty", 1.0);
    J_BOOL(o, "return_dict", true);
    J_BOOL(o, "return_dict_in_generate", false);
    J_NULL(o, "sep_token_id");
    J_NULL(o, "suppress_tokens");
    J_NULL(o, "task_specific_params");
    J_FLT(o, "temperature", 1.0);
    J_BOOL(o, "tf_legacy_loss", false);
    J_BOOL(o, "tie_encoder_decoder", false);
    J_BOOL(o, "tie_word_embeddings", true);
    J_NULL(o, "tokenizer_class");
    J_INT(o, "top_k", 50);
    J_FLT(o, "top_p", 1.0);
    J_NULL(o, "torch_dtype");
    J_BOOL(o, "torchscript", false);
    J_STR(o, "transformers_version", "4.16.0.dev0");
    J_FLT(o, "typical_p", 1.0);
    J_BOOL(o, "use_bfloat16", false);
}

/* openai/clip-vit-large-patch14 config.json: the real file's top-level keys, full sub-configs and
 * the *_config_dict overrides; the text model stays at fixed tiny dims (LISA never uses it) */
static cJSON *clip_config(const lisa_tiny_params *p) {
    enum { TH = 16, TI = 32, TA = 2, TL = 1, TV = 64 };
    cJSON *o = cJSON_CreateObject(), *t = cJSON_CreateObject(), *v = cJSON_CreateObject();
    J_STR(o, "_name_or_path", "clip-vit-large-patch14/");
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("CLIPModel"));
    cJSON_AddItemToObject(o, "architectures", arch);
    J_FLT(o, "initializer_factor", 1.0);
    J_FLT(o, "logit_scale_init_value", 2.6592);
    J_STR(o, "model_type", "clip");
    J_INT(o, "projection_dim", CLIP_PROJ);
    J_STR(o, "torch_dtype", "float32");
    J_NULL(o, "transformers_version");

    clip_sub_common(t);
    J_INT(t, "bos_token_id", 0);
    J_INT(t, "eos_token_id", 2);
    J_INT(t, "pad_token_id", 1);
    J_INT(t, "hidden_size", TH);
    J_INT(t, "intermediate_size", TI);
    J_INT(t, "max_position_embeddings", 77);
    J_STR(t, "model_type", "clip_text_model");
    J_INT(t, "num_attention_heads", TA);
    J_INT(t, "num_hidden_layers", TL);
    J_INT(t, "vocab_size", TV);
    cJSON_AddItemToObject(o, "text_config", t);
    cJSON *td = cJSON_CreateObject();
    J_INT(td, "hidden_size", TH);
    J_INT(td, "intermediate_size", TI);
    J_INT(td, "num_attention_heads", TA);
    J_INT(td, "num_hidden_layers", TL);
    J_INT(td, "projection_dim", CLIP_PROJ);
    J_INT(td, "vocab_size", TV);
    cJSON_AddItemToObject(o, "text_config_dict", td);

    clip_sub_common(v);
    J_NULL(v, "bos_token_id");
    J_NULL(v, "eos_token_id");
    J_NULL(v, "pad_token_id");
    J_INT(v, "hidden_size", p->clip_hidden);
    J_INT(v, "image_size", CLIP_IMAGE);
    J_INT(v, "intermediate_size", p->clip_mlp);
    J_STR(v, "model_type", "clip_vision_model");
    J_INT(v, "num_attention_heads", p->clip_heads);
    J_INT(v, "num_channels", 3);
    J_INT(v, "num_hidden_layers", p->clip_layers);
    J_INT(v, "patch_size", CLIP_PATCH);
    cJSON_AddItemToObject(o, "vision_config", v);
    cJSON *vd = cJSON_CreateObject();
    J_INT(vd, "hidden_size", p->clip_hidden);
    J_INT(vd, "intermediate_size", p->clip_mlp);
    J_INT(vd, "num_attention_heads", p->clip_heads);
    J_INT(vd, "num_hidden_layers", p->clip_layers);
    J_INT(vd, "patch_size", CLIP_PATCH);
    J_INT(vd, "projection_dim", CLIP_PROJ);
    cJSON_AddItemToObject(o, "vision_config_dict", vd);
    return o;
}

/* the real openai/clip-vit-large-patch14 preprocessor_config.json */
static cJSON *clip_preprocessor_config(void) {
    cJSON *o = cJSON_CreateObject(), *mean = cJSON_CreateArray(), *std = cJSON_CreateArray();
    const double m[3] = {0.48145466, 0.4578275, 0.40821073}, s[3] = {0.26862954, 0.26130258, 0.27577711};
    for (int i = 0; i < 3; i++) {
        cJSON_AddItemToArray(mean, lisa_json_float(m[i]));
        cJSON_AddItemToArray(std, lisa_json_float(s[i]));
    }
    J_INT(o, "crop_size", CLIP_IMAGE);
    J_BOOL(o, "do_center_crop", true);
    J_BOOL(o, "do_normalize", true);
    J_BOOL(o, "do_resize", true);
    J_STR(o, "feature_extractor_type", "CLIPFeatureExtractor");
    cJSON_AddItemToObject(o, "image_mean", mean);
    cJSON_AddItemToObject(o, "image_std", std);
    J_INT(o, "resample", 3);
    J_INT(o, "size", CLIP_IMAGE);
    return o;
}

/* ---- safetensors shards --------------------------------------------------------------------- */

/* The tensors [a, b) of L as write items in their stored dtypes (BF16 tensors are built in F32
 * and rounded here); *conv holds the converted copies (free with free_items). */
static lisa_status stored_items(tlist *L, int32_t a, int32_t b, lisa_st_write_item **items_out, lisa_tensor **conv_out) {
    const int32_t n = b - a;
    lisa_st_write_item *items = calloc((size_t)(n ? n : 1), sizeof *items);
    lisa_tensor *conv = calloc((size_t)(n ? n : 1), sizeof *conv);
    lisa_status s = items && conv ? LISA_OK : lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
    for (int32_t i = 0; i < n && s == LISA_OK; i++) {
        tt *e = &L->v[a + i];
        items[i].name = e->name;
        items[i].tensor = e->t;
        if (e->dtype != LISA_DTYPE_BF16) continue;
        s = lisa_tensor_alloc(&conv[i], LISA_DTYPE_BF16, e->t.n_dims, e->t.shape);
        if (s != LISA_OK) break;
        const float *x = e->t.data;
        uint16_t *y = conv[i].data;
        for (int64_t j = 0, m = lisa_tensor_numel(&e->t); j < m; j++) y[j] = lisa_f32_to_bf16(x[j]);
        items[i].tensor = conv[i];
    }
    *items_out = items;
    *conv_out = conv;
    return s;
}

static void free_items(lisa_st_write_item *items, lisa_tensor *conv, int32_t n) {
    for (int32_t i = 0; conv && i < n; i++) lisa_tensor_free(&conv[i]);
    free(conv);
    free(items);
}

static size_t stored_bytes(const tt *e) { return (size_t)lisa_tensor_numel(&e->t) * lisa_dtype_size(e->dtype); }

/* Writes L->v[a, b) as one safetensors file (metadata {"format": "pt"}). */
static lisa_status write_shard(const char *path, tlist *L, int32_t a, int32_t b) {
    lisa_st_write_item *items = NULL;
    lisa_tensor *conv = NULL;
    lisa_status s = stored_items(L, a, b, &items, &conv);
    const char *meta[2] = {"format", "pt"};
    if (s == LISA_OK) s = lisa_safetensors_write(path, items, b - a, meta, 1);
    free_items(items, conv, b - a);
    return s;
}

/* The checkpoint's weights in state_dict order: one file, or transformers' shards + index
 * (lisa_checkpoint_write_dir), as safetensors or as torch.save .bin files. */
static lisa_status write_sharded(const char *dir, tlist *L, int64_t max_bytes, lisa_ckpt_format format,
                                 lisa_tiny_report *rep) {
    lisa_st_write_item *items = NULL;
    lisa_tensor *conv = NULL;
    lisa_status s = stored_items(L, 0, L->n, &items, &conv);
    const lisa_ckpt_write_params wp = {.format = format, .shard_size = (uint64_t)max_bytes, .cast = LISA_DTYPE_COUNT};
    if (s == LISA_OK) s = lisa_checkpoint_write_dir(dir, items, L->n, &wp);
    free_items(items, conv, L->n);
    if (s != LISA_OK) return s;
    int64_t total = 0, cur = 0;
    int32_t n_shards = 0;
    for (int32_t i = 0; i < L->n; i++) { /* the same split lisa_checkpoint_write_dir made */
        const int64_t sz = (int64_t)stored_bytes(&L->v[i]);
        if (n_shards == 0 || (max_bytes > 0 && cur > 0 && cur + sz > max_bytes)) {
            n_shards++;
            cur = 0;
        }
        cur += sz;
        total += sz;
    }
    if (rep) {
        rep->n_tensors = L->n;
        rep->total_bytes = total;
        rep->n_shards = n_shards;
    }
    return LISA_OK;
}

/* Synthetic checkpoints (lisa_tiny_params.synthetic): one safetensors file whose header names every
 * tensor (dtype, shape, offsets; data ordered as write_shard orders it) with the metadata
 * {"format": "pt", "lisa_synthetic": "<seed>", "lisa_synthetic_init": "{name: [mean, std], ...}"}
 * and whose data region is a hole (ftruncate): nothing is drawn or written, so a LISA-7B-sized
 * checkpoint takes no time and no disk. The loader draws the weights (models/weights.h). */
static int cmp_tt(const void *a, const void *b) {
    const tt *x = *(const tt *const *)a, *y = *(const tt *const *)b;
    const size_t sx = lisa_dtype_size(x->dtype), sy = lisa_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static lisa_status write_synthetic(const char *path, tlist *L, uint64_t seed, lisa_tiny_report *rep) {
    tt **order = malloc((size_t)(L->n ? L->n : 1) * sizeof *order);
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *init = cJSON_CreateObject();
    char *init_s = NULL, *header = NULL;
    lisa_status s = order && root && meta && init ? LISA_OK : lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
    uint64_t off = 0;
    if (s == LISA_OK) {
        for (int32_t i = 0; i < L->n; i++) order[i] = &L->v[i];
        qsort(order, (size_t)L->n, sizeof *order, cmp_tt);
        for (int32_t i = 0; i < L->n; i++) {
            const tt *e = order[i];
            const uint64_t bytes = stored_bytes(e);
            cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray(),
                  *ms = cJSON_CreateArray();
            for (int32_t d = 0; d < e->t.n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->t.shape[d]));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
            J_STR(o, "dtype", lisa_dtype_name(e->dtype));
            cJSON_AddItemToObject(o, "shape", shape);
            cJSON_AddItemToObject(o, "data_offsets", offs);
            cJSON_AddItemToObject(root, e->name, o);
            cJSON_AddItemToArray(ms, cJSON_CreateNumber(e->mean));
            cJSON_AddItemToArray(ms, cJSON_CreateNumber(e->std));
            cJSON_AddItemToObject(init, e->name, ms);
            off += bytes;
        }
        char seed_s[32];
        snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
        init_s = cJSON_PrintUnformatted(init);
        J_STR(meta, "format", "pt");
        J_STR(meta, "lisa_synthetic", seed_s);
        J_STR(meta, "lisa_synthetic_init", init_s ? init_s : "");
        cJSON_AddItemToObject(root, "__metadata__", meta);
        meta = NULL;
        header = cJSON_PrintUnformatted(root);
        if (!init_s || !header) s = lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
    }
    if (s == LISA_OK) {
        const size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
        uint8_t len8[8];
        for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)padded >> (8 * k));
        FILE *f = fopen(path, "wb");
        bool ok = f && fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
        for (size_t k = hlen; ok && k < padded; k++) ok = fputc(' ', f) != EOF;
        ok = ok && fflush(f) == 0 && ftruncate(fileno(f), (off_t)(8 + padded + off)) == 0;
        if (f && fclose(f) != 0) ok = false;
        if (!ok) s = lisa_fail(LISA_ERR_IO, "make-tiny: writing %s: %s", path, strerror(errno));
    }
    if (rep) {
        rep->n_tensors += L->n;
        rep->total_bytes += (int64_t)off;
        rep->n_shards = 1;
    }
    free(header);
    free(init_s);
    cJSON_Delete(meta);
    cJSON_Delete(init);
    cJSON_Delete(root);
    free(order);
    return s;
}

/* ---- directory handling ----------------------------------------------------------------------- */

static lisa_status copy_file(const char *dst, const char *src) {
    FILE *f = fopen(src, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "make-tiny: tokenizer model %s: cannot open: %s", src, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    lisa_status s = buf ? LISA_OK : lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
    while (s == LISA_OK) {
        if (n == cap) {
            if (cap >= (64u << 20)) {
                s = lisa_fail(LISA_ERR_LIMIT, "make-tiny: %s is larger than 64 MiB", src);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                s = lisa_fail(LISA_ERR_OOM, "make-tiny: out of memory");
                break;
            }
            buf = nb;
            cap *= 2;
        }
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) s = lisa_fail(LISA_ERR_IO, "make-tiny: %s: read error", src);
            break;
        }
    }
    fclose(f);
    if (s == LISA_OK) s = lisa_file_write_atomic(dst, buf, n);
    free(buf);
    return s;
}

/* Removes the temporary directory this file created (two levels: files and the clip folder). */
static void remove_tmp_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (!lisa_path_join(p, sizeof p, dir, e->d_name)) continue;
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tmp_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static lisa_status check_params(const lisa_tiny_params *p) {
#define RANGE(f, lo, hi)                                                                                               \
    if (p->f < (lo) || p->f > (hi))                                                                                    \
        return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: " #f " = %lld is outside %lld..%lld", (long long)p->f,      \
                         (long long)(lo), (long long)(hi));
#define DIVIDES(a, b)                                                                                                  \
    if (p->b % p->a)                                                                                                   \
        return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: " #a " = %d does not divide " #b " = %d", (int)p->a,        \
                         (int)p->b);
    RANGE(llm_hidden, 2, MAX_DIM);
    RANGE(llm_layers, 1, MAX_LAYERS);
    RANGE(llm_heads, 1, MAX_DIM);
    RANGE(llm_kv_heads, 1, MAX_DIM);
    RANGE(llm_inter, 1, 4 * MAX_DIM);
    RANGE(llm_max_pos, 512, 1 << 20);
    DIVIDES(llm_heads, llm_hidden);
    DIVIDES(llm_kv_heads, llm_heads);
    if ((p->llm_hidden / p->llm_heads) % 2)
        return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: the LLM head dim %d must be even (RoPE)",
                         p->llm_hidden / p->llm_heads);
    RANGE(clip_hidden, 1, MAX_DIM);
    RANGE(clip_layers, 2, MAX_LAYERS); /* LISA reads hidden_states[-2] */
    RANGE(clip_heads, 1, MAX_DIM);
    RANGE(clip_mlp, 1, 4 * MAX_DIM);
    DIVIDES(clip_heads, clip_hidden);
    RANGE(sam_embed, 1, MAX_DIM);
    RANGE(sam_depth, 1, MAX_LAYERS);
    RANGE(sam_heads, 1, MAX_DIM);
    RANGE(sam_window, 1, SAM_GRID - 1);
    DIVIDES(sam_heads, sam_embed);
    RANGE(n_sam_global, 0, LISA_TINY_MAX_GLOBAL);
    for (int32_t i = 0; i < p->n_sam_global; i++)
        if (p->sam_global[i] < 0 || p->sam_global[i] >= p->sam_depth)
            return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: global block %d is outside 0..%d (sam_depth %d)",
                             p->sam_global[i], p->sam_depth - 1, p->sam_depth);
    RANGE(out_dim, 16, MAX_DIM);
    if (p->out_dim % 16)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "make-tiny: out_dim = %d must be a multiple of 16 (8 decoder heads over out_dim/2)",
                         p->out_dim);
    RANGE(max_shard_bytes, 1, INT64_MAX);
    if (!p->answer) return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: answer is NULL (use \"\" for no shaping)");
    return LISA_OK;
#undef RANGE
#undef DIVIDES
}

static lisa_status build(const lisa_tiny_params *p, const char *tmp, lisa_tiny_report *rep) {
    char path[4096], clip_dir[4096];
    const char *sp = p->sp_model ? p->sp_model : LISA_DEFAULT_SP_MODEL;
    struct stat st;
    if (stat(sp, &st) != 0)
        return lisa_fail(LISA_ERR_NOT_FOUND,
                         "make-tiny: the LLaMA tokenizer model %s is missing (pass --tokenizer-model PATH: a LLaMA "
                         "tokenizer.model, e.g. tests/data/tokenizer/llama-spm.model of the source tree)",
                         sp);
    if (!lisa_path_join(path, sizeof path, tmp, "tokenizer.model") ||
        !lisa_path_join(clip_dir, sizeof clip_dir, tmp, "clip-vit-large-patch14"))
        return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: path too long: %.200s", tmp);
    LISA_TRY(copy_file(path, sp));
    /* vocabulary: the spm pieces, then <im_patch>, <im_start>, <im_end>, [SEG] */
    lisa_tokenizer *tok = NULL;
    lisa_tokenizer_params tp = lisa_tokenizer_default_params();
    tp.sp_model_path = path;
    LISA_TRY(lisa_tokenizer_load_ex(&tok, NULL, &tp));
    const int32_t n_pieces = lisa_tokenizer_n_pieces(tok);
    lisa_tokenizer_free(tok);
    tok = NULL;
    const int32_t vocab = n_pieces + 4;
    rep->vocab = vocab;
    LISA_TRY(write_json(tmp, "config.json", lisa_config(p, vocab)));
    LISA_TRY(write_json(tmp, "generation_config.json", generation_config()));
    LISA_TRY(write_json(tmp, "added_tokens.json", added_tokens(n_pieces)));
    LISA_TRY(write_json(tmp, "special_tokens_map.json", special_tokens_map()));
    LISA_TRY(write_json(tmp, "tokenizer_config.json", tokenizer_config()));

    tlist L = {.seed = p->seed, .synthetic = p->synthetic};
    gen_lisa(&L, p, vocab);
    lisa_status s = L.st;
    if (s == LISA_OK && !p->synthetic) round_bf16(&L);
    if (s == LISA_OK && p->answer[0] && !p->synthetic) {
        s = lisa_tokenizer_load(&tok, tmp); /* the full tokenizer, [SEG] included */
        if (s == LISA_OK) s = shape_answer(&L, p, tok, rep);
        lisa_tokenizer_free(tok);
    }
    if (s == LISA_OK && p->synthetic) {
        if (!lisa_path_join(path, sizeof path, tmp, "model.safetensors"))
            s = lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: path too long: %.200s", tmp);
        else
            s = write_synthetic(path, &L, p->seed, rep);
    } else if (s == LISA_OK) {
        s = write_sharded(tmp, &L, p->max_shard_bytes, p->format, rep);
    }
    tl_free(&L);
    LISA_TRY(s);

    if (p->write_clip) {
        if (mkdir(clip_dir, 0755) != 0)
            return lisa_fail(LISA_ERR_IO, "make-tiny: mkdir %s: %s", clip_dir, strerror(errno));
        LISA_TRY(write_json(clip_dir, "config.json", clip_config(p)));
        LISA_TRY(write_json(clip_dir, "preprocessor_config.json", clip_preprocessor_config()));
        tlist Lc = {.seed = p->seed, .synthetic = p->synthetic};
        gen_clip(&Lc, p);
        s = Lc.st;
        if (s == LISA_OK && !lisa_path_join(path, sizeof path, clip_dir, "model.safetensors"))
            s = lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: path too long");
        if (s == LISA_OK) s = p->synthetic ? write_synthetic(path, &Lc, p->seed, NULL) : write_shard(path, &Lc, 0, Lc.n);
        tl_free(&Lc);
    }
    return s;
}

lisa_status lisa_make_tiny(const lisa_tiny_params *p, const char *out_dir, lisa_tiny_report *report) {
    lisa_tiny_report rep_local;
    lisa_tiny_report *rep = report ? report : &rep_local;
    memset(rep, 0, sizeof *rep);
    LISA_TRY(check_params(p));
    if (!out_dir || !out_dir[0]) return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: no output directory");
    char out[4000];
    if (snprintf(out, sizeof out, "%s", out_dir) >= (int)sizeof out)
        return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: path too long: %.200s", out_dir);
    for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--) out[n - 1] = '\0'; /* "dir/" -> "dir" */
    out_dir = out;
    struct stat st;
    if (lstat(out_dir, &st) == 0) {
        /* only an empty directory may be replaced; never delete a user's files */
        if (!S_ISDIR(st.st_mode) || rmdir(out_dir) != 0)
            return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: %s already exists (and is not an empty directory)",
                             out_dir);
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out_dir) >= (int)sizeof tmp)
        return lisa_fail(LISA_ERR_INVALID_ARG, "make-tiny: path too long: %.200s", out_dir);
    if (!mkdtemp(tmp)) return lisa_fail(LISA_ERR_IO, "make-tiny: cannot create %s: %s", tmp, strerror(errno));
    chmod(tmp, 0755); /* mkdtemp makes 0700; a checkpoint directory is normally shared-readable */
    lisa_status s = build(p, tmp, rep);
    if (s == LISA_OK && rename(tmp, out_dir) != 0)
        s = lisa_fail(LISA_ERR_IO, "make-tiny: rename %s -> %s: %s", tmp, out_dir, strerror(errno));
    if (s != LISA_OK) remove_tmp_tree(tmp);
    return s;
}

lisa_status lisa_tiny_write_sam(const lisa_tiny_params *p, const char *path) {
    LISA_TRY(check_params(p));
    tlist L = {.seed = p->seed, .synthetic = p->synthetic};
    gen_sam(&L, p, "");
    lisa_status s = L.st;
    if (s == LISA_OK) s = p->synthetic ? write_synthetic(path, &L, p->seed, NULL) : write_shard(path, &L, 0, L.n);
    tl_free(&L);
    return s;
}

/* ---- steering a loaded model -------------------------------------------------------------------- */

#define STEER_TARGET 24.0 /* planned logit at its expected state (make-tiny's TARGET_LOGIT is 16 at 2 layers) */

/* Row `r` of a 2-D backend weight as F32 (converted from its dtype). */
static lisa_status read_row(lisa_backend *be, const lisa_tensor *w, int64_t r, float *out, void *buf) {
    const int64_t C = w->shape[1];
    const size_t es = lisa_dtype_size(w->dtype);
    LISA_TRY(be->download(be, buf, (const char *)w->data + (size_t)(r * C) * es, (size_t)C * es));
    for (int64_t c = 0; c < C; c++)
        out[c] = w->dtype == LISA_DTYPE_F32    ? ((const float *)buf)[c]
                 : w->dtype == LISA_DTYPE_BF16 ? lisa_bf16_to_f32(((const uint16_t *)buf)[c])
                                               : lisa_f16_to_f32(((const uint16_t *)buf)[c]);
    return LISA_OK;
}

lisa_status lisa_tiny_steer(lisa_model *m, const char *answer, float *margin_out, int32_t *ids_out, int32_t *n_ids_out) {
    const lisa_llama *llm = m->llm;
    const int32_t C = m->cfg.llm.hidden, eos = lisa_tokenizer_eos_id(m->tok);
    lisa_backend *be = m->be;
    if (!llm->weights.device_block)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "steer: the model's weights are views of its checkpoint (CPU backend, "
                                               "not synthetic); steering writes lm_head rows, which needs a device "
                                               "backend or a synthetic checkpoint");
    if (llm->norm.n_dims != 1 || llm->embed.n_dims != 2 || llm->lm_head.n_dims != 2)
        return lisa_fail(LISA_ERR_SHAPE, "steer: unexpected LLaMA weight shapes");
    /* plan: the prompt's last token (":" of "ASSISTANT:") -> answer ids -> </s> */
    char prompt[1024];
    int32_t pids[512], n_p = 0, plan[LISA_TINY_MAX_ANSWER + 2], n_a = 0;
    LISA_TRY(lisa_prompt_llava_v1(prompt, sizeof prompt, "x", m->cfg.use_im_start_end, NULL));
    LISA_TRY(lisa_tokenizer_encode_image_prompt(m->tok, prompt, strlen(prompt), pids, 512, &n_p));
    lisa_status s = lisa_tokenizer_encode(m->tok, answer, strlen(answer), false, plan + 1, LISA_TINY_MAX_ANSWER, &n_a);
    if (s == LISA_ERR_LIMIT) return lisa_fail(LISA_ERR_LIMIT, "steer: answer of %d tokens (at most %d)", n_a, LISA_TINY_MAX_ANSWER);
    LISA_TRY(s);
    if (n_a == 0) return lisa_fail(LISA_ERR_INVALID_ARG, "steer: answer \"%s\" encodes to no tokens", answer);
    plan[0] = pids[n_p - 1];
    plan[n_a + 1] = eos;
    const int32_t n_dec = n_a + 1; /* decisions plan[k] -> plan[k+1] */
    for (int32_t a = 0; a <= n_a + 1; a++)
        for (int32_t b = a + 1; b <= n_a + 1; b++)
            if (plan[a] == plan[b])
                return lisa_fail(LISA_ERR_INVALID_ARG, "steer: token %d appears twice in the plan of \"%s\" (the "
                                                       "steering keys on the current token only)",
                                 plan[a], answer);
    const size_t es_max = 4;
    float *g = malloc((size_t)C * sizeof(float)), *E = malloc((size_t)n_dec * C * sizeof(float));
    float *R = malloc((size_t)n_dec * C * sizeof(float));
    void *buf = malloc((size_t)C * es_max);
    if (!g || !E || !R || !buf) s = lisa_fail(LISA_ERR_OOM, "steer: out of memory");
    /* the norm gain is 1-D: read it as a [1, C] row */
    lisa_tensor g2 = llm->norm;
    g2.n_dims = 2, g2.shape[0] = 1, g2.shape[1] = C;
    if (s == LISA_OK) s = read_row(be, &g2, 0, g, buf);
    for (int32_t k = 0; s == LISA_OK && k < n_dec; k++) {
        float *e = E + (size_t)k * C;
        s = read_row(be, &llm->embed, plan[k], e, buf);
        double ms = 0, nn = 0;
        for (int32_t c = 0; s == LISA_OK && c < C; c++) ms += (double)e[c] * e[c];
        const double inv = 1.0 / sqrt(ms / C + m->cfg.llm.rms_eps);
        for (int32_t c = 0; c < C; c++) {
            e[c] = (float)(g[c] * (e[c] * inv));
            nn += (double)e[c] * e[c];
        }
        /* row of the successor: TARGET·e/|e|², rounded as the lm_head stores it */
        float *r = R + (size_t)k * C;
        for (int32_t c = 0; c < C; c++) {
            const float v = (float)(STEER_TARGET * e[c] / (nn > 0 ? nn : 1.0));
            r[c] = llm->lm_head.dtype == LISA_DTYPE_BF16 ? lisa_bf16_to_f32(lisa_f32_to_bf16(v))
                   : llm->lm_head.dtype == LISA_DTYPE_F16 ? lisa_f16_to_f32(lisa_f32_to_f16(v))
                                                          : v;
        }
    }
    /* write the rows */
    const size_t hes = lisa_dtype_size(llm->lm_head.dtype);
    for (int32_t k = 0; s == LISA_OK && k < n_dec; k++) {
        const float *r = R + (size_t)k * C;
        for (int32_t c = 0; c < C; c++) {
            if (llm->lm_head.dtype == LISA_DTYPE_F32) ((float *)buf)[c] = r[c];
            else if (llm->lm_head.dtype == LISA_DTYPE_BF16) ((uint16_t *)buf)[c] = lisa_f32_to_bf16(r[c]);
            else ((uint16_t *)buf)[c] = lisa_f32_to_f16(r[c]);
        }
        s = be->upload(be, (char *)llm->lm_head.data + (size_t)plan[k + 1] * C * hes, buf, (size_t)C * hes);
    }
    /* margins among the planned rows at the expected states */
    double margin = INFINITY;
    for (int32_t k = 0; s == LISA_OK && k < n_dec; k++) {
        const float *e = E + (size_t)k * C;
        double want = 0, other = -INFINITY;
        for (int32_t j = 0; j < n_dec; j++) {
            double d = 0;
            for (int32_t c = 0; c < C; c++) d += (double)R[(size_t)j * C + c] * e[c];
            if (j == k) want = d;
            else if (d > other) other = d;
        }
        if (want - other < margin) margin = want - other;
    }
    if (s == LISA_OK) {
        if (margin_out) *margin_out = (float)margin;
        if (ids_out)
            for (int32_t k = 0; k <= n_a; k++) ids_out[k] = plan[k + 1];
        if (n_ids_out) *n_ids_out = n_a + 1;
    }
    free(g), free(E), free(R), free(buf);
    return s;
}
