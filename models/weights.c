/* models/weights.c — weight binding with collected errors and device placement. */
#include "models/weights.h"

#include "core/error.h"
#include "core/half.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lisa_weights_init(lisa_weights *w, lisa_backend *be, const lisa_checkpoint *ck, lisa_dtype device_dtype) {
    memset(w, 0, sizeof *w);
    w->be = be;
    w->ck = ck;
    w->device_dtype = device_dtype;
    w->prefix = "";
}

void lisa_weights_free(lisa_weights *w) {
    if (w->device_block && w->be) w->be->mem_free(w->be, w->device_block);
    w->device_block = NULL;
}

static void vrecord(lisa_weights *w, lisa_status s, const char *fmt, va_list ap) {
    if (w->n_errors == 0) w->first_error = s;
    w->n_errors++;
    size_t used = strlen(w->errors);
    if (w->n_errors > LISA_WEIGHTS_MAX_ERRORS || used + 2 >= sizeof w->errors) return;
    if (used) w->errors[used++] = '\n';
    w->errors[used] = '\0';
    vsnprintf(w->errors + used, sizeof w->errors - used, fmt, ap);
}

void lisa_w_error(lisa_weights *w, lisa_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrecord(w, s, fmt, ap);
    va_end(ap);
}

bool lisa_w_has(const lisa_weights *w, const char *fmt, ...) {
    char name[512], full[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    return lisa_checkpoint_find(w->ck, full) != NULL;
}

/* Widens n contiguous elements of a float tensor starting at element i0. */
static void lisa_weights_widen(float *dst, const lisa_tensor *t, int64_t i0, int64_t n) {
    const void *p = (const char *)t->data + (size_t)i0 * lisa_dtype_size(t->dtype);
    if (t->dtype == LISA_DTYPE_F32) memcpy(dst, p, (size_t)n * sizeof(float));
    else if (t->dtype == LISA_DTYPE_BF16)
        for (int64_t i = 0; i < n; i++) dst[i] = lisa_bf16_to_f32(((const uint16_t *)p)[i]);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = lisa_f16_to_f32(((const uint16_t *)p)[i]);
}

static bool is_float(lisa_dtype t) { return t == LISA_DTYPE_F32 || t == LISA_DTYPE_BF16 || t == LISA_DTYPE_F16; }

/* ---- synthetic checkpoints (see weights.h) ---------------------------------------------------- */

#define SYNTH_PERIOD ((int64_t)1 << 20) /* pattern values; the buffer holds two periods */
#define SYNTH_CHUNK ((int64_t)1 << 30)  /* elements per op call (the CUDA elementwise kernels take < 2^31) */

static uint64_t synth_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t synth_hash(const char *name, uint64_t seed) { /* FNV-1a, seeded */
    uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0xd1b54a32d192ed03ull);
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 0x100000001b3ull;
    return h;
}

static bool placed(const lisa_weights *w) { return w->be->device != LISA_DEVICE_CPU || w->synth_init != NULL; }

static lisa_tensor backend_view(const lisa_weights *w, void *data, lisa_dtype dt, int32_t n_dims, const int64_t *shape) {
    lisa_tensor t = lisa_tensor_view(data, dt, n_dims, shape);
    t.device = w->be->device;
    t.device_id = w->be->device_id;
    return t;
}

/* Reads the synthetic metadata (if any) and uploads the N(0, 1) pattern: Irwin-Hall normals from
 * splitmix64 (integer arithmetic, identical on every machine), two periods back to back so that any
 * start offset < SYNTH_PERIOD has SYNTH_PERIOD contiguous values after it. */
