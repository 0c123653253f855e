/* loader/ckpt_write.c — writing checkpoints: dtype casting on the way out, the safetensors writer,
 * the torch.save-compatible .bin writer, and HF model directories (one file or shards + index) in
 * either format. */
#include "loader/checkpoint_impl.h"
#include "loader/json_write.h"
#include "loader/zip.h"

#include "core/error.h"
#include "core/half.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- casting ---------------------------------------------------------------------------------- */

static bool is_float(lisa_dtype t) { return t == LISA_DTYPE_F32 || t == LISA_DTYPE_F16 || t == LISA_DTYPE_BF16; }

lisa_dtype lisa_ckpt_out_dtype(lisa_dtype src, lisa_dtype cast) {
    return cast != LISA_DTYPE_COUNT && is_float(src) ? cast : src;
}

static float load_f(const unsigned char *p, lisa_dtype t) {
    uint16_t h;
    float f;
    switch (t) {
    case LISA_DTYPE_F32: memcpy(&f, p, 4); return f;
    case LISA_DTYPE_F16: memcpy(&h, p, 2); return lisa_f16_to_f32(h);
    default: memcpy(&h, p, 2); return lisa_bf16_to_f32(h);
    }
}

static void store_f(unsigned char *p, lisa_dtype t, float f) {
    uint16_t h;
    switch (t) {
    case LISA_DTYPE_F32: memcpy(p, &f, 4); return;
    case LISA_DTYPE_F16: h = lisa_f32_to_f16(f); memcpy(p, &h, 2); return;
    default: h = lisa_f32_to_bf16(f); memcpy(p, &h, 2); return;
    }
}

/* F16<->BF16 goes through F32: exact when widening, round-to-nearest-even when narrowing, as
 * torch's Tensor.to() does. */
void lisa_ckpt_cast(void *dst, lisa_dtype dt, const void *src, lisa_dtype st, size_t n) {
    LISA_ASSERT(is_float(dt) && is_float(st));
    size_t ds = lisa_dtype_size(dt), ss = lisa_dtype_size(st);
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++) store_f(d + i * ds, dt, load_f(s + i * ss, st));
}

#define CAST_CHUNK 65536 /* elements per conversion step */

bool lisa_ckpt_emit(FILE *f, const lisa_tensor *t, lisa_dtype out, uint32_t *crc) {
    size_t n = (size_t)lisa_tensor_numel(t);
    if (out == t->dtype) {
        size_t nb = lisa_tensor_nbytes(t);
        if (crc && nb) *crc = (uint32_t)crc32_combine(*crc, lisa_crc32(t->data, nb), (z_off_t)nb);
        return !f || nb == 0 || fwrite(t->data, 1, nb, f) == nb;
    }
    unsigned char *buf = malloc(CAST_CHUNK * 4);
    if (!buf) return false;
    size_t ss = lisa_dtype_size(t->dtype), ds = lisa_dtype_size(out);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i += CAST_CHUNK) {
        size_t k = n - i < CAST_CHUNK ? n - i : CAST_CHUNK;
        lisa_ckpt_cast(buf, out, (const unsigned char *)t->data + i * ss, t->dtype, k);
        if (crc) *crc = (uint32_t)crc32_z(*crc, buf, k * ds);
        ok = !f || fwrite(buf, 1, k * ds, f) == k * ds;
    }
    free(buf);
    return ok;
}

/* ---- safetensors writer --------------------------------------------------------------------------------- */

static bool write_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }

lisa_status lisa_safetensors_write(const char *path, const lisa_st_write_item *items, int64_t n,
                                   const char *const *meta_kv, int32_t n_meta) {
    return lisa_safetensors_write_cast(path, items, n, meta_kv, n_meta, LISA_DTYPE_COUNT);
}

