/* jobs/inspect.c — `lisa inspect DIR`: what a model directory holds and what running it needs.
 *
 * Prints the model family and dims (from config.json), the vocabulary and added tokens
 * (added_tokens.json) with the [SEG] id, tensor counts, parameters per part, bytes per dtype, and a
 * per-device memory estimate. With --config-only nothing but the small JSON files is read, so a
 * user can plan hardware before downloading 16 GB; stored dtypes are then those of the released
 * checkpoints (spec §7.2: LLM + projector bf16, SAM + text_hidden_fcs f32) and SAM has ViT-H dims.
 * Otherwise the checkpoint is opened and checked against the manifest (all mismatches listed).
 *
 * Memory model (per device, bf16 device weights; an estimate, not a measurement):
 *   weights      matrices (2+ dims) in bf16, vectors in f32 (as models/weights.h uploads them);
 *                LLM weights divided by --tp; plus the CLIP vision tower (not in the LISA
 *                checkpoint: openai/clip-vit-large-patch14 dims, or --clip DIR), only the layers
 *                LLaVA runs (mm_vision_select_layer = -2: all but the last).
 *   kv cache     B * T * 2 * layers * kv_heads * head_dim * 2 bytes (bf16 K and V), / tp.
 *   activations  the largest live set of each stage, all counted as if resident together
 *                (SAM may overlap the LLM on another stream), bf16 (2 bytes) unless noted:
 *                LLM prefill  B*T*(4C + 2*kv_dim + 3I)*2  + B*V*4 (f32 last-position logits);
 *                             flash attention assumed (no T x T scores)
 *                SAM encoder  B*N*(6E + M)*2 + B*heads*N*N*4 (one global-attention score matrix
 *                             in f32, N = grid^2 tokens; the worst case, unfused)
 *                CLIP         B*P*(6H + I)*2 + B*heads*P*P*4   (P = patches + 1)
 *                decoder      B*(4*N*D*4 + 32*(4*grid)^2*4 + img^2*4)  (one [SEG] per sample:
 *                             keys/src/pos/attention, upscaled features, full-size mask logits)
 *   B = --batch (default 1), T = --context tokens per sequence (default 1024: a ~330-token prompt
 *   incl. the 255 extra image positions plus generated text, with headroom). */
#include "jobs/inspect.h"

#include "core/error.h"
#include "loader/checkpoint.h"
#include "loader/json.h"
#include "models/manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *human(double v, char *buf, size_t cap) {
    if (v >= 1e9)
        snprintf(buf, cap, "%.2f B", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, cap, "%.2f M", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, cap, "%.2f k", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
    return buf;
}

static const char *gib(double v, char *buf, size_t cap) {
    snprintf(buf, cap, "%.2f GiB", v / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

/* Device bytes of the entries of a part (matrices bf16, vectors f32). `skip_from_layer` >= 0
 * drops CLIP encoder layers with that index or higher (the ones LLaVA never runs). */
static uint64_t device_bytes(const lisa_manifest *m, lisa_mf_part part, int64_t skip_from_layer) {
    uint64_t b = 0;
    for (int64_t i = 0; i < m->n_entries; i++) {
        const lisa_manifest_entry *e = &m->entries[i];
        if (e->part != part || e->optional) continue;
        long layer;
        if (skip_from_layer >= 0 && sscanf(e->name, "vision_model.encoder.layers.%ld.", &layer) == 1 &&
            layer >= skip_from_layer)
            continue;
        uint64_t n = 1;
        for (int d = 0; d < e->n_dims; d++)
            n *= (uint64_t)e->shape[d];
        b += n * (e->n_dims >= 2 ? 2u : 4u);
    }
    return b;
}

typedef struct added_token {
    const char *text;
    int64_t id;
} added_token;

static int cmp_added(const void *a, const void *b) {
    int64_t x = ((const added_token *)a)->id, y = ((const added_token *)b)->id;
    return x < y ? -1 : x > y;
}

static void print_tokens(FILE *o, const char *dir, const lisa_manifest *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    cJSON *j = NULL;
    if (lisa_json_load_file(path, 1 << 20, &j) != LISA_OK || !cJSON_IsObject(j)) {
        fprintf(o, "%-22s %lld (no added_tokens.json: %s)\n", "vocab", (long long)m->llm.vocab, lisa_last_error());
        cJSON_Delete(j);
        return;
    }
    int n = cJSON_GetArraySize(j);
    added_token *t = calloc((size_t)(n ? n : 1), sizeof *t);
    int k = 0;
    int64_t seg = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!t || !cJSON_IsNumber(it)) continue;
        t[k].text = it->string;
        t[k].id = (int64_t)it->valuedouble;
        if (strcmp(it->string, "[SEG]") == 0) seg = t[k].id;
        k++;
    }
    if (t && k > 1) qsort(t, (size_t)k, sizeof *t, cmp_added);
    fprintf(o, "%-22s %lld = %lld base + %d added:", "vocab", (long long)m->llm.vocab, (long long)(m->llm.vocab - k), k);
    for (int i = 0; i < k; i++)
        fprintf(o, " %s=%lld", t[i].text, (long long)t[i].id);
    fprintf(o, "\n");
    if (seg >= 0) {
        fprintf(o, "%-22s %lld%s\n", "seg_token_id", (long long)seg,
               seg < m->llm.vocab ? "" : "  (WARNING: not below vocab_size: embed_tokens has no row for it)");
    } else if (m->family == LISA_FAMILY_LISA) {
        fprintf(o, "%-22s absent (WARNING: added_tokens.json has no [SEG]; see spec §10 pitfall 3)\n", "seg_token_id");
    }
    free(t);
    cJSON_Delete(j);
}