static lisa_status synth_begin(lisa_weights *w) {
    const char *init = lisa_checkpoint_metadata(w->ck, "lisa_synthetic_init");
    if (!init) return LISA_OK;
    const char *seed = lisa_checkpoint_metadata(w->ck, "lisa_synthetic");
    cJSON *j = cJSON_Parse(init);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lisa_fail(LISA_ERR_FORMAT, "%s: synthetic checkpoint: metadata lisa_synthetic_init is not a JSON object",
                         lisa_checkpoint_path(w->ck));
    }
    w->synth_init = j;
    w->synth_seed = seed ? strtoull(seed, NULL, 10) : 0;
    const int64_t n = 2 * SYNTH_PERIOD;
    float *h = malloc((size_t)n * sizeof(float));
    if (!h) return lisa_fail(LISA_ERR_OOM, "synthetic weights: out of memory");
    uint64_t s = w->synth_seed ^ 0x5851f42d4c957f2dull;
    for (int64_t i = 0; i < SYNTH_PERIOD; i++) {
        int64_t sum = 0;
        for (int k = 0; k < 3; k++) {
            const uint64_t u = synth_next(&s);
            sum += (int64_t)(u & 0xffff) + (int64_t)((u >> 16) & 0xffff) + (int64_t)((u >> 32) & 0xffff) +
                   (int64_t)(u >> 48);
        }
        h[i] = h[i + SYNTH_PERIOD] = (float)(((double)sum - 393210.0) / 65536.0);
    }
    void *mem = NULL;
    lisa_status st = w->be->mem_alloc(w->be, (size_t)n * sizeof(float), &mem);
    if (st == LISA_OK) st = w->be->upload(w->be, mem, h, (size_t)n * sizeof(float));
    free(h);
    if (st != LISA_OK) {
        if (mem) w->be->mem_free(w->be, mem);
        return lisa_fail_context(st, "synthetic weights: pattern");
    }
    w->synth_pattern = backend_view(w, mem, LISA_DTYPE_F32, 1, &n);
    return LISA_OK;
}

static void synth_end(lisa_weights *w) {
    if (w->synth_pattern.data) {
        if (w->be->synchronize) w->be->synchronize(w->be); /* the fills read the pattern */
        w->be->mem_free(w->be, w->synth_pattern.data);
    }
    w->synth_pattern.data = NULL;
    cJSON_Delete(w->synth_init);
    w->synth_init = NULL;
}

/* d (backend memory, contiguous) <- mean + std * pattern[off + i mod period]. */
static lisa_status synth_fill(lisa_weights *w, lisa_tensor *d, const char *full) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive((cJSON *)w->synth_init, full);
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(ms, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(ms, 1)))
        return lisa_fail(LISA_ERR_FORMAT, "synthetic checkpoint %s: no [mean, std] for tensor '%s'",
                         lisa_checkpoint_path(w->ck), full);
    const float mean = (float)cJSON_GetArrayItem(ms, 0)->valuedouble, sd = (float)cJSON_GetArrayItem(ms, 1)->valuedouble;
    const int64_t n = lisa_tensor_numel(d), off = (int64_t)(synth_hash(full, w->synth_seed) % (uint64_t)SYNTH_PERIOD);
    const size_t es = lisa_dtype_size(d->dtype);
    for (int64_t i0 = 0; i0 < n; i0 += SYNTH_CHUNK) {
        const int64_t m = n - i0 < SYNTH_CHUNK ? n - i0 : SYNTH_CHUNK, reps = m / SYNTH_PERIOD, tail = m % SYNTH_PERIOD;
        char *base = (char *)d->data + (size_t)i0 * es;
        const float *src = (const float *)w->synth_pattern.data + off;
        if (reps > 0) { /* [reps, period] <- the pattern broadcast over rows (row stride 0) */
            const int64_t shp[2] = {reps, SYNTH_PERIOD};
            lisa_tensor y = backend_view(w, base, d->dtype, 2, shp), x = backend_view(w, (void *)src, LISA_DTYPE_F32, 2, shp);
            x.stride[0] = 0;
            LISA_TRY(lisa_op_copy(w->be, &y, &x));
        }
        if (tail > 0) {
            lisa_tensor y = backend_view(w, base + (size_t)(reps * SYNTH_PERIOD) * es, d->dtype, 1, &tail);
            lisa_tensor x = backend_view(w, (void *)src, LISA_DTYPE_F32, 1, &tail);
            LISA_TRY(lisa_op_copy(w->be, &y, &x));
        }
        lisa_tensor all = backend_view(w, base, d->dtype, 1, &m);
        LISA_TRY(lisa_op_scale(w->be, &all, &all, sd, 0.0f));
        if (mean != 0.0f) LISA_TRY(lisa_op_scale(w->be, &all, &all, 1.0f, mean));
    }
    return LISA_OK;
}