lisa_status lisa_safetensors_write_cast(const char *path, const lisa_st_write_item *items, int64_t n,
                                        const char *const *meta_kv, int32_t n_meta, lisa_dtype cast) {
    if (cast != LISA_DTYPE_COUNT && cast != LISA_DTYPE_F32 && cast != LISA_DTYPE_F16 && cast != LISA_DTYPE_BF16)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: cast to %s (only float dtypes)", path, lisa_dtype_name(cast));
    cJSON *root = cJSON_CreateObject();
    if (!root) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    lisa_status s = LISA_OK;
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int32_t i = 0; m && i < n_meta; i++) cJSON_AddStringToObject(m, meta_kv[2 * i], meta_kv[2 * i + 1]);
    }
    /* Data laid out by element size, largest first (stable): every tensor starts at a multiple of
     * its element size, so a reader that maps the file gets aligned tensors without copies. The
     * header lists the tensors in the given order. */
    int64_t *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    uint64_t *offsets = malloc((size_t)(n > 0 ? n : 1) * sizeof *offsets);
    if (!order || !offsets) {
        free(order);
        free(offsets);
        cJSON_Delete(root);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    int64_t k = 0;
    for (size_t esz = 8; esz >= 1; esz /= 2)
        for (int64_t i = 0; i < n; i++)
            if (lisa_dtype_size(lisa_ckpt_out_dtype(items[i].tensor.dtype, cast)) == esz) order[k++] = i;
    LISA_ASSERT(k == n);
    uint64_t offset = 0;
    for (int64_t j = 0; j < n; j++) {
        const lisa_tensor *t = &items[order[j]].tensor;
        offsets[order[j]] = offset;
        offset += (uint64_t)lisa_tensor_numel(t) * lisa_dtype_size(lisa_ckpt_out_dtype(t->dtype, cast));
    }
    for (int64_t i = 0; i < n && s == LISA_OK; i++) {
        const lisa_tensor *t = &items[i].tensor;
        if (!lisa_tensor_is_contiguous(t) || t->device != LISA_DEVICE_CPU) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "%s: tensor '%s' must be a contiguous host tensor", path, items[i].name);
            break;
        }
        if (cJSON_GetObjectItemCaseSensitive(root, items[i].name)) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "%s: tensor name '%s' given twice", path, items[i].name);
            break;
        }
        lisa_dtype dt = lisa_ckpt_out_dtype(t->dtype, cast);
        cJSON *e = cJSON_AddObjectToObject(root, items[i].name);
        cJSON_AddStringToObject(e, "dtype", lisa_dtype_name(dt));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        uint64_t nb = (uint64_t)lisa_tensor_numel(t) * lisa_dtype_size(dt);
        cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offsets[i]));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(offsets[i] + nb)));
    }
    free(offsets);
    char *header = s == LISA_OK ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (s != LISA_OK || !header) {
        free(order);
        free(header);
        return s != LISA_OK ? s : lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    size_t hl = strlen(header);
    size_t padded = (hl + 7) & ~(size_t)7; /* data buffer 8-byte aligned, as the reference writer */

    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(header);
        free(order);
        return lisa_fail(LISA_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    bool ok = write_all(f, len8, 8) && write_all(f, header, hl);
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    free(header);
    for (int64_t j = 0; ok && j < n; j++) {
        const lisa_tensor *t = &items[order[j]].tensor;
        ok = lisa_ckpt_emit(f, t, lisa_ckpt_out_dtype(t->dtype, cast), NULL);
    }
    free(order);
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lisa_fail(LISA_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return LISA_OK;
}

lisa_status lisa_checkpoint_compare(const lisa_checkpoint *a, const lisa_checkpoint *b, lisa_dtype cast) {
    const char *A = lisa_checkpoint_path(a), *B = lisa_checkpoint_path(b);
    for (int64_t i = 0; i < lisa_checkpoint_count(b); i++)
        if (!lisa_checkpoint_find(a, lisa_checkpoint_at(b, i)->name))
            return lisa_fail(LISA_ERR_FORMAT, "%s has tensor '%s', which %s lacks", B, lisa_checkpoint_at(b, i)->name, A);
    unsigned char *buf = NULL;
    lisa_status s = LISA_OK;
    for (int64_t i = 0; s == LISA_OK && i < lisa_checkpoint_count(a); i++) {
        const lisa_ckpt_tensor *x = lisa_checkpoint_at(a, i), *y = lisa_checkpoint_find(b, x->name);
        lisa_dtype want = lisa_ckpt_out_dtype(x->dtype, cast);
        bool ok = y && y->dtype == want && y->n_dims == x->n_dims;
        for (int d = 0; ok && d < x->n_dims; d++) ok = x->shape[d] == y->shape[d];
        if (ok && want == x->dtype) {
            ok = x->nbytes == y->nbytes && (x->nbytes == 0 || memcmp(x->data, y->data, x->nbytes) == 0);
        } else if (ok) {
            if (!buf && !(buf = malloc(CAST_CHUNK * 4))) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", B);
            size_t n = x->nbytes / lisa_dtype_size(x->dtype), ss = lisa_dtype_size(x->dtype), ds = lisa_dtype_size(want);
            for (size_t k = 0; ok && k < n; k += CAST_CHUNK) {
                size_t c = n - k < CAST_CHUNK ? n - k : CAST_CHUNK;
                lisa_ckpt_cast(buf, want, (const unsigned char *)x->data + k * ss, x->dtype, c);
                ok = memcmp(buf, (const unsigned char *)y->data + k * ds, c * ds) == 0;
            }
        }
        if (!ok)
            s = lisa_fail(LISA_ERR_FORMAT, "tensor '%s' of %s %s in %s", x->name, A,
                          y ? "differs (dtype, shape or bytes)" : "is missing", B);
    }
    free(buf);
    return s;
}

/* ---- torch.save writer ----------------------------------------------------------------------- */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
    bool oom;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n) c *= 2;
        unsigned char *np = realloc(b->p, c);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put1(bytes *b, unsigned v) {
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}
static void put_le(bytes *b, uint64_t v, int k) {
    unsigned char c[8];
    for (int i = 0; i < k; i++) c[i] = (unsigned char)(v >> (8 * i));
    put(b, c, (size_t)k);
}
static void put_str(bytes *b, const char *s) { put(b, s, strlen(s)); }

/* Pickle opcodes as CPython's pickler (protocol 2) chooses them. */
static void pk_int(bytes *b, int64_t v) {
    if (v >= 0 && v < 256) {
        put1(b, 'K');
        put1(b, (unsigned)v);
    } else if (v >= 0 && v < 65536) {
        put1(b, 'M');
        put_le(b, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        put1(b, 'J');
        put_le(b, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else { /* LONG1 with the minimal two's-complement length */
        int k = 1;
        while (k < 8 && !(v >= -((int64_t)1 << (8 * k - 1)) && v < ((int64_t)1 << (8 * k - 1)))) k++;
        put1(b, 0x8a);
        put1(b, (unsigned)k);
        put_le(b, (uint64_t)v, k);
    }
}
static void pk_str(bytes *b, const char *s) {
    put1(b, 'X');
    put_le(b, strlen(s), 4);
    put_str(b, s);
}
static void pk_put(bytes *b, uint32_t id) {
    if (id < 256) {
        put1(b, 'q');
        put1(b, id);
    } else {
        put1(b, 'r');
        put_le(b, id, 4);
    }
}
static void pk_get(bytes *b, uint32_t id) {
    if (id < 256) {
        put1(b, 'h');
        put1(b, id);
    } else {
        put1(b, 'j');
        put_le(b, id, 4);
    }
}
static void pk_int_tuple(bytes *b, const int64_t *v, int n) {
    if (n == 0) {
        put1(b, ')');
        return;
    }
    if (n > 3) put1(b, '(');
    for (int i = 0; i < n; i++) pk_int(b, v[i]);
    put1(b, n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
}

static const char *storage_class(lisa_dtype t) {
    switch (t) {
    case LISA_DTYPE_F32: return "FloatStorage";
    case LISA_DTYPE_F16: return "HalfStorage";
    case LISA_DTYPE_BF16: return "BFloat16Storage";
    case LISA_DTYPE_I64: return "LongStorage";
    case LISA_DTYPE_I32: return "IntStorage";
    case LISA_DTYPE_U8: return "ByteStorage";
    case LISA_DTYPE_BOOL: return "BoolStorage";
    default: return NULL;
    }
}

/* data.pkl for OrderedDict(name_i -> tensor_i), tensor i on storage "i" (what torch.save writes
 * for a dict of distinct contiguous tensors; memo layout as CPython's pickler). */
static void build_pickle(bytes *b, const lisa_st_write_item *items, int64_t n, lisa_dtype cast) {
    uint32_t memo = 0;
    uint32_t id_odict, id_rebuild = UINT32_MAX, id_class[LISA_DTYPE_COUNT];
    for (int i = 0; i < LISA_DTYPE_COUNT; i++) id_class[i] = UINT32_MAX;
    put1(b, 0x80);
    put1(b, 2);
    put_str(b, "ccollections\nOrderedDict\n");
    pk_put(b, id_odict = memo++);
    put1(b, ')');
    put1(b, 'R');
    pk_put(b, memo++);
    for (int64_t i = 0; i < n; i++) {
        if (i % 1000 == 0) put1(b, '('); /* pickle batches SETITEMS by 1000 */
        const lisa_tensor *t = &items[i].tensor;
        lisa_dtype dt = lisa_ckpt_out_dtype(t->dtype, cast);
        pk_str(b, items[i].name);
        pk_put(b, memo++);
        if (id_rebuild == UINT32_MAX) {
            put_str(b, "ctorch._utils\n_rebuild_tensor_v2\n");
            pk_put(b, id_rebuild = memo++);
        } else {
            pk_get(b, id_rebuild);
        }
        put1(b, '(');
        put1(b, '(');
        pk_str(b, "storage");
        pk_put(b, memo++);
        if (id_class[dt] == UINT32_MAX) {
            put_str(b, "ctorch\n");
            put_str(b, storage_class(dt));
            put1(b, '\n');
            pk_put(b, id_class[dt] = memo++);
        } else {
            pk_get(b, id_class[dt]);
        }
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)i);
        pk_str(b, key);
        pk_put(b, memo++);
        pk_str(b, "cpu");
        pk_put(b, memo++);
        pk_int(b, lisa_tensor_numel(t));
        put1(b, 't');
        pk_put(b, memo++);
        put1(b, 'Q');
        pk_int(b, 0); /* storage offset */
        int64_t stride[LISA_MAX_DIMS], acc = 1;
        for (int d = t->n_dims - 1; d >= 0; d--) {
            stride[d] = acc;
            acc *= t->shape[d];
        }
        pk_int_tuple(b, t->shape, t->n_dims);
        pk_put(b, memo++);
        pk_int_tuple(b, stride, t->n_dims);
        pk_put(b, memo++);
        put1(b, 0x89); /* requires_grad=False */
        pk_get(b, id_odict);
        put1(b, ')');
        put1(b, 'R'); /* backward_hooks = OrderedDict() */
        pk_put(b, memo++);
        put1(b, 't');
        pk_put(b, memo++);
        put1(b, 'R');
        pk_put(b, memo++);
        if (i % 1000 == 999 || i == n - 1) put1(b, 'u');
    }
    put1(b, '.');
}

typedef struct zentry {
    char name[64];
    uint64_t offset, size;
    uint32_t crc;
} zentry;

#define U32MAX 0xffffffffu

/* Local header + alignment padding so that the data starts at a multiple of 64 (torch's writer
 * pads with an extra field "FB" of 'Z' bytes). */
static bool write_local(FILE *f, uint64_t *pos, const zentry *e) {
    bytes h = {0};
    bool z64 = e->size >= U32MAX;
    size_t nl = strlen(e->name);
    uint64_t base = *pos + 30 + nl + (z64 ? 20 : 0) + 4;
    size_t pad = (size_t)((64 - base % 64) % 64);
    put_le(&h, 0x04034b50u, 4);
    put_le(&h, z64 ? 45 : 20, 2);
    put_le(&h, 0, 2);  /* flags */
    put_le(&h, 0, 2);  /* stored */
    put_le(&h, 0, 4);  /* time, date (torch writes zeros too: reproducible files) */
    put_le(&h, e->crc, 4);
    put_le(&h, z64 ? U32MAX : e->size, 4);
    put_le(&h, z64 ? U32MAX : e->size, 4);
    put_le(&h, nl, 2);
    put_le(&h, (z64 ? 20 : 0) + 4 + pad, 2);
    put_str(&h, e->name);
    if (z64) {
        put_le(&h, 1, 2);
        put_le(&h, 16, 2);
        put_le(&h, e->size, 8);
        put_le(&h, e->size, 8);
    }
    put_le(&h, 0x4246, 2); /* "FB" */
    put_le(&h, pad, 2);
    for (size_t i = 0; i < pad; i++) put1(&h, 'Z');
    bool ok = !h.oom && fwrite(h.p, 1, h.n, f) == h.n;
    *pos += h.n;
    free(h.p);
    return ok;
}

static void central(bytes *b, const zentry *e) {
    bool zs = e->size >= U32MAX, zo = e->offset >= U32MAX;
    size_t nl = strlen(e->name);
    uint16_t xl = (uint16_t)((zs || zo) ? 4 + (zs ? 16 : 0) + (zo ? 8 : 0) : 0);
    put_le(b, 0x02014b50u, 4);
    put_le(b, 45, 2); /* made by */
    put_le(b, (zs || zo) ? 45 : 20, 2);
    put_le(b, 0, 2);
    put_le(b, 0, 2);
    put_le(b, 0, 4);
    put_le(b, e->crc, 4);
    put_le(b, zs ? U32MAX : e->size, 4);
    put_le(b, zs ? U32MAX : e->size, 4);
    put_le(b, nl, 2);
    put_le(b, xl, 2);
    put_le(b, 0, 2); /* comment */
    put_le(b, 0, 2); /* disk */
    put_le(b, 0, 2); /* internal attributes */
    put_le(b, 0, 4); /* external attributes */
    put_le(b, zo ? U32MAX : e->offset, 4);
    put_str(b, e->name);
    if (xl) {
        put_le(b, 1, 2);
        put_le(b, xl - 4u, 2);
        if (zs) {
            put_le(b, e->size, 8);
            put_le(b, e->size, 8);
        }
        if (zo) put_le(b, e->offset, 8);
    }
}

static lisa_status write_fail(FILE *f, const char *tmp, const char *path) {
    int e = errno;
    if (f) fclose(f);
    unlink(tmp);
    return lisa_fail(LISA_ERR_IO, "%s: write failed: %s", path, e ? strerror(e) : "short write");
}

lisa_status lisa_torch_save_write(const char *path, const lisa_st_write_item *items, int64_t n, lisa_dtype cast) {
    for (int64_t i = 0; i < n; i++) {
        const lisa_tensor *t = &items[i].tensor;
        if (!lisa_tensor_is_contiguous(t) || t->device != LISA_DEVICE_CPU)
            return lisa_fail(LISA_ERR_INVALID_ARG, "%s: tensor '%s' must be a contiguous host tensor", path, items[i].name);
        if (!storage_class(t->dtype))
            return lisa_fail(LISA_ERR_INVALID_ARG, "%s: tensor '%s': dtype %s has no torch storage type", path,
                             items[i].name, lisa_dtype_name(t->dtype));
        for (int64_t j = 0; j < i; j++)
            if (strcmp(items[i].name, items[j].name) == 0)
                return lisa_fail(LISA_ERR_INVALID_ARG, "%s: tensor name '%s' given twice", path, items[i].name);
    }
    if (cast != LISA_DTYPE_COUNT && !is_float(cast))
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: cast to %s (only float dtypes)", path, lisa_dtype_name(cast));
    bytes pkl = {0};
    build_pickle(&pkl, items, n, cast);
    zentry *ze = calloc((size_t)n + 2, sizeof *ze);
    if (pkl.oom || !ze) {
        free(pkl.p);
        free(ze);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    /* Entry order as torch: data.pkl, data/0..n-1, version. CRCs first (a pass over the data),
     * so that local headers carry them and no data descriptors are needed. */
    int64_t ne = n + 2;
    snprintf(ze[0].name, sizeof ze[0].name, "archive/data.pkl");
    ze[0].size = pkl.n;
    ze[0].crc = (uint32_t)crc32_z(0, pkl.p, pkl.n);
    for (int64_t i = 0; i < n; i++) {
        const lisa_tensor *t = &items[i].tensor;
        lisa_dtype dt = lisa_ckpt_out_dtype(t->dtype, cast);
        snprintf(ze[1 + i].name, sizeof ze[1 + i].name, "archive/data/%lld", (long long)i);
        ze[1 + i].size = (uint64_t)lisa_tensor_numel(t) * lisa_dtype_size(dt);
        uint32_t crc = 0;
        lisa_ckpt_emit(NULL, t, dt, &crc);
        ze[1 + i].crc = crc;
    }
    static const char version[] = "3\n";
    snprintf(ze[n + 1].name, sizeof ze[n + 1].name, "archive/version");
    ze[n + 1].size = 2;
    ze[n + 1].crc = (uint32_t)crc32_z(0, (const unsigned char *)version, 2);

    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(pkl.p);
        free(ze);
        return lisa_fail(LISA_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    errno = 0;
    uint64_t pos = 0;
    bool ok = true;
    for (int64_t i = 0; ok && i < ne; i++) {
        ze[i].offset = pos;
        ok = write_local(f, &pos, &ze[i]);
        if (!ok) break;
        if (i == 0) ok = fwrite(pkl.p, 1, pkl.n, f) == pkl.n;
        else if (i == ne - 1) ok = fwrite(version, 1, 2, f) == 2;
        else ok = lisa_ckpt_emit(f, &items[i - 1].tensor, lisa_ckpt_out_dtype(items[i - 1].tensor.dtype, cast), NULL);
        pos += ze[i].size;
    }
    free(pkl.p);
    bytes cd = {0};
    for (int64_t i = 0; i < ne; i++) central(&cd, &ze[i]);
    free(ze);
    uint64_t cd_off = pos, cd_size = cd.n, z64_off = pos + cd.n;
    /* ZIP64 end record + locator always (as torch), then the classic end record. */
    put_le(&cd, 0x06064b50u, 4);
    put_le(&cd, 44, 8);
    put_le(&cd, 45, 2);
    put_le(&cd, 45, 2);
    put_le(&cd, 0, 4);
    put_le(&cd, 0, 4);
    put_le(&cd, (uint64_t)ne, 8);
    put_le(&cd, (uint64_t)ne, 8);
    put_le(&cd, cd_size, 8);
    put_le(&cd, cd_off, 8);
    put_le(&cd, 0x07064b50u, 4);
    put_le(&cd, 0, 4);
    put_le(&cd, z64_off, 8);
    put_le(&cd, 1, 4);
    put_le(&cd, 0x06054b50u, 4);
    put_le(&cd, 0, 2);
    put_le(&cd, 0, 2);
    put_le(&cd, ne >= 0xffff ? 0xffff : (uint64_t)ne, 2);
    put_le(&cd, ne >= 0xffff ? 0xffff : (uint64_t)ne, 2);
    put_le(&cd, cd_size >= U32MAX ? U32MAX : cd_size, 4);
    put_le(&cd, cd_off >= U32MAX ? U32MAX : cd_off, 4);
    put_le(&cd, 0, 2);
    if (cd.oom) {
        free(cd.p);
        fclose(f);
        unlink(tmp);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    ok = ok && fwrite(cd.p, 1, cd.n, f) == cd.n;
    free(cd.p);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (!ok) return write_fail(f, tmp, path);
    if (fclose(f) != 0) return write_fail(NULL, tmp, path);
    if (rename(tmp, path) != 0) return write_fail(NULL, tmp, path);
    return LISA_OK;
}

/* ---- model directories ------------------------------------------------------------------------ */

lisa_status lisa_checkpoint_write_dir(const char *dir, const lisa_st_write_item *items, int64_t n,
                                      const lisa_ckpt_write_params *p) {
    bool bin = p->format == LISA_CKPT_TORCH_BIN;
    const char *single = bin ? "pytorch_model.bin" : "model.safetensors";
    const char *stem = bin ? "pytorch_model" : "model";
    const char *ext = bin ? "bin" : "safetensors";
    /* HF's split (transformers shard_checkpoint): a new shard when the next tensor would push the
     * current one past the limit; a tensor larger than the limit gets a shard of its own. */
    int32_t *shard_of = malloc((size_t)(n ? n : 1) * sizeof *shard_of);
    if (!shard_of) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", dir);
    int32_t n_shards = 1;
    uint64_t cur = 0, total = 0;
    for (int64_t i = 0; i < n; i++) {
        const lisa_tensor *t = &items[i].tensor;
        uint64_t nb = (uint64_t)lisa_tensor_numel(t) * lisa_dtype_size(lisa_ckpt_out_dtype(t->dtype, p->cast));
        if (p->shard_size && cur > 0 && cur + nb > p->shard_size) {
            n_shards++;
            cur = 0;
        }
        cur += nb;
        total += nb;
        shard_of[i] = n_shards - 1;
    }
    lisa_st_write_item *sub = malloc((size_t)(n ? n : 1) * sizeof *sub);
    cJSON *index = n_shards > 1 ? cJSON_CreateObject() : NULL;
    cJSON *wm = NULL;
    lisa_status s = LISA_OK;
    if (!sub || (n_shards > 1 && !index)) s = lisa_fail(LISA_ERR_OOM, "%s: out of memory", dir);
    if (index) {
        cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        wm = cJSON_AddObjectToObject(index, "weight_map");
    }
    static const char *const st_meta[] = {"format", "pt"}; /* transformers refuses safetensors without it */
    char path[8192], fname[256];
    int32_t written = 0;
    for (int32_t k = 0; s == LISA_OK && k < n_shards; k++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (shard_of[i] == k) sub[m++] = items[i];
        if (n_shards == 1) snprintf(fname, sizeof fname, "%s", single);
        else snprintf(fname, sizeof fname, "%s-%05d-of-%05d.%s", stem, k + 1, n_shards, ext);
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        s = bin ? lisa_torch_save_write(path, sub, m, p->cast)
                : lisa_safetensors_write_cast(path, sub, m, st_meta, 1, p->cast);
        if (s == LISA_OK) written++;
        for (int64_t i = 0; s == LISA_OK && wm && i < m; i++) cJSON_AddStringToObject(wm, sub[i].name, fname);
    }
    if (s == LISA_OK && index) {
        /* the index last (atomically): a directory with an index is complete. Written as
         * transformers does (json.dumps(indent=2, sort_keys=True) + newline). */
        snprintf(path, sizeof path, "%s/%s.index.json", dir, bin ? "pytorch_model.bin" : "model.safetensors");
        s = lisa_json_write_file(path, index);
    }
    if (s != LISA_OK) {
        /* no partial model directory: remove the shards written before the failure */
        for (int32_t k = 0; k < written; k++) {
            if (n_shards == 1) snprintf(fname, sizeof fname, "%s", single);
            else snprintf(fname, sizeof fname, "%s-%05d-of-%05d.%s", stem, k + 1, n_shards, ext);
            snprintf(path, sizeof path, "%s/%s", dir, fname);
            unlink(path);
        }
    }
    cJSON_Delete(index);
    free(sub);
    free(shard_of);
    return s;
}