lisa_status lisa_inspect_run(const lisa_inspect_job *j, FILE *o) {
    const char *dir = j->dir, *clip_dir = j->clip_dir;
    const double batch = (double)j->batch, context = (double)j->context, tp = (double)j->tp;
    lisa_checkpoint *ck = NULL;
    if (!j->config_only) {
        lisa_checkpoint_options opt = {.skip_crc = j->skip_crc};
        lisa_status s = lisa_checkpoint_open_ex(&ck, dir, &opt);
        if (s != LISA_OK) {
            char msg[2048];
            snprintf(msg, sizeof msg, "%s", lisa_last_error());
            return lisa_fail(s, "%s (use --config-only to plan from config.json alone)", msg);
        }
    }
    lisa_manifest m;
    lisa_status s = lisa_manifest_from_dir(&m, dir, ck);
    if (s != LISA_OK) {
        lisa_checkpoint_close(ck);
        return s;
    }
    char h1[64];
    fprintf(o, "%-22s %s\n", "model", lisa_model_family_name(m.family));
    fprintf(o, "%-22s %s/config.json\n", "config", dir);
    if (m.family != LISA_FAMILY_CLIP) {
        const lisa_llm_dims *l = &m.llm;
        fprintf(o, "%-22s hidden %lld, layers %lld, heads %lld (kv %lld, head_dim %lld), intermediate %lld, vocab %lld\n",
               "llm", (long long)l->hidden, (long long)l->n_layers, (long long)l->n_heads, (long long)l->n_kv_heads,
               (long long)l->head_dim, (long long)l->intermediate, (long long)l->vocab);
    }
    if (m.family == LISA_FAMILY_LISA) {
        const lisa_llm_dims *l = &m.llm;
        if (l->projector_layers <= 1)
            fprintf(o, "%-22s %s %lld -> %lld\n", "mm_projector", l->projector_layers ? "linear" : "identity",
                   (long long)l->mm_hidden, (long long)l->hidden);
        else
            fprintf(o, "%-22s mlp%dx_gelu %lld -> %lld\n", "mm_projector", l->projector_layers, (long long)l->mm_hidden,
                   (long long)l->hidden);
        fprintf(o, "%-22s %lld -> %lld -> %lld\n", "text_hidden_fcs", (long long)l->hidden, (long long)l->hidden,
               (long long)l->out_dim);
        const lisa_sam_dims *s = &m.sam;
        fprintf(o, "%-22s image %lld px, patch %lld, embed %lld, depth %lld, head_dim %lld, mlp %lld, window %lld, global "
               "blocks",
               "sam", (long long)s->img, (long long)s->patch, (long long)s->embed, (long long)s->depth,
               (long long)s->head_dim, (long long)s->mlp, (long long)s->window);
        for (int64_t b = 0; b < s->depth; b++)
            if ((s->global_mask[b / 64] >> (b % 64)) & 1u) fprintf(o, " %lld", (long long)b);
        fprintf(o, "; neck %lld; decoder dim %lld, depth %lld, mlp %lld, %lld mask tokens (%s)\n", (long long)s->out_chans,
               (long long)s->dec_dim, (long long)s->dec_depth, (long long)s->dec_mlp, (long long)s->n_mask_tokens,
               s->inferred ? "from the checkpoint" : "ViT-H defaults");
    }
    if (m.family == LISA_FAMILY_CLIP) {
        const lisa_clip_dims *c = &m.clip;
        fprintf(o, "%-22s hidden %lld, layers %lld, intermediate %lld, image %lld, patch %lld\n", "clip",
               (long long)c->hidden, (long long)c->n_layers, (long long)c->intermediate, (long long)c->image,
               (long long)c->patch);
    } else {
        print_tokens(o, dir, &m);
    }

    /* tensors and parameters */
    int64_t n_req = 0, n_opt = 0;
    for (int64_t i = 0; i < m.n_entries; i++)
        *(m.entries[i].optional ? &n_opt : &n_req) += 1;
    if (ck) {
        int32_t nf = lisa_checkpoint_file_count(ck);
        fprintf(o, "%-22s %lld in %d file%s (%s)\n", "tensors", (long long)lisa_checkpoint_count(ck), nf,
               nf == 1 ? "" : "s",
               lisa_checkpoint_file_format(ck, 0) == LISA_CKPT_TORCH_BIN ? "PyTorch .bin" : "safetensors");
    } else {
        fprintf(o, "%-22s %lld expected (%lld used by inference + %lld stored but unused, e.g. rotary inv_freq)\n",
               "tensors", (long long)(n_req + n_opt), (long long)n_req, (long long)n_opt);
    }
    static const lisa_mf_part parts[] = {LISA_PART_LLM, LISA_PART_PROJECTOR, LISA_PART_FCS, LISA_PART_SAM,
                                         LISA_PART_CLIP};
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        uint64_t n = lisa_manifest_numel(&m, parts[i], true);
        if (!n) continue;
        total += n;
        char key[64];
        snprintf(key, sizeof key, "params.%s", lisa_mf_part_name(parts[i]));
        fprintf(o, "%-22s %llu  (%s)\n", key, (unsigned long long)n, human((double)n, h1, sizeof h1));
    }
    fprintf(o, "%-22s %llu  (%s)\n", "params.total", (unsigned long long)total, human((double)total, h1, sizeof h1));

    /* bytes per dtype */
    fprintf(o, "%-22s", ck ? "stored" : "stored (released)");
    uint64_t stored_total = 0;
    for (int dt = 0; dt < LISA_DTYPE_COUNT; dt++) {
        uint64_t b = 0;
        if (ck) {
            b = lisa_checkpoint_bytes(ck, (lisa_dtype)dt);
        } else {
            for (int64_t i = 0; i < m.n_entries; i++) {
                const lisa_manifest_entry *e = &m.entries[i];
                if (e->released != (lisa_dtype)dt || (e->optional && e->part == LISA_PART_LLM)) continue;
                uint64_t n = 1;
                for (int d = 0; d < e->n_dims; d++)
                    n *= (uint64_t)e->shape[d];
                b += n * lisa_dtype_size((lisa_dtype)dt);
            }
        }
        if (!b) continue;
        stored_total += b;
        fprintf(o, " %s %llu (%.2f GB)", lisa_dtype_name((lisa_dtype)dt), (unsigned long long)b, (double)b / 1e9);
    }
    fprintf(o, "; total %.2f GB\n", (double)stored_total / 1e9);

    /* manifest check */
    lisa_status rc = LISA_OK;
    if (ck) {
        lisa_manifest_report rep;
        if (lisa_manifest_check(&m, ck, &rep) == LISA_OK) {
            fprintf(o, "%-22s all %lld expected tensors present with the right shapes\n", "check", (long long)n_req);
        } else {
            fprintf(o, "%-22s %lld missing, %lld wrong shape, %lld wrong dtype, %lld unexpected:\n%s", "check",
                   (long long)rep.n_missing, (long long)rep.n_shape, (long long)rep.n_dtype,
                   (long long)rep.n_unexpected, rep.text ? rep.text : "");
            rc = lisa_fail(LISA_ERR_SHAPE, "%s: the checkpoint does not match its config.json (%lld missing, %lld wrong "
                           "shape, %lld wrong dtype, %lld unexpected tensors)", dir, (long long)rep.n_missing,
                           (long long)rep.n_shape, (long long)rep.n_dtype, (long long)rep.n_unexpected);
        }
        lisa_manifest_report_free(&rep);
    }

    /* memory per device */
    if (m.family != LISA_FAMILY_CLIP) {
        const lisa_llm_dims *l = &m.llm;
        double B = batch, T = context, C = (double)l->hidden, I = (double)l->intermediate;
        double kv_dim = (double)(l->n_kv_heads * l->head_dim), V = (double)l->vocab;
        double llm_w =
            (double)(device_bytes(&m, LISA_PART_LLM, -1) + device_bytes(&m, LISA_PART_PROJECTOR, -1)) / tp;
        double other_w = (double)(device_bytes(&m, LISA_PART_FCS, -1) + device_bytes(&m, LISA_PART_SAM, -1));
        double clip_w = 0, a_clip = 0;
        if (m.family == LISA_FAMILY_LISA) {
            lisa_manifest cm;
            lisa_status cs;
            if (clip_dir) {
                cs = lisa_manifest_from_dir(&cm, clip_dir, NULL);
            } else {
                cJSON *c =
                    cJSON_Parse("{\"model_type\":\"clip_vision_model\",\"hidden_size\":1024,\"intermediate_size\":"
                                "4096,\"num_hidden_layers\":24,\"image_size\":224,\"patch_size\":14}");
                cs = lisa_manifest_build(&cm, c, "openai/clip-vit-large-patch14 (defaults)", NULL);
                cJSON_Delete(c);
            }
            if (cs != LISA_OK || cm.family != LISA_FAMILY_CLIP) {
                if (cs == LISA_OK) {
                    lisa_manifest_free(&cm);
                    cs = lisa_fail(LISA_ERR_INVALID_ARG, "--clip %s: not a CLIP directory", clip_dir);
                }
                lisa_manifest_free(&m);
                lisa_checkpoint_close(ck);
                return cs;
            }
            clip_w = (double)device_bytes(&cm, LISA_PART_CLIP, cm.clip.n_layers - 1);
            double P = (double)((cm.clip.image / cm.clip.patch) * (cm.clip.image / cm.clip.patch) + 1);
            double heads = (double)(cm.clip.hidden / 64 > 0 ? cm.clip.hidden / 64 : 1); /* CLIP head_dim 64 */
            a_clip = B * (P * (6 * (double)cm.clip.hidden + (double)cm.clip.intermediate) * 2 + heads * P * P * 4);
            fprintf(o, "%-22s %llu params  (%s; separate directory, %lld of %lld layers run)\n", "params.clip_vision",
                   (unsigned long long)lisa_manifest_numel(&cm, LISA_PART_CLIP, true),
                   human((double)lisa_manifest_numel(&cm, LISA_PART_CLIP, true), h1, sizeof h1),
                   (long long)(cm.clip.n_layers - 1), (long long)cm.clip.n_layers);
            lisa_manifest_free(&cm);
        }
        double kv_token = 2.0 * (double)l->n_layers * kv_dim * 2.0;
        double kv = B * T * kv_token / tp;
        double a_llm = B * T * (4 * C + 2 * kv_dim + 3 * I) * 2 + B * V * 4;
        double a_sam = 0, a_dec = 0;
        if (m.family == LISA_FAMILY_LISA) {
            const lisa_sam_dims *s = &m.sam;
            double N = (double)(s->grid * s->grid), E = (double)s->embed, heads = (double)(s->embed / s->head_dim);
            a_sam = B * (N * (6 * E + (double)s->mlp) * 2 + heads * N * N * 4);
            double up = 4.0 * (double)s->grid;
            a_dec = B * (4 * N * (double)s->dec_dim * 4 + 32 * up * up * 4 + (double)(s->img * s->img) * 4);
        }
        double act = a_llm + a_sam + a_clip + a_dec, w = llm_w + other_w + clip_w;
        fprintf(o, "%-22s %llu bytes per token  (2 x %lld layers x %lld kv heads x %lld head_dim x 2 B, bf16)\n",
               "kv_cache", (unsigned long long)kv_token, (long long)l->n_layers, (long long)l->n_kv_heads,
               (long long)l->head_dim);
        fprintf(o, "%-22s batch %lld, context %lld, tp %lld (per device; see `lisa inspect --help` for the model)\n",
               "memory", (long long)j->batch, (long long)j->context, (long long)j->tp);
        char g[6][32];
        fprintf(o, "%-22s %s  (LLM+projector %s%s, SAM+fcs %s, CLIP %s; matrices bf16, vectors f32)\n", "  weights",
               gib(w, g[0], 32), gib(llm_w, g[1], 32), j->tp > 1 ? " after the tp split" : "", gib(other_w, g[2], 32),
               gib(clip_w, g[3], 32));
        fprintf(o, "%-22s %s\n", "  kv_cache", gib(kv, g[0], 32));
        fprintf(o, "%-22s %s  (LLM %s, SAM encoder %s, CLIP %s, decoder %s)\n", "  activations", gib(act, g[0], 32),
               gib(a_llm, g[1], 32), gib(a_sam, g[2], 32), gib(a_clip, g[3], 32), gib(a_dec, g[4], 32));
        fprintf(o, "%-22s %s\n", "  total", gib(w + kv + act, g[0], 32));
    }
    lisa_manifest_free(&m);
    lisa_checkpoint_close(ck);
    return rc;
}