/* Copies the strided slice t into the contiguous dst, keeping the dtype. */
static void copy_slice(void *dst, const lisa_tensor *t) {
    const size_t es = lisa_dtype_size(t->dtype);
    const int64_t rows = t->n_dims >= 2 ? lisa_tensor_numel(t) / t->shape[t->n_dims - 1] : 1;
    const int64_t cols = t->n_dims >= 1 ? t->shape[t->n_dims - 1] : 1;
    LISA_ASSERT(t->n_dims <= 2 && (t->n_dims < 1 || t->stride[t->n_dims - 1] == 1));
    for (int64_t r = 0; r < rows; r++)
        memcpy((char *)dst + (size_t)(r * cols) * es, (const char *)t->data + (size_t)(r * t->stride[0]) * es,
               (size_t)cols * es);
}

static bool vget(lisa_weights *w, lisa_tensor *out, int32_t slice_dim, int64_t start, int64_t len, int32_t n_dims,
                 int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, va_list ap) {
    char name[512], full[640], sb[96];
    vsnprintf(name, sizeof name, fmt, ap);
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    *out = lisa_tensor_view(NULL, LISA_DTYPE_F32, 0, NULL);
    const lisa_ckpt_tensor *e = lisa_checkpoint_find(w->ck, full);
    if (!e) {
        lisa_w_error(w, LISA_ERR_NOT_FOUND, "missing tensor '%s'", full);
        return false;
    }
    lisa_tensor t = lisa_ckpt_tensor_view(e);
    const int64_t want[4] = {d0, d1, d2, d3};
    if (n_dims >= 0) {
        bool ok = t.n_dims == n_dims;
        for (int d = 0; ok && d < n_dims; d++) ok = want[d] < 0 || want[d] == t.shape[d];
        if (!ok) {
            char wb[96];
            size_t n = (size_t)snprintf(wb, sizeof wb, "[");
            for (int d = 0; d < n_dims && n < sizeof wb; d++)
                n += (size_t)(want[d] < 0 ? snprintf(wb + n, sizeof wb - n, d ? ", *" : "*")
                                          : snprintf(wb + n, sizeof wb - n, d ? ", %lld" : "%lld", (long long)want[d]));
            if (n < sizeof wb) snprintf(wb + n, sizeof wb - n, "]");
            lisa_w_error(w, LISA_ERR_SHAPE, "tensor '%s': expected shape %s, found %s", full, wb,
                         lisa_tensor_shape_str(&t, sb, sizeof sb));
            return false;
        }
    }
    if (!is_float(t.dtype)) {
        lisa_w_error(w, LISA_ERR_SHAPE, "tensor '%s': expected a float dtype, found %s", full, lisa_dtype_name(t.dtype));
        return false;
    }
    if (slice_dim >= 0) {
        if (slice_dim >= t.n_dims || start < 0 || len < 1 || start + len > t.shape[slice_dim]) {
            lisa_w_error(w, LISA_ERR_SHAPE, "tensor '%s' %s: no slice [%lld, %lld) along dim %d", full,
                         lisa_tensor_shape_str(&t, sb, sizeof sb), (long long)start, (long long)(start + len),
                         slice_dim);
            return false;
        }
        lisa_tensor v;
        LISA_ASSERT(lisa_tensor_narrow(&v, &t, slice_dim, start, len) == LISA_OK);
        t = v;
    }
    if (w->be->device == LISA_DEVICE_CPU && !w->synth_init && !w->in_reserved) {
        if (lisa_tensor_is_contiguous(&t)) { /* whole tensors and row slices: views of the mapping */
            *out = t;
            return true;
        }
        /* column slices (tensor parallelism): one contiguous copy in the checkpoint's dtype, so
         * that only this rank's share is materialized */
        const size_t bytes = lisa_tensor_nbytes(&t);
        if (w->counting) {
            w->bytes_needed += (bytes + LISA_ARENA_ALIGN - 1) & ~(size_t)(LISA_ARENA_ALIGN - 1);
            *out = t;
            return true;
        }
        void *dst = NULL;
        lisa_status s = lisa_arena_alloc(&w->device_arena, bytes, &dst);
        if (s != LISA_OK) {
            lisa_w_error(w, s, "tensor '%s': %s", full, lisa_last_error());
            return false;
        }
        copy_slice(dst, &t);
        *out = lisa_tensor_view(dst, t.dtype, t.n_dims, t.shape);
        return true;
    }
    /* Device backend: matrices in device_dtype, vectors (norms, biases) in F32; contiguous (a
     * column slice is gathered on the host first). Synthetic weights on the CPU backend: F32 (its
     * ops take F32). A sliced synthetic tensor is generated from its own name (so under tensor
     * parallelism its shards are not slices of the TP=1 tensor: synthetic models are for benches). */
    lisa_tensor d = lisa_tensor_view(
        NULL, t.n_dims >= 2 && !w->force_f32 && w->be->device != LISA_DEVICE_CPU ? w->device_dtype : LISA_DTYPE_F32,
        t.n_dims, t.shape);
    size_t bytes = lisa_tensor_nbytes(&d);
    if (w->counting) {
        if (!w->in_reserved) w->bytes_needed += (bytes + LISA_ARENA_ALIGN - 1) & ~(size_t)(LISA_ARENA_ALIGN - 1);
        *out = d;
        out->data = NULL;
        return true;
    }
    void *dst = w->place;
    lisa_status s = dst ? LISA_OK : lisa_arena_alloc(&w->device_arena, bytes, &dst);
    if (s != LISA_OK) {
        lisa_w_error(w, s, "tensor '%s': %s", full, lisa_last_error());
        return false;
    }
    d.data = dst;
    d.device = w->be->device;
    d.device_id = w->be->device_id;
    void *gathered = NULL; /* tensor parallelism: this rank's columns, contiguous (load time only) */
    if (!w->synth_init && !lisa_tensor_is_contiguous(&t)) {
        if (!(gathered = malloc(lisa_tensor_nbytes(&t)))) {
            lisa_w_error(w, LISA_ERR_OOM, "tensor '%s': out of memory", full);
            return false;
        }
        copy_slice(gathered, &t);
        t = lisa_tensor_view(gathered, t.dtype, t.n_dims, t.shape);
    }
    /* Synthetic: generated in place. Same dtype: upload straight from the mapping. Else convert on
     * the host in chunks (BF16/F16 round to nearest even, as the CPU copy op) and upload each chunk. */
    if (w->synth_init) {
        s = synth_fill(w, &d, full);
    } else if (t.dtype == d.dtype) {
        s = w->be->upload(w->be, dst, t.data, bytes);
    } else {
        enum { CHUNK = 1 << 20 };
        const int64_t n = lisa_tensor_numel(&t);
        const size_t osz = lisa_dtype_size(d.dtype);
        void *buf = malloc(CHUNK * osz);
        float *tmp = malloc(CHUNK * sizeof(float));
        if (!buf || !tmp) s = lisa_fail(LISA_ERR_OOM, "tensor '%s': out of memory", full);
        for (int64_t i0 = 0; s == LISA_OK && i0 < n; i0 += CHUNK) {
            const int64_t k = n - i0 < CHUNK ? n - i0 : CHUNK;
            lisa_weights_widen(tmp, &t, i0, k);
            for (int64_t i = 0; i < k; i++) {
                if (d.dtype == LISA_DTYPE_F32) ((float *)buf)[i] = tmp[i];
                else if (d.dtype == LISA_DTYPE_BF16) ((uint16_t *)buf)[i] = lisa_f32_to_bf16(tmp[i]);
                else ((uint16_t *)buf)[i] = lisa_f32_to_f16(tmp[i]);
            }
            s = w->be->upload(w->be, (char *)dst + (size_t)i0 * osz, buf, (size_t)k * osz);
        }
        free(buf);
        free(tmp);
    }
    free(gathered);
    if (s != LISA_OK) {
        lisa_w_error(w, s, "tensor '%s': %s failed: %s", full, w->synth_init ? "generation" : "upload", lisa_last_error());
        return false;
    }
    *out = d;
    return true;
}

