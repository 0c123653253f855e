/* jobs/flops.c — see flops.h (the formulas are written there). */
#include "jobs/flops.h"

#include "models/lisa_model.h"
#include "core/error.h"

#include <string.h>

static bool sam_global(const lisa_sam_dims *s, int64_t b) { return (s->global_mask[b / 64] >> (b % 64)) & 1; }

double lisa_flops_sam_encoder(const lisa_sam_dims *s) {
    const double G = (double)s->grid, N = G * G, E = (double)s->embed, O = (double)s->out_chans;
    const double w = (double)s->window, p = (double)s->patch;
    const double side = s->window > 0 ? (double)((s->grid + s->window - 1) / s->window) * w : G, Np = side * side;
    double f = 2 * N * E * 3 * p * p; /* patch embedding */
    for (int64_t b = 0; b < s->depth; b++) {
        const bool global = s->window <= 0 || sam_global(s, b);
        const double T = global ? N : Np, L = global ? N : w * w, sz = global ? G : w;
        f += 2 * T * E * 3 * E + 2 * T * E * E; /* qkv, proj (windowed: over the padded tokens) */
        f += 4 * T * L * E;                     /* QK^T, AV */
        f += 2 * T * (2 * sz) * E;              /* decomposed rel-pos: q·R_h, q·R_w */
        f += 2 * N * E * (double)s->mlp * 2;    /* MLP */
    }
    f += 2 * N * E * O + 2 * N * O * O * 9; /* neck: 1x1 and 3x3 convolutions */
    return f;
}

double lisa_flops_clip(const lisa_clip_dims *c, int32_t layers) {
    const double g = (double)(c->image / c->patch), P = g * g, T = P + 1, H = (double)c->hidden;
    const double I = (double)c->intermediate, p = (double)c->patch;
    double f = 2 * P * H * 3 * p * p;
    f += layers * (2 * T * 4 * H * H + 2 * T * 2 * H * I + 4 * T * T * H);
    return f;
}

double lisa_flops_llama_rows(const lisa_llm_dims *d, int64_t p0, int64_t rows, int64_t n_logits) {
    if (rows <= 0) return 0;
    const double C = (double)d->hidden, q = (double)(d->n_heads * d->head_dim);
    const double kv = (double)(d->n_kv_heads * d->head_dim), I = (double)d->intermediate, L = (double)d->n_layers;
    const double lin = 2 * (C * q + 2 * C * kv + q * C + 3 * C * I);
    /* sum over rows of (p+1), p = p0 .. p0+rows-1 */
    const double ctx = (double)rows * (double)p0 + (double)rows * (double)(rows + 1) / 2;
    return L * (lin * (double)rows + 4 * q * ctx) + (double)n_logits * 2 * C * (double)d->vocab;
}

double lisa_flops_mask_decoder(const lisa_sam_dims *s) {
    /* segment_anything MaskDecoder.predict_masks with one sparse prompt token (LISA's text embedding):
     * tokens = iou + mask tokens + prompt; TwoWayTransformer blocks: token self-attention (dim D),
     * token->image and image->token attention at D/downsample, token MLP; a final token->image;
     * two transposed 2x2 convolutions D -> D/4 -> D/8 (G -> 4G); one hypernetwork MLP (D, D, D/8) per
     * mask token; the mask product; the IoU head (D, h, h, n_mask). */
    const double D = (double)s->dec_dim, d = D / (double)(s->dec_downsample > 0 ? s->dec_downsample : 1);
    const double G = (double)s->grid, Ni = G * G, nm = (double)s->n_mask_tokens, Nt = 1 + nm + 1;
    const double M = (double)s->dec_mlp, h = (double)s->iou_hidden;
    const double t2i = 2 * Nt * D * d + 2 * 2 * Ni * D * d + 2 * Nt * d * D + 4 * Nt * Ni * d;
    const double i2t = 2 * Ni * D * d + 2 * 2 * Nt * D * d + 2 * Ni * d * D + 4 * Ni * Nt * d;
    const double self = 4 * 2 * Nt * D * D + 4 * Nt * Nt * D;
    const double mlp = 2 * Nt * D * M * 2;
    double f = (double)s->dec_depth * (self + t2i + mlp + i2t) + t2i;
    f += 2 * (Ni * D) * (D / 4) * 4 + 2 * (4 * Ni * D / 4) * (D / 8) * 4; /* ConvTranspose2d x2 */
    f += nm * 2 * (D * D + D * D + D * D / 8);                            /* hypernetworks */
    f += 2 * nm * (D / 8) * (16 * Ni);                                    /* hyper_in @ upscaled */
    f += 2 * (D * h + h * h + h * nm);                                    /* IoU head */
    return f;
}

void lisa_flops_request(lisa_flops *f, const lisa_flop_dims *d, int64_t n_prompt, int64_t n_cached, int64_t n_generated,
                        int64_t n_masks) {
    memset(f, 0, sizeof *f);
    const double g = (double)(d->clip.image / (d->clip.patch > 0 ? d->clip.patch : 1)), P = g * g;
    const double C = (double)d->llm.hidden, H = (double)d->llm.mm_hidden;
    f->sam_encoder = lisa_flops_sam_encoder(&d->sam);
    f->clip = lisa_flops_clip(&d->clip, d->clip_layers);
    if (d->llm.projector_layers >= 1) f->projector = 2 * P * H * C + (d->llm.projector_layers - 1) * 2 * P * C * C;
    f->prefill = lisa_flops_llama_rows(&d->llm, n_cached, n_prompt - n_cached, 1);
    if (n_generated > 1) f->decode = lisa_flops_llama_rows(&d->llm, n_prompt, n_generated - 1, n_generated - 1);
    const double fcs = 2 * (C * C + C * (double)d->llm.out_dim);
    f->masks = (double)n_masks * (lisa_flops_mask_decoder(&d->sam) + fcs);
    f->total = f->sam_encoder + f->clip + f->projector + f->prefill + f->decode + f->masks;
}

lisa_status lisa_flop_dims_from_model(lisa_flop_dims *d, const lisa_model *m) {
    memset(d, 0, sizeof *d);
    lisa_manifest mf;
    LISA_TRY(lisa_manifest_from_dir(&mf, m->dir, m->ck));
    d->llm = mf.llm;
    d->sam = mf.sam;
    lisa_manifest_free(&mf);
    const lisa_clip_config *c = &m->clip->cfg;
    d->clip = (lisa_clip_dims){.hidden = c->hidden,
                               .intermediate = c->intermediate,
                               .n_layers = c->n_layers,
                               .image = c->image_size,
                               .patch = c->patch};
    d->clip_layers = c->n_run;
    return LISA_OK;
}
