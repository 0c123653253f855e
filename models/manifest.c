/* models/manifest.c — expected tensor lists for LISA, LLaMA and CLIP checkpoints (see manifest.h):
 * the config's dims, then the networks' tensor tables (models/<net>_tensors.def, which follow the
 * reference module trees). tests/test_manifest.c checks them against checkpoints saved from those
 * modules. */
#include "models/manifest.h"

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

/* The visitor of the tensor tables (models/tensors.h): one entry per row. */
static lisa_status add(void *ctx, const lisa_tensor_spec *sp) {
    lisa_manifest *m = ctx;
    if (m->n_entries == m->cap_entries) {
        int64_t cap = m->cap_entries ? m->cap_entries * 2 : 256;
        lisa_manifest_entry *ne = realloc(m->entries, (size_t)cap * sizeof *ne);
        if (!ne) return lisa_fail(LISA_ERR_OOM, "manifest: out of memory");
        m->entries = ne;
        m->cap_entries = cap;
    }
    lisa_manifest_entry *e = &m->entries[m->n_entries];
    memset(e, 0, sizeof *e);
    e->name = strdup(sp->name);
    if (!e->name) return lisa_fail(LISA_ERR_OOM, "manifest: out of memory");
    e->n_dims = sp->n_dims;
    memcpy(e->shape, sp->shape, sizeof e->shape);
    e->part = sp->part;
    e->optional = sp->flags & LISA_TF_OPT;
    e->param = !(sp->flags & LISA_TF_BUF);
    e->any_dtype = sp->flags & LISA_TF_ANYDT;
    e->released = sp->dtype;
    m->n_entries++;
    return LISA_OK;
}

/* ---- config fields ------------------------------------------------------------------------------ */

static lisa_status dim(const cJSON *o, const char *file, const char *key, bool required, int64_t def, int64_t max,
                       int64_t *out) {
    LISA_TRY(lisa_json_int(o, file, key, required, def, out));
    if (*out <= 0 || *out > max)
        return lisa_fail(LISA_ERR_FORMAT, "%s: '%s' = %lld is out of range (1..%lld)", file, key, (long long)*out,
                         (long long)max);
    return LISA_OK;
}

static lisa_status parse_llm(lisa_llm_dims *d, const cJSON *c, const char *file, bool lisa) {
    const int64_t big = 1 << 20;
    LISA_TRY(dim(c, file, "hidden_size", true, 0, big, &d->hidden));
    LISA_TRY(dim(c, file, "intermediate_size", true, 0, big, &d->intermediate));
    LISA_TRY(dim(c, file, "num_hidden_layers", true, 0, 4096, &d->n_layers));
    LISA_TRY(dim(c, file, "num_attention_heads", true, 0, 4096, &d->n_heads));
    LISA_TRY(dim(c, file, "num_key_value_heads", false, d->n_heads, 4096, &d->n_kv_heads));
    LISA_TRY(dim(c, file, "vocab_size", true, 0, 1 << 24, &d->vocab));
    if (d->hidden % d->n_heads || d->n_heads % d->n_kv_heads)
        return lisa_fail(LISA_ERR_FORMAT, "%s: hidden_size %lld, num_attention_heads %lld, num_key_value_heads %lld do "
                         "not divide", file, (long long)d->hidden, (long long)d->n_heads, (long long)d->n_kv_heads);
    d->head_dim = d->hidden / d->n_heads;
    d->projector_layers = 0;
    if (!lisa) return LISA_OK;
    LISA_TRY(dim(c, file, "mm_hidden_size", false, 1024, big, &d->mm_hidden)); /* LLaVA default: CLIP ViT-L */
    LISA_TRY(dim(c, file, "out_dim", false, 256, big, &d->out_dim));
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
    return lisa_clip_tensors(c, NULL, add, m);
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
        if (s == LISA_OK) {
            lisa_sam_dims_infer(&m->sam, ck, "model.visual_model.");
            s = lisa_lisa_tensors(&m->llm, &m->sam, add, m);
        }
    } else if (strcmp(mt, "llama") == 0 || has_string_in(arch, "LlamaForCausalLM")) {
        m->family = LISA_FAMILY_LLAMA;
        s = parse_llm(&m->llm, config, config_path, false);
        if (s == LISA_OK) s = lisa_llama_tensors_body(&m->llm, NULL, add, m);
        if (s == LISA_OK) s = lisa_llama_tensors_head(&m->llm, NULL, add, m);
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