bool lisa_w_get(lisa_weights *w, lisa_tensor *out, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool ok = vget(w, out, -1, 0, 0, n_dims, d0, d1, d2, d3, fmt, ap);
    va_end(ap);
    if (ok && !w->counting) w->bound_bytes += lisa_tensor_nbytes(out);
    return ok;
}

bool lisa_w_get_slice(lisa_weights *w, lisa_tensor *out, int32_t dim, int64_t start, int64_t len, int32_t n_dims,
                      int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool ok = vget(w, out, dim, start, len, n_dims, d0, d1, d2, d3, fmt, ap);
    va_end(ap);
    if (ok && !w->counting) w->bound_bytes += lisa_tensor_nbytes(out);
    return ok;
}

lisa_status lisa_w_bind(void *ctx, const lisa_tensor_spec *s) {
    lisa_weights *w = ctx;
    if (!s->slot) return LISA_OK;
    w->force_f32 = (s->flags & LISA_TF_ACT) != 0;
    lisa_w_get(w, s->slot, s->n_dims, s->shape[0], s->shape[1], s->shape[2], s->shape[3], "%s", s->name);
    w->force_f32 = false;
    return LISA_OK;
}

void lisa_w_bind_slice(lisa_weights *w, const lisa_tensor_spec *s, int32_t dim, int64_t start, int64_t len) {
    if (!s->slot) return;
    w->force_f32 = (s->flags & LISA_TF_ACT) != 0;
    lisa_w_get_slice(w, s->slot, dim, start, len, s->n_dims, s->shape[0], s->shape[1], s->shape[2], s->shape[3], "%s",
                     s->name);
    w->force_f32 = false;
}

bool lisa_w_reserve(lisa_weights *w, lisa_tensor *out, int64_t rows, int64_t cols) {
    const int64_t shape[2] = {rows, cols};
    /* the dtype vget gives a placed matrix: device_dtype on devices, F32 on the CPU */
    *out = backend_view(w, NULL, w->be->device != LISA_DEVICE_CPU ? w->device_dtype : LISA_DTYPE_F32, 2, shape);
    const size_t bytes = lisa_tensor_nbytes(out);
    if (w->counting) {
        w->bytes_needed += (bytes + LISA_ARENA_ALIGN - 1) & ~(size_t)(LISA_ARENA_ALIGN - 1);
        return true;
    }
    lisa_status s = lisa_arena_alloc(&w->device_arena, bytes, &out->data);
    if (s != LISA_OK) lisa_w_error(w, s, "a fused [%lld, %lld] weight: %s", (long long)rows, (long long)cols, lisa_last_error());
    return s == LISA_OK;
}

void lisa_w_bind_slice_into(lisa_weights *w, const lisa_tensor_spec *s, int32_t dim, int64_t start, int64_t len,
                            lisa_tensor *reserved, int64_t row0) {
    if (!s->slot) return;
    LISA_ASSERT(s->n_dims == 2 && !(s->flags & LISA_TF_ACT));
    const int64_t rows = dim == 0 ? len : s->shape[0], cols = dim == 1 ? len : s->shape[1];
    if (!w->counting && (!reserved->data || row0 + rows > reserved->shape[0] || cols != reserved->shape[1])) {
        lisa_w_error(w, LISA_ERR_SHAPE, "tensor '%s%s': does not fit rows %lld.. of its fused weight", w->prefix, s->name,
                     (long long)row0);
        return;
    }
    w->in_reserved = true;
    w->place = w->counting ? NULL : (char *)reserved->data + (size_t)(row0 * cols) * lisa_dtype_size(reserved->dtype);
    lisa_w_get_slice(w, s->slot, dim, start, len, s->n_dims, s->shape[0], s->shape[1], 0, 0, "%s", s->name);
    w->in_reserved = false;
    w->place = NULL;
}

lisa_status lisa_weights_load(lisa_weights *w, const char *what, lisa_weights_fn load, void *ctx) {
    w->n_errors = 0;
    w->errors[0] = '\0';
    LISA_TRY(synth_begin(w));
    /* counting pass: device backends and synthetic checkpoints place every weight; the CPU places
     * only column slices */
    w->counting = true;
    w->bytes_needed = 0;
    w->bound_bytes = 0;
    load(w, ctx);
    w->counting = false;
    if (w->n_errors == 0 && (placed(w) || w->bytes_needed > 0)) {
        lisa_status s = w->be->mem_alloc(w->be, w->bytes_needed ? w->bytes_needed : 1, &w->device_block);
        if (s != LISA_OK) {
            synth_end(w);
            return lisa_fail_context(s, "%s weights (%zu bytes)", what, w->bytes_needed);
        }
        lisa_arena_init_external(&w->device_arena, "weights", w->device_block, w->bytes_needed);
    }
    if (w->n_errors == 0) load(w, ctx);
    synth_end(w);
    if (w->n_errors == 0) return LISA_OK;
    return lisa_fail(w->first_error, "%s: %d problem%s in checkpoint %s:\n%s%s", what, w->n_errors,
                     w->n_errors == 1 ? "" : "s", lisa_checkpoint_path(w->ck), w->errors,
                     w->n_errors > LISA_WEIGHTS_MAX_ERRORS ? "\n..." : "");
}
